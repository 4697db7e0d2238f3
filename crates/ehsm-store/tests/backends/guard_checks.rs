//! The guarded writes of the shared suite: per-app quotas, and keys that cannot be deleted while
//! they encrypt secrets. Concurrent writers go through two pools (two "nodes") on the same
//! database, and the checks assert exact outcomes, never timings.

use std::sync::Arc;

use ehsm_store::{Error, SecretRecord, Store};
use tokio::sync::Barrier;

use crate::checks::{app, hidden, key};
use crate::harness::TestDb;

fn secret(appid: &str, name: &str, keyid: &str) -> SecretRecord {
    SecretRecord {
        appid: appid.into(),
        name: name.into(),
        keyid: keyid.into(),
        description: None,
        create_time: 1_700_000_000_000,
        deletion: None,
        rotation_interval: None,
    }
}

/// Runs `n` copies of `write(store, i)` at once, alternating between two pools on the same
/// database; returns their results in order.
async fn race<T, F, Fut>(db: &TestDb, n: usize, write: F) -> Vec<ehsm_store::Result<T>>
where
    T: Send + 'static,
    F: Fn(Store, usize) -> Fut,
    Fut: Future<Output = ehsm_store::Result<T>> + Send + 'static,
{
    let other = db.reopen().await;
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = if i % 2 == 0 {
                db.store.clone()
            } else {
                other.clone()
            };
            let barrier = Arc::clone(&barrier);
            let fut = write(store, i);
            tokio::spawn(async move {
                barrier.wait().await;
                fut.await
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        out.push(t.await.unwrap());
    }
    other.close().await;
    out
}

/// Of 24 concurrent CreateKeys under a quota of 5, exactly 5 get in; the others are refused
/// with the count, and write nothing. Internal keys do not count.
pub(crate) async fn key_quota_is_exact_under_concurrency(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[hidden("a1", "a1-internal")])
        .await
        .unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    s.insert_cmk(&key("a2", "a2-k")).await.unwrap();
    let results = race(&db, 24, |store, i| async move {
        store
            .insert_cmk_within_quota(&key("a1", &format!("k{i:02}")), Some(5))
            .await
    })
    .await;
    let admitted = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(admitted, 5, "{results:?}");
    for r in &results {
        assert!(
            matches!(r, Ok(()) | Err(Error::QuotaExceeded { count: 5 })),
            "{r:?}"
        );
    }
    assert_eq!(s.list_cmks("a1", "", 100).await.unwrap().len(), 5);
    assert!(s.get_cmk("a1-internal").await.unwrap().is_some());
    // Another app's quota is its own; no limit is no limit; a missing app is a missing app.
    s.insert_cmk_within_quota(&key("a2", "a2-k2"), Some(2))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_cmk_within_quota(&key("a2", "a2-k3"), Some(2))
            .await,
        Err(Error::QuotaExceeded { count: 2 })
    ));
    s.insert_cmk_within_quota(&key("a2", "a2-k3"), None)
        .await
        .unwrap();
    assert!(matches!(
        s.insert_cmk_within_quota(&key("nobody", "n-k"), Some(5))
            .await,
        Err(Error::UnknownApp)
    ));
    // A duplicate keyid is still a conflict.
    assert!(matches!(
        s.insert_cmk_within_quota(&key("a2", "a2-k"), None).await,
        Err(Error::Conflict)
    ));
}

/// The same for secrets: exactly the quota, a secret pending deletion counting too.
pub(crate) async fn secret_quota_is_exact_under_concurrency(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[key("a1", "k1")]).await.unwrap();
    assert!(
        s.insert_secret(&secret("a1", "old", "k1"), b"v", Some(4))
            .await
            .unwrap()
    );
    let deletion = ehsm_store::Deletion {
        delete_time: 1,
        planned_delete_time: 2,
    };
    assert!(
        s.schedule_secret_deletion("a1", "old", deletion)
            .await
            .unwrap()
    );
    let results = race(&db, 24, |store, i| async move {
        store
            .insert_secret(&secret("a1", &format!("s{i:02}"), "k1"), b"v", Some(4))
            .await
    })
    .await;
    let admitted = results.iter().filter(|r| matches!(r, Ok(true))).count();
    assert_eq!(admitted, 3, "the scheduled one counts: {results:?}");
    for r in &results {
        assert!(
            matches!(r, Ok(true) | Err(Error::QuotaExceeded { count: 4 })),
            "{r:?}"
        );
    }
    assert_eq!(s.list_secrets("a1", None, 100).await.unwrap().len(), 4);
}

