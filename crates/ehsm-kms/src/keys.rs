//! Finding the key a request names (spec §5.3's CMK lookup, by keyid or by alias) and turning
//! its record into what the core takes: a `KeyContext` and a blob for each version.

use std::sync::Arc;

use ehsm_core::spec::{KeySpec, KeyUsage, Origin};
use ehsm_core::{KeyBlob, KeyContext};
use ehsm_store::{CmkRecord, KeyState};
use serde_json::{Map, Value};

use crate::op_error::OpError;
use crate::params;
use crate::reply::ApiError;
use crate::state::{AppState, now_ms};
use crate::validate::ALIAS_PREFIX;

/// A key of the caller's, enabled, not expired and not pending deletion, parsed and ready
/// for the core. `reference` is a keyid or one of the app's alias names.
///
/// Upstream answered "keyid error" for an unknown key and "appid error" for another app's key,
/// which told anyone whether a key id exists (spec §16.10). Both are "keyid error" here. Keys
/// that apps do not see (internal keys made at enrollment) are not found either.
pub(crate) async fn load(
    state: &AppState,
    appid: &str,
    reference: &str,
) -> Result<Arc<Key>, OpError> {
    let keyid = resolve(state, appid, reference).await?;
    load_as(state, appid, &keyid, Visibility::Listed).await
}

/// The keyid `reference` names for the app: itself, or the key its alias names. An unknown
/// alias (or another app's: aliases are per app) is refused as such.
pub(crate) async fn resolve(
    state: &AppState,
    appid: &str,
    reference: &str,
) -> Result<String, OpError> {
    if !reference.starts_with(ALIAS_PREFIX) {
        return Ok(reference.to_owned());
    }
    let id = alias_cache_id(appid, reference);
    if let Some(alias) = state.aliases.get(&id) {
        return Ok(alias.keyid.clone());
    }
    let generation = state.aliases.generation();
    match state.store.get_alias(appid, reference).await? {
        Some(keyid) => {
            let alias = Arc::new(Alias {
                appid: appid.to_owned(),
                keyid: keyid.clone(),
            });
            state.aliases.put(&id, alias, generation);
            Ok(keyid)
        }
        None => Err(OpError::UnknownAlias(reference.to_owned())),
    }
}

/// What the alias cache holds for one alias of an app.
pub(crate) struct Alias {
    pub(crate) appid: String,
    pub(crate) keyid: String,
}

/// The alias cache's id for an app's alias. Neither an appid nor an alias name holds a space.
pub(crate) fn alias_cache_id(appid: &str, alias: &str) -> String {
    format!("{appid} {alias}")
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

/// As [`load`], by keyid only, with internal keys found too when `visibility` says so.
pub(crate) async fn load_as(
    state: &AppState,
    appid: &str,
    keyid: &str,
    visibility: Visibility,
) -> Result<Arc<Key>, OpError> {
    let key = find(state, appid, keyid, visibility).await?;
    key.usable()?;
    Ok(key)
}

/// The app's listed key `reference` names, whatever its state: for the actions that manage a
/// key rather than use it (DescribeKey, ListKeyVersions, CancelKeyDeletion, ...).
pub(crate) async fn find_listed(
    state: &AppState,
    appid: &str,
    reference: &str,
) -> Result<Arc<Key>, OpError> {
    let keyid = resolve(state, appid, reference).await?;
    find(state, appid, &keyid, Visibility::Listed).await
}

/// The key from the record cache, or from the store (then cached), if it is the app's and
/// visible; unknown otherwise.
async fn find(
    state: &AppState,
    appid: &str,
    keyid: &str,
    visibility: Visibility,
) -> Result<Arc<Key>, OpError> {
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
                None => return Err(OpError::UnknownKey),
            }
        }
    };
    let r = &key.record;
    if r.appid != appid || !(r.listed || visibility == Visibility::Internal) {
        return Err(OpError::UnknownKey);
    }
    Ok(key)
}

/// A stored key with its context parsed: what the core needs. The record cache holds these
/// with every version, so the hot path neither parses names nor copies a blob, and finding any
/// version is an index.
pub(crate) struct Key {
    /// The record; its versions' blobs have been moved into `versions`.
    pub(crate) record: CmkRecord,
    pub(crate) spec: KeySpec,
    pub(crate) origin: Origin,
    pub(crate) usage: KeyUsage,
    /// Version `n` is at index `n - 1`; the last is the primary (the store guarantees both).
    versions: Vec<KeyBlob>,
}

