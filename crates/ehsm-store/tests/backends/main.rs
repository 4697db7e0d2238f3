//! The store's shared suite: every check in `checks.rs` runs once against SQLite and once against
//! PostgreSQL (when `EHSM_TEST_POSTGRES` is set), each as its own test:
//! `sqlite::<check>` and `postgres::<check>`.
//!
//! Run the PostgreSQL half with e.g.
//! `EHSM_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres cargo test -p ehsm-store`.
//! Each test gets a fresh schema (dropped at the end), so tests run in parallel and leave
//! nothing behind. Without the variable the PostgreSQL tests print one "SKIPPED" line and
//! return; with `CI` set they fail instead.

// Test helpers outside #[test] functions: unwrap is the point of a test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod checks;
mod guard_checks;
mod harness;
mod job_checks;
mod lifecycle_checks;
mod quote_checks;
mod secret_checks;

/// Instantiates each check once per backend.
macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    crate::harness::run_sqlite(crate::checks::$check).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    crate::harness::run_postgres(crate::checks::$check).await;
                }
            )*
        }
    };
}

suite!(
    versions_are_added_after_the_primary_only,
    concurrent_rotations_number_versions_without_gaps,
    rotation_schedule_and_due_keys,
    deletion_schedule_cancel_and_due,
    aliases_per_app,
    alias_quota_is_exact,
    app_crud,
    duplicate_appid_is_conflict,
    insert_app_rolls_back_on_duplicate_keyid,
    insert_app_rejects_keys_of_another_app,
    cmk_crud,
    duplicate_keyid_is_conflict,
    cmk_of_unknown_app_is_refused,
    list_only_listed_keys_of_app_in_keyid_order,
    delete_touches_only_own_listed_key,
    delete_all_touches_only_own_listed_keys,
    key_state_set_and_foreign_key_refused,
    import_params_set_replace_complete,
    complete_import_concurrent_exactly_one_wins,
    expired_import_params_are_destroyed,
    replay_entries_insert_since_prune,
    replay_batch_of_many_entries_round_trips,
    replay_batches_after_pages_in_id_order,
    settings_put_if_absent_never_overwrites,
    settings_put_if_absent_concurrent,
    data_survives_close_and_reopen,
    large_blob_round_trips_byte_exact,
    tricky_strings_round_trip,
    nul_in_text_is_refused,
    closed_store_errors_cleanly,
    secret_create_get_list,
    secret_versions_count_up_and_newest_is_default,
    secret_versions_concurrent_writers,
    secret_description_set_and_remove,
    secret_deletion_schedule_restore_and_purge,
    secret_force_delete_removes_versions,
    secret_purge_concurrent_exactly_once,
    secret_text_round_trips,
    quote_policy_insert_get_per_app,
    quote_policy_duplicate_and_unknown_app_are_refused,
    invalidations_reach_another_handle,
    lease_acquire_renew_expire_release,
    lease_concurrent_acquirers_exactly_one_wins,
    cmks_after_pages_every_key_once_in_order,
    apps_after_pages_every_app_once_in_order,
    replace_cmk_blob_only_from_the_expected_blob,
    replace_apikey_blob_only_from_the_expected_blob,
    settings_put_overwrites,
    key_quota_is_exact_under_concurrency,
    secret_quota_is_exact_under_concurrency,
    secret_under_a_missing_key_is_refused,
    keys_that_encrypt_secrets_are_not_deleted,
    delete_key_and_create_secret_race_safely,
);

/// Opening errors that need no server: a directory that does not exist, and bad URLs.
mod open_errors {
    use ehsm_store::{Error, Store};

    #[tokio::test]
    async fn sqlite_in_missing_directory_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir
            .path()
            .join("no")
            .join("such")
            .join("dir")
            .join("ehsm.db");
        let err = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
        assert!(
            text.contains("SQLite database") && text.contains("no/such/dir"),
            "{text}"
        );
        assert!(text.contains("unable to open database file"), "{text}");
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn bad_urls_are_clear_errors() {
        for url in [
            "",
            "ehsm.db",
            "mysql://localhost/ehsm",
            "sqlite://",
            "http://x",
        ] {
            let err = Store::open(url).await.unwrap_err();
            assert!(matches!(err, Error::InvalidUrl(_)), "{url:?}: {err:?}");
            assert!(
                err.to_string().starts_with("invalid database URL: "),
                "{err}"
            );
        }
        // Malformed PostgreSQL URL: refused while parsing, without a connection attempt, and
        // the password is not repeated.
        let err = Store::open("postgres://user:hunter2@localhost:notaport/db")
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
        assert!(!err.to_string().contains("hunter2"), "{err}");
        // An unknown SQLite URL parameter.
        let dir = tempfile::tempdir().unwrap();
        let url = format!(
            "sqlite://{}?frobnicate=1",
            dir.path().join("x.db").display()
        );
        let err = Store::open(&url).await.unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
    }

    /// A database that does not answer is an error after the acquire timeout, not a hang
    /// (the test would time out instead of failing if it hung).
    #[tokio::test]
    async fn an_unreachable_database_fails_within_the_acquire_timeout() {
        let settings = ehsm_store::PoolSettings {
            max_connections: Some(1),
            acquire_timeout: std::time::Duration::from_millis(300),
        };
        // Port 1 on loopback: nothing listens there.
        let err = Store::open_with("postgres://postgres@127.0.0.1:1/ehsm", settings)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Open { .. }), "{err:?}");
        assert!(err.to_string().contains("timed out"), "{err}");
    }

    /// The database and its `-wal` and `-shm` files are readable by their owner only, whatever
    /// the umask (SQLite alone creates them 0644 under the usual 022).
    #[tokio::test]
    async fn sqlite_files_are_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ehsm.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        store.put_setting("x", b"y").await.unwrap();
        for suffix in ["", "-wal", "-shm"] {
            let file = dir.path().join(format!("ehsm.db{suffix}"));
            let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
        }
        store.close().await;
    }

    #[tokio::test]
    async fn sqlite_file_is_created_if_missing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new.db");
        let store = Store::open(&format!("sqlite://{}", path.display()))
            .await
            .unwrap();
        assert!(path.exists());
        store.close().await;
    }
}
