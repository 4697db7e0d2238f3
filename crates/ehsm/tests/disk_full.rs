//! `ehsm serve` with its data directory on a small tmpfs mounted for the test (skipped where
//! mounting is not permitted, an error in CI): requests fill the disk; once space is back the
//! same server process writes again, and no request it answered with code 200 is lost (on the
//! live server and after a restart). Before the fix, after the first "database or
//! disk is full" the server answered 200 to writes it never committed and then failed with
//! "database is locked" until restarted. The store's own test (`ehsm-store`'s `disk_full`)
//! checks the same at the store's interface.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

#[path = "../../ehsm-store/tests/small_fs/mod.rs"]
mod small_fs;
mod util;

use std::collections::BTreeSet;

use ehsm_client::{Client, Error, KeySpec, KeyUsage, Origin, SecretOptions};
use util::Server;

/// What the server acknowledged.
#[derive(Default)]
struct Acknowledged {
    keys: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

/// The `i`th write: a secret (the store's transactions) or a key (a single insert),
/// alternately. `Ok(true)` if acknowledged, `Ok(false)` if refused with the server-error code.
async fn write(c: &Client, acked: &mut Acknowledged, i: usize) -> bool {
    let outcome = if i.is_multiple_of(2) {
        let name = format!("s{i}");
        let value: String = name.chars().cycle().take(2000).collect();
        let done = c
            .create_secret(&name, &value, &SecretOptions::default())
            .await;
        done.map(|()| acked.secrets.insert(name))
    } else {
        c.create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .map(|keyid| acked.keys.insert(keyid))
    };
    match outcome {
        Ok(_) => true,
        Err(Error::Api { code: 500, .. }) => false,
        Err(e) => panic!("write {i}: expected success or a server error, got {e}"),
    }
}

/// Every acknowledged write is there: keys as ListKey finds them in the database, secrets with
/// their value.
async fn check_all_there(c: &Client, acked: &Acknowledged, when: &str) {
    let listed: BTreeSet<String> = c
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.keyid)
        .collect();
    let lost: Vec<_> = acked.keys.difference(&listed).collect();
    assert!(lost.is_empty(), "{when}: acknowledged keys lost: {lost:?}");
    for name in &acked.secrets {
        let value = c.get_secret_value(name, None).await.unwrap();
        let expected: String = name.chars().cycle().take(2000).collect();
        assert_eq!(
            value.map(|v| v.value),
            Some(expected),
            "{when}: acknowledged secret {name} lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_loses_no_acknowledged_write_and_the_server_recovers() {
    let Some(fs) = small_fs::SmallFs::mount(12 << 20) else {
        return;
    };
    let data = fs.path().join("data");
    // SQLite even when the end-to-end tests run on PostgreSQL: the disk is what is tested.
    let database = format!("sqlite://{}", data.join("ehsm.db").display());
    std::fs::create_dir(&data).unwrap();
    let args = ["--database", &database];
    let server = Server::start_in(&data, &args);
    let (c, creds) = server.enrolled().await;

    // Room that the test gives back once the disk is full: enough for the writes and reads
    // below (every request, a read too, appends its replay entry to SQLite's write-ahead log).
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 6 << 20]).unwrap();
    let mut acked = Acknowledged::default();
    let mut first_failure = None;
    for i in 0..5000 {
        if !write(&c, &mut acked, i).await {
            first_failure = Some(i);
            break;
        }
    }
    let first_failure = first_failure.expect("the disk never filled up: the test is broken");
    // Keep writing on the full disk: nothing answered 200 may be lost. (Reads are refused too
    // while the disk is full: a request's replay entry is stored before it runs.)
    for i in first_failure + 1..first_failure + 40 {
        write(&c, &mut acked, i).await;
    }

    // Space is back: the same process writes again, every time.
    std::fs::remove_file(&ballast).unwrap();
    for i in first_failure + 40..first_failure + 60 {
        assert!(
            write(&c, &mut acked, i).await,
            "write {i} failed after space was freed:\n{}",
            server.log.lock().unwrap()
        );
    }
    check_all_there(&c, &acked, "after space was freed").await;

    // Durable: a restarted server has every acknowledged write.
    assert!(server.stop().success());
    let server = Server::start_in(&data, &args);
    let c = server.client().with_credentials(creds);
    check_all_there(&c, &acked, "after a restart").await;
}
