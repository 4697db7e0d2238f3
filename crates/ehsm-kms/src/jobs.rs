//! The background jobs (spec §11), fixed: every due item is found, whatever its number
//! (upstream stopped at 25 secrets a run), the schedule lives in the store so restarts lose
//! nothing, and each job is a single conditional statement, so several nodes sharing a store
//! may run it at once and each item is handled exactly once.
//!
//! - **Secret deletion**: secrets whose recovery period is over are deleted with their versions.
//! - **Key rotation**: keys whose automatic rotation is due get a new primary version (each
//!   exactly once: the new version is a compare-and-set on the key's primary version).
//! - **Key deletion**: keys whose scheduled deletion is due are deleted with their versions and
//!   aliases (unless the deletion was cancelled first: checked in the deleting statement).
//! - **Import token expiry**: the wrapping key of a BYOK import not completed within 24 hours is
//!   destroyed.
//! - **Replay cache pruning**: entries older than the 20-minute window are forgotten.
//! - **Re-wrap after a domain-key rotation**: every CMK and API-key blob wrapped under an older
//!   domain key is wrapped again under the current one, so that the old key is eventually needed
//!   by nothing. The material inside does not change, so keys work throughout.
//!
//! Running the jobs on every node is safe but multiplies their database work (and a re-wrap
//! rewrites every blob), so a run happens only on the node holding the store's `jobs` lease;
//! the holder renews it every run, and when it dies another node takes over once it expires.
//!
//! CMK expiry is *not* a deletion job: an expired key is refused (`keys::load`) but kept, since
//! ciphertexts under it may still matter; upstream's purge deleted keys ten days before expiry.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ehsm_core::KeyBlob;

use crate::keys::Key;
use crate::replay::KEEP_MS;
use crate::state::{AppState, now_ms};

/// How often the jobs run. Due times are kept to the minute.
pub(crate) const INTERVAL: Duration = Duration::from_secs(60);

/// The store lease a node holds while it runs the jobs.
pub(crate) const LEASE: &str = "jobs";

/// How long a lease lasts without renewal: three runs, so that a holder that misses a run or two
/// (a slow database) keeps it, and one that died is replaced within three minutes.
pub(crate) const LEASE_TTL_MS: i64 = 3 * INTERVAL.as_millis() as i64;

/// The store setting holding the domain-key version that every blob was found wrapped under
/// (decimal ASCII). A re-wrap pass runs while the core's current version is newer.
pub(crate) const REWRAPPED_SETTING: &str = "dk-rewrapped-version";

/// Before any rotation there is nothing to re-wrap: the first domain key is version 1.
const FIRST_DK_VERSION: u32 = 1;

/// Records read per store round trip during a re-wrap pass.
const PAGE: u32 = 500;

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Whether this node held the lease and ran the jobs; `false` (and nothing else set) when
    /// another node holds it.
    pub(crate) ran: bool,
    pub(crate) secrets_deleted: u64,
    /// Keys given a new version by automatic rotation.
    pub(crate) keys_rotated: u64,
    /// Keys deleted after their scheduled deletion's waiting period.
    pub(crate) keys_deleted: u64,
    pub(crate) import_tokens_expired: u64,
    pub(crate) replay_batches_pruned: u64,
    /// CMK and API-key blobs re-wrapped under the current domain key.
    pub(crate) blobs_rewrapped: u64,
}

