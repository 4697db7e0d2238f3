//! The background jobs (spec §11), fixed: every due item is found, whatever its number
//! (upstream stopped at 25 secrets a run), the schedule lives in the store so restarts lose
//! nothing, and each job is a single conditional statement, so several nodes sharing a store
//! may run it at once and each item is handled exactly once.
//!
//! - **Secret deletion**: secrets whose recovery period is over are deleted with their versions.
//! - **Import token expiry**: the wrapping key of a BYOK import not completed within 24 hours is
//!   destroyed.
//! - **Replay cache pruning**: entries older than the 20-minute window are forgotten.
//!
//! CMK expiry is *not* a deletion job: an expired key is refused (`keys::load`) but kept, since
//! ciphertexts under it may still matter; upstream's purge deleted keys ten days before expiry.

use std::time::Duration;

use crate::replay::KEEP_MS;
use crate::state::{AppState, now_ms};

/// How often the jobs run. Due times are kept to the minute.
pub(crate) const INTERVAL: Duration = Duration::from_secs(60);

/// What one run did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    pub(crate) secrets_deleted: u64,
    pub(crate) import_tokens_expired: u64,
    pub(crate) replay_batches_pruned: u64,
}

/// Runs every job for the time `now` (ms). The clock is a parameter so that tests can run a
/// job days ahead instead of sleeping. A failing job is logged and does not stop the others.
pub(crate) async fn run_due(state: &AppState, now: i64) -> Report {
    let mut report = Report::default();
    match state.store.purge_due_secrets(now).await {
        Ok(n) => report.secrets_deleted = n,
        Err(e) => tracing::warn!(error = %e, "the secret deletion job failed"),
    }
    match state.store.expire_import_params(now).await {
        Ok(n) => report.import_tokens_expired = n,
        Err(e) => tracing::warn!(error = %e, "the import token expiry job failed"),
    }
    state.replay.prune(now);
    match state.store.prune_replay_entries(now - KEEP_MS).await {
        Ok(n) => report.replay_batches_pruned = n,
        Err(e) => tracing::warn!(error = %e, "pruning the replay cache failed"),
    }
    if report.secrets_deleted > 0 || report.import_tokens_expired > 0 {
        tracing::info!(
            secrets_deleted = report.secrets_deleted,
            import_tokens_expired = report.import_tokens_expired,
            "background jobs"
        );
    }
    report
}

/// Runs the jobs every [`INTERVAL`], the first time right away (a restart catches up at once).
pub(crate) async fn run_forever(state: AppState) {
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        run_due(&state, now_ms()).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ehsm_store::{AppRecord, CmkRecord, Deletion, ImportParams, KeyState, SecretRecord};

    use super::*;
    use crate::server::{Config, open};

    const DAY: i64 = 86_400_000;

    async fn service(dir: &std::path::Path) -> AppState {
        let config = Config {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.to_owned(),
            tls_cert: None,
            tls_key: None,
            http: true,
            enroll: None,
            database: None,
            key_lifetime: Duration::from_secs(365 * 86_400),
            pool: crate::server::PoolSettings::default(),
            tee: crate::server::Tee::Sim,
            quotes: crate::server::QuoteConfig::default(),
            hsm: None,
        };
        open(&config).await.unwrap().state
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
        for i in 0..40 {
            let s = secret(&format!("due{i}"), t0, Some(t0 + DAY));
            state.store.insert_secret(&s, b"ct").await.unwrap();
        }
        let later = secret("later", t0, Some(t0 + 30 * DAY));
        state.store.insert_secret(&later, b"ct").await.unwrap();
        let live = secret("live", t0, None);
        state.store.insert_secret(&live, b"ct").await.unwrap();
        let restored = secret("restored", t0, Some(t0 + DAY));
        state.store.insert_secret(&restored, b"ct").await.unwrap();
        assert!(state.store.restore_secret("app", "restored").await.unwrap());

        assert_eq!(run_due(&state, t0 + DAY - 1).await.secrets_deleted, 0);
        assert_eq!(run_due(&state, t0 + DAY).await.secrets_deleted, 40);
        assert_eq!(run_due(&state, t0 + DAY).await.secrets_deleted, 0, "once");
        let left: Vec<String> = state
            .store
            .list_secrets("app", None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(left, ["later", "live", "restored"]);
        assert_eq!(run_due(&state, t0 + 30 * DAY).await.secrets_deleted, 1);
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
            version: 1,
            state: KeyState::Enabled,
            creation_date: t0,
            expire_time: t0 + 365 * DAY,
            alias: String::new(),
            blob: vec![2],
            listed: true,
            import: Some(ImportParams {
                wrapping_spec: "EH_RSA_3072".into(),
                wrapping_blob: vec![3],
                expires_at: t0 + DAY,
            }),
        };
        state.store.insert_app(&app(t0), &[key]).await.unwrap();
        assert_eq!(run_due(&state, t0 + DAY - 1).await.import_tokens_expired, 0);
        assert_eq!(run_due(&state, t0 + DAY).await.import_tokens_expired, 1);
        let stored = state.store.get_cmk("k").await.unwrap().unwrap();
        assert_eq!(stored.import, None);
        assert_eq!(stored.blob, [2], "the key record stays");
    }
}
