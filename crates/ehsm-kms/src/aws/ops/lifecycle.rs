//! ReEncrypt, ScheduleKeyDeletion, CancelKeyDeletion, Enable/DisableKeyRotation,
//! GetKeyRotationStatus, RotateKeyOnDemand, ListKeyRotations: the eHSM key lifecycle
//! (`crate::actions::lifecycle`, `symmetric::reencrypt_with`) under AWS's names. A rotation
//! is a new key version (docs/key-lifecycle.md), so ListKeyRotations lists versions 2 on.

use std::sync::Arc;

use ehsm_core::spec::Origin;
use serde_json::{Value, json};

use super::crypto::{
    MAX_CIPHERTEXT, MAX_KEY_ID, SYMMETRIC_DEFAULT, algorithm, check_symmetric, ciphertext_key,
    decrypt_refusal, usable_key,
};
use super::{Caller, epoch_seconds, refusal, refuse_unsupported_members};
use crate::actions::lifecycle as shared;
use crate::actions::symmetric;
use crate::aws::ciphertext;
use crate::aws::context;
use crate::aws::error::AwsError;
use crate::aws::input::Input;
use crate::keys::{self, Key};
use crate::params::b64;
use crate::reply::ApiError;

/// AWS's ScheduleKeyDeletion PendingWindowInDays and EnableKeyRotation RotationPeriodInDays.
const PENDING_DAYS_MIN: i64 = 7;
const PENDING_DAYS_MAX: i64 = 30;
const ROTATION_DAYS_MIN: i64 = 90;
const ROTATION_DAYS_MAX: i64 = 2560;

/// A shared lifecycle step's refusal, worded for the eHSM API: a server fault stays AWS's
/// internal error; every other is a refusal of what the key is now (already scheduled, a
/// version quota full, a key that encrypts secrets), which AWS calls KMSInvalidStateException.
fn step_refusal(e: ApiError) -> AwsError {
    if e.code >= 500 {
        AwsError::internal()
    } else {
        AwsError::invalid_state(e.message)
    }
}

/// The KeyId member of the lifecycle operations, which AWS takes as a key id or key ARN only:
/// one of the app's keys, in any state.
async fn listed_key(caller: &Caller<'_>, input: &Input) -> Result<Arc<Key>, AwsError> {
    let names = caller.names();
    let keyid = names.key_only(input.string("KeyId", MAX_KEY_ID)?)?;
    keys::find_listed(caller.state, caller.appid(), keyid)
        .await
        .map_err(|e| refusal(names, e, keyid))
}

pub(super) async fn reencrypt(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let blob = input.blob("CiphertextBlob", MAX_CIPHERTEXT)?;
    let source_aad = context::aad(&input.string_map("SourceEncryptionContext")?);
    let dest_aad = context::aad(&input.string_map("DestinationEncryptionContext")?);
    let source_id = input.opt_string_within("SourceKeyId", 1, MAX_KEY_ID)?;
    let dest_id = input.string("DestinationKeyId", MAX_KEY_ID)?;
    algorithm(input, "SourceEncryptionAlgorithm")?;
    algorithm(input, "DestinationEncryptionAlgorithm")?;
    refuse_unsupported_members(input)?;
    let (source, body) = ciphertext_key(caller, &blob, source_id).await?;
    let dest = usable_key(caller, dest_id).await?;
    check_symmetric(caller, &source)?;
    check_symmetric(caller, &dest)?;
    let (body, _) = symmetric::reencrypt_with(
        caller.state,
        &caller.mac,
        &source,
        body,
        &source_aad,
        &dest,
        &dest_aad,
    )
    .map_err(decrypt_refusal)?;
    let names = caller.names();
    let dest_keyid = &dest.record.keyid;
    Ok(json!({
        "CiphertextBlob": b64(&ciphertext::frame(dest_keyid, &body)),
        "SourceKeyId": names.key_arn(&source.record.keyid),
        "KeyId": names.key_arn(dest_keyid),
        "SourceEncryptionAlgorithm": SYMMETRIC_DEFAULT,
        "DestinationEncryptionAlgorithm": SYMMETRIC_DEFAULT,
    }))
}

/// A key pending deletion, refused as AWS words it.
fn pending_deletion(caller: &Caller<'_>, key: &Key) -> AwsError {
    AwsError::invalid_state(format!(
        "{} is pending deletion.",
        caller.names().key_arn(&key.record.keyid)
    ))
}

pub(super) async fn schedule_key_deletion(
    caller: &Caller<'_>,
    input: &Input,
) -> Result<Value, AwsError> {
    let key = listed_key(caller, input).await?;
    let days = input
        .opt_integer("PendingWindowInDays", PENDING_DAYS_MIN, PENDING_DAYS_MAX)?
        .unwrap_or(shared::DEFAULT_PENDING_DAYS);
    if key.record.deletion_date.is_some() {
        return Err(pending_deletion(caller, &key));
    }
    // Within 7..=30.
    let days = u32::try_from(days).unwrap_or(PENDING_DAYS_MAX as u32);
    let date = shared::schedule_deletion(caller.state, caller.appid(), &key, days)
        .await
        .map_err(step_refusal)?;
    Ok(json!({
        "KeyId": caller.names().key_arn(&key.record.keyid),
        "DeletionDate": epoch_seconds(date),
        "KeyState": "PendingDeletion",
        "PendingWindowInDays": days,
    }))
}

