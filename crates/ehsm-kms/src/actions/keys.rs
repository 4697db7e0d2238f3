//! Key management: CreateKey, ListKey, DeleteKey, DeleteAllKey, EnableKey, DisableKey.

use std::collections::HashMap;

use ehsm_core::KeyContext;
use ehsm_core::spec::{KeySpec, KeyUsage, Origin};
use ehsm_store::{CmkRecord, CmkVersion, KeyState};
use serde_json::{Value, json};

use super::heavy;
use crate::envelope::Authenticated;
use crate::keys;
use crate::op_error::{OpError, Quota};
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// Upstream lists at most 10 000 keys.
const LIST_LIMIT: u32 = 10_000;
/// ListKey's page size when a client pages (`limit` or `marker` sent): at most this, and this
/// when only `marker` is sent (`validate`'s table checks `limit` against it).
pub(crate) const PAGE_MAX: u32 = 1000;

pub(super) async fn create_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let spec = params::name(p, "keyspec", KeySpec::from_name)?;
    let origin = params::name(p, "origin", Origin::from_name)?;
    let usage = params::name(p, "keyusage", KeyUsage::from_name)?;
    let rotation_days = params::opt_integer(p, "rotationInterval")?
        .map(|days| super::lifecycle::rotation_days(days, spec, origin))
        .transpose()?;
    let new = NewKey {
        spec,
        origin,
        usage,
        description: params::opt_string(p, "description")?,
        rotation_days,
    };
    let record = create(state, req.appid, &new).await?;
    Ok(Reply::success(json!({ "keyid": record.keyid })))
}

/// What a new key is to be; the front end has checked each part.
pub(crate) struct NewKey<'a> {
    pub(crate) spec: KeySpec,
    pub(crate) origin: Origin,
    pub(crate) usage: KeyUsage,
    pub(crate) description: Option<&'a str>,
    /// Automatic rotation every this many days (checked by `lifecycle::rotation_days`).
    pub(crate) rotation_days: Option<u32>,
}

/// Makes a key of the app's: the core generates its material (none yet for an external key),
/// and the record is stored within the app's key quota. Returns the stored record.
pub(crate) async fn create(
    state: &AppState,
    appid: &str,
    new: &NewKey<'_>,
) -> Result<CmkRecord, OpError> {
    let keyid = uuid::Uuid::new_v4().to_string();
    let ctx = KeyContext {
        keyid: &keyid,
        appid,
        spec: new.spec,
        origin: new.origin,
        usage: new.usage,
        version: 1,
    };
    let blob = heavy(state, || state.core.create_key(&ctx)).await?;
    let now = now_ms();
    let expire_time = now.saturating_add(state.key_lifetime_ms);
    let record = CmkRecord {
        description: new.description.map(str::to_owned),
        rotation_interval_days: new.rotation_days,
        next_rotation: new
            .rotation_days
            .map(|days| super::lifecycle::after_days(now, days)),
        ..new_record(&ctx, blob.as_bytes(), now, expire_time, true)
    };
    let quota = state.quotas.keys_per_app;
    state
        .store
        .insert_cmk_within_quota(&record, quota)
        .await
        .map_err(|e| OpError::from_quota(e, Quota::Keys, quota))?;
    Ok(record)
}

/// The middle of DeleteKey's and DeleteAllKey's refusals: "N secrets, which ...".
pub(super) fn secrets_to_delete(n: u64) -> String {
    let (noun, pronoun) = if n == 1 {
        ("secret", "it")
    } else {
        ("secrets", "them")
    };
    format!("{n} {noun}, which would become unreadable; delete {pronoun} first")
}

/// The end of DeleteKey's and DeleteAllKey's refusals: why a secret the client deleted may
/// still count.
const IN_USE_HINT: &str = ". A secret scheduled for deletion counts until it is gone; \
     DeleteSecret with forceDelete removes it at once.";

/// The record of a key just made by the core for `ctx`: enabled, version 1 its only
/// version, no rotation. `listed` is false for internal keys (an app's default secret key),
/// which ListKey does not show and no client can name.
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
        primary_version: ctx.version,
        state: KeyState::Enabled,
        creation_date,
        expire_time,
        listed,
        import: None,
        description: None,
        rotation_interval_days: None,
        next_rotation: None,
        deletion_date: None,
        versions: vec![CmkVersion {
            version: ctx.version,
            blob: blob.to_vec(),
            creation_date,
        }],
    }
}

/// ListKey. Without `limit` and `marker`, upstream's answer: the app's first 10 000 keys by
/// keyid, `{"list": [...]}`. With either (an ehsm extension; upstream clients never send them),
/// one page: at most `limit` keys (1 to 1000, default 1000) whose keyid sorts after `marker`,
/// and `nextMarker`, the keyid to send as the next page's `marker`, while more may follow.
pub(super) async fn list_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let limit = params::opt_integer(p, "limit")?;
    let marker = params::opt_string(p, "marker")?;
    if limit.is_none() && marker.is_none() {
        let keys = state.store.list_cmks(req.appid, "", LIST_LIMIT).await?;
        let items = list_items(state, req.appid, &keys).await?;
        return Ok(Reply::successful(json!({ "list": items })));
    }
    let limit = match limit {
        None => PAGE_MAX,
        Some(n) => u32::try_from(n)
            .ok()
            .filter(|n| (1..=PAGE_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Parameter invalid, The limit must be between 1 and {PAGE_MAX}."
                ))
            })?,
    };
    let (keys, more) = page(state, req.appid, marker.unwrap_or(""), limit).await?;
    let mut result = json!({ "list": list_items(state, req.appid, &keys).await? });
    if more && let Some(last) = keys.last() {
        result["nextMarker"] = last.keyid.clone().into();
    }
    Ok(Reply::successful(result))
}

