//! PostgreSQL restarted (`pg_ctlcluster … stop`, then `start`) under load on an `ehsm serve` node:
//! requests fail only while the database is away, fail fast instead of hanging, the node recovers
//! by itself without a restart, and no acknowledged write is lost.
//!
//! Stops the machine's PostgreSQL cluster for a few seconds, so nextest runs it alone
//! (`.config/nextest.toml`). Needs `EHSM_TEST_POSTGRES` pointing at the local cluster and
//! `pg_ctlcluster` (Debian's postgresql-common); without them it is skipped with a printed reason
//! (a failure when `CI` is set).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ehsm_client::{KeySpec, KeyUsage, Origin, SecretOptions};
use util::{Server, on_fresh_database};

/// The local cluster that serves 127.0.0.1:5432, as `pg_lsclusters` names it (version, name).
fn local_cluster() -> Option<(String, String)> {
    let out = Command::new("pg_lsclusters")
        .arg("--no-header")
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            (f.get(2) == Some(&"5432")).then(|| (f[0].to_owned(), f[1].to_owned()))
        })
}

/// `pg_ctlcluster VERSION NAME action`.
fn pg_ctl(cluster: &(String, String), action: &str) {
    let mut cmd = Command::new("pg_ctlcluster");
    cmd.args([cluster.0.as_str(), cluster.1.as_str(), action]);
    if action == "stop" {
        // Fast: connections are cut at once, as a crash or failover would cut them.
        cmd.args(["-m", "fast"]);
    }
    let status = cmd.status().unwrap();
    assert!(status.success(), "pg_ctlcluster {action}: {status}");
}

/// Starts the cluster again when dropped, so that a failing test never leaves the machine's
/// PostgreSQL stopped.
struct Restart((String, String));

impl Drop for Restart {
    fn drop(&mut self) {
        let _ = Command::new("pg_ctlcluster")
            .args([self.0.0.as_str(), self.0.1.as_str(), "start"])
            .status();
    }
}

/// One request's outcome: when it was sent (since the start), whether it succeeded, and how
/// long it took.
type Outcomes = Arc<Mutex<Vec<(Duration, bool, Duration)>>>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_fails_fast_recovers_and_loses_nothing() {
    let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let Some(cluster) = local_cluster().filter(|_| Command::new("pg_ctlcluster").output().is_ok())
    else {
        assert!(
            !in_ci,
            "CI is set but there is no local PostgreSQL cluster to restart"
        );
        eprintln!("pg_restart: SKIPPED: no pg_lsclusters/pg_ctlcluster or no cluster on port 5432");
        return;
    };
    on_fresh_database(move |url| restart_under_load(url, cluster)).await;
}

async fn restart_under_load(database: String, cluster: (String, String)) {
    let node = Server::start(&[
        "--tee",
        "sim",
        "--database",
        &database,
        "--db-acquire-timeout-ms",
        "1000",
    ]);
    let (client, _) = node.enrolled().await;
    let keyid = client
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    client
        .create_secret("counter", "0", &SecretOptions::default())
        .await
        .unwrap();

    let start = Instant::now();
    let stop_load = Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Reads that the caches serve (Encrypt) and writes that need the database (a new secret
    // version each time, remembering every value the server acknowledged).
    let encrypts: Outcomes = Arc::default();
    let writes: Outcomes = Arc::default();
    let acknowledged = Arc::new(Mutex::new(vec!["0".to_owned()]));
    let load = |outcomes: Outcomes, write: bool| {
        let (client, keyid, stop) = (client.clone(), keyid.clone(), Arc::clone(&stop_load));
        let acknowledged = Arc::clone(&acknowledged);
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let sent = Instant::now();
                let ok = if write {
                    let value = format!("value {n}");
                    let ok = client.put_secret_value("counter", &value).await.is_ok();
                    if ok {
                        acknowledged.lock().unwrap().push(value);
                    }
                    ok
                } else {
                    client.encrypt(&keyid, b"steady", None).await.is_ok()
                };
                outcomes
                    .lock()
                    .unwrap()
                    .push((sent - start, ok, sent.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let tasks = [
        load(Arc::clone(&encrypts), false),
        load(Arc::clone(&writes), true),
    ];

    tokio::time::sleep(Duration::from_secs(2)).await;
    let guard = Restart(cluster.clone());
    let stopped_at = start.elapsed();
    pg_ctl(&cluster, "stop");
    tokio::time::sleep(Duration::from_secs(4)).await;
    pg_ctl(&cluster, "start");
    let started_at = start.elapsed();
    drop(guard);
    // The node recovers by itself: writes succeed again soon after, without a restart.
    let recovered_at = loop {
        if let Some((t, _, _)) = writes
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(t, ok, _)| *ok && *t > started_at)
        {
            break *t;
        }
        assert!(
            start.elapsed() < started_at + Duration::from_secs(20),
            "writes did not recover within 20 s of PostgreSQL's start:\n{}",
            node.log.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_load.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let summary = |o: &Outcomes| {
        let o = o.lock().unwrap();
        let failed: Vec<_> = o
            .iter()
            .filter(|(_, ok, _)| !ok)
            .map(|(t, _, _)| *t)
            .collect();
        (
            o.len(),
            failed,
            o.iter().map(|(_, _, took)| *took).max().unwrap(),
        )
    };
    let (writes_sent, write_failures, slowest_write) = summary(&writes);
    let (encrypts_sent, encrypt_failures, slowest_encrypt) = summary(&encrypts);
    let report = format!(
        "stop at {stopped_at:?}, start at {started_at:?}, writes recovered at {recovered_at:?}; \
         writes {writes_sent} ({} failed, first {:?}, last {:?}, slowest {slowest_write:?}); \
         encrypts {encrypts_sent} ({} failed, slowest {slowest_encrypt:?})",
        write_failures.len(),
        write_failures.first(),
        write_failures.last(),
        encrypt_failures.len(),
    );
    eprintln!("pg_restart: {report}");
    // The outage was seen (writes need the database) ...
    assert!(!write_failures.is_empty(), "no write failed: {report}");
    // ... and only while the database was away (a pooled connection may need one more failure
    // to be found dead once it is back).
    let window = stopped_at..started_at + Duration::from_secs(5);
    for t in write_failures.iter().chain(&encrypt_failures) {
        assert!(
            window.contains(t),
            "a failure outside the outage at {t:?}: {report}"
        );
    }
    // Fast failures, no hang: the acquire timeout (1 s) plus the client's own work.
    assert!(slowest_write < Duration::from_secs(5), "{report}");
    assert!(slowest_encrypt < Duration::from_secs(5), "{report}");

    // No acknowledged write was lost: every acknowledged value is a stored version, in order.
    let versions = client.list_secret_versions("counter").await.unwrap();
    let mut stored = Vec::new();
    for v in &versions {
        let got = client
            .get_secret_value("counter", Some(v.version_id))
            .await
            .unwrap()
            .unwrap();
        stored.push(got.value);
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    for value in &acknowledged {
        assert!(
            stored.contains(value),
            "acknowledged {value:?} is lost: {report}"
        );
    }
    // The node is still the same process, and stops cleanly.
    drop(client);
    assert_eq!(node.stop().code(), Some(0));
}