/// Runs every job for the time `now` (ms), if `holder` (this process's lease id) gets the jobs
/// lease; otherwise runs none and returns an empty report (it still prunes this node's
/// in-memory replay cache, which is no shared job). The clock is a parameter so that
/// tests can run a job days ahead instead of sleeping. A failing job is logged and does not stop
/// the others.
pub(crate) async fn run_due(state: &AppState, holder: &str, now: i64) -> Report {
    // This node's own in-memory replay cache: every node prunes its own, lease or not.
    state.replay.prune(now);
    let lease = Lease {
        holder,
        now,
        started: Instant::now(),
    };
    match lease.renew(state).await {
        Ok(true) => {}
        Ok(false) => return Report::default(),
        Err(e) => {
            tracing::warn!(error = %e, "could not take the background jobs' lease; skipping this run");
            return Report::default();
        }
    }
    let mut report = Report {
        ran: true,
        ..Report::default()
    };
    match state.store.purge_due_secrets(now).await {
        Ok(n) => report.secrets_deleted = n,
        Err(e) => tracing::warn!(error = %e, "the secret deletion job failed"),
    }
    match crate::actions::rotate_due_keys(state, now).await {
        Ok(n) => report.keys_rotated = n,
        Err(e) => tracing::warn!(error = %e, "the key rotation job failed"),
    }
    match crate::actions::delete_due_keys(state, now).await {
        Ok(n) => report.keys_deleted = n,
        Err(e) => tracing::warn!(error = %e, "the key deletion job failed"),
    }
    match state.store.expire_import_params(now).await {
        Ok(n) => report.import_tokens_expired = n,
        Err(e) => tracing::warn!(error = %e, "the import token expiry job failed"),
    }
    match state.store.prune_replay_entries(now - KEEP_MS).await {
        Ok(n) => report.replay_batches_pruned = n,
        Err(e) => tracing::warn!(error = %e, "pruning the replay cache failed"),
    }
    if report.secrets_deleted > 0
        || report.import_tokens_expired > 0
        || report.keys_rotated > 0
        || report.keys_deleted > 0
    {
        tracing::info!(
            secrets_deleted = report.secrets_deleted,
            import_tokens_expired = report.import_tokens_expired,
            keys_rotated = report.keys_rotated,
            keys_deleted = report.keys_deleted,
            "background jobs"
        );
    }
    report.blobs_rewrapped = rewrap_if_rotated(state, &lease).await;
    report
}

/// Runs the jobs every [`INTERVAL`], the first time right away (a restart catches up at once).
/// `holder` names this process in the jobs lease (random per process); the server releases the
/// lease at a clean shutdown, so that another node, or this one restarted, need not wait for it
/// to expire. After a crash the jobs pause until it does ([`LEASE_TTL_MS`]), which they tolerate
/// (every due item stays due).
pub(crate) async fn run_forever(state: AppState, holder: String) {
    let mut tick = tokio::time::interval(INTERVAL);
    let mut holding = false;
    loop {
        tick.tick().await;
        let ran = run_due(&state, &holder, now_ms()).await.ran;
        // Which node runs the jobs is worth one line when it changes, not one per run.
        match (holding, ran) {
            (false, true) => {
                tracing::info!("this node runs the background jobs (it holds the jobs lease)")
            }
            (true, false) => tracing::info!("another node runs the background jobs now"),
            _ => {}
        }
        holding = ran;
    }
}

/// The jobs lease as one run holds it.
struct Lease<'a> {
    holder: &'a str,
    /// The run's clock (ms) when it started.
    now: i64,
    started: Instant,
}

impl Lease<'_> {
    /// Takes or renews the lease until [`LEASE_TTL_MS`] after the run's clock, moved on by the
    /// time the run has taken so far (a long re-wrap pass renews it between pages).
    async fn renew(&self, state: &AppState) -> ehsm_store::Result<bool> {
        let elapsed = i64::try_from(self.started.elapsed().as_millis()).unwrap_or(i64::MAX);
        state
            .store
            .try_acquire_lease(
                LEASE,
                self.holder,
                self.now.saturating_add(elapsed),
                LEASE_TTL_MS,
            )
            .await
    }
}

/// What a re-wrap pass saw.
#[derive(Default)]
struct Pass {
    /// Blobs re-wrapped and written back.
    rewrapped: u64,
    /// Blobs re-wrapped but changed in the store by someone else first: their new value is
    /// checked by the next pass.
    lost: u64,
    /// Blobs the core could not re-wrap, or wrapped under a version this node does not have yet.
    failed: u64,
    /// Whether the pass saw every record (no store error, the lease kept throughout).
    complete: bool,
}

impl Pass {
    /// Whether the pass found nothing left to re-wrap: only then may the version be recorded.
    fn clean(&self) -> bool {
        self.complete && self.rewrapped == 0 && self.lost == 0 && self.failed == 0
    }
}

