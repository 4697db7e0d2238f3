//! The AWS KMS endpoint: `POST /aws` with `X-Amz-Target: TrentService.<Operation>` and an AWS
//! JSON 1.1 body, signed with SigV4 by the app's appid (access key id) and API key (secret
//! access key).
//!
//! A request is authenticated first (the signature, checked in the core, then the replay
//! check, as an eHSM request's MAC), then its target and body are read, then the operation
//! runs. Every answer is AWS's: the output structure as JSON, or `{"__type", "message"}` with
//! AWS's HTTP status.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use ehsm_core::MacVerified;
use serde_json::Value;

use super::error::AwsError;
use super::input::Input;
use super::ops::{self, Caller, Operation};
use super::sigv4::{self, SignedRequest};
use crate::state::{AppState, now_ms};

/// The AWS JSON 1.1 media type, of requests and answers.
const JSON_1_1: &str = "application/x-amz-json-1.1";

pub(crate) async fn handle(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, crate::BODY_LIMIT).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let started = std::time::Instant::now();
    let result = answer(&state, &parts, &body).await;
    tracing::debug!(
        target = parts
            .headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-"),
        status = result.as_ref().map_or_else(|e| e.status, |_| 200),
        micros = started.elapsed().as_micros() as u64,
        "AWS request"
    );
    match result {
        Ok(output) => output_response(&output),
        Err(e) => e.into_response(),
    }
}

async fn answer(state: &AppState, parts: &Parts, body: &[u8]) -> Result<Value, AwsError> {
    let signed = sigv4::parse_and_canonicalise(
        &parts.method,
        &parts.uri,
        &parts.headers,
        body,
        std::time::SystemTime::now(),
        &state.aws.region,
    )?;
    let mac = authenticate(state, &signed).await?;
    let target = parts
        .headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok());
    let op = Operation::from_target(target)?;
    check_content_type(parts)?;
    let input = Input::parse(body)?;
    ops::dispatch(&Caller { state, mac }, op, &input).await
}

/// The app whose signature this is, after the replay check: the app's API key is its secret
/// access key, and the signature is checked inside the core, as a request MAC is.
async fn authenticate<'a>(
    state: &AppState,
    signed: &'a SignedRequest,
) -> Result<MacVerified<'a>, AwsError> {
    let appid = signed.access_key_id.as_str();
    // As an eHSM request: looked up here, recorded once the signature has checked out.
    let now = now_ms();
    let fingerprint = state.replay.fingerprint(appid, &signed.signature_hex);
    if state.replay.is_replay(&fingerprint, now) {
        return Err(replayed());
    }
    let apikey = crate::app_key(state, appid)
        .await
        .map_err(|_| ops::internal(&"app lookup failed"))?
        .ok_or_else(AwsError::unrecognized_client)?;
    let mac = state
        .core
        .verify_sigv4(
            appid,
            &apikey,
            &signed.scope(),
            signed.string_to_sign.as_bytes(),
            &signed.signature_hex,
        )
        .map_err(|e| match e {
            ehsm_core::Error::RequestMacMismatch => AwsError::signature_mismatch(),
            e => ops::core_refusal(e),
        })?;
    let ticket = state.replay.record(fingerprint, now).ok_or_else(replayed)?;
    state
        .replay
        .durable(ticket)
        .await
        .map_err(|e| ops::internal(&e))?;
    Ok(mac)
}

/// AWS accepts a signed request again within its 5-minute window; ehsm does not, as it does
/// not for eHSM requests: a captured request (a Decrypt, say) cannot be sent twice.
///
/// The refusal is a ThrottlingException, which SDKs retry: botocore signs X-Amz-Date to the
/// second and nothing else that differs between two identical calls (its invocation id is
/// unsigned), so a client making the same call twice within a second sends one signature twice.
/// Its retry is signed anew, in a later second, and served; a replayed capture gets nothing.
fn replayed() -> AwsError {
    AwsError::throttling(
        "Rate exceeded: this request repeats the signature of one already received (ehsm \
         refuses replayed requests, and identical requests signed within the same second share \
         a signature). Send it again, signed anew.",
    )
}

/// AWS's JSON protocol sends `application/x-amz-json-1.1` (parameters such as a charset are
/// allowed); a body of another type is not a KMS request.
fn check_content_type(parts: &Parts) -> Result<(), AwsError> {
    let media_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|ct| ct.split(';').next())
        .map(str::trim);
    match media_type {
        Some(m) if m.eq_ignore_ascii_case(JSON_1_1) => Ok(()),
        _ => Err(AwsError::serialization(format!(
            "The Content-Type must be {JSON_1_1}."
        ))),
    }
}

fn output_response(output: &Value) -> Response {
    match serde_json::to_vec(output) {
        Ok(body) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(JSON_1_1))],
            Body::from(body),
        )
            .into_response(),
        Err(e) => ops::internal(&e).into_response(),
    }
}
