//! Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext), ExportDataKey.

use serde_json::json;

use super::heavy;
use crate::envelope::Authenticated;
use crate::keys;
use crate::params::{self, b64};
use crate::reply::ApiResult;
use crate::reply::Reply;
use crate::state::AppState;

pub(super) async fn encrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let plaintext = params::bytes(p, "plaintext")?;
    let aad = params::opt_bytes(p, "aad")?;
    let ct = state
        .core
        .encrypt(&req.mac, &key.context(), &key.blob, &plaintext, &aad)?;
    Ok(Reply::success(json!({ "ciphertext": b64(&ct) })))
}

pub(super) async fn decrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let ciphertext = params::bytes(p, "ciphertext")?;
    let aad = params::opt_bytes(p, "aad")?;
    let pt = state
        .core
        .decrypt(&req.mac, &key.context(), &key.blob, &ciphertext, &aad)?;
    Ok(Reply::success(json!({ "plaintext": b64(pt.as_slice()) })))
}

pub(super) async fn generate_data_key(
    state: &AppState,
    req: &Authenticated<'_>,
    with_plaintext: bool,
) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let len = params::integer(p, "keylen")?;
    let aad = params::opt_bytes(p, "aad")?;
    let len = usize::try_from(len).unwrap_or(0);
    let dk = state
        .core
        .generate_data_key(&req.mac, &key.context(), &key.blob, len, &aad)?;
    Ok(Reply::success(if with_plaintext {
        json!({ "plaintext": b64(dk.plaintext.as_slice()), "ciphertext": b64(&dk.ciphertext) })
    } else {
        json!({ "ciphertext": b64(&dk.ciphertext) })
    }))
}

pub(super) async fn export_data_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let ukey = keys::load(state, req.appid, params::string(p, "ukeyid")?).await?;
    let old = params::bytes(p, "olddatakey_base")?;
    let aad = params::opt_bytes(p, "aad")?;
    let new = heavy(state, || {
        state.core.export_data_key(
            &req.mac,
            &key.context(),
            &key.blob,
            &ukey.context(),
            &ukey.blob,
            &old,
            &aad,
        )
    })
    .await?;
    Ok(Reply::success(json!({ "newdatakey": b64(&new) })))
}
