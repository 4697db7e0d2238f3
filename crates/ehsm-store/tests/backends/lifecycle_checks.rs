//! Key versions and rotation, scheduled deletion and aliases.

use ehsm_store::{AliasRecord, CmkRecord, CmkVersion, Error, KeyState, SecretRecord};

use crate::checks::{app, key};
use crate::harness::TestDb;

fn version(n: u32) -> CmkVersion {
    CmkVersion {
        version: n,
        blob: format!("blob of version {n}").into(),
        creation_date: 1_000 + i64::from(n),
    }
}

fn numbers(key: &CmkRecord) -> Vec<u32> {
    key.versions.iter().map(|v| v.version).collect()
}

pub(crate) async fn versions_are_added_after_the_primary_only(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "k1")).await.unwrap();
    assert!(
        s.add_cmk_version("a1", "k1", &version(2), None)
            .await
            .unwrap()
    );
    // Not after the primary (stale), not for another app, not for an unknown key.
    assert!(
        !s.add_cmk_version("a1", "k1", &version(2), None)
            .await
            .unwrap()
    );
    assert!(
        !s.add_cmk_version("a1", "k1", &version(4), None)
            .await
            .unwrap()
    );
    assert!(
        !s.add_cmk_version("a2", "k1", &version(3), None)
            .await
            .unwrap()
    );
    assert!(
        !s.add_cmk_version("a1", "nope", &version(2), None)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.add_cmk_version("a1", "k1", &version(1), None).await,
        Err(Error::InvalidInput(_))
    ));
    let k = s.get_cmk("k1").await.unwrap().unwrap();
    assert_eq!((k.primary_version, numbers(&k)), (2, vec![1, 2]));
    assert_eq!(k.versions[1], version(2));
    assert_eq!(k.primary(), Some(&version(2)));
    // A disabled key, or one pending deletion, gets no new version.
    s.set_key_state("a1", "k1", KeyState::Disabled)
        .await
        .unwrap();
    assert!(
        !s.add_cmk_version("a1", "k1", &version(3), None)
            .await
            .unwrap()
    );
    s.set_key_state("a1", "k1", KeyState::Enabled)
        .await
        .unwrap();
    assert!(s.schedule_cmk_deletion("a1", "k1", 5).await.unwrap());
    s.set_key_state("a1", "k1", KeyState::Enabled)
        .await
        .unwrap();
    assert!(
        !s.add_cmk_version("a1", "k1", &version(3), None)
            .await
            .unwrap()
    );
    assert_eq!(s.get_cmk("k1").await.unwrap().unwrap().primary_version, 2);
}

pub(crate) async fn concurrent_rotations_number_versions_without_gaps(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "k1")).await.unwrap();
    // Each writer does what RotateKey does: read the primary, try the next number, and read
    // again when it lost. Every one ends with a version of its own.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, barrier) = (s.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                loop {
                    let primary = store.get_cmk("k1").await.unwrap().unwrap().primary_version;
                    let next = version(primary + 1);
                    if store
                        .add_cmk_version("a1", "k1", &next, None)
                        .await
                        .unwrap()
                    {
                        return next.version;
                    }
                }
            })
        })
        .collect();
    let mut made = Vec::new();
    for t in tasks {
        made.push(t.await.unwrap());
    }
    made.sort_unstable();
    assert_eq!(made, (2..=9).collect::<Vec<_>>());
    let k = s.get_cmk("k1").await.unwrap().unwrap();
    assert_eq!((k.primary_version, numbers(&k)), (9, (1..=9).collect()));
}

