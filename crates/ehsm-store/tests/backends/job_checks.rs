//! The checks of the store's support for background jobs: job leases, and the scans and
//! conditional blob replacements of the re-wrap after a domain-key rotation.

use std::collections::BTreeSet;
use std::sync::Arc;

use ehsm_store::{AppRecord, CmkRecord, Error};

use crate::checks::{app, blob, with_blob};
use crate::harness::TestDb;

const T0: i64 = 1_700_000_000_000;
const TTL: i64 = 180_000;

/// A key record (the suite's), listed in ListKey or not.
fn key(appid: &str, keyid: &str, listed: bool) -> CmkRecord {
    CmkRecord {
        listed,
        ..crate::checks::key(appid, keyid)
    }
}

pub(crate) async fn lease_acquire_renew_expire_release(db: TestDb) {
    let s = &db.store;
    // Free: taken.
    assert!(s.try_acquire_lease("jobs", "n1", T0, TTL).await.unwrap());
    // Live and held by another: refused, up to the last millisecond.
    assert!(!s.try_acquire_lease("jobs", "n2", T0, TTL).await.unwrap());
    assert!(
        !s.try_acquire_lease("jobs", "n2", T0 + TTL - 1, TTL)
            .await
            .unwrap()
    );
    // Another name is another lease.
    assert!(s.try_acquire_lease("other", "n2", T0, TTL).await.unwrap());
    // Renewed by its holder, which moves the expiry: n2 is refused past the first expiry.
    assert!(
        s.try_acquire_lease("jobs", "n1", T0 + TTL / 2, TTL)
            .await
            .unwrap()
    );
    assert!(
        !s.try_acquire_lease("jobs", "n2", T0 + TTL, TTL)
            .await
            .unwrap()
    );
    // Expired (expires_at <= now): taken over, and the old holder is now refused.
    assert!(
        s.try_acquire_lease("jobs", "n2", T0 + TTL / 2 + TTL, TTL)
            .await
            .unwrap()
    );
    assert!(
        !s.try_acquire_lease("jobs", "n1", T0 + TTL / 2 + TTL, TTL)
            .await
            .unwrap()
    );
    // Released only by its holder: n1's release changes nothing.
    s.release_lease("jobs", "n1").await.unwrap();
    assert!(
        !s.try_acquire_lease("jobs", "n3", T0 + TTL / 2 + TTL, TTL)
            .await
            .unwrap()
    );
    s.release_lease("jobs", "n2").await.unwrap();
    assert!(
        s.try_acquire_lease("jobs", "n3", T0 + TTL / 2 + TTL, TTL)
            .await
            .unwrap()
    );
    // Releasing a lease nobody holds is fine.
    s.release_lease("none", "n1").await.unwrap();
    // Bad input is refused before the database sees it.
    for (name, holder, ttl) in [("j\0", "n", TTL), ("j", "n\0", TTL), ("j", "n", 0)] {
        assert!(matches!(
            s.try_acquire_lease(name, holder, T0, ttl).await,
            Err(Error::InvalidInput(_))
        ));
    }
    assert!(matches!(
        s.try_acquire_lease("j", "n", i64::MAX, TTL).await,
        Err(Error::InvalidInput(_))
    ));
}

/// Nodes racing for a free lease at the same moment: exactly one wins, on both backends. Then
/// the same race for an expired lease.
pub(crate) async fn lease_concurrent_acquirers_exactly_one_wins(db: TestDb) {
    for now in [T0, T0 + TTL] {
        let barrier = Arc::new(tokio::sync::Barrier::new(8));
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = db.store.clone();
                let barrier = barrier.clone();
                tokio::spawn(async move {
                    let holder = format!("node-{now}-{i}");
                    barrier.wait().await;
                    let won = store
                        .try_acquire_lease("jobs", &holder, now, TTL)
                        .await
                        .unwrap();
                    (holder, won)
                })
            })
            .collect();
        let mut winners = Vec::new();
        for t in tasks {
            let (holder, won) = t.await.unwrap();
            if won {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "at {now}, winners: {winners:?}");
        // The winner holds it: it renews, nobody else gets it.
        assert!(
            db.store
                .try_acquire_lease("jobs", &winners[0], now, TTL)
                .await
                .unwrap()
        );
        assert!(
            !db.store
                .try_acquire_lease("jobs", "late", now + TTL - 1, TTL)
                .await
                .unwrap()
        );
    }
}

