//! GenerateMac and VerifyMac: HMAC-SHA256 with `EH_HMAC` keys (an ehsm extension; upstream
//! declared the key spec but never built it).

use serde_json::json;

use super::asymmetric::{verified_answer, verifying_version};
use crate::envelope::Authenticated;
use crate::keys;
use crate::params::{self, b64};
use crate::reply::{ApiResult, Reply};
use crate::state::AppState;

pub(super) async fn generate_mac(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let message = params::bytes(p, "message")?;
    let primary = key.primary();
    let mac = state
        .core
        .generate_mac(&req.mac, &primary.ctx, primary.blob, &message)?;
    Ok(Reply::success(json!({ "mac": b64(&mac) })))
}

/// As Verify: a MAC made by any version of the key verifies, the primary tried first.
pub(super) async fn verify_mac(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let candidates = key.candidates(p)?;
    let message = params::bytes(p, "message")?;
    let mac = params::bytes(p, "mac")?;
    let verified = verifying_version(&candidates, |v| {
        state
            .core
            .verify_mac(&req.mac, &v.ctx, v.blob, &message, &mac)
    })?;
    Ok(Reply::success(verified_answer(verified)))
}