pub(crate) async fn rotation_schedule_and_due_keys(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    for id in ["k1", "k2", "k3"] {
        s.insert_cmk(&key("a1", id)).await.unwrap();
    }
    let t0 = key("a1", "k1").creation_date;
    assert!(
        s.set_rotation("a1", "k1", Some(30), Some(t0 + 10))
            .await
            .unwrap()
    );
    assert!(
        s.set_rotation("a1", "k2", Some(7), Some(t0 + 5))
            .await
            .unwrap()
    );
    assert!(!s.set_rotation("a2", "k3", Some(7), Some(t0)).await.unwrap());
    let due = |now| async move {
        let keys = s.due_rotations(now, 10).await.unwrap();
        keys.into_iter().map(|k| k.keyid).collect::<Vec<_>>()
    };
    assert_eq!(due(t0 + 4).await, Vec::<String>::new());
    assert_eq!(due(t0 + 10).await, ["k1", "k2"]);
    assert_eq!(
        s.due_rotations(t0 + 10, 1).await.unwrap()[0].keyid,
        "k2",
        "most overdue"
    );
    // Disabled keys wait; turning rotation off keeps the interval.
    s.set_key_state("a1", "k2", KeyState::Disabled)
        .await
        .unwrap();
    assert_eq!(due(t0 + 10).await, ["k1"]);
    assert!(s.set_rotation("a1", "k1", None, None).await.unwrap());
    let k1 = s.get_cmk("k1").await.unwrap().unwrap();
    assert_eq!(
        (k1.rotation_interval_days, k1.next_rotation),
        (Some(30), None)
    );
    assert_eq!(due(i64::MAX).await, Vec::<String>::new());
    // The job's rotation moves the schedule; an on-demand one (None) does not, and a key
    // whose rotation is off stays off.
    s.set_key_state("a1", "k2", KeyState::Enabled)
        .await
        .unwrap();
    assert!(
        s.add_cmk_version("a1", "k2", &version(2), Some(t0 + 99))
            .await
            .unwrap()
    );
    assert!(
        s.add_cmk_version("a1", "k2", &version(3), None)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_cmk("k2").await.unwrap().unwrap().next_rotation,
        Some(t0 + 99)
    );
    assert!(
        s.add_cmk_version("a1", "k1", &version(2), Some(t0 + 99))
            .await
            .unwrap()
    );
    assert_eq!(s.get_cmk("k1").await.unwrap().unwrap().next_rotation, None);
}

pub(crate) async fn deletion_schedule_cancel_and_due(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    for id in ["k1", "k2", "used"] {
        s.insert_cmk(&key("a1", id)).await.unwrap();
    }
    s.create_alias("a1", "alias/one", "k1", 1, None)
        .await
        .unwrap();
    assert!(s.schedule_cmk_deletion("a1", "k1", 100).await.unwrap());
    // Twice, another app's, unknown: nothing.
    assert!(!s.schedule_cmk_deletion("a1", "k1", 200).await.unwrap());
    assert!(!s.schedule_cmk_deletion("a2", "k2", 200).await.unwrap());
    assert!(!s.schedule_cmk_deletion("a1", "nope", 200).await.unwrap());
    let k1 = s.get_cmk("k1").await.unwrap().unwrap();
    assert_eq!(
        (k1.deletion_date, k1.state),
        (Some(100), KeyState::Disabled)
    );
    // A key that encrypts a secret is refused, as DeleteKey refuses it.
    assert!(
        s.insert_secret(&secret("a1", "used"), b"ct", None)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.schedule_cmk_deletion("a1", "used", 100).await,
        Err(Error::KeyInUse { .. })
    ));
    assert_eq!(
        s.get_cmk("used").await.unwrap().unwrap().deletion_date,
        None
    );
    // Due at 100, not before; a cancelled deletion is never due, and the key stays disabled.
    assert!(s.schedule_cmk_deletion("a1", "k2", 150).await.unwrap());
    let pair = |k: &str| ("a1".to_owned(), k.to_owned());
    assert_eq!(s.due_deletions(99, 10).await.unwrap(), []);
    assert_eq!(
        s.due_deletions(150, 10).await.unwrap(),
        [pair("k1"), pair("k2")]
    );
    assert!(!s.cancel_cmk_deletion("a2", "k2").await.unwrap());
    assert!(s.cancel_cmk_deletion("a1", "k2").await.unwrap());
    assert!(!s.cancel_cmk_deletion("a1", "k2").await.unwrap());
    let k2 = s.get_cmk("k2").await.unwrap().unwrap();
    assert_eq!((k2.deletion_date, k2.state), (None, KeyState::Disabled));
    assert!(
        !s.delete_due_cmk("a1", "k2", 150).await.unwrap(),
        "cancelled"
    );
    assert!(!s.delete_due_cmk("a1", "k1", 99).await.unwrap(), "not due");
    assert!(s.delete_due_cmk("a1", "k1", 100).await.unwrap());
    assert_eq!(s.get_cmk("k1").await.unwrap(), None);
    assert_eq!(
        s.get_alias("a1", "alias/one").await.unwrap(),
        None,
        "aliases go with it"
    );
    assert!(s.get_cmk("k2").await.unwrap().is_some());
}

