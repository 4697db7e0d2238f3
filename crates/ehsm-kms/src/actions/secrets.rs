//! The secrets manager (spec §10): CreateSecret, UpdateSecretDesc, PutSecretValue,
//! ListSecretVersionIds, ListSecrets, DescribeSecret, DeleteSecret, GetSecretValue,
//! RestoreSecret.
//!
//! A value is encrypted by the core under the secret's CMK — the app's default secret key (an
//! internal AES-256 key made at enrollment, invisible to ListKey) or the app's own symmetric key
//! named by `encryptionKeyId` — with the secret's name as additional data, so that a stored value
//! cannot be moved to another secret. Plaintext exists only in the core and in the response.
//!
//! Upstream's answers are kept where clients rely on them: 200 with empty results for a missing
//! secret in DescribeSecret, ListSecretVersionIds and GetSecretValue of an unknown version, and
//! messages that name the secret. Fixed: the key's state and expiry are checked (a disabled key
//! locks its secrets, as it locks its ciphertexts), a key that cannot encrypt is a client error
//! (upstream answered 500), and deletion is persisted and done by a job (`crate::jobs`).

use std::sync::Arc;

use ehsm_core::KeyContext;
use ehsm_core::spec::{KeySpec, KeyUsage, Origin};
use ehsm_store::{CmkRecord, Deletion, SecretRecord, SecretVersion};
use serde_json::{Map, Value, json};

use super::over_quota;
use crate::envelope::Authenticated;
use crate::keys::{self, Key, Visibility};
use crate::op_error::OpError;
use crate::params;
use crate::reply::{ApiError, ApiResult, Reply};
use crate::state::{AppState, now_ms};

/// Upstream lists at most 4000 secrets, and 4000 versions of one.
const LIST_LIMIT: u32 = 4000;
const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;
/// DeleteSecret's default `recoveryPeriod`, in days.
const DEFAULT_RECOVERY_DAYS: i64 = 30;

/// Upstream's answer to an `encryptionKeyId` that names no key of the app's.
const CMK_NOT_FOUND: &str = "Cannot find cmk by keyid.";

/// The keyid of an app's default secret key.
fn default_keyid(appid: &str) -> String {
    format!("sm-default-cmk:{appid}")
}

/// A new default secret key for `appid`: AES-GCM-256, internal (never listed, never named by a
/// client). Made at enrollment, and on first use for apps enrolled before secrets existed.
pub(crate) fn new_default_key(state: &AppState, appid: &str) -> Result<CmkRecord, ApiError> {
    let keyid = default_keyid(appid);
    let ctx = KeyContext {
        keyid: &keyid,
        appid,
        spec: KeySpec::AesGcm256,
        origin: Origin::Internal,
        usage: KeyUsage::EncryptDecrypt,
        version: 1,
    };
    let blob = state.core.create_key(&ctx)?;
    // The default key is the app's for as long as the app exists: it never expires.
    Ok(super::keys::new_record(
        &ctx,
        blob.as_bytes(),
        now_ms(),
        i64::MAX,
        false,
    ))
}

/// The CMK a new secret's values are encrypted under.
async fn key_for_new_secret(
    state: &AppState,
    appid: &str,
    keyid: Option<&str>,
) -> Result<Arc<Key>, ApiError> {
    let Some(keyid) = keyid else {
        let keyid = default_keyid(appid);
        if state.store.get_cmk(&keyid).await?.is_none() {
            match state
                .store
                .insert_cmk(&new_default_key(state, appid)?)
                .await
            {
                // Another request made it first: use that one.
                Ok(()) | Err(ehsm_store::Error::Conflict) => {}
                Err(e) => return Err(e.into()),
            }
        }
        return Ok(keys::load_as(state, appid, &keyid, Visibility::Internal).await?);
    };
    let key = keys::load(state, appid, keyid).await.map_err(|e| match e {
        // Upstream's message; as for every key, "no such key" and "another app's key" are one
        // answer.
        OpError::UnknownKey => ApiError::bad_request(CMK_NOT_FOUND),
        e => e.into(),
    })?;
    if !key.spec.is_symmetric_cipher() || key.usage != KeyUsage::EncryptDecrypt {
        return Err(ApiError::bad_request(
            "Wrong parameter, please check your encryptionKeyId.",
        ));
    }
    Ok(key)
}