/// One page of the app's listed keys by keyid: at most `limit` whose keyid sorts after
/// `marker`, and whether more follow (the last one's keyid is then the next page's marker).
pub(crate) async fn page(
    state: &AppState,
    appid: &str,
    marker: &str,
    limit: u32,
) -> ehsm_store::Result<(Vec<CmkRecord>, bool)> {
    // One more than the page, to know whether another page follows.
    let mut keys = state
        .store
        .list_cmks(appid, marker, limit.saturating_add(1))
        .await?;
    let more = keys.len() > limit as usize;
    keys.truncate(limit as usize);
    Ok((keys, more))
}

/// ListKey's items, as upstream spells them. `alias` (always `""` upstream) holds the key's
/// aliases, comma-separated (no alias name holds a comma).
async fn list_items(
    state: &AppState,
    appid: &str,
    keys: &[CmkRecord],
) -> Result<Vec<Value>, ApiError> {
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    if !keys.is_empty() {
        for a in state.store.list_aliases(appid, None).await? {
            aliases.entry(a.keyid).or_default().push(a.alias);
        }
    }
    Ok(keys
        .iter()
        .map(|k| {
            json!({
                "keyid": k.keyid,
                "creationDate": k.creation_date,
                "expireTime": k.expire_time,
                "alias": aliases.get(&k.keyid).map_or(String::new(), |a| a.join(",")),
                "keyspec": k.keyspec,
                "keyState": state_code(k.state),
            })
        })
        .collect())
}

/// Upstream's `keyState`: 1 enabled, 0 disabled.
pub(super) fn state_code(state: KeyState) -> u8 {
    match state {
        KeyState::Enabled => 1,
        KeyState::Disabled => 0,
    }
}

/// Upstream answers `successful` even for a key that does not exist; so does ehsm. A key that
/// encrypts secrets is not deleted (they would become unreadable for good): the client is told
/// to delete them first.
pub(super) async fn delete_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let keyid = keys::resolve(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let keyid = keyid.as_str();
    match state.store.delete_cmk(req.appid, keyid).await {
        Err(ehsm_store::Error::KeyInUse { secrets, .. }) => {
            return Err(ApiError::bad_request(format!(
                "Cannot delete the key: it encrypts {}{IN_USE_HINT}",
                secrets_to_delete(secrets)
            )));
        }
        done => done?,
    };
    forget_key(state, keyid);
    Ok(Reply::successful(json!({})))
}

/// Drops a key that changed from this node's caches, with its aliases if it was deleted (the
/// other nodes learn it from the store's notification).
pub(super) fn forget_key(state: &AppState, keyid: &str) {
    state.keys.forget(keyid);
    state.aliases.forget_where(|a| a.keyid == keyid);
}

/// Refuses as a whole, deleting nothing, if any of the keys encrypts secrets.
pub(super) async fn delete_all_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    match state.store.delete_all_cmks(req.appid).await {
        Err(ehsm_store::Error::KeyInUse { keys, secrets }) => {
            return Err(ApiError::bad_request(format!(
                "Cannot delete the keys, none was deleted: {keys} of them encrypt {}{IN_USE_HINT}",
                secrets_to_delete(secrets)
            )));
        }
        done => done?,
    };
    state
        .keys
        .forget_where(|k| k.record.appid == req.appid && k.record.listed);
    state.aliases.forget_where(|a| a.appid == req.appid);
    Ok(Reply::successful(json!({})))
}

pub(super) async fn set_state(
    state: &AppState,
    req: &Authenticated<'_>,
    enabled: bool,
) -> ApiResult {
    match set_enabled(
        state,
        req.appid,
        params::string(req.payload, "keyid")?,
        enabled,
    )
    .await
    {
        Ok(()) => Ok(Reply::successful(json!({}))),
        // Upstream's words for EnableKey and DisableKey of a key it does not find.
        Err(OpError::UnknownKey) => Err(ApiError::bad_request("not find this keyid")),
        Err(e) => Err(e.into()),
    }
}

/// EnableKey and DisableKey of one of the app's listed keys (by keyid or alias).
pub(crate) async fn set_enabled(
    state: &AppState,
    appid: &str,
    reference: &str,
    enabled: bool,
) -> Result<(), OpError> {
    let keyid = keys::resolve(state, appid, reference).await?;
    let keyid = keyid.as_str();
    let new = if enabled {
        KeyState::Enabled
    } else {
        KeyState::Disabled
    };
    // A hidden (internal) key is "not found" like a foreign one.
    let record = state
        .store
        .get_cmk(keyid)
        .await?
        .filter(|r| r.appid == appid && r.listed);
    // A key pending deletion stays disabled until the deletion is cancelled (as in AWS KMS),
    // so that no one uses a key its owner means to destroy.
    if enabled && record.as_ref().is_some_and(|r| r.deletion_date.is_some()) {
        return Err(OpError::EnablePendingDeletion);
    }
    if record.is_none() || !state.store.set_key_state(appid, keyid, new).await? {
        return Err(OpError::UnknownKey);
    }
    state.keys.forget(keyid);
    Ok(())
}