/// 25 keys of two apps, listed and internal, with ids chosen so that byte order differs from a
/// case-insensitive order: pages of 10 visit each exactly once, in byte order.
pub(crate) async fn cmks_after_pages_every_key_once_in_order(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    let mut want = BTreeSet::new();
    for i in 0..25 {
        let appid = if i % 2 == 0 { "a1" } else { "a2" };
        let keyid = match i % 3 {
            0 => format!("k{i:02}"),
            1 => format!("K{i:02}"),
            _ => format!("_{i:02}"),
        };
        s.insert_cmk(&key(appid, &keyid, i % 5 != 0)).await.unwrap();
        want.insert(keyid);
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    let mut pages = 0;
    loop {
        let page = s.cmks_after(&after, 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = last.keyid.clone();
        pages += 1;
        for k in &page {
            assert_eq!(
                k,
                &key(&k.appid, &k.keyid, k.listed),
                "records come back whole"
            );
        }
        seen.extend(page.into_iter().map(|k| k.keyid));
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, want.into_iter().collect::<Vec<_>>());
    assert_eq!(s.cmks_after("~", 10).await.unwrap(), []);
    assert_eq!(s.cmks_after("", 0).await.unwrap(), []);
    assert!(matches!(
        s.cmks_after("k\0", 10).await,
        Err(Error::InvalidInput(_))
    ));
}

pub(crate) async fn apps_after_pages_every_app_once_in_order(db: TestDb) {
    let s = &db.store;
    let mut want = Vec::new();
    for i in (0..23).rev() {
        let appid = format!("app{i:02}");
        s.insert_app(&app(&appid), &[]).await.unwrap();
        want.push(appid);
    }
    want.sort();
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let page = s.apps_after(&after, 10).await.unwrap();
        assert!(page.len() <= 10);
        let Some(last) = page.last() else { break };
        after = last.appid.clone();
        for a in &page {
            assert_eq!(a, &app(&a.appid), "records come back whole");
        }
        seen.extend(page.into_iter().map(|a| a.appid));
    }
    assert_eq!(seen, want);
    assert!(matches!(
        s.apps_after("a\0", 10).await,
        Err(Error::InvalidInput(_))
    ));
}

pub(crate) async fn replace_cmk_blob_only_from_the_expected_blob(db: TestDb) {
    let s = &db.store;
    let k1 = key("a1", "k1", true);
    let k2 = key("a1", "k2", false);
    s.insert_app(&app("a1"), &[k1.clone(), k2.clone()])
        .await
        .unwrap();
    // Succeeds once; the old blob is then stale.
    let (b1, b2) = (blob(&k1).to_vec(), blob(&k2).to_vec());
    assert!(s.replace_cmk_blob("k1", 1, &b1, b"new 1").await.unwrap());
    assert!(!s.replace_cmk_blob("k1", 1, &b1, b"new 2").await.unwrap());
    let stored = s.get_cmk("k1").await.unwrap().unwrap();
    assert_eq!(blob(&stored), b"new 1");
    assert_eq!(with_blob(stored, &b1), k1, "only the blob changed");
    // Internal keys too; an unknown key or version, or another key's blob, changes nothing.
    assert!(s.replace_cmk_blob("k2", 1, &b2, b"new").await.unwrap());
    assert!(!s.replace_cmk_blob("nope", 1, &b2, b"x").await.unwrap());
    assert!(!s.replace_cmk_blob("k1", 1, b"new", b"x").await.unwrap());
    assert!(!s.replace_cmk_blob("k1", 2, b"new 1", b"x").await.unwrap());
    assert_eq!(blob(&s.get_cmk("k1").await.unwrap().unwrap()), b"new 1");
    assert_eq!(blob(&s.get_cmk("k2").await.unwrap().unwrap()), b"new");
    assert!(matches!(
        s.replace_cmk_blob("k\0", 1, b"a", b"b").await,
        Err(Error::InvalidInput(_))
    ));
}

pub(crate) async fn replace_apikey_blob_only_from_the_expected_blob(db: TestDb) {
    let s = &db.store;
    let a1 = app("a1");
    let a2 = app("a2");
    s.insert_app(&a1, &[]).await.unwrap();
    s.insert_app(&a2, &[]).await.unwrap();
    assert!(
        s.replace_apikey_blob("a1", &a1.apikey_blob, b"new 1")
            .await
            .unwrap()
    );
    assert!(
        !s.replace_apikey_blob("a1", &a1.apikey_blob, b"new 2")
            .await
            .unwrap()
    );
    assert!(
        !s.replace_apikey_blob("nope", &a1.apikey_blob, b"x")
            .await
            .unwrap()
    );
    assert!(
        !s.replace_apikey_blob("a2", &a1.apikey_blob, b"x")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_app("a1").await.unwrap(),
        Some(AppRecord {
            apikey_blob: b"new 1".to_vec(),
            ..a1
        })
    );
    assert_eq!(s.get_app("a2").await.unwrap(), Some(a2));
    assert!(matches!(
        s.replace_apikey_blob("a\0", b"a", b"b").await,
        Err(Error::InvalidInput(_))
    ));
}

pub(crate) async fn settings_put_overwrites(db: TestDb) {
    let s = &db.store;
    s.put_setting("dk-rewrapped-version", b"1").await.unwrap();
    assert_eq!(
        s.get_setting("dk-rewrapped-version").await.unwrap(),
        Some(b"1".to_vec())
    );
    s.put_setting("dk-rewrapped-version", b"2").await.unwrap();
    assert_eq!(
        s.get_setting("dk-rewrapped-version").await.unwrap(),
        Some(b"2".to_vec())
    );
    assert!(
        !s.put_setting_if_absent("dk-rewrapped-version", b"3")
            .await
            .unwrap()
    );
    assert!(matches!(
        s.put_setting("n\0", b"1").await,
        Err(Error::InvalidInput(_))
    ));
}