/// The key of an existing secret (the app's default key or the one it was created with).
async fn key_of(state: &AppState, secret: &SecretRecord) -> Result<Arc<Key>, ApiError> {
    Ok(keys::load_as(state, &secret.appid, &secret.keyid, Visibility::Internal).await?)
}

/// The additional data a secret's values are bound to.
fn aad(name: &str) -> Vec<u8> {
    [b"ehsm secret\0".as_slice(), name.as_bytes()].concat()
}

fn encrypt_value(
    state: &AppState,
    req: &Authenticated<'_>,
    key: &Key,
    name: &str,
    value: &str,
) -> Result<Vec<u8>, ApiError> {
    let primary = key.primary();
    Ok(state.core.encrypt(
        &req.mac,
        &primary.ctx,
        primary.blob,
        value.as_bytes(),
        &aad(name),
    )?)
}

/// `rotationInterval` in ms: 1–4 digits and a unit (`d`, `h`, `m` or `s`), between 6 hours and
/// 8760 hours. Validation has checked the shape; the unit class of upstream's regex also lets a
/// comma through, which names no unit and is refused here.
fn rotation_interval_ms(interval: &str) -> Result<i64, ApiError> {
    let out_of_range =
        || ApiError::bad_request("The rotation time is less than 6 hours or more than 8760 hours");
    let (digits, unit) = interval.split_at(interval.len().saturating_sub(1));
    let n: i64 = digits.parse().map_err(|_| out_of_range())?;
    let unit_ms = match unit {
        "d" => DAY_MS,
        "h" => HOUR_MS,
        "m" => 60_000,
        "s" => 1_000,
        _ => return Err(out_of_range()),
    };
    let ms = n * unit_ms;
    if (6 * HOUR_MS..=8760 * HOUR_MS).contains(&ms) {
        Ok(ms)
    } else {
        Err(out_of_range())
    }
}

pub(super) async fn create_secret(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let name = params::string(p, "secretName")?;
    let data = params::string(p, "secretData")?;
    let exists =
        || ApiError::bad_request("Secret name already exists, cannot use the same secret name");
    // Upstream's order: the name, the key, the encryption, then the rotation interval.
    if state.store.get_secret(req.appid, name).await?.is_some() {
        return Err(exists());
    }
    let key =
        key_for_new_secret(state, req.appid, params::opt_string(p, "encryptionKeyId")?).await?;
    let ciphertext = encrypt_value(state, req, &key, name, data)?;
    let interval = params::opt_string(p, "rotationInterval")?;
    if let Some(interval) = interval {
        rotation_interval_ms(interval)?;
    }
    let now = now_ms();
    let record = SecretRecord {
        appid: req.appid.to_owned(),
        name: name.to_owned(),
        keyid: key.record.keyid.clone(),
        description: params::opt_string(p, "description")?.map(str::to_owned),
        create_time: now,
        deletion: None,
        rotation_interval: interval.map(str::to_owned),
    };
    let quota = state.quotas.secrets_per_app;
    let inserted = state
        .store
        .insert_secret(&record, &ciphertext, quota)
        .await
        .map_err(|e| match e {
            // The key was deleted since it was looked up: as if it had never been there.
            ehsm_store::Error::UnknownKey => ApiError::bad_request(CMK_NOT_FOUND),
            e => over_quota(e, "Secret", "secrets", quota),
        })?;
    if !inserted {
        return Err(exists());
    }
    Ok(Reply::with_message(
        format!("The {name} create success."),
        json!({}),
    ))
}

pub(super) async fn update_secret_desc(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let name = params::string(p, "secretName")?;
    let description = params::opt_string(p, "description")?;
    let deleted = || ApiError::bad_request("Can not modify a deleted secret.");
    match state.store.get_secret(req.appid, name).await? {
        None => return Err(ApiError::bad_request("Cannot find secretName")),
        Some(s) if s.deletion.is_some() => return Err(deleted()),
        Some(_) => {}
    }
    // `false` now means a DeleteSecret came in between.
    if !state
        .store
        .set_secret_description(req.appid, name, description)
        .await?
    {
        return Err(deleted());
    }
    Ok(Reply::with_message(
        "Update secret description success.",
        json!({}),
    ))
}

