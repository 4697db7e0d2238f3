//! Key lifecycle (ehsm extensions): RotateKey, UpdateRotationPolicy, ListKeyVersions,
//! DescribeKey, ScheduleKeyDeletion, CancelKeyDeletion; and the rotation and deletion jobs'
//! steps, which share their rules.
//!
//! A rotation adds a version and makes it the primary one; no version is ever removed, so
//! every ciphertext and signature made before still works (docs/key-lifecycle.md).

use std::sync::Arc;

use ehsm_core::KeyContext;
use ehsm_core::spec::{KeySpec, Origin};
use ehsm_store::CmkVersion;
use serde_json::{Value, json};

use super::heavy;
use super::keys::{forget_key, secrets_to_delete, state_code};
use crate::envelope::Authenticated;
use crate::keys::{self, Key, Visibility};
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

const DAY_MS: i64 = 86_400_000;

/// AWS KMS's default rotation interval, for UpdateRotationPolicy turning rotation on for a key
/// that never had an interval.
const DEFAULT_ROTATION_DAYS: u32 = 365;

/// ScheduleKeyDeletion's waiting period when the client gives none (AWS KMS's default).
pub(crate) const DEFAULT_PENDING_DAYS: i64 = 30;

/// How often RotateKey tries again after losing a race with another rotation of the same key:
/// each loss means another writer made a version, so a few tries settle any realistic
/// contention.
const ROTATION_TRIES: usize = 8;

/// `now` plus `days` days, in ms.
pub(super) fn after_days(now: i64, days: u32) -> i64 {
    now.saturating_add(i64::from(days) * DAY_MS)
}

/// An automatic rotation interval for a key of `spec` and `origin`: symmetric and HMAC keys
/// only (validation has checked the range, 7 to 2560 days).
pub(super) fn rotation_days(days: i64, spec: KeySpec, origin: Origin) -> Result<u32, ApiError> {
    check_rotatable(origin)?;
    if spec.is_asymmetric() {
        return Err(ApiError::bad_request(
            "Parameter invalid, The rotationInterval is for symmetric and HMAC keys: an \
             asymmetric key rotates only with RotateKey (a new key pair changes the public key \
             that verifiers hold).",
        ));
    }
    u32::try_from(days).map_err(|_| {
        ApiError::bad_request("Parameter invalid, The rotationInterval is out of range.")
    })
}

/// An external key's material is the client's: ehsm cannot make a new version of it.
fn check_rotatable(origin: Origin) -> Result<(), ApiError> {
    if origin == Origin::External {
        return Err(ApiError::bad_request(
            "Operation not permitted, an external (EH_EXTERNAL_KEY) key cannot be rotated: its \
             material is yours, not ehsm's. Create a new external key and import new material \
             into it instead.",
        ));
    }
    Ok(())
}

pub(super) async fn rotate_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::load(state, req.appid, params::string(req.payload, "keyid")?).await?;
    check_rotatable(key.origin)?;
    let keyid = key.record.keyid.clone();
    let version = rotate(state, key, None).await?.ok_or_else(|| {
        ApiError::internal(&"RotateKey lost every race with other rotations of the key")
    })?;
    Ok(Reply::success(
        json!({ "keyid": keyid, "keyversion": version }),
    ))
}

/// Adds a version to `key` and makes it the primary one; returns its number. `scheduled_at`:
/// the rotation job's clock, for a rotation that is due (the schedule then moves one interval
/// on); `None` for RotateKey, which leaves the schedule alone. When another node rotated the
/// key first, the key is read again: RotateKey then makes the next version, the job stops if
/// the key is no longer due (`Ok(None)`). A key that became unusable meanwhile (disabled,
/// scheduled for deletion) is refused as a use of it would be.
pub(crate) async fn rotate(
    state: &AppState,
    mut key: Arc<Key>,
    scheduled_at: Option<i64>,
) -> Result<Option<u32>, ApiError> {
    for _ in 0..ROTATION_TRIES {
        let r = &key.record;
        if let Some(now) = scheduled_at
            && r.next_rotation.is_none_or(|due| due > now)
        {
            return Ok(None);
        }
        if let Some(max) = state.quotas.versions_per_key
            && u64::from(r.primary_version) >= max
        {
            return Err(ApiError::bad_request(format!(
                "Key version quota exceeded: this key already has {} versions (the server's \
                 limit is {max} per key). Create a new key and move to it with ReEncrypt.",
                r.primary_version
            )));
        }
        let number = r.primary_version.checked_add(1).ok_or_else(|| {
            ApiError::bad_request("Operation not permitted, this key has no version number left.")
        })?;
        let ctx = KeyContext {
            version: number,
            ..key.primary().ctx
        };
        let blob = heavy(state, || state.core.create_key(&ctx)).await?;
        let now = now_ms();
        let version = CmkVersion {
            version: number,
            blob: blob.as_bytes().to_vec(),
            creation_date: now,
        };
        // One interval after the job's clock, not after the due time: a key that waited
        // (disabled, or the jobs paused) is not rotated again and again to catch up.
        let next_rotation = match (scheduled_at, r.rotation_interval_days) {
            (Some(job_now), Some(days)) => Some(after_days(job_now, days)),
            _ => None,
        };
        let added = state
            .store
            .add_cmk_version(&r.appid, &r.keyid, &version, next_rotation)
            .await?;
        forget_key(state, &r.keyid);
        if added {
            return Ok(Some(number));
        }
        key = keys::load_as(state, &r.appid, &r.keyid.clone(), Visibility::Listed).await?;
    }
    Ok(None)
}

