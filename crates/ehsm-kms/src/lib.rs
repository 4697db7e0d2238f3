//! The eHSM-KMS REST service: wire-compatible with Intel eHSM-KMS 0.3.2 clients.
//!
//! [`app`] builds the router; [`server::run`] binds, serves (HTTPS or plain HTTP) and shuts
//! down gracefully. A request goes through the checks of spec §2.4 in upstream's order
//! ([`envelope`]), then to one function per action ([`actions`]). Handlers never touch key
//! bytes: they pass blobs and contexts to `ehsm-core`.
#![forbid(unsafe_code)]

mod actions;
mod aws;
mod enroll;
mod envelope;
mod jobs;
mod keys;
mod listen;
mod metrics;
mod op_error;
mod params;
mod replay;
mod reply;
pub mod server;
mod server_evidence;
mod state;
mod tls;
mod validate;

use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, Query, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ehsm_proto::Action;
use serde_json::{Map, Value, json};
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};

pub use crate::enroll::EnrollMode;
use crate::envelope::{Authenticated, Envelope};
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::AppState;
use crate::state::now_ms;

/// The largest request body accepted (upstream: Express's 100 kB); larger is HTTP 413.
pub const BODY_LIMIT: usize = 100 * 1024;

/// The router: `/ehsm` and `/ehsm/` with `?Action=`, the AWS KMS API at `/aws` and `/aws/`
/// (POST), health and metrics endpoints; every other path goes through the same checks as
/// upstream's middleware and ends in "API Not Found".
pub(crate) fn app(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics::render))
        .route("/aws", post(aws::handle))
        .route("/aws/", post(aws::handle))
        .fallback(ehsm)
        // Every answer carries an `x-request-id` (the client's, or a new UUID) that the request's
        // log line repeats, so one request can be followed from client to server log.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(RequestIds::new()))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.get_setting("ready-probe").await {
        Ok(_) => "ok".into_response(),
        Err(_) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "store unavailable",
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct ActionQuery {
    #[serde(rename = "Action")]
    action: Option<String>,
}

