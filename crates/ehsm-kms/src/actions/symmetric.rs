//! Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext), ExportDataKey.

use ehsm_core::{DataKey, MacVerified, SecretBytes};
use serde_json::json;

use super::heavy;
use crate::envelope::Authenticated;
use crate::keys::{self, Key};
use crate::params::{self, b64};
use crate::reply::ApiResult;
use crate::reply::Reply;
use crate::state::AppState;

pub(super) async fn encrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let plaintext = params::bytes(p, "plaintext")?;
    let aad = params::opt_bytes(p, "aad")?;
    let ct = encrypt_with(state, &req.mac, &key, &plaintext, &aad)?;
    Ok(Reply::success(json!({ "ciphertext": b64(&ct) })))
}

/// Encrypt (both front ends): under the key's primary version.
pub(crate) fn encrypt_with(
    state: &AppState,
    mac: &MacVerified<'_>,
    key: &Key,
    plaintext: &[u8],
    aad: &[u8],
) -> ehsm_core::Result<Vec<u8>> {
    let primary = key.primary();
    state
        .core
        .encrypt(mac, &primary.ctx, primary.blob, plaintext, aad)
}

pub(super) async fn decrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let ciphertext = params::bytes(p, "ciphertext")?;
    let aad = params::opt_bytes(p, "aad")?;
    let pt = decrypt_with(state, &req.mac, &key, &ciphertext, &aad)?;
    Ok(Reply::success(json!({ "plaintext": b64(pt.as_slice()) })))
}

/// Decrypt (both front ends): the ciphertext names the version that made it, so data from
/// before a rotation decrypts.
pub(crate) fn decrypt_with(
    state: &AppState,
    mac: &MacVerified<'_>,
    key: &Key,
    ciphertext: &[u8],
    aad: &[u8],
) -> ehsm_core::Result<SecretBytes> {
    let version = key.of_ciphertext(ciphertext)?;
    state
        .core
        .decrypt(mac, &version.ctx, version.blob, ciphertext, aad)
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
    let dk = data_key_with(state, &req.mac, &key, len, &aad)?;
    Ok(Reply::success(if with_plaintext {
        json!({ "plaintext": b64(dk.plaintext.as_slice()), "ciphertext": b64(&dk.ciphertext) })
    } else {
        json!({ "ciphertext": b64(&dk.ciphertext) })
    }))
}

/// GenerateDataKey (both front ends): `len` random bytes and their ciphertext under the key's
/// primary version.
pub(crate) fn data_key_with(
    state: &AppState,
    mac: &MacVerified<'_>,
    key: &Key,
    len: usize,
    aad: &[u8],
) -> ehsm_core::Result<DataKey> {
    let primary = key.primary();
    state
        .core
        .generate_data_key(mac, &primary.ctx, primary.blob, len, aad)
}

pub(super) async fn export_data_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let ukey = keys::load(state, req.appid, params::string(p, "ukeyid")?).await?;
    let old = params::bytes(p, "olddatakey_base")?;
    let aad = params::opt_bytes(p, "aad")?;
    let version = key.of_ciphertext(&old)?;
    let public = ukey.primary();
    let new = heavy(state, || {
        state.core.export_data_key(
            &req.mac,
            &version.ctx,
            version.blob,
            &public.ctx,
            public.blob,
            &old,
            &aad,
        )
    })
    .await?;
    Ok(Reply::success(json!({ "newdatakey": b64(&new) })))
}

/// ReEncrypt: the ciphertext is decrypted under the source key at the version its header
/// names and encrypted under the destination key's primary version, inside the core. With the
/// same key as source and destination, this moves a ciphertext to the primary version.
pub(super) async fn reencrypt(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let source = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let dest = keys::load(state, req.appid, params::string(p, "destinationkeyid")?).await?;
    let ciphertext = params::bytes(p, "ciphertext")?;
    let aad = params::opt_bytes(p, "aad")?;
    let dest_aad = params::opt_bytes(p, "destinationaad")?;
    let (ct, version) = reencrypt_with(
        state,
        &req.mac,
        &source,
        &ciphertext,
        &aad,
        &dest,
        &dest_aad,
    )?;
    Ok(Reply::success(json!({
        "ciphertext": b64(&ct),
        "keyid": dest.record.keyid,
        "keyversion": version,
    })))
}

/// ReEncrypt (both front ends): the new ciphertext and the destination version that made it.
pub(crate) fn reencrypt_with(
    state: &AppState,
    mac: &MacVerified<'_>,
    source: &Key,
    ciphertext: &[u8],
    aad: &[u8],
    dest: &Key,
    dest_aad: &[u8],
) -> ehsm_core::Result<(Vec<u8>, u32)> {
    let from = source.of_ciphertext(ciphertext)?;
    let to = dest.primary();
    let ct = state.core.reencrypt(
        mac, &from.ctx, from.blob, ciphertext, aad, &to.ctx, to.blob, dest_aad,
    )?;
    Ok((ct, to.number()))
}