pub(super) async fn update_rotation_policy(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let enable = p.get("enable").and_then(Value::as_bool).ok_or_else(|| {
        ApiError::bad_request("Parameter invalid, The enable must be of boolean type.")
    })?;
    let interval = params::opt_integer(p, "rotationInterval")?;
    let reference = params::string(p, "keyid")?;
    // Turning rotation on needs a key that can be used now; turning it off, any of the app's.
    let key = if enable {
        keys::load(state, req.appid, reference).await?
    } else {
        keys::find_listed(state, req.appid, reference).await?
    };
    set_rotation(state, req.appid, &key, enable, interval).await?;
    Ok(Reply::successful(json!({})))
}

/// Turns automatic rotation of `key` on (every `interval` days, else the interval it had, else
/// AWS's default) or off (keeping `interval` if given), for both front ends. The caller has
/// loaded the key as its rule for `enable` requires and checked `interval`'s range.
pub(crate) async fn set_rotation(
    state: &AppState,
    appid: &str,
    key: &Key,
    enable: bool,
    interval: Option<i64>,
) -> Result<(), ApiError> {
    let days = interval
        .map(|days| rotation_days(days, key.spec, key.origin))
        .transpose()?;
    let (interval, next_rotation) = if enable {
        let days = match days {
            Some(days) => days,
            None => {
                let kept = key.record.rotation_interval_days;
                rotation_days(
                    kept.unwrap_or(DEFAULT_ROTATION_DAYS).into(),
                    key.spec,
                    key.origin,
                )?
            }
        };
        (Some(days), Some(after_days(now_ms(), days)))
    } else {
        (days, None)
    };
    let keyid = &key.record.keyid;
    if !state
        .store
        .set_rotation(appid, keyid, interval, next_rotation)
        .await?
    {
        return Err(ApiError::bad_request("keyid error"));
    }
    forget_key(state, keyid);
    Ok(())
}