async fn ehsm(State(state): State<AppState>, request: Request) -> Response {
    // The request is taken apart rather than through the HeaderMap, Uri and Bytes extractors:
    // those clone the headers and URI on every request.
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => return axum::http::StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let (method, uri, headers) = (&parts.method, &parts.uri, &parts.headers);
    let started = Instant::now();
    let on_ehsm_path = matches!(uri.path(), "/ehsm" | "/ehsm/");
    let action = if on_ehsm_path {
        Query::<ActionQuery>::try_from_uri(uri)
            .ok()
            .and_then(|Query(q)| q.action.as_deref().and_then(Action::from_name))
    } else {
        None
    };
    // Enroll's and GetServerEvidence's rate limits are per client address, which only the
    // connection knows.
    let peer = parts.extensions.get::<ConnectInfo<std::net::SocketAddr>>();
    let result = match state.enroll.admit(method, action, peer.map(|c| c.0.ip())) {
        Ok(()) => handle(&state, method, action, headers, &body).await,
        Err(e) => Err(e),
    };
    let code = match &result {
        Ok(_) => 200,
        Err(e) => e.code,
    };
    metrics::record(action, code, started.elapsed());
    // Debug level: one line per request at info would cost throughput under load.
    tracing::debug!(
        request_id = headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-"),
        action = action.map_or("-", Action::as_str),
        code,
        micros = started.elapsed().as_micros() as u64,
        "request"
    );
    match result {
        Ok(reply) => reply.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Spec §2.4, steps 0–10.
async fn handle(
    state: &AppState,
    method: &Method,
    action: Option<Action>,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult {
    // 0. Enroll and GetVersion skip every check; they exist only as GET. GetServerEvidence
    //    (ehsm) exists only as POST, and its body is its one field, not an envelope.
    if let Some(a) = action.filter(|a| a.is_unauthenticated()) {
        return match (a, method) {
            (Action::GetVersion, &Method::GET) => Ok(version()),
            (Action::Enroll, &Method::GET) => enroll::enroll(state, headers).await,
            (Action::GetServerEvidence, &Method::POST) => {
                server_evidence::server_evidence(state, &parse_body(headers, body)?).await
            }
            _ => Err(ApiError::not_found()),
        };
    }
    let fresh = Envelope::new(parse_body(headers, body)?).check(action, now_ms() as u64)?;
    // 7. Replay: a look-up here, where upstream answered replays; the request is recorded
    //    only once its MAC has checked out (below).
    let now = now_ms();
    let fingerprint = state.replay.fingerprint(fresh.appid(), fresh.sign());
    if state.replay.is_replay(&fingerprint, now) {
        return Err(replayed());
    }
    // 8. Payload schema.
    if fresh.has_payload()
        && let Some(a) = action
    {
        validate::validate(a, fresh.payload()).map_err(ApiError::bad_request)?;
    }
    // 9. The app and its MAC. An unknown appid answers like a wrong MAC, so that appids cannot
    //    be probed (upstream answered differently, without a message).
    let apikey = app_key(state, fresh.appid())
        .await?
        .ok_or_else(|| ApiError::bad_request("sign error"))?;
    // A body upstream's canonicaliser could not sign (an object with its own `toString` key)
    // cannot have a valid sign either.
    let signing_string = fresh
        .signing_string()
        .ok_or_else(|| ApiError::bad_request("sign error"))?;
    let mac = state.core.verify_request_mac(
        fresh.appid(),
        &apikey,
        signing_string.as_bytes(),
        fresh.sign(),
    )?;
    fresh.check_signed_action(action, state.require_signed_action)?;
    // The request is authentic: record it (a twin sent at the same moment loses here), and
    // do nothing until a restart would remember it too.
    let ticket = state.replay.record(fingerprint, now).ok_or_else(replayed)?;
    state
        .replay
        .durable(ticket)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let req = Authenticated::new(&fresh, mac);
    // 10. The action; only POST reaches one.
    match action {
        Some(a) if method == Method::POST => actions::dispatch(state, a, &req).await,
        _ => Err(ApiError::not_found()),
    }
}

/// The API-key blob of an app, from the cache or else the store (then cached); `None` for an
/// appid that is no app's. Both front ends authenticate with it.
pub(crate) async fn app_key(
    state: &AppState,
    appid: &str,
) -> Result<Option<std::sync::Arc<ehsm_core::KeyBlob>>, ehsm_store::Error> {
    if let Some(apikey) = state.apps.get(appid) {
        return Ok(Some(apikey));
    }
    let generation = state.apps.generation();
    let Some(app) = state.store.get_app(appid).await? else {
        return Ok(None);
    };
    let apikey = std::sync::Arc::new(ehsm_core::KeyBlob::from_vec(app.apikey_blob));
    state
        .apps
        .put(appid, std::sync::Arc::clone(&apikey), generation);
    Ok(Some(apikey))
}

fn replayed() -> ApiError {
    ApiError::bad_request("Timestamp can't be repeated in 20 minutes")
}

/// Request ids: a random per-process prefix and a counter. Unique like a UUID per request, but
/// without a `getrandom` system call on every request.
#[derive(Clone)]
struct RequestIds {
    prefix: std::sync::Arc<str>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        let prefix = uuid::Uuid::new_v4().simple().to_string();
        Self {
            prefix: prefix[..12].into(),
            next: std::sync::Arc::default(),
        }
    }
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        axum::http::HeaderValue::try_from(format!("{}-{n:x}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Upstream parsed only `application/json` bodies; anything else read as an empty object.
fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
    if !json || body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        // Neither database stores a NUL in text (PostgreSQL refuses it, and ids and names
        // containing one would be ambiguous in C APIs), and no field of the protocol needs one:
        // refused here, once, before anything looks at the body.
        Ok(ref object @ Value::Object(_)) if has_nul(object) => Err(ApiError::bad_request(
            "Parameter invalid, strings must not contain NUL characters.",
        )),
        Ok(Value::Object(m)) => Ok(m),
        // Express's strict JSON parser takes arrays (then finds no fields) and refuses the rest.
        Ok(Value::Array(_)) => Ok(Map::new()),
        Ok(_) | Err(_) => Err(ApiError::bad_request("Invalid JSON")),
    }
}

/// Whether a string in `value` (a value or an object's key, at any depth) holds a NUL.
pub(crate) fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(m) => m.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        Value::Null | Value::Bool(_) | Value::Number(_) => false,
    }
}

/// The protocol version upstream reports, so that clients which check it keep working.
const PROTOCOL_VERSION: &str = "0.3.2";

fn version() -> Reply {
    Reply::success(json!({
        "version": PROTOCOL_VERSION,
        "git_sha": option_env!("EHSM_GIT_SHA").unwrap_or("0000000"),
        "ehsm": env!("CARGO_PKG_VERSION"),
    }))
}
