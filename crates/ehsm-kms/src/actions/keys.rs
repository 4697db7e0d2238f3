//! Key management: CreateKey, ListKey, DeleteKey, DeleteAllKey, EnableKey, DisableKey.

use ehsm_core::KeyContext;
use ehsm_core::spec::{KeySpec, KeyUsage, Origin};
use ehsm_store::{CmkRecord, KeyState};
use serde_json::{Value, json};

use super::heavy;
use crate::envelope::Authenticated;
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// Upstream lists at most 10 000 keys.
const LIST_LIMIT: u32 = 10_000;

pub(super) async fn create_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let spec = params::name(p, "keyspec", KeySpec::from_name)?;
    let origin = params::name(p, "origin", Origin::from_name)?;
    let usage = params::name(p, "keyusage", KeyUsage::from_name)?;
    let keyid = uuid::Uuid::new_v4().to_string();
    let ctx = KeyContext {
        keyid: &keyid,
        appid: req.appid,
        spec,
        origin,
        usage,
        version: 1,
    };
    let blob = heavy(state, || state.core.create_key(&ctx)).await?;
    let now = now_ms();
    let expire_time = now.saturating_add(state.key_lifetime_ms);
    let record = new_record(&ctx, blob.as_bytes(), now, expire_time, true);
    state.store.insert_cmk(&record).await?;
    Ok(Reply::success(json!({ "keyid": keyid })))
}

/// The record of a key just made by the core for `ctx`: enabled, version 1, no alias.
/// `listed` is false for internal keys (an app's default secret key), which ListKey does not
/// show and no client can name.
pub(super) fn new_record(
    ctx: &KeyContext<'_>,
    blob: &[u8],
    creation_date: i64,
    expire_time: i64,
    listed: bool,
) -> CmkRecord {
    CmkRecord {
        keyid: ctx.keyid.to_owned(),
        appid: ctx.appid.to_owned(),
        keyspec: ctx.spec.as_str().to_owned(),
        origin: ctx.origin.as_str().to_owned(),
        keyusage: ctx.usage.as_str().to_owned(),
        version: ctx.version,
        state: KeyState::Enabled,
        creation_date,
        expire_time,
        alias: String::new(),
        blob: blob.to_vec(),
        listed,
        import: None,
    }
}

pub(super) async fn list_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let keys = state.store.list_cmks(req.appid, LIST_LIMIT).await?;
    let list: Vec<Value> = keys
        .iter()
        .map(|k| {
            json!({
                "keyid": k.keyid,
                "creationDate": k.creation_date,
                "expireTime": k.expire_time,
                "alias": k.alias,
                "keyspec": k.keyspec,
                "keyState": match k.state { KeyState::Enabled => 1, KeyState::Disabled => 0 },
            })
        })
        .collect();
    Ok(Reply::successful(json!({ "list": list })))
}

/// Upstream answers `successful` even for a key that does not exist; so does ehsm.
pub(super) async fn delete_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let keyid = params::string(req.payload, "keyid")?;
    state.store.delete_cmk(req.appid, keyid).await?;
    state.keys.forget(keyid);
    Ok(Reply::successful(json!({})))
}

pub(super) async fn delete_all_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    state.store.delete_all_cmks(req.appid).await?;
    state
        .keys
        .forget_where(|k| k.record.appid == req.appid && k.record.listed);
    Ok(Reply::successful(json!({})))
}

pub(super) async fn set_state(
    state: &AppState,
    req: &Authenticated<'_>,
    enabled: bool,
) -> ApiResult {
    let keyid = params::string(req.payload, "keyid")?;
    let new = if enabled {
        KeyState::Enabled
    } else {
        KeyState::Disabled
    };
    // A hidden (internal) key is "not found" like a foreign one.
    let visible = state
        .store
        .get_cmk(keyid)
        .await?
        .is_some_and(|r| r.appid == req.appid && r.listed);
    if !visible || !state.store.set_key_state(req.appid, keyid, new).await? {
        return Err(ApiError::bad_request("not find this keyid"));
    }
    state.keys.forget(keyid);
    Ok(Reply::successful(json!({})))
}