/// A secret cannot be stored under a key that is gone.
pub(crate) async fn secret_under_a_missing_key_is_refused(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[key("a1", "k1")]).await.unwrap();
    s.insert_app(&app("a2"), &[key("a2", "k2")]).await.unwrap();
    for keyid in ["gone", "k2"] {
        assert!(matches!(
            s.insert_secret(&secret("a1", "n", keyid), b"v", None).await,
            Err(Error::UnknownKey)
        ));
    }
    assert_eq!(s.get_secret("a1", "n").await.unwrap(), None);
}

/// DeleteKey and DeleteAllKey refuse while a key encrypts secrets, deleting nothing; once the
/// secrets are gone, they delete.
pub(crate) async fn keys_that_encrypt_secrets_are_not_deleted(db: TestDb) {
    let s = &db.store;
    s.insert_app(
        &app("a1"),
        &[key("a1", "used"), key("a1", "also"), key("a1", "free")],
    )
    .await
    .unwrap();
    s.insert_app(&app("a2"), &[key("a2", "other")])
        .await
        .unwrap();
    for (name, keyid) in [("s1", "used"), ("s2", "used"), ("s3", "also")] {
        assert!(
            s.insert_secret(&secret("a1", name, keyid), b"v", None)
                .await
                .unwrap()
        );
    }
    assert!(
        s.insert_secret(&secret("a2", "s", "other"), b"v", None)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.delete_cmk("a1", "used").await,
        Err(Error::KeyInUse {
            keys: 1,
            secrets: 2
        })
    ));
    assert!(matches!(
        s.delete_all_cmks("a1").await,
        Err(Error::KeyInUse {
            keys: 2,
            secrets: 3
        })
    ));
    assert_eq!(
        s.list_cmks("a1", "", 10).await.unwrap().len(),
        3,
        "nothing deleted"
    );
    // A key without secrets goes; another app's secrets do not hold this app's keys.
    assert!(s.delete_cmk("a1", "free").await.unwrap());
    // A secret scheduled for deletion still holds its key; once gone, it does not.
    let deletion = ehsm_store::Deletion {
        delete_time: 1,
        planned_delete_time: 2,
    };
    s.schedule_secret_deletion("a1", "s3", deletion)
        .await
        .unwrap();
    assert!(matches!(
        s.delete_cmk("a1", "also").await,
        Err(Error::KeyInUse { secrets: 1, .. })
    ));
    assert_eq!(s.purge_due_secrets(2).await.unwrap(), 1);
    assert!(s.delete_cmk("a1", "also").await.unwrap());
    assert!(s.delete_secret("a1", "s1").await.unwrap());
    assert!(s.delete_secret("a1", "s2").await.unwrap());
    assert_eq!(s.delete_all_cmks("a1").await.unwrap(), 1);
    assert!(s.get_cmk("other").await.unwrap().is_some());
}

/// A DeleteKey racing a CreateSecret under that key: either the secret is stored and the key
/// stays, or the key is deleted and the secret refused; never a secret under a deleted key.
pub(crate) async fn delete_key_and_create_secret_race_safely(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    let (mut deleted, mut stored) = (0, 0);
    for round in 0..20 {
        let keyid = format!("k{round}");
        s.insert_cmk(&key("a1", &keyid)).await.unwrap();
        let name = format!("s{round}");
        let results = race(&db, 2, |store, i| {
            let (keyid, name) = (keyid.clone(), name.clone());
            async move {
                if i == 0 {
                    store.delete_cmk("a1", &keyid).await.map(|d| (d, false))
                } else {
                    store
                        .insert_secret(&secret("a1", &name, &keyid), b"v", None)
                        .await
                        .map(|i| (false, i))
                }
            }
        })
        .await;
        let key_left = s.get_cmk(&keyid).await.unwrap().is_some();
        let secret_left = s.get_secret("a1", &name).await.unwrap().is_some();
        match (&results[0], &results[1]) {
            (Ok((true, _)), Err(Error::UnknownKey)) => {
                assert!(!key_left && !secret_left);
                deleted += 1;
            }
            (Err(Error::KeyInUse { secrets: 1, .. }), Ok((_, true))) => {
                assert!(key_left && secret_left);
                stored += 1;
            }
            other => panic!("round {round}: {other:?}"),
        }
    }
    assert_eq!(deleted + stored, 20);
}
