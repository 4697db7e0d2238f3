//! Two `ehsm serve` nodes of one domain on one PostgreSQL database: a key disabled, enabled or
//! deleted through one node takes effect on the other within a second (the other's record cache
//! is invalidated through LISTEN/NOTIFY).
//!
//! Needs `EHSM_TEST_POSTGRES` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`); without it
//! the test prints why it is skipped, and with `CI` set it fails instead.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::path::Path;
use std::time::{Duration, Instant};

use ehsm_client::{Client, KeySpec, KeyUsage, Origin};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};
use util::Server;

/// The PostgreSQL URL, or `None` (after saying why) when the test is skipped locally.
fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("EHSM_TEST_POSTGRES")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !in_ci,
        "CI is set but EHSM_TEST_POSTGRES is not: the two-node test must not be skipped in CI"
    );
    eprintln!("nodes: SKIPPED: EHSM_TEST_POSTGRES is not set");
    None
}

/// `base` with its database replaced by `database`.
fn with_database(base: &str, database: &str) -> String {
    let (url, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let scheme_end = url.find("://").unwrap() + 3;
    let host_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &url[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Polls every 50 ms until `client` can encrypt with `keyid` exactly when `want`; fails after
/// 1 s.
async fn within_a_second(what: &str, client: &Client, keyid: &str, want: bool) {
    let start = Instant::now();
    loop {
        if client.encrypt(keyid, b"hello", None).await.is_ok() == want {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(1),
            "{what}: not within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_changes_reach_the_other_node_within_a_second() {
    let Some(base) = postgres_url() else { return };
    let database = format!("ehsm_nodes_{}_{}", std::process::id(), util::rand_u64());
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to EHSM_TEST_POSTGRES: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&base, &database);

    // Run the nodes in a task so that the database is dropped even when the check fails.
    let outcome = tokio::spawn(two_nodes(url)).await;
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn two_nodes(url: String) {
    // One domain: node B's data directory is a copy of node A's (sealed domain key, simulated
    // sealing secret, TLS files), made while A is stopped.
    let dirs = tempfile::tempdir().unwrap();
    let dir_a = dirs.path().join("a");
    let dir_b = dirs.path().join("b");
    let args = ["--tee", "sim", "--database", url.as_str()];
    let a = Server::start_in(&dir_a, &args);
    assert_eq!(a.stop().code(), Some(0));
    copy_dir(&dir_a, &dir_b);
    let a = Server::start_in(&dir_a, &args);
    let b = Server::start_in(&dir_b, &args);

    let (on_a, creds) = a.enrolled().await;
    let on_b = b.client().with_credentials(creds);
    let keyid = on_a
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    // B loads (and caches) the key.
    on_b.encrypt(&keyid, b"hello", None).await.unwrap();

    on_a.disable_key(&keyid).await.unwrap();
    within_a_second("B refuses the disabled key", &on_b, &keyid, false).await;

    on_a.enable_key(&keyid).await.unwrap();
    within_a_second("B accepts the enabled key", &on_b, &keyid, true).await;

    on_a.delete_key(&keyid).await.unwrap();
    within_a_second("B refuses the deleted key", &on_b, &keyid, false).await;

    drop(b);
    drop(a);
}
