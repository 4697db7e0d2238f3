//! A full disk never costs an acknowledged write, and the store recovers when space is back.
//!
//! SQLite on a small tmpfs mounted for the test (skipped where mounting is not permitted, an
//! error in CI): writers fill it until the file system is full, keep writing for a while, then
//! space is freed. Every write that returned `Ok` must be readable on the live store and still
//! there after reopening, and once space is back every write must succeed, with the same
//! store (no restart). Before the fix, a COMMIT that failed with SQLITE_FULL left the pooled
//! connection at odds with sqlx's transaction bookkeeping: later "commits" on it only released
//! a savepoint inside a transaction that was never committed, and that transaction's lock made
//! every other writer fail with "database is locked".

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod small_fs;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use ehsm_store::{AppRecord, CmkRecord, CmkVersion, KeyState, SecretRecord, Store};

const APP: &str = "app-disk-full";

fn key(keyid: &str) -> CmkRecord {
    CmkRecord {
        keyid: keyid.into(),
        appid: APP.into(),
        keyspec: "EH_AES_GCM_256".into(),
        origin: "EH_INTERNAL_KEY".into(),
        keyusage: "EH_KEYUSAGE_ENCRYPT_DECRYPT".into(),
        primary_version: 1,
        state: KeyState::Enabled,
        creation_date: 1,
        expire_time: 2,
        listed: true,
        import: None,
        description: None,
        rotation_interval_days: None,
        next_rotation: None,
        deletion_date: None,
        versions: vec![CmkVersion {
            version: 1,
            // Incompressible-looking and large enough that a few hundred fill the file system.
            blob: keyid.bytes().cycle().take(3000).collect(),
            creation_date: 1,
        }],
    }
}

fn secret(name: &str) -> SecretRecord {
    SecretRecord {
        appid: APP.into(),
        name: name.into(),
        keyid: "k-0".into(),
        description: None,
        create_time: 1,
        deletion: None,
        rotation_interval: None,
    }
}

/// What the writers were told had been stored.
#[derive(Default)]
struct Acknowledged {
    keys: BTreeSet<String>,
    secrets: BTreeSet<String>,
}

/// One write of writer `w`'s `i`th turn: a key (one autocommit statement) or a secret (a
/// transaction of two inserts), alternately; recorded if the store acknowledged it.
async fn write(
    store: &Store,
    acked: &Mutex<Acknowledged>,
    w: usize,
    i: usize,
) -> Result<(), ehsm_store::Error> {
    let id = format!("{w}-{i}");
    if i.is_multiple_of(2) {
        let keyid = format!("k-{id}");
        store.insert_cmk(&key(&keyid)).await?;
        acked.lock().unwrap().keys.insert(keyid);
    } else {
        let name = format!("s-{id}");
        let value: Vec<u8> = id.bytes().cycle().take(3000).collect();
        assert!(store.insert_secret(&secret(&name), &value, None).await?);
        acked.lock().unwrap().secrets.insert(name);
    }
    Ok(())
}

/// Every acknowledged write is there, with its content, as `store` sees it.
async fn check_all_there(store: &Store, acked: &Acknowledged, when: &str) {
    for keyid in &acked.keys {
        let found = store.get_cmk(keyid).await.unwrap();
        let found = found.unwrap_or_else(|| panic!("{when}: acknowledged key {keyid} is lost"));
        assert_eq!(found, key(keyid), "{when}");
    }
    for name in &acked.secrets {
        let found = store.get_secret(APP, name).await.unwrap();
        assert!(
            found.is_some(),
            "{when}: acknowledged secret {name} is lost"
        );
        assert!(
            store
                .get_secret_version(APP, name, None)
                .await
                .unwrap()
                .is_some(),
            "{when}: the value of acknowledged secret {name} is lost"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_loses_no_acknowledged_write_and_the_store_recovers() {
    let Some(fs) = small_fs::SmallFs::mount(4 << 20) else {
        return;
    };
    // Room that the test gives back once the disk is full: enough for the writes below, each
    // of which appends a few 4 KiB pages to the write-ahead log.
    let ballast = fs.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1536 << 10]).unwrap();
    let url = format!("sqlite://{}", fs.path().join("ehsm.db").display());
    let store = Store::open(&url).await.unwrap();
    store
        .insert_app(
            &AppRecord {
                appid: APP.into(),
                apikey_blob: vec![1; 32],
                created_at: 1,
            },
            &[CmkRecord {
                listed: false,
                ..key("k-0")
            }],
        )
        .await
        .unwrap();

    // Fill: four writers until the disk is full, then 50 more turns each.
    let acked = Arc::new(Mutex::new(Acknowledged::default()));
    let mut writers = Vec::new();
    for w in 0..4 {
        let (store, acked) = (store.clone(), Arc::clone(&acked));
        writers.push(tokio::spawn(async move {
            let mut failed_at = None;
            for i in 0..5000 {
                if write(&store, &acked, w, i).await.is_err() && failed_at.is_none() {
                    failed_at = Some(i);
                }
                if failed_at.is_some_and(|at| i >= at + 50) {
                    return true;
                }
            }
            false
        }));
    }
    for writer in writers {
        assert!(
            writer.await.unwrap(),
            "the file system never filled up: the test is broken"
        );
    }
    let acked = Arc::into_inner(acked).unwrap();
    let full = std::mem::take(&mut *acked.lock().unwrap());
    check_all_there(&store, &full, "on the full disk").await;

    // Free space: the same store writes again, every time.
    *acked.lock().unwrap() = full;
    std::fs::remove_file(&ballast).unwrap();
    for i in 0..20 {
        if let Err(e) = write(&store, &acked, 9, i).await {
            panic!("write {i} failed after space was freed: {e}");
        }
    }
    let acked = acked.into_inner().unwrap();
    check_all_there(&store, &acked, "after space was freed").await;

    // Durable, not only visible: a new pool on the same file finds every acknowledged write.
    store.close().await;
    let store = Store::open(&url).await.unwrap();
    check_all_there(&store, &acked, "after reopening").await;
    store.close().await;
}
