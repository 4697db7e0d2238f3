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
pub(crate) async fn run<T>(state: &AppState, key: &Key, private: bool, f: impl FnOnce() -> T) -> T {
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
    let version = key.requested(p)?;
    let padding = params::name(p, "padding_mode", PaddingMode::from_name)?;
    let pt = params::bytes(p, "plaintext")?;
    let ct = run(state, &key, false, || {
        state
            .core
            .asymmetric_encrypt(&req.mac, &version.ctx, version.blob, padding, &pt)
    })
    .await?;
    Ok(Reply::success(
        json!({ "ciphertext": b64(&ct), "keyversion": version.number() }),
    ))
}

/// Without `keyversion`, every version is tried, the primary first, so that a ciphertext made
/// before a rotation still decrypts for a client that never heard of versions. With RSA
/// PKCS#1 v1.5 padding a wrong key's result passes the padding check about once in 2^16
/// tries, so a client of such a key that rotates should send the version (docs/key-lifecycle.md);
/// OAEP and SM2 fail with a wrong key for certain.
pub(super) async fn decrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let candidates = key.candidates(p)?;
    let padding = params::name(p, "padding_mode", PaddingMode::from_name)?;
    let ct = params::bytes(p, "ciphertext")?;
    let (pt, version) = run(state, &key, true, || {
        first_success(&candidates, |v| {
            state
                .core
                .asymmetric_decrypt(&req.mac, &v.ctx, v.blob, padding, &ct)
        })
    })
    .await?;
    Ok(Reply::success(
        json!({ "plaintext": b64(pt.as_slice()), "keyversion": version }),
    ))
}

/// The first of `candidates` that `f` succeeds with, and its number; if none does, the error
/// of the first (the requested or primary version's: the answer a client of one version gets).
fn first_success<T>(
    candidates: &[keys::Version<'_>],
    mut f: impl FnMut(&keys::Version<'_>) -> ehsm_core::Result<T>,
) -> ehsm_core::Result<(T, u32)> {
    let mut first_error = None;
    for v in candidates {
        match f(v) {
            Ok(t) => return Ok((t, v.number())),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(first_error.unwrap_or(ehsm_core::Error::DecryptionFailed))
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
    let version = key.requested(req.payload)?;
    let s = sign_params(req.payload)?;
    let sig = run(state, &key, true, || {
        state.core.sign(
            &req.mac,
            &version.ctx,
            version.blob,
            s.digest,
            s.padding,
            s.kind,
            &s.message,
        )
    })
    .await?;
    Ok(Reply::success(
        json!({ "signature": b64(&sig), "keyversion": version.number() }),
    ))
}

/// Without `keyversion`, a signature made by any version verifies (the primary is tried
/// first): a signature made before a rotation keeps verifying for upstream's clients.
/// `keyversion` in the answer is the version that verified it; there is none for a signature
/// that did not verify.
pub(super) async fn verify(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::load(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let candidates = key.candidates(req.payload)?;
    let s = sign_params(req.payload)?;
    let sig = params::bytes(req.payload, "signature")?;
    let verified = run(state, &key, false, || {
        verifying_version(&candidates, |v| {
            state.core.verify(
                &req.mac, &v.ctx, v.blob, s.digest, s.padding, s.kind, &s.message, &sig,
            )
        })
    })
    .await?;
    Ok(Reply::success(verified_answer(verified)))
}

/// The number of the first of `candidates` whose check `f` passes, `None` if none does. An
/// error (a key that cannot verify at all) is the answer.
pub(crate) fn verifying_version(
    candidates: &[keys::Version<'_>],
    mut f: impl FnMut(&keys::Version<'_>) -> ehsm_core::Result<bool>,
) -> ehsm_core::Result<Option<u32>> {
    for v in candidates {
        if f(v)? {
            return Ok(Some(v.number()));
        }
    }
    Ok(None)
}

/// Verify's and VerifyMac's answer: upstream's `result`, and the version that verified.
pub(super) fn verified_answer(version: Option<u32>) -> serde_json::Value {
    match version {
        Some(v) => json!({ "result": true, "keyversion": v }),
        None => json!({ "result": false }),
    }
}

pub(super) async fn get_public_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::load(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let version = key.requested(req.payload)?;
    let pem = state
        .core
        .public_key_pem(&req.mac, &version.ctx, version.blob)?;
    Ok(Reply::success(json!({
        "pubkey": pem,
        "keyid": key.record.keyid,
        "keyversion": version.number(),
    })))
}
