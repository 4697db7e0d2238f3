//! AsymmetricEncrypt, AsymmetricDecrypt, Sign, Verify, GetPublicKey.

use ehsm_core::spec::{DigestMode, KeySpec, MessageType, PaddingMode};
use serde_json::json;

use super::heavy;
use crate::envelope::Authenticated;
use crate::keys::{self, Key};
use crate::params::{self, b64};
use crate::reply::{ApiResult, Reply};
use crate::state::AppState;

/// RSA private-key operations take milliseconds; EC, SM2 and public-key operations do not.
async fn run<T>(state: &AppState, key: &Key, private: bool, f: impl FnOnce() -> T) -> T {
    let rsa = matches!(
        key.spec,
        KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096
    );
    if rsa && private {
        heavy(state, f).await
    } else {
        f()
    }
}

pub(super) async fn encrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let padding = params::name(p, "padding_mode", PaddingMode::from_name)?;
    let pt = params::bytes(p, "plaintext")?;
    let ct = run(state, &key, false, || {
        state
            .core
            .asymmetric_encrypt(&req.mac, &key.context(), &key.blob, padding, &pt)
    })
    .await?;
    Ok(Reply::success(json!({ "ciphertext": b64(&ct) })))
}

pub(super) async fn decrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let padding = params::name(p, "padding_mode", PaddingMode::from_name)?;
    let ct = params::bytes(p, "ciphertext")?;
    let pt = run(state, &key, true, || {
        state
            .core
            .asymmetric_decrypt(&req.mac, &key.context(), &key.blob, padding, &ct)
    })
    .await?;
    Ok(Reply::success(json!({ "plaintext": b64(pt.as_slice()) })))
}

struct SignParams {
    digest: DigestMode,
    padding: PaddingMode,
    kind: MessageType,
    message: Vec<u8>,
}

fn sign_params(
    p: &serde_json::Map<String, serde_json::Value>,
) -> Result<SignParams, crate::reply::ApiError> {
    Ok(SignParams {
        digest: params::name(p, "digest_mode", DigestMode::from_name)?,
        padding: params::name(p, "padding_mode", PaddingMode::from_name)?,
        kind: params::name(p, "message_type", MessageType::from_name)?,
        message: params::bytes(p, "message")?,
    })
}

pub(super) async fn sign(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::load(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let s = sign_params(req.payload)?;
    let sig = run(state, &key, true, || {
        state.core.sign(
            &req.mac,
            &key.context(),
            &key.blob,
            s.digest,
            s.padding,
            s.kind,
            &s.message,
        )
    })
    .await?;
    Ok(Reply::success(json!({ "signature": b64(&sig) })))
}

pub(super) async fn verify(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::load(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let s = sign_params(req.payload)?;
    let sig = params::bytes(req.payload, "signature")?;
    let ok = run(state, &key, false, || {
        state.core.verify(
            &req.mac,
            &key.context(),
            &key.blob,
            s.digest,
            s.padding,
            s.kind,
            &s.message,
            &sig,
        )
    })
    .await?;
    Ok(Reply::success(json!({ "result": ok })))
}

pub(super) async fn get_public_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let keyid = params::string(req.payload, "keyid")?;
    let key = keys::load(state, req.appid, keyid).await?;
    let pem = state
        .core
        .public_key_pem(&req.mac, &key.context(), &key.blob)?;
    Ok(Reply::success(json!({ "pubkey": pem, "keyid": keyid })))
}