pub(super) async fn put_secret_value(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let name = params::string(p, "secretName")?;
    let data = params::string(p, "secretData")?;
    let deleted = || ApiError::bad_request("Can not put value for a deleted secret.");
    let secret = match state.store.get_secret(req.appid, name).await? {
        None => return Err(ApiError::bad_request("Can not find secretName")),
        Some(s) if s.deletion.is_some() => return Err(deleted()),
        Some(s) => s,
    };
    let key = key_of(state, &secret).await?;
    let ciphertext = encrypt_value(state, req, &key, name, data)?;
    state
        .store
        .put_secret_version(req.appid, name, &ciphertext, now_ms())
        .await?
        .ok_or_else(deleted)?;
    Ok(Reply::with_message(
        format!("The {name} new version put success."),
        json!({}),
    ))
}

pub(super) async fn list_secret_version_ids(
    state: &AppState,
    req: &Authenticated<'_>,
) -> ApiResult {
    let name = params::string(req.payload, "secretName")?;
    let live = state
        .store
        .get_secret(req.appid, name)
        .await?
        .is_some_and(|s| s.deletion.is_none());
    // A missing or deleted secret lists no versions (200, as upstream).
    let versions = if live {
        state
            .store
            .list_secret_versions(req.appid, name, LIST_LIMIT)
            .await?
    } else {
        Vec::new()
    };
    let ids: Vec<Value> = versions
        .iter()
        .map(
            |(version_id, create_time)| json!({"versionId": version_id, "createTime": create_time}),
        )
        .collect();
    Ok(Reply::with_message(
        "List secret versionIds success.",
        json!({"secretName": name, "totalCount": ids.len(), "versionIds": ids}),
    ))
}

/// The fields ListSecrets and DescribeSecret share.
fn summary(s: &SecretRecord) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("secretName".into(), s.name.clone().into());
    if let Some(d) = &s.description {
        m.insert("description".into(), d.clone().into());
    }
    m.insert("createTime".into(), s.create_time.into());
    if let Some(d) = s.deletion {
        m.insert("plannedDeleteTime".into(), d.planned_delete_time.into());
    }
    m
}

pub(super) async fn list_secrets(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let name = params::opt_string(req.payload, "secretName")?;
    let secrets = state
        .store
        .list_secrets(req.appid, name, LIST_LIMIT)
        .await?;
    let list: Vec<Value> = secrets.iter().map(|s| Value::Object(summary(s))).collect();
    Ok(Reply::with_message(
        "List secrets success.",
        json!({"totalCount": list.len(), "secretList": list}),
    ))
}

pub(super) async fn describe_secret(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let name = params::string(req.payload, "secretName")?;
    // Not found is 200 with an empty result, as upstream.
    let result = match state.store.get_secret(req.appid, name).await? {
        None => Map::new(),
        Some(s) => {
            let mut m = summary(&s);
            if let Some(interval) = &s.rotation_interval {
                m.insert("rotationInterval".into(), interval.clone().into());
                let newest = state
                    .store
                    .get_secret_version(req.appid, name, None)
                    .await?;
                let rotation = newest.map(|v| rotation_dates(&s, interval, &v));
                // Every secret has a version 1; without one, nothing has been rotated.
                let (last, next) = rotation.unwrap_or(("".into(), None));
                m.insert("lastRotationDate".into(), last);
                if let Some(next) = next {
                    m.insert("nextRotationDate".into(), next.into());
                }
            }
            m
        }
    };
    Ok(Reply::with_message(
        "Describe secrets success.",
        Value::Object(result),
    ))
}

/// `lastRotationDate` and `nextRotationDate` of a secret with a rotation interval, given its
/// newest version. A rotation is a PutSecretValue: the last one is when the newest version was
/// stored (`""` while there is only version 1, as upstream reports), and the next is due an
/// interval after the newest version, so it advances with every rotation.
fn rotation_dates(
    secret: &SecretRecord,
    interval: &str,
    newest: &SecretVersion,
) -> (Value, Option<i64>) {
    let last = if newest.version_id > 1 {
        newest.create_time.into()
    } else {
        "".into()
    };
    // The interval was checked at creation.
    let next = rotation_interval_ms(interval).ok().map(|ms| {
        newest
            .create_time
            .max(secret.create_time)
            .saturating_add(ms)
    });
    (last, next)
}