/// The re-wrap job: while the core's domain key is newer than the recorded version, one pass
/// over every CMK and app per run; the version is recorded after a pass that found nothing to
/// re-wrap. Not after the pass that re-wrapped the last blob: a node that learned the rotation
/// late may have written a blob under the old key meanwhile, and the next pass catches it.
/// Returns how many blobs it re-wrapped.
async fn rewrap_if_rotated(state: &AppState, lease: &Lease<'_>) -> u64 {
    let current = state.core.domain_key_version();
    let recorded = match state.store.get_setting(REWRAPPED_SETTING).await {
        Ok(None) => FIRST_DK_VERSION,
        Ok(Some(value)) => match std::str::from_utf8(&value)
            .ok()
            .and_then(|v| v.parse().ok())
        {
            Some(version) => version,
            None => {
                // Not fatal: a pass is always safe; it rewrites the setting when clean.
                tracing::warn!(
                    setting = REWRAPPED_SETTING,
                    "the setting is not a version number"
                );
                0
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "the re-wrap job could not read its progress");
            return 0;
        }
    };
    if current <= recorded {
        return 0;
    }
    let mut pass = Pass::default();
    let complete = rewrap_all(state, lease, Kind::Cmk, &mut pass).await
        && rewrap_all(state, lease, Kind::ApiKey, &mut pass).await;
    pass.complete = complete;
    if pass.rewrapped > 0 || pass.failed > 0 {
        tracing::info!(
            domain_key_version = current,
            blobs_rewrapped = pass.rewrapped,
            changed_meanwhile = pass.lost,
            failed = pass.failed,
            "re-wrap pass after a domain-key rotation"
        );
    }
    if pass.clean() {
        match state
            .store
            .put_setting(REWRAPPED_SETTING, current.to_string().as_bytes())
            .await
        {
            Ok(()) => tracing::info!(
                domain_key_version = current,
                "every key blob is wrapped under the current domain key"
            ),
            Err(e) => tracing::warn!(error = %e, "the re-wrap job could not record its progress"),
        }
    }
    pass.rewrapped
}

/// Renews the lease before a page; `false` (the pass stops, incomplete) if it was lost or could
/// not be renewed, since another node may be running the jobs now.
async fn keep_lease(state: &AppState, lease: &Lease<'_>) -> bool {
    match lease.renew(state).await {
        Ok(true) => true,
        Ok(false) => {
            tracing::warn!("lost the background jobs' lease during a re-wrap pass; stopping it");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not renew the background jobs' lease; stopping the re-wrap pass");
            false
        }
    }
}

/// The two kinds of stored blob a domain key wraps.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// CMK material (the keys table).
    Cmk,
    /// An app's API key (the apps table).
    ApiKey,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Cmk => "key",
            Kind::ApiKey => "API key",
        }
    }
}

/// One stored blob as a pass reads it, with what the core needs to re-wrap it.
enum Stored {
    /// One version of a key (every version is its own blob; all are re-wrapped).
    Cmk {
        key: Arc<Key>,
        version: u32,
    },
    ApiKey(KeyBlob),
}

impl Stored {
    fn blob(&self) -> &KeyBlob {
        match self {
            Stored::Cmk { key, version } => key.at(*version).unwrap_or_else(|| key.primary()).blob,
            Stored::ApiKey(blob) => blob,
        }
    }

    fn rewrap(&self, state: &AppState, id: &str) -> ehsm_core::Result<Option<KeyBlob>> {
        match self {
            Stored::Cmk { key, version } => {
                let v = key.at(*version).unwrap_or_else(|| key.primary());
                state.core.rewrap_cmk(&v.ctx, v.blob)
            }
            Stored::ApiKey(blob) => state.core.rewrap_api_key(id, blob),
        }
    }
}

/// A page of records of `kind` after `after` (by id), as (id, blob or `None` if unreadable).
async fn page(
    state: &AppState,
    kind: Kind,
    after: &str,
) -> ehsm_store::Result<Vec<(String, Option<Stored>)>> {
    Ok(match kind {
        Kind::Cmk => state
            .store
            .cmks_after(after, PAGE)
            .await?
            .into_iter()
            .flat_map(|record| {
                let keyid = record.keyid.clone();
                let stored: Vec<_> = match Key::new(record) {
                    Ok(key) => {
                        let key = Arc::new(key);
                        key.versions()
                            .map(|v| {
                                let version = v.number();
                                let key = Arc::clone(&key);
                                (keyid.clone(), Some(Stored::Cmk { key, version }))
                            })
                            .collect()
                    }
                    Err(_) => vec![(keyid, None)],
                };
                stored
            })
            .collect(),
        Kind::ApiKey => state
            .store
            .apps_after(after, PAGE)
            .await?
            .into_iter()
            .map(|app| {
                let blob = KeyBlob::from_vec(app.apikey_blob);
                (app.appid, Some(Stored::ApiKey(blob)))
            })
            .collect(),
    })
}