fn secret(appid: &str, keyid: &str) -> SecretRecord {
    SecretRecord {
        appid: appid.into(),
        name: format!("secret under {keyid}"),
        keyid: keyid.into(),
        description: None,
        create_time: 1,
        deletion: None,
        rotation_interval: None,
    }
}

pub(crate) async fn aliases_per_app(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "k1")).await.unwrap();
    s.insert_cmk(&key("a1", "k2")).await.unwrap();
    s.insert_cmk(&key("a2", "other")).await.unwrap();
    s.insert_app(&app("a3"), &[crate::checks::hidden("a3", "internal")])
        .await
        .unwrap();
    s.create_alias("a1", "alias/b", "k1", 10, None)
        .await
        .unwrap();
    s.create_alias("a1", "alias/a", "k1", 11, None)
        .await
        .unwrap();
    // Unique per app; another app may use the name; only the app's own listed keys.
    assert!(matches!(
        s.create_alias("a1", "alias/a", "k2", 12, None).await,
        Err(Error::Conflict)
    ));
    s.create_alias("a2", "alias/a", "other", 12, None)
        .await
        .unwrap();
    for (appid, keyid) in [("a1", "other"), ("a1", "nope"), ("a3", "internal")] {
        assert!(matches!(
            s.create_alias(appid, "alias/c", keyid, 12, None).await,
            Err(Error::UnknownKey)
        ));
    }
    assert!(matches!(
        s.create_alias("ghost", "alias/c", "k1", 12, None).await,
        Err(Error::UnknownApp)
    ));
    let rec = |alias: &str, keyid: &str, created_at| AliasRecord {
        alias: alias.into(),
        keyid: keyid.into(),
        created_at,
    };
    assert_eq!(
        s.list_aliases("a1", None).await.unwrap(),
        [rec("alias/a", "k1", 11), rec("alias/b", "k1", 10)]
    );
    assert_eq!(
        s.get_alias("a2", "alias/a").await.unwrap().as_deref(),
        Some("other")
    );
    assert_eq!(s.get_alias("a2", "alias/b").await.unwrap(), None);
    // Repointing: only to the app's own keys, only an existing alias.
    assert!(s.update_alias("a1", "alias/b", "k2").await.unwrap());
    assert!(matches!(
        s.update_alias("a1", "alias/b", "other").await,
        Err(Error::UnknownKey)
    ));
    assert!(!s.update_alias("a1", "alias/none", "k2").await.unwrap());
    assert_eq!(
        s.list_aliases("a1", Some("k2")).await.unwrap(),
        [rec("alias/b", "k2", 10)]
    );
    assert!(s.delete_alias("a1", "alias/b").await.unwrap());
    assert!(!s.delete_alias("a1", "alias/b").await.unwrap());
    assert!(!s.delete_alias("a1", "alias/zzz").await.unwrap());
    assert_eq!(
        s.list_aliases("a1", None).await.unwrap(),
        [rec("alias/a", "k1", 11)]
    );
    // Deleting the key deletes its aliases, and no other app's.
    assert!(s.delete_cmk("a1", "k1").await.unwrap());
    assert_eq!(s.list_aliases("a1", None).await.unwrap(), []);
    assert_eq!(s.list_aliases("a2", None).await.unwrap().len(), 1);
}

pub(crate) async fn alias_quota_is_exact(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "k1")).await.unwrap();
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = s.clone();
            tokio::spawn(async move {
                store
                    .create_alias("a1", &format!("alias/{i}"), "k1", 1, Some(3))
                    .await
            })
        })
        .collect();
    let mut refused = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => {}
            Err(Error::QuotaExceeded { count: 3 }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(refused, 5);
    assert_eq!(s.list_aliases("a1", None).await.unwrap().len(), 3);
}
