//! BYOK (spec §6.9): GetParametersForImport and ImportKeyMaterial.

use ehsm_core::KeyBlob;
use ehsm_core::spec::{KeySpec, PaddingMode};
use ehsm_store::ImportParams;
use serde_json::json;

use super::heavy;
use crate::envelope::Authenticated;
use crate::keys;
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// How long an import token and its wrapping key stay valid (upstream: 24 hours).
const TOKEN_LIFETIME_MS: i64 = 24 * 3600 * 1000;

pub(super) async fn get_parameters_for_import(
    state: &AppState,
    req: &Authenticated<'_>,
) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let keyid = key.record.keyid.as_str();
    let wrapping_spec = params::name(p, "keyspec", KeySpec::from_name)?;
    let expires_at = now_ms().saturating_add(TOKEN_LIFETIME_MS);
    let params = heavy(state, || {
        state.core.get_parameters_for_import(
            &req.mac,
            &key.primary().ctx,
            wrapping_spec,
            expires_at as u64,
        )
    })
    .await?;
    let stored = ImportParams {
        wrapping_spec: params.wrapping_spec.as_str().to_owned(),
        wrapping_blob: params.wrapping_blob.as_bytes().to_vec(),
        expires_at,
    };
    // Every call replaces the previous wrapping key (upstream), so an older token stops working.
    if !state
        .store
        .set_import_params(req.appid, keyid, &stored)
        .await?
    {
        return Err(ApiError::bad_request("keyid error"));
    }
    Ok(Reply::success(
        json!({ "pubkey": params.public_key_pem, "importToken": params.token }),
    ))
}

pub(super) async fn import_key_material(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::load(state, req.appid, params::string(p, "keyid")?).await?;
    let keyid = key.record.keyid.as_str();
    let padding = params::name(p, "padding_mode", PaddingMode::from_name)?;
    let material = params::bytes(p, "key_material")?;
    let token = params::string(p, "importToken")?;
    // The import parameters are read from the store, not the cache: they change with every
    // GetParametersForImport.
    let failed = || ApiError::bad_request("ImportKeyMaterial failed.");
    let mut record = state.store.get_cmk(keyid).await?.ok_or_else(failed)?;
    // An external key has one version: rotation refuses it (its material is the client's).
    let stored_blob = match record.versions.as_mut_slice() {
        [only] => KeyBlob::from_vec(std::mem::take(&mut only.blob)),
        _ => return Err(failed()),
    };
    let ctx = key.primary().ctx;
    // Material is imported once: other material would silently leave every ciphertext made
    // with the first undecryptable. The blob is read with the import parameters, and the
    // compare-and-swap below succeeds only while those are current; every import clears them.
    // So an import that read before another completed fails at the swap, and one that read
    // after is refused here: only the first import of a key succeeds, on any number of nodes.
    if state.core.has_material(&req.mac, &ctx, &stored_blob)? {
        return Err(ApiError::bad_request(
            "Key material has already been imported into this key; importing other material \
             would leave its ciphertexts undecryptable. Create a new external key instead.",
        ));
    }
    let import = record.import.ok_or_else(failed)?;
    let wrapping_spec = KeySpec::from_name(&import.wrapping_spec)
        .ok_or_else(|| ApiError::internal(&"stored import wrapping spec is unknown"))?;
    let wrapping_blob = KeyBlob::from_vec(import.wrapping_blob.clone());
    let blob = heavy(state, || {
        state.core.import_key_material(
            &req.mac,
            &ctx,
            wrapping_spec,
            &wrapping_blob,
            token,
            now_ms() as u64,
            padding,
            &material,
        )
    })
    .await?;
    // Compare-and-swap on the import parameters: of two concurrent imports, one wins.
    if !state
        .store
        .complete_import(req.appid, keyid, &import, blob.as_bytes())
        .await?
    {
        return Err(ApiError::bad_request("ImportKeyMaterial failed."));
    }
    state.keys.forget(keyid);
    Ok(Reply::success(json!({ "result": true })))
}