/// One version of a key, as the core takes it.
pub(crate) struct Version<'a> {
    pub(crate) ctx: KeyContext<'a>,
    pub(crate) blob: &'a KeyBlob,
}

impl Version<'_> {
    /// The version's number.
    pub(crate) fn number(&self) -> u32 {
        self.ctx.version
    }
}

impl Key {
    pub(crate) fn new(mut record: CmkRecord) -> Result<Self, OpError> {
        let corrupt =
            || OpError::Corrupt("stored key record has an unknown key spec, origin or usage");
        // Indexing by number relies on the store's shape: versions 1..=primary, in order.
        let numbered = record.versions.iter().zip(1..).all(|(v, n)| v.version == n);
        if record.primary().is_none() || !numbered {
            return Err(OpError::Corrupt(
                "stored key record's versions are not 1 to its primary",
            ));
        }
        let versions = record
            .versions
            .iter_mut()
            .map(|v| KeyBlob::from_vec(std::mem::take(&mut v.blob)))
            .collect();
        Ok(Self {
            spec: KeySpec::from_name(&record.keyspec).ok_or_else(corrupt)?,
            origin: Origin::from_name(&record.origin).ok_or_else(corrupt)?,
            usage: KeyUsage::from_name(&record.keyusage).ok_or_else(corrupt)?,
            versions,
            record,
        })
    }

    /// Whether the key may be used now: enabled, not pending deletion, not expired.
    pub(crate) fn usable(&self) -> Result<(), OpError> {
        let r = &self.record;
        if let Some(date) = r.deletion_date {
            return Err(OpError::PendingDeletion(date));
        }
        if r.state == KeyState::Disabled {
            return Err(OpError::Disabled);
        }
        // Expired keys are refused, never deleted: their ciphertexts may still matter to someone.
        if now_ms() > r.expire_time {
            return Err(OpError::Expired);
        }
        Ok(())
    }

    /// The version new ciphertexts, signatures and MACs use.
    pub(crate) fn primary(&self) -> Version<'_> {
        // `new` made sure there is one and that it is the last.
        self.version_at_index(self.versions.len() - 1)
    }

    /// Version `n`, if the key has it.
    pub(crate) fn at(&self, n: u32) -> Option<Version<'_>> {
        let index = usize::try_from(n).ok()?.checked_sub(1)?;
        (index < self.versions.len()).then(|| self.version_at_index(index))
    }

    fn version_at_index(&self, index: usize) -> Version<'_> {
        Version {
            ctx: KeyContext {
                keyid: &self.record.keyid,
                appid: &self.record.appid,
                spec: self.spec,
                origin: self.origin,
                usage: self.usage,
                version: index as u32 + 1,
            },
            blob: &self.versions[index],
        }
    }

    /// The version a payload's optional `keyversion` asks for, or the primary one. A version
    /// the key does not have is a 400 that says so.
    pub(crate) fn requested(&self, p: &Map<String, Value>) -> Result<Version<'_>, ApiError> {
        match params::opt_integer(p, "keyversion")? {
            None => Ok(self.primary()),
            Some(n) => u32::try_from(n)
                .ok()
                .and_then(|n| self.at(n))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Parameter invalid, The keyversion {n} does not exist: this key has \
                         versions 1 to {}.",
                        self.versions.len()
                    ))
                }),
        }
    }

    /// The versions to try when the client named none (Verify, VerifyMac, AsymmetricDecrypt
    /// without `keyversion`): with one, only it; without, the primary first, then the older
    /// ones, newest first (the likeliest to have made recent data).
    pub(crate) fn candidates(&self, p: &Map<String, Value>) -> Result<Vec<Version<'_>>, ApiError> {
        if params::opt_integer(p, "keyversion")?.is_some() {
            return Ok(vec![self.requested(p)?]);
        }
        Ok((0..self.versions.len())
            .rev()
            .map(|i| self.version_at_index(i))
            .collect())
    }

    /// The version a symmetric ciphertext's header names. A malformed header, or a version
    /// this key does not have, is the answer a wrong ciphertext gets.
    pub(crate) fn of_ciphertext(&self, ciphertext: &[u8]) -> Result<Version<'_>, ehsm_core::Error> {
        let n = ehsm_core::ciphertext::key_version(ciphertext)?;
        self.at(n).ok_or(ehsm_core::Error::DecryptionFailed)
    }

    /// Every version, oldest first.
    pub(crate) fn versions(&self) -> impl Iterator<Item = Version<'_>> {
        (0..self.versions.len()).map(|i| self.version_at_index(i))
    }
}