pub(super) async fn list_key_versions(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::find_listed(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let versions: Vec<Value> = key
        .record
        .versions
        .iter()
        .map(|v| json!({ "keyversion": v.version, "creationDate": v.creation_date }))
        .collect();
    Ok(Reply::successful(json!({
        "keyid": key.record.keyid,
        "primaryVersion": key.record.primary_version,
        "versions": versions,
    })))
}

pub(super) async fn describe_key(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::find_listed(state, req.appid, params::string(req.payload, "keyid")?).await?;
    let r = &key.record;
    let aliases: Vec<String> = state
        .store
        .list_aliases(req.appid, Some(&r.keyid))
        .await?
        .into_iter()
        .map(|a| a.alias)
        .collect();
    Ok(Reply::successful(json!({
        "keyid": r.keyid,
        "keyspec": r.keyspec,
        "origin": r.origin,
        "keyusage": r.keyusage,
        "keyState": state_code(r.state),
        "creationDate": r.creation_date,
        "expireTime": r.expire_time,
        "primaryVersion": r.primary_version,
        "aliases": aliases,
        "rotation": {
            "enable": r.next_rotation.is_some(),
            "rotationInterval": r.rotation_interval_days,
            "nextRotationDate": r.next_rotation,
        },
        "deletionDate": r.deletion_date,
        "description": r.description,
    })))
}

pub(super) async fn schedule_key_deletion(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let key = keys::find_listed(state, req.appid, params::string(p, "keyid")?).await?;
    if let Some(date) = key.record.deletion_date {
        return Err(ApiError::bad_request(format!(
            "Parameter invalid, The keyid is already pending deletion (deletionDate {date})."
        )));
    }
    let days = params::opt_integer(p, "pendingWindowInDays")?.unwrap_or(DEFAULT_PENDING_DAYS);
    let days = u32::try_from(days).map_err(|_| {
        ApiError::bad_request("Parameter invalid, The pendingWindowInDays is out of range.")
    })?;
    let deletion_date = schedule_deletion(state, req.appid, &key, days).await?;
    Ok(Reply::successful(json!({ "deletionDate": deletion_date })))
}

/// ScheduleKeyDeletion (both front ends), of a key the caller found not pending deletion: the
/// key is disabled at once and deleted by the jobs after `days` days (the caller checked the
/// range); until then CancelKeyDeletion keeps it. A key that encrypts secrets is refused, as
/// DeleteKey refuses it. Returns the deletion date (ms since the epoch).
pub(crate) async fn schedule_deletion(
    state: &AppState,
    appid: &str,
    key: &Key,
    days: u32,
) -> Result<i64, ApiError> {
    let deletion_date = after_days(now_ms(), days);
    let keyid = &key.record.keyid;
    match state
        .store
        .schedule_cmk_deletion(appid, keyid, deletion_date)
        .await
    {
        Ok(true) => {}
        // Scheduled (or deleted) by another request since the key was read.
        Ok(false) => {
            return Err(ApiError::bad_request(
                "Parameter invalid, The keyid is already pending deletion.",
            ));
        }
        Err(ehsm_store::Error::KeyInUse { secrets, .. }) => {
            return Err(ApiError::bad_request(format!(
                "Cannot schedule the key's deletion: it encrypts {}.",
                secrets_to_delete(secrets)
            )));
        }
        Err(e) => return Err(e.into()),
    }
    forget_key(state, keyid);
    Ok(deletion_date)
}

pub(super) async fn cancel_key_deletion(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let key = keys::find_listed(state, req.appid, params::string(req.payload, "keyid")?).await?;
    if !cancel_deletion(state, req.appid, &key).await? {
        return Err(ApiError::bad_request(
            "Parameter invalid, The keyid is not pending deletion.",
        ));
    }
    Ok(Reply::successful(json!({})))
}

/// CancelKeyDeletion (both front ends): the key comes back disabled, as in AWS KMS (EnableKey
/// it to use it again). `false`: it was not pending deletion.
pub(crate) async fn cancel_deletion(
    state: &AppState,
    appid: &str,
    key: &Key,
) -> ehsm_store::Result<bool> {
    let keyid = &key.record.keyid;
    if key.record.deletion_date.is_none() || !state.store.cancel_cmk_deletion(appid, keyid).await? {
        return Ok(false);
    }
    forget_key(state, keyid);
    Ok(true)
}

/// How many keys one job run rotates or deletes at most; the rest wait for the next run.
const JOB_BATCH: u32 = 1000;

/// The rotation job: every key whose automatic rotation is due at `now` gets a new version;
/// returns how many did.
pub(crate) async fn rotate_due(state: &AppState, now: i64) -> ehsm_store::Result<u64> {
    let mut rotated = 0;
    for record in state.store.due_rotations(now, JOB_BATCH).await? {
        let keyid = record.keyid.clone();
        let outcome = match Key::new(record) {
            Ok(key) => rotate(state, Arc::new(key), Some(now)).await,
            Err(e) => Err(e.into()),
        };
        match outcome {
            Ok(Some(version)) => {
                rotated += 1;
                tracing::info!(%keyid, version, "automatic key rotation");
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(%keyid, error = %e.message, "automatic key rotation failed"),
        }
    }
    Ok(rotated)
}

/// The deletion job: every key whose scheduled deletion is due at `now` is deleted, with its
/// versions and aliases; returns how many were.
pub(crate) async fn delete_due(state: &AppState, now: i64) -> ehsm_store::Result<u64> {
    let mut deleted = 0;
    for (appid, keyid) in state.store.due_deletions(now, JOB_BATCH).await? {
        match state.store.delete_due_cmk(&appid, &keyid, now).await {
            Ok(true) => {
                deleted += 1;
                forget_key(state, &keyid);
                tracing::info!(%keyid, "scheduled key deletion done");
            }
            Ok(false) => {}
            // Refused when scheduled; a secret cannot be stored under a disabled key since.
            Err(e) => tracing::warn!(%keyid, error = %e, "scheduled key deletion failed"),
        }
    }
    Ok(deleted)
}