pub(super) async fn delete_secret(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let name = params::string(p, "secretName")?;
    let days = params::opt_integer(p, "recoveryPeriod")?.unwrap_or(DEFAULT_RECOVERY_DAYS);
    // `true` or `false` in any case is accepted, but only the exact lower-case "true" forces.
    let force = match params::opt_string(p, "forceDelete")? {
        None => false,
        Some(f) if f.eq_ignore_ascii_case("true") || f.eq_ignore_ascii_case("false") => f == "true",
        Some(_) => {
            return Err(ApiError::bad_request(
                "The forceDelete must be true or false",
            ));
        }
    };
    // Each statement reports whether the secret existed: no lookup beforehand.
    let missing = || ApiError::bad_request("Delete error, Can not find the secretName");
    if force {
        if !state.store.delete_secret(req.appid, name).await? {
            return Err(missing());
        }
        return Ok(Reply::with_message(
            format!("The {name} delete success"),
            json!({}),
        ));
    }
    let now = now_ms();
    let deletion = Deletion {
        delete_time: now,
        planned_delete_time: now.saturating_add(days.saturating_mul(DAY_MS)),
    };
    if !state
        .store
        .schedule_secret_deletion(req.appid, name, deletion)
        .await?
    {
        return Err(missing());
    }
    Ok(Reply::with_message(
        format!("The {name} will be deleted after {days} days."),
        json!({}),
    ))
}

pub(super) async fn get_secret_value(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let p = req.payload;
    let name = params::string(p, "secretName")?;
    let version_id = params::opt_integer(p, "versionId")?;
    let secret = match state.store.get_secret(req.appid, name).await? {
        Some(s) if s.deletion.is_none() => s,
        _ => {
            return Err(ApiError::bad_request(format!(
                "Can't find the {name}'s value."
            )));
        }
    };
    let Some(version) = state
        .store
        .get_secret_version(req.appid, name, version_id)
        .await?
    else {
        // An unknown version is 200 with an empty result, as upstream.
        return Ok(Reply::successful(json!({})));
    };
    let key = key_of(state, &secret).await?;
    // The secret's key may have been rotated since this value was stored.
    let key_version = key.of_ciphertext(&version.ciphertext)?;
    let plaintext = state.core.decrypt(
        &req.mac,
        &key_version.ctx,
        key_version.blob,
        &version.ciphertext,
        &aad(name),
    )?;
    let data = std::str::from_utf8(plaintext.as_slice())
        .map_err(|_| ApiError::internal(&"a stored secret value is not UTF-8"))?;
    Ok(Reply::successful(json!({
        "secretName": name,
        "secretData": data,
        "versionId": version.version_id,
        "createTime": version.create_time,
    })))
}

pub(super) async fn restore_secret(state: &AppState, req: &Authenticated<'_>) -> ApiResult {
    let name = params::string(req.payload, "secretName")?;
    if !state.store.restore_secret(req.appid, name).await? {
        return Err(ApiError::bad_request(
            "Can not restore secret, the secretName not find.",
        ));
    }
    Ok(Reply::with_message(
        format!("The {name} restore success."),
        json!({}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_intervals_between_6_and_8760_hours() {
        let ok = |s: &str| rotation_interval_ms(s).ok();
        assert_eq!(ok("6h"), Some(6 * HOUR_MS));
        assert_eq!(ok("365d"), Some(365 * DAY_MS));
        assert_eq!(ok("8760h"), Some(8760 * HOUR_MS));
        assert_eq!(ok("360m"), Some(6 * HOUR_MS));
        assert_eq!(ok("9999s"), None, "under 6 hours");
        assert_eq!(ok("5h"), None);
        assert_eq!(ok("366d"), None, "over 8760 hours");
        assert_eq!(ok("8761h"), None);
        assert_eq!(ok("30,"), None, "a comma is no unit");
        assert_eq!(ok("h"), None);
        assert_eq!(ok(""), None);
    }

    #[test]
    fn the_next_rotation_is_an_interval_after_the_newest_version() {
        let secret = SecretRecord {
            appid: "app".into(),
            name: "s".into(),
            keyid: "k".into(),
            description: None,
            create_time: 1_000,
            deletion: None,
            rotation_interval: Some("1d".into()),
        };
        let version = |version_id, create_time| SecretVersion {
            version_id,
            ciphertext: Vec::new(),
            create_time,
        };
        assert_eq!(
            rotation_dates(&secret, "1d", &version(1, 1_000)),
            (Value::from(""), Some(1_000 + DAY_MS)),
            "never rotated: due an interval after creation"
        );
        assert_eq!(
            rotation_dates(&secret, "1d", &version(4, 5 * DAY_MS)),
            (Value::from(5 * DAY_MS), Some(6 * DAY_MS)),
            "rotated by PutSecretValue: the date advances"
        );
    }
}
