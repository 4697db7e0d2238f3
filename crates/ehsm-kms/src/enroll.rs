//! Enroll (spec §7.15) and who may do it.
//!
//! Upstream let anyone who reached the port mint an app (spec §16.1). ehsm has three modes:
//! `open` (upstream's behaviour), `token` (the enrolling client presents an operator token,
//! printed once at first start and stored only as a SHA-256 hash) and `off`. The default is
//! `open` only while the server listens on a loopback address, `token` otherwise. Enroll is
//! rate-limited in every mode.

use std::sync::Mutex;
use std::time::Instant;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use aws_lc_rs::digest::{SHA256, digest};
use axum::http::HeaderMap;
use ehsm_store::AppRecord;
use serde_json::json;

use crate::actions::new_default_secret_key;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// Who may enroll.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EnrollMode {
    /// Anyone who can reach the server (upstream's behaviour).
    Open,
    /// Clients presenting the operator's enrollment token (`Authorization: Bearer <token>`).
    Token,
    /// Nobody.
    Off,
}

/// The settings key under which the token's hash is stored.
pub(crate) const TOKEN_SETTING: &str = "enroll_token_sha256";

/// At most this many enrollments per second on average, with bursts of `BURST`.
const RATE_PER_SEC: f64 = 5.0;
const BURST: f64 = 20.0;

pub(crate) struct EnrollPolicy {
    mode: EnrollMode,
    token_sha256: Option<Vec<u8>>,
    bucket: Mutex<(f64, Instant)>,
}

impl EnrollPolicy {
    pub(crate) fn new(mode: EnrollMode, token_sha256: Option<Vec<u8>>) -> Self {
        Self {
            mode,
            token_sha256,
            bucket: Mutex::new((BURST, Instant::now())),
        }
    }

    fn allow(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        match self.mode {
            EnrollMode::Open => {}
            EnrollMode::Off => {
                return Err(ApiError::bad_request(
                    "Enrollment is disabled on this server.",
                ));
            }
            EnrollMode::Token => {
                let presented = headers
                    .get(axum::http::header::AUTHORIZATION)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("Bearer "))
                    .map(|t| digest(&SHA256, t.trim().as_bytes()));
                let ok = match (&self.token_sha256, presented) {
                    (Some(want), Some(got)) => verify_slices_are_equal(want, got.as_ref()).is_ok(),
                    _ => false,
                };
                if !ok {
                    return Err(ApiError::bad_request(
                        "Enrollment needs the operator's enrollment token (Authorization: Bearer <token>).",
                    ));
                }
            }
        }
        let mut b = self.bucket.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        b.0 = (b.0 + now.duration_since(b.1).as_secs_f64() * RATE_PER_SEC).min(BURST);
        b.1 = now;
        if b.0 < 1.0 {
            return Err(ApiError::bad_request(
                "Too many enrollments; try again in a moment.",
            ));
        }
        b.0 -= 1.0;
        Ok(())
    }
}

/// The SHA-256 of an enrollment token, as stored.
pub(crate) fn token_hash(token: &str) -> Vec<u8> {
    digest(&SHA256, token.as_bytes()).as_ref().to_vec()
}

/// GET ?Action=Enroll: a new appid and API key.
pub(crate) async fn enroll(state: &AppState, headers: &HeaderMap) -> ApiResult {
    state.enroll.allow(headers)?;
    let appid = uuid::Uuid::new_v4().to_string();
    let (apikey, blob) = state.core.create_api_key(&appid)?;
    let app = AppRecord {
        appid: appid.clone(),
        apikey_blob: blob.as_bytes().to_vec(),
        created_at: now_ms(),
    };
    // The app's default secret key comes with it, in the same transaction.
    let secret_key = new_default_secret_key(state, &appid)?;
    state.store.insert_app(&app, &[secret_key]).await?;
    Ok(Reply::successful(
        json!({ "appid": appid, "apikey": apikey.expose() }),
    ))
}
