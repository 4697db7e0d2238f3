//! What every request handler shares: the core, the store, the replay cache, the record caches
//! and the platform with the quote verification settings.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use ehsm_core::Core;
use ehsm_core::KeyBlob;
use ehsm_store::Store;
use ehsm_tee::Platform;
use ehsm_tee::dcap::Collateral;
use ehsm_tee::pccs::PccsCollateral;

use crate::keys::{Alias, Key};

use crate::enroll::EnrollPolicy;
use crate::replay::ReplayCache;

/// Shared state of the service. Cheap to clone.
#[derive(Clone)]
pub(crate) struct AppState(pub(crate) Arc<Inner>);

pub(crate) struct Inner {
    pub(crate) core: Arc<Core>,
    pub(crate) store: Store,
    pub(crate) replay: ReplayCache,
    /// Each app's API-key blob, by appid.
    pub(crate) apps: RecordCache<KeyBlob>,
    pub(crate) keys: RecordCache<Key>,
    /// Each app's aliases, by `keys::alias_cache_id`.
    pub(crate) aliases: RecordCache<Alias>,
    pub(crate) enroll: EnrollPolicy,
    pub(crate) key_lifetime_ms: i64,
    pub(crate) quotas: crate::server::Quotas,
    /// One permit per CPU for heavy core work (see `actions::heavy`).
    pub(crate) heavy: tokio::sync::Semaphore,
    /// One permit: unauthenticated GetServerEvidence requests make evidence one at a time, so
    /// that together they never hold more than one of the `heavy` permits (see
    /// `server_evidence`).
    pub(crate) evidence_turn: tokio::sync::Semaphore,
    pub(crate) attestation: Attestation,
    /// Whether every request must carry the signed `action` (`--require-signed-action`).
    pub(crate) require_signed_action: bool,
    /// The DER `SubjectPublicKeyInfo` of the TLS certificate this server serves, which
    /// GetServerEvidence binds; `None` under `--http` (no TLS key to bind). Set before the
    /// state exists, so no request of a TLS server ever sees it missing.
    pub(crate) served_spki: Option<Arc<[u8]>>,
    /// The AWS KMS API's region and account.
    pub(crate) aws: crate::server::AwsConfig,
}

/// What the quote actions (GenerateQuote, VerifyQuote) work with.
pub(crate) struct Attestation {
    /// The platform this node runs on: it makes GenerateQuote's evidence.
    pub(crate) platform: Arc<dyn Platform>,
    /// Intel's collateral for hardware quotes (`--collateral`); `None`: hardware quotes are
    /// refused.
    pub(crate) collateral: Option<Collateral>,
    /// The PCCS that hardware quotes' collateral is fetched from (`--pccs-url`), instead of
    /// `collateral`.
    pub(crate) pccs: Option<PccsCollateral>,
    /// Whether simulated evidence is accepted (`--allow-simulated-quotes`).
    pub(crate) allow_simulated: bool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A bounded cache of store records by id, so the hot path (app lookup for the MAC, key lookup
/// for the operation) does no database round trip. Every change made through this node updates
/// or drops the entry, and on PostgreSQL so does every other node's (`server::invalidations`).
/// When full it is simply cleared: records are cheap to reload.
pub(crate) struct RecordCache<T> {
    map: RwLock<HashMap<String, Arc<T>>>,
    capacity: usize,
    /// Counts removals. A record read from the store before a removal must not be cached after
    /// it: it may be the very state the removal was about (read, then changed by another node,
    /// then announced, then cached here).
    generation: AtomicU64,
}

impl<T> RecordCache<T> {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::new()),
            capacity,
            generation: AtomicU64::new(0),
        }
    }

    /// Taken before reading a record from the store, for [`RecordCache::put`].
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn get(&self, id: &str) -> Option<Arc<T>> {
        self.map
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Caches `record`, read from the store after [`RecordCache::generation`] answered
    /// `generation`, unless something was removed since (it could be stale).
    pub(crate) fn put(&self, id: &str, record: Arc<T>, generation: u64) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(id.to_owned(), record);
    }

    // Removals bump the generation under the write lock, so that a `put` either lands before
    // the removal (and is removed) or sees the new generation (and is dropped).

    pub(crate) fn forget(&self, id: &str) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.remove(id);
    }

    pub(crate) fn forget_where(&self, pred: impl Fn(&T) -> bool) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.retain(|_, r| !pred(r));
    }

    pub(crate) fn clear(&self) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::AcqRel);
        map.clear();
    }
}
