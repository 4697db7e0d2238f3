//! Nodes starting together on a new database all come up: three `ehsm serve` processes at once
//! on one new database, 20 rounds in a row, on SQLite and on PostgreSQL (a fresh database per
//! round; skipped without `EHSM_TEST_POSTGRES`, an error in CI). Before the fix, on SQLite one
//! node now and then stopped with "database migration failed: migration 3: table secrets already
//! exists": sqlx's migrator takes no lock on SQLite, so two nodes ran the same migration. And a
//! node that has to wait for another's migration says so in its log.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, Instant};

use sqlx::{Connection as _, SqliteConnection};
use util::{Server, on_fresh_database};

const ROUNDS: usize = 20;
const NODES: usize = 3;

/// `ehsm serve` on `database` with its own data directory `dir`.
fn serve_args<'a>(database: &'a str, dir: &'a Path) -> Vec<&'a OsStr> {
    [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--http",
        "--tee",
        "sim",
        "--database",
        database,
        "--data-dir",
    ]
    .into_iter()
    .map(OsStr::new)
    .chain([dir.as_os_str()])
    .collect()
}

/// Starts `NODES` standalone nodes at once on `database` (each with its own new data directory
/// under `root`) and waits until every one listens; stops them.
fn start_together(root: &Path, database: &str) {
    let mut starting = Vec::new();
    for n in 0..NODES {
        let dir = root.join(format!("node-{n}"));
        starting.push(Server::spawn_command(&serve_args(database, &dir), &[]));
    }
    for (n, (server, listening)) in starting.iter().enumerate() {
        assert!(
            listening.recv_timeout(Duration::from_secs(30)).is_ok(),
            "node {n} did not come up:\n{}",
            server.log.lock().unwrap()
        );
    }
}

#[test]
fn nodes_starting_together_on_a_new_sqlite_database_all_come_up() {
    for round in 0..ROUNDS {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("ehsm.db").display());
        eprintln!("round {round}");
        start_together(dir.path(), &database);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_starting_together_on_a_new_postgres_database_all_come_up() {
    for round in 0..ROUNDS {
        eprintln!("round {round}");
        on_fresh_database(|url| async move {
            let dir = tempfile::tempdir().unwrap();
            tokio::task::spawn_blocking(move || start_together(dir.path(), &url))
                .await
                .unwrap();
        })
        .await;
    }
}

/// While another connection holds SQLite's write lock on a new database, a starting node logs
/// that it waits; once the lock is released, it migrates and comes up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_waiting_for_the_migration_lock_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ehsm.db");
    let database = format!("sqlite://{}", path.display());
    // The database exists, in WAL mode as the nodes leave it, and is locked for writing as a
    // migrating node locks it.
    let mut holder = SqliteConnection::connect(&format!("{database}?mode=rwc"))
        .await
        .unwrap();
    sqlx::raw_sql("PRAGMA journal_mode = WAL; BEGIN IMMEDIATE")
        .execute(&mut holder)
        .await
        .unwrap();
    let data = dir.path().join("node");
    let (node, listening) = Server::spawn_command(&serve_args(&database, &data), &[]);
    // The node waits up to SQLite's busy timeout (5 s); the line comes after 100 ms.
    let asked = Instant::now();
    while !node.logged("waiting for it to finish") {
        assert!(
            asked.elapsed() < Duration::from_secs(4),
            "the node did not say it waits:\n{}",
            node.log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut holder)
        .await
        .unwrap();
    assert!(
        listening.recv_timeout(Duration::from_secs(30)).is_ok(),
        "the node did not come up after the lock was released:\n{}",
        node.log.lock().unwrap()
    );
    holder.close().await.unwrap();
}