/// One pass over every blob of `kind`; `false` if it could not finish.
async fn rewrap_all(state: &AppState, lease: &Lease<'_>, kind: Kind, pass: &mut Pass) -> bool {
    let what = kind.name();
    let mut after = String::new();
    loop {
        if !keep_lease(state, lease).await {
            return false;
        }
        let page = match page(state, kind, &after).await {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "the re-wrap job could not read the {what}s");
                return false;
            }
        };
        let Some((last, _)) = page.last() else {
            return true;
        };
        after.clone_from(last);
        for (id, stored) in page {
            let Some(stored) = stored else {
                tracing::warn!(%id, "re-wrap: the {what} record is unreadable; skipped");
                pass.failed += 1;
                continue;
            };
            // The core answers `None` for a blob already under the current key, and an error
            // for one it cannot open (under a version this node has not learned yet).
            let new = match stored.rewrap(state, &id) {
                Ok(Some(new)) => new,
                Ok(None) => continue,
                Err(e) => {
                    tracing::warn!(%id, error = %e, "re-wrap: the core could not re-wrap the {what}; skipped");
                    pass.failed += 1;
                    continue;
                }
            };
            let (old, new) = (stored.blob().as_bytes(), new.as_bytes());
            let replaced = match &stored {
                Stored::Cmk { version, .. } => {
                    state.store.replace_cmk_blob(&id, *version, old, new).await
                }
                Stored::ApiKey(_) => state.store.replace_apikey_blob(&id, old, new).await,
            };
            match replaced {
                Ok(true) => {
                    pass.rewrapped += 1;
                    // On PostgreSQL the store's notification does this too; on SQLite nothing
                    // else would.
                    match kind {
                        Kind::Cmk => state.keys.forget(&id),
                        Kind::ApiKey => state.apps.forget(&id),
                    }
                }
                // Changed (or deleted) since it was read: its new state is the next pass's.
                Ok(false) => pass.lost += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "the re-wrap job could not write a {what}");
                    return false;
                }
            }
        }
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ehsm_core::KeyBlob;
    use ehsm_store::{
        AppRecord, CmkRecord, CmkVersion, Deletion, ImportParams, KeyState, SecretRecord,
    };

    use super::*;
    use crate::server::{Config, open};

    const DAY: i64 = 86_400_000;
    const HOLDER: &str = "test-node";

    async fn service(dir: &std::path::Path) -> AppState {
        open(&Config::for_tests(dir, true)).await.unwrap().state
    }

    /// The lease is one node's at a time: another node's run is skipped while it is live, and
    /// runs (taking the lease over) once it expired; the clock is injected, no sleeping.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn only_the_lease_holder_runs_the_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        state.store.insert_app(&app(t0), &[]).await.unwrap();
        // The key the secrets name (a secret's key must exist).
        create_key(&state, "app", "k", "EH_AES_GCM_256", "EH_INTERNAL_KEY", t0).await;
        let due = secret("due", t0, Some(t0 + 1));
        state.store.insert_secret(&due, b"ct", None).await.unwrap();
        let first = run_due(&state, "n1", t0).await;
        assert!(first.ran);
        assert_eq!(first.secrets_deleted, 0);
        // n2 is skipped while n1's lease is live, up to its last millisecond, even with work
        // due.
        assert_eq!(run_due(&state, "n2", t0 + 1).await, Report::default());
        assert_eq!(
            run_due(&state, "n2", t0 + LEASE_TTL_MS - 1).await,
            Report::default()
        );
        assert!(
            state
                .store
                .get_secret("app", "due")
                .await
                .unwrap()
                .is_some()
        );
        // Expired: n2 takes over and runs what was due; n1 is now the one skipped.
        let taken = run_due(&state, "n2", t0 + LEASE_TTL_MS).await;
        assert!(taken.ran);
        assert_eq!(taken.secrets_deleted, 1);
        assert_eq!(
            run_due(&state, "n1", t0 + LEASE_TTL_MS).await,
            Report::default()
        );
        // Each run of the holder renews its lease, so n1 stays skipped past the first expiry.
        assert!(run_due(&state, "n2", t0 + 2 * LEASE_TTL_MS - 1).await.ran);
        assert_eq!(
            run_due(&state, "n1", t0 + 2 * LEASE_TTL_MS).await,
            Report::default()
        );
        assert!(run_due(&state, "n1", t0 + 3 * LEASE_TTL_MS).await.ran);
    }

    /// An app and its API key as Enroll makes them, stored; returns the API key.
    async fn enroll(state: &AppState, appid: &str, t0: i64) -> ehsm_core::ApiKey {
        let (apikey, blob) = state.core.create_api_key(appid).unwrap();
        let app = AppRecord {
            appid: appid.into(),
            apikey_blob: blob.as_bytes().to_vec(),
            created_at: t0,
        };
        state.store.insert_app(&app, &[]).await.unwrap();
        apikey
    }

    /// A key made by the core, as CreateKey makes it, stored.
    async fn create_key(
        state: &AppState,
        appid: &str,
        keyid: &str,
        spec: &str,
        origin: &str,
        t0: i64,
    ) {
        create_key_versions(state, appid, keyid, spec, origin, t0, 1).await;
    }

    /// As `create_key`, with `n` versions (as `n - 1` rotations leave it).
    async fn create_key_versions(
        state: &AppState,
        appid: &str,
        keyid: &str,
        spec: &str,
        origin: &str,
        t0: i64,
        n: u32,
    ) {
        let versions = (1..=n)
            .map(|version| {
                let ctx = ehsm_core::KeyContext {
                    keyid,
                    appid,
                    spec: ehsm_core::spec::KeySpec::from_name(spec).unwrap(),
                    origin: ehsm_core::spec::Origin::from_name(origin).unwrap(),
                    usage: ehsm_core::spec::KeyUsage::EncryptDecrypt,
                    version,
                };
                let blob = state.core.create_key(&ctx).unwrap();
                CmkVersion {
                    version,
                    blob: blob.as_bytes().to_vec(),
                    creation_date: t0,
                }
            })
            .collect();
        let record = CmkRecord {
            keyid: keyid.into(),
            appid: appid.into(),
            keyspec: spec.into(),
            origin: origin.into(),
            keyusage: "EH_KEYUSAGE_ENCRYPT_DECRYPT".into(),
            primary_version: n,
            state: KeyState::Enabled,
            creation_date: t0,
            expire_time: t0 + 365 * DAY,
            listed: true,
            import: None,
            description: None,
            rotation_interval_days: None,
            next_rotation: None,
            deletion_date: None,
            versions,
        };
        state.store.insert_cmk(&record).await.unwrap();
    }

    /// The stored key, ready for the core.
    async fn stored_key(state: &AppState, keyid: &str) -> Key {
        Key::new(state.store.get_cmk(keyid).await.unwrap().unwrap()).unwrap()
    }

    async fn apikey_blob(state: &AppState, appid: &str) -> KeyBlob {
        KeyBlob::from_vec(
            state
                .store
                .get_app(appid)
                .await
                .unwrap()
                .unwrap()
                .apikey_blob,
        )
    }

    /// A request MAC as a client computes it: base64 HMAC-SHA256 under the API key.
    fn sign(apikey: &ehsm_core::ApiKey, canonical: &[u8]) -> String {
        use base64::Engine as _;
        let key =
            aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, apikey.expose().as_bytes());
        base64::engine::general_purpose::STANDARD.encode(aws_lc_rs::hmac::sign(&key, canonical))
    }

    /// Rotates the service's domain keys: the same set it unsealed at start, read again from its
    /// data directory, with a new version added.
    fn rotate(state: &AppState, dir: &std::path::Path) -> u32 {
        let platform = ehsm_tee::sim::SimPlatform::open(dir).unwrap();
        let (mut dks, _) = ehsm_domain::standalone::open(dir, &platform).unwrap();
        let version = dks.rotate().unwrap();
        state.core.update_domain_keys(dks).unwrap();
        assert_eq!(state.core.domain_key_version(), version);
        version
    }

    async fn recorded(state: &AppState) -> Option<Vec<u8>> {
        state.store.get_setting(REWRAPPED_SETTING).await.unwrap()
    }

    /// After a rotation, one run re-wraps every CMK (listed, internal, external) and API-key
    /// blob under the new domain key, keys keep working (a ciphertext made before decrypts), the
    /// next run finds nothing left and records the version, and the run after does nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rotation_rewraps_every_blob_then_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        let apikey = enroll(&state, "app", t0).await;
        enroll(&state, "other", t0).await;
        // k0 has one version, k3 four: every version is re-wrapped.
        for i in 0..4 {
            create_key_versions(
                &state,
                "app",
                &format!("k{i}"),
                "EH_AES_GCM_256",
                "EH_INTERNAL_KEY",
                t0,
                i + 1,
            )
            .await;
        }
        create_key(&state, "other", "sm4", "EH_SM4_CBC", "EH_INTERNAL_KEY", t0).await;
        create_key(
            &state,
            "other",
            "byok",
            "EH_AES_GCM_128",
            "EH_EXTERNAL_KEY",
            t0,
        )
        .await;
        let keyids = ["byok", "k0", "k1", "k2", "k3", "sm4"];
        let before = stored_key(&state, "k0").await;
        let blob = apikey_blob(&state, "app").await;
        let auth = state
            .core
            .verify_request_mac("app", &blob, b"req", &sign(&apikey, b"req"))
            .unwrap();
        let ciphertext = state
            .core
            .encrypt(
                &auth,
                &before.primary().ctx,
                before.primary().blob,
                b"hello",
                b"aad",
            )
            .unwrap();

        // Before a rotation there is nothing to do.
        assert_eq!(run_due(&state, HOLDER, t0).await.blobs_rewrapped, 0);
        assert_eq!(recorded(&state).await, None);

        assert_eq!(rotate(&state, dir.path()), 2);
        let first = run_due(&state, HOLDER, t0 + 1).await;
        // Six keys, six more versions of k1 to k3, two API keys.
        assert_eq!(first.blobs_rewrapped, keyids.len() as u64 + 6 + 2);
        assert_eq!(
            recorded(&state).await,
            None,
            "not recorded by the pass that re-wrapped"
        );
        let all = state.store.cmks_after("", 100).await.unwrap();
        assert_eq!(
            all.iter().map(|k| k.keyid.as_str()).collect::<Vec<_>>(),
            keyids
        );
        for k in &all {
            for v in &k.versions {
                assert_eq!(
                    KeyBlob::from_vec(v.blob.clone()).domain_key_version(),
                    Some(2),
                    "{} version {}",
                    k.keyid,
                    v.version
                );
            }
        }
        for appid in ["app", "other"] {
            assert_eq!(
                apikey_blob(&state, appid).await.domain_key_version(),
                Some(2)
            );
        }
        // The same API key and the same key material, under the new domain key.
        let blob = apikey_blob(&state, "app").await;
        let auth = state
            .core
            .verify_request_mac("app", &blob, b"req", &sign(&apikey, b"req"))
            .unwrap();
        let after = stored_key(&state, "k0").await;
        let (old, new) = (before.primary().blob, after.primary().blob);
        assert_ne!(new.as_bytes(), old.as_bytes());
        let plaintext = state
            .core
            .decrypt(&auth, &after.primary().ctx, new, &ciphertext, b"aad")
            .unwrap();
        assert_eq!(plaintext.as_slice(), b"hello");

        let second = run_due(&state, HOLDER, t0 + 2).await;
        assert!(second.ran);
        assert_eq!(second.blobs_rewrapped, 0);
        assert_eq!(recorded(&state).await.as_deref(), Some(&b"2"[..]));

        // Recorded: the next run does not scan. (A blob under the old key put back would only
        // be found after the next rotation.)
        assert!(
            state
                .store
                .replace_cmk_blob("k0", 1, new.as_bytes(), old.as_bytes())
                .await
                .unwrap()
        );
        assert_eq!(run_due(&state, HOLDER, t0 + 3).await.blobs_rewrapped, 0);
        assert_eq!(
            stored_key(&state, "k0")
                .await
                .primary()
                .blob
                .domain_key_version(),
            Some(1)
        );
    }

    /// A blob the core cannot re-wrap is skipped without stopping the pass, and a pass with
    /// such a blob does not record the version; once it is gone, the next pass does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_blob_that_cannot_be_rewrapped_is_skipped_and_blocks_recording() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        enroll(&state, "app", t0).await;
        create_key(
            &state,
            "app",
            "a-good",
            "EH_AES_GCM_256",
            "EH_INTERNAL_KEY",
            t0,
        )
        .await;
        create_key(
            &state,
            "app",
            "c-good",
            "EH_AES_GCM_256",
            "EH_INTERNAL_KEY",
            t0,
        )
        .await;
        // A blob made under version 1 for another key: well-formed, but it does not open as
        // this key's.
        let stolen = state
            .store
            .get_cmk("c-good")
            .await
            .unwrap()
            .unwrap()
            .versions;
        let bad = CmkRecord {
            keyid: "b-bad".into(),
            versions: stolen,
            ..state.store.get_cmk("a-good").await.unwrap().unwrap()
        };
        state.store.insert_cmk(&bad).await.unwrap();
        rotate(&state, dir.path());
        assert_eq!(
            run_due(&state, HOLDER, t0).await.blobs_rewrapped,
            3,
            "two keys and the API key"
        );
        assert_eq!(
            stored_key(&state, "c-good")
                .await
                .primary()
                .blob
                .domain_key_version(),
            Some(2)
        );
        assert_eq!(
            stored_key(&state, "b-bad")
                .await
                .primary()
                .blob
                .domain_key_version(),
            Some(1)
        );
        assert_eq!(run_due(&state, HOLDER, t0 + 1).await.blobs_rewrapped, 0);
        assert_eq!(
            recorded(&state).await,
            None,
            "a pass with a failure is not clean"
        );
        assert!(state.store.delete_cmk("app", "b-bad").await.unwrap());
        run_due(&state, HOLDER, t0 + 2).await;
        assert_eq!(recorded(&state).await.as_deref(), Some(&b"2"[..]));
    }

    fn app(created_at: i64) -> AppRecord {
        AppRecord {
            appid: "app".into(),
            apikey_blob: vec![1],
            created_at,
        }
    }

    fn secret(name: &str, t0: i64, planned: Option<i64>) -> SecretRecord {
        SecretRecord {
            appid: "app".into(),
            name: name.into(),
            keyid: "k".into(),
            description: None,
            create_time: t0,
            deletion: planned.map(|p| Deletion {
                delete_time: t0,
                planned_delete_time: p,
            }),
            rotation_interval: None,
        }
    }

    /// Secrets scheduled for deletion go when due, with a clock moved days ahead rather than a
    /// sleep; more than upstream's 25 per run; restored and live ones stay.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn due_secrets_are_deleted_when_due_and_only_then() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        state.store.insert_app(&app(t0), &[]).await.unwrap();
        // The key the secrets name (a secret's key must exist).
        create_key(&state, "app", "k", "EH_AES_GCM_256", "EH_INTERNAL_KEY", t0).await;
        for i in 0..40 {
            let s = secret(&format!("due{i}"), t0, Some(t0 + DAY));
            state.store.insert_secret(&s, b"ct", None).await.unwrap();
        }
        let later = secret("later", t0, Some(t0 + 30 * DAY));
        state
            .store
            .insert_secret(&later, b"ct", None)
            .await
            .unwrap();
        let live = secret("live", t0, None);
        state.store.insert_secret(&live, b"ct", None).await.unwrap();
        let restored = secret("restored", t0, Some(t0 + DAY));
        state
            .store
            .insert_secret(&restored, b"ct", None)
            .await
            .unwrap();
        assert!(state.store.restore_secret("app", "restored").await.unwrap());

        assert_eq!(
            run_due(&state, HOLDER, t0 + DAY - 1).await.secrets_deleted,
            0
        );
        assert_eq!(run_due(&state, HOLDER, t0 + DAY).await.secrets_deleted, 40);
        assert_eq!(
            run_due(&state, HOLDER, t0 + DAY).await.secrets_deleted,
            0,
            "once"
        );
        let left: Vec<String> = state
            .store
            .list_secrets("app", None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(left, ["later", "live", "restored"]);
        assert_eq!(
            run_due(&state, HOLDER, t0 + 30 * DAY).await.secrets_deleted,
            1
        );
    }

    /// A BYOK import not completed within its token's lifetime loses its wrapping key.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn expired_import_tokens_lose_their_wrapping_key() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        let key = CmkRecord {
            keyid: "k".into(),
            appid: "app".into(),
            keyspec: "EH_AES_GCM_256".into(),
            origin: "EH_EXTERNAL_KEY".into(),
            keyusage: "EH_KEYUSAGE_ENCRYPT_DECRYPT".into(),
            primary_version: 1,
            state: KeyState::Enabled,
            creation_date: t0,
            expire_time: t0 + 365 * DAY,
            listed: true,
            import: Some(ImportParams {
                wrapping_spec: "EH_RSA_3072".into(),
                wrapping_blob: vec![3],
                expires_at: t0 + DAY,
            }),
            description: None,
            rotation_interval_days: None,
            next_rotation: None,
            deletion_date: None,
            versions: vec![CmkVersion {
                version: 1,
                blob: vec![2],
                creation_date: t0,
            }],
        };
        state.store.insert_app(&app(t0), &[key]).await.unwrap();
        assert_eq!(
            run_due(&state, HOLDER, t0 + DAY - 1)
                .await
                .import_tokens_expired,
            0
        );
        assert_eq!(
            run_due(&state, HOLDER, t0 + DAY)
                .await
                .import_tokens_expired,
            1
        );
        let stored = state.store.get_cmk("k").await.unwrap().unwrap();
        assert_eq!(stored.import, None);
        assert_eq!(stored.versions[0].blob, [2], "the key record stays");
    }

    /// Automatic rotation follows the job's clock (no sleeping): a key is rotated once when it
    /// is due, then again an interval later; a disabled key waits, and a key whose rotation was
    /// turned off is never rotated. Data made before each rotation still decrypts.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn due_keys_rotate_once_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        let apikey = enroll(&state, "app", t0).await;
        for keyid in ["on", "off"] {
            create_key(
                &state,
                "app",
                keyid,
                "EH_AES_GCM_256",
                "EH_INTERNAL_KEY",
                t0,
            )
            .await;
            assert!(
                state
                    .store
                    .set_rotation("app", keyid, Some(7), Some(t0 + 7 * DAY))
                    .await
                    .unwrap()
            );
        }
        state
            .store
            .set_rotation("app", "off", None, None)
            .await
            .unwrap();
        let blob = apikey_blob(&state, "app").await;
        let auth = state
            .core
            .verify_request_mac("app", &blob, b"req", &sign(&apikey, b"req"))
            .unwrap();
        let v1 = stored_key(&state, "on").await;
        let ciphertext = state
            .core
            .encrypt(&auth, &v1.primary().ctx, v1.primary().blob, b"old", b"")
            .unwrap();
        let primary = |state: &AppState| {
            let state = state.clone();
            async move { stored_key(&state, "on").await.record.primary_version }
        };

        assert_eq!(
            run_due(&state, HOLDER, t0 + 7 * DAY - 1).await.keys_rotated,
            0
        );
        assert_eq!(run_due(&state, HOLDER, t0 + 7 * DAY).await.keys_rotated, 1);
        assert_eq!(primary(&state).await, 2);
        // Done for this interval: the next run, and a second node's, find nothing due.
        assert_eq!(
            run_due(&state, HOLDER, t0 + 7 * DAY + 1).await.keys_rotated,
            0
        );
        let next = stored_key(&state, "on").await.record.next_rotation.unwrap();
        assert!(next >= t0 + 14 * DAY, "an interval after the rotation");
        // Disabled when due: it waits, and rotates once enabled again.
        state
            .store
            .set_key_state("app", "on", KeyState::Disabled)
            .await
            .unwrap();
        assert_eq!(run_due(&state, HOLDER, next).await.keys_rotated, 0);
        state
            .store
            .set_key_state("app", "on", KeyState::Enabled)
            .await
            .unwrap();
        assert_eq!(run_due(&state, HOLDER, next + 1).await.keys_rotated, 1);
        assert_eq!(primary(&state).await, 3);
        assert_eq!(stored_key(&state, "off").await.record.primary_version, 1);

        let key = stored_key(&state, "on").await;
        let version = key.of_ciphertext(&ciphertext).unwrap();
        assert_eq!(version.number(), 1);
        let back = state
            .core
            .decrypt(&auth, &version.ctx, version.blob, &ciphertext, b"")
            .unwrap();
        assert_eq!(back.as_slice(), b"old");
    }

    /// A scheduled deletion happens when it is due, not before, and not at all once
    /// cancelled.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn scheduled_key_deletions_happen_when_due() {
        let dir = tempfile::tempdir().unwrap();
        let state = service(dir.path()).await;
        let t0 = now_ms();
        enroll(&state, "app", t0).await;
        for keyid in ["doomed", "saved"] {
            create_key(
                &state,
                "app",
                keyid,
                "EH_AES_GCM_256",
                "EH_INTERNAL_KEY",
                t0,
            )
            .await;
            let date = t0 + 7 * DAY;
            assert!(
                state
                    .store
                    .schedule_cmk_deletion("app", keyid, date)
                    .await
                    .unwrap()
            );
        }
        assert!(
            state
                .store
                .cancel_cmk_deletion("app", "saved")
                .await
                .unwrap()
        );
        assert_eq!(
            run_due(&state, HOLDER, t0 + 7 * DAY - 1).await.keys_deleted,
            0
        );
        assert!(state.store.get_cmk("doomed").await.unwrap().is_some());
        assert_eq!(run_due(&state, HOLDER, t0 + 7 * DAY).await.keys_deleted, 1);
        assert_eq!(state.store.get_cmk("doomed").await.unwrap(), None);
        assert!(state.store.get_cmk("saved").await.unwrap().is_some());
        assert_eq!(run_due(&state, HOLDER, t0 + 30 * DAY).await.keys_deleted, 0);
    }
}