/// The key comes back Disabled, as in AWS.
pub(super) async fn cancel_key_deletion(
    caller: &Caller<'_>,
    input: &Input,
) -> Result<Value, AwsError> {
    let key = listed_key(caller, input).await?;
    let arn = caller.names().key_arn(&key.record.keyid);
    let cancelled = shared::cancel_deletion(caller.state, caller.appid(), &key)
        .await
        .map_err(|e| super::internal(&e))?;
    if !cancelled {
        return Err(AwsError::invalid_state(format!(
            "{arn} is not pending deletion."
        )));
    }
    Ok(json!({ "KeyId": arn }))
}

/// AWS rotates symmetric encryption and HMAC keys whose material it made; so does ehsm (an
/// asymmetric key's new version would change the public key verifiers hold).
fn check_rotatable(caller: &Caller<'_>, key: &Key) -> Result<(), AwsError> {
    let arn = || caller.names().key_arn(&key.record.keyid);
    if key.spec.is_asymmetric() {
        return Err(AwsError::unsupported_operation(format!(
            "{} is an asymmetric key: ehsm rotates symmetric and HMAC keys only through the AWS \
             API.",
            arn()
        )));
    }
    if key.origin == Origin::External {
        return Err(AwsError::unsupported_operation(format!(
            "{} has imported key material: ehsm cannot make a new version of it.",
            arn()
        )));
    }
    Ok(())
}

/// EnableKeyRotation (RotationPeriodInDays 90 to 2560; without it, the key's interval before,
/// else 365 days) and DisableKeyRotation. Enabling needs a key usable now, as the eHSM
/// UpdateRotationPolicy does.
pub(super) async fn set_key_rotation(
    caller: &Caller<'_>,
    input: &Input,
    enable: bool,
) -> Result<Value, AwsError> {
    let period = if enable {
        input.opt_integer("RotationPeriodInDays", ROTATION_DAYS_MIN, ROTATION_DAYS_MAX)?
    } else {
        None
    };
    let key = listed_key(caller, input).await?;
    if enable {
        key.usable()
            .map_err(|e| refusal(caller.names(), e, &key.record.keyid))?;
    }
    check_rotatable(caller, &key)?;
    shared::set_rotation(caller.state, caller.appid(), &key, enable, period)
        .await
        .map_err(step_refusal)?;
    Ok(json!({}))
}

pub(super) async fn get_key_rotation_status(
    caller: &Caller<'_>,
    input: &Input,
) -> Result<Value, AwsError> {
    let key = listed_key(caller, input).await?;
    let r = &key.record;
    let mut out = json!({
        "KeyId": caller.names().key_arn(&r.keyid),
        "KeyRotationEnabled": r.next_rotation.is_some(),
    });
    if let Some(next) = r.next_rotation {
        out["NextRotationDate"] = epoch_seconds(next);
        if let Some(days) = r.rotation_interval_days {
            out["RotationPeriodInDays"] = days.into();
        }
    }
    Ok(out)
}

pub(super) async fn rotate_key_on_demand(
    caller: &Caller<'_>,
    input: &Input,
) -> Result<Value, AwsError> {
    let names = caller.names();
    let keyid = names.key_only(input.string("KeyId", MAX_KEY_ID)?)?;
    let key = keys::load(caller.state, caller.appid(), keyid)
        .await
        .map_err(|e| refusal(names, e, keyid))?;
    check_rotatable(caller, &key)?;
    let arn = names.key_arn(&key.record.keyid);
    shared::rotate(caller.state, key, None)
        .await
        .map_err(step_refusal)?
        .ok_or_else(|| {
            super::internal(&"RotateKeyOnDemand lost every race with other rotations")
        })?;
    Ok(json!({ "KeyId": arn }))
}

/// ListKeyRotations's page size when the client sends no Limit (AWS's default).
const LIST_DEFAULT: i64 = 100;

/// Every version after the first is a rotation, oldest first; the marker is the last version
/// number of the page before. ehsm does not record whether the job or a client made a
/// version, so every rotation is ON_DEMAND.
pub(super) async fn list_key_rotations(
    caller: &Caller<'_>,
    input: &Input,
) -> Result<Value, AwsError> {
    let limit = input.opt_integer("Limit", 1, 1000)?.unwrap_or(LIST_DEFAULT);
    let after = match input.opt_string_within("Marker", 1, 1024)? {
        None => 1,
        Some(m) => m.parse::<u32>().map_err(|_| {
            AwsError::validation(format!(
                "Invalid marker {m}: send the NextMarker of the page before."
            ))
        })?,
    };
    let key = listed_key(caller, input).await?;
    let keyid = &key.record.keyid;
    let mut later = key
        .record
        .versions
        .iter()
        .filter(|v| v.version > after.max(1));
    // Within 1..=1000.
    let page: Vec<_> = later
        .by_ref()
        .take(usize::try_from(limit).unwrap_or(1))
        .collect();
    let more = later.next().is_some();
    let rotations: Vec<Value> = page
        .iter()
        .map(|v| {
            json!({
                "KeyId": keyid,
                "RotationDate": epoch_seconds(v.creation_date),
                "RotationType": "ON_DEMAND",
            })
        })
        .collect();
    let mut out = json!({ "Rotations": rotations, "Truncated": more });
    if more && let Some(last) = page.last() {
        out["NextMarker"] = last.version.to_string().into();
    }
    Ok(out)
}
