//! Finding the key a request names (spec §5.3's CMK lookup) and turning its record into the
//! core's `KeyContext`.

use std::sync::Arc;

use ehsm_core::spec::{KeySpec, KeyUsage, Origin};
use ehsm_core::{KeyBlob, KeyContext};
use ehsm_store::{CmkRecord, KeyState};

use crate::reply::ApiError;
use crate::state::{AppState, now_ms};

/// A key of the caller's, enabled and not expired, parsed and ready for the core.
///
/// Upstream answered "keyid error" for an unknown key and "appid error" for another app's key,
/// which told anyone whether a key id exists (spec §16.10). Both are "keyid error" here. Keys
/// that apps do not see (internal keys made at enrollment) are not found either.
pub(crate) async fn load(state: &AppState, appid: &str, keyid: &str) -> Result<Arc<Key>, ApiError> {
    load_as(state, appid, keyid, Visibility::Listed).await
}

/// Which keys a lookup may find.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Visibility {
    /// The keys clients name: listed ones.
    Listed,
    /// Also the app's internal keys. Only for a keyid the server itself stored (the key of a
    /// secret), never for one a client sent.
    Internal,
}

/// As [`load`], with internal keys found too when `visibility` says so.
pub(crate) async fn load_as(
    state: &AppState,
    appid: &str,
    keyid: &str,
    visibility: Visibility,
) -> Result<Arc<Key>, ApiError> {
    let key = match state.keys.get(keyid) {
        Some(k) => k,
        None => {
            let generation = state.keys.generation();
            match state.store.get_cmk(keyid).await? {
                Some(r) => {
                    let k = Arc::new(Key::new(r)?);
                    state.keys.put(keyid, Arc::clone(&k), generation);
                    k
                }
                None => return Err(ApiError::bad_request("keyid error")),
            }
        }
    };
    let r = &key.record;
    if r.appid != appid || !(r.listed || visibility == Visibility::Internal) {
        return Err(ApiError::bad_request("keyid error"));
    }
    if r.state == KeyState::Disabled {
        return Err(ApiError::bad_request("keyid is disabled"));
    }
    // Expired keys are refused, never deleted: their ciphertexts may still matter to someone.
    if now_ms() > r.expire_time {
        return Err(ApiError::bad_request("keyid expire"));
    }
    Ok(key)
}

/// A stored key with its context parsed: what the core needs. The record cache holds these, so
/// the hot path neither parses names nor copies the blob.
pub(crate) struct Key {
    /// The record; its `blob` has been moved into `blob`.
    pub(crate) record: CmkRecord,
    pub(crate) spec: KeySpec,
    pub(crate) origin: Origin,
    pub(crate) usage: KeyUsage,
    pub(crate) blob: KeyBlob,
}

impl Key {
    pub(crate) fn new(mut record: CmkRecord) -> Result<Self, ApiError> {
        let corrupt =
            || ApiError::internal(&"stored key record has an unknown key spec, origin or usage");
        Ok(Self {
            spec: KeySpec::from_name(&record.keyspec).ok_or_else(corrupt)?,
            origin: Origin::from_name(&record.origin).ok_or_else(corrupt)?,
            usage: KeyUsage::from_name(&record.keyusage).ok_or_else(corrupt)?,
            blob: KeyBlob::from_vec(std::mem::take(&mut record.blob)),
            record,
        })
    }

    pub(crate) fn context(&self) -> KeyContext<'_> {
        KeyContext {
            keyid: &self.record.keyid,
            appid: &self.record.appid,
            spec: self.spec,
            origin: self.origin,
            usage: self.usage,
            version: self.record.version,
        }
    }
}
