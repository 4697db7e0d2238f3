//! The secrets checks of the shared suite.

use std::collections::BTreeSet;

use ehsm_store::{AppRecord, Deletion, Error, SecretRecord};

use crate::harness::TestDb;

const T0: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

/// Inserts the app `appid` with the key its secrets are encrypted under (the other checks'
/// records need them).
pub(crate) async fn with_app(db: &TestDb, appid: &str) {
    db.store
        .insert_app(
            &AppRecord {
                appid: appid.into(),
                apikey_blob: b"blob".to_vec(),
                created_at: T0,
            },
            &[crate::checks::key(appid, &keyid_of(appid))],
        )
        .await
        .unwrap();
}

/// The key of `appid`'s secrets in these checks.
fn keyid_of(appid: &str) -> String {
    format!("{appid}-k1")
}

fn secret(appid: &str, name: &str) -> SecretRecord {
    SecretRecord {
        appid: appid.into(),
        name: name.into(),
        keyid: keyid_of(appid),
        description: Some("desc".into()),
        create_time: T0,
        deletion: None,
        rotation_interval: Some("30d".into()),
    }
}

fn scheduled(days: i64) -> Deletion {
    Deletion {
        delete_time: T0,
        planned_delete_time: T0 + days * DAY,
    }
}

pub(crate) async fn secret_create_get_list(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    with_app(&db, "a2").await;
    assert!(
        s.insert_secret(&secret("a1", "b"), b"ct1", None)
            .await
            .unwrap()
    );
    assert!(
        s.insert_secret(&secret("a1", "a"), b"cta", None)
            .await
            .unwrap()
    );
    // Names are unique per app, not across apps.
    assert!(
        !s.insert_secret(&secret("a1", "b"), b"other", None)
            .await
            .unwrap()
    );
    assert!(
        s.insert_secret(&secret("a2", "b"), b"ct2", None)
            .await
            .unwrap()
    );
    assert!(matches!(
        s.insert_secret(&secret("nobody", "x"), b"ct", None).await,
        Err(Error::UnknownApp)
    ));
    assert_eq!(
        s.get_secret("a1", "b").await.unwrap(),
        Some(secret("a1", "b"))
    );
    assert_eq!(s.get_secret("a1", "c").await.unwrap(), None);
    let names = |v: Vec<SecretRecord>| v.into_iter().map(|r| r.name).collect::<Vec<_>>();
    assert_eq!(
        names(s.list_secrets("a1", None, 10).await.unwrap()),
        ["a", "b"]
    );
    assert_eq!(names(s.list_secrets("a1", None, 1).await.unwrap()), ["a"]);
    assert_eq!(
        names(s.list_secrets("a1", Some("b"), 10).await.unwrap()),
        ["b"]
    );
    assert_eq!(
        names(s.list_secrets("a1", Some("z"), 10).await.unwrap()),
        [""; 0]
    );
    // The duplicate did not overwrite the first value.
    let v1 = s
        .get_secret_version("a1", "b", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v1.version_id, v1.ciphertext.as_slice()), (1, &b"ct1"[..]));
    assert_eq!(
        s.get_secret_version("a1", "b", Some(2)).await.unwrap(),
        None
    );
    assert_eq!(
        s.list_secret_versions("a1", "b", 10).await.unwrap(),
        [(1, T0)]
    );
}

pub(crate) async fn secret_versions_count_up_and_newest_is_default(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    s.insert_secret(&secret("a1", "n"), b"v1", None)
        .await
        .unwrap();
    for i in 2..=11 {
        let v = s
            .put_secret_version("a1", "n", format!("v{i}").as_bytes(), T0 + i)
            .await
            .unwrap();
        assert_eq!(v, Some(i));
    }
    let versions = s.list_secret_versions("a1", "n", 100).await.unwrap();
    assert_eq!(versions.len(), 11);
    for i in 1..=11 {
        let v = s
            .get_secret_version("a1", "n", Some(i))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(v.ciphertext, format!("v{i}").into_bytes());
    }
    let newest = s
        .get_secret_version("a1", "n", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(newest.version_id, 11);
    assert_eq!(
        s.put_secret_version("a1", "none", b"x", T0).await.unwrap(),
        None
    );
}

/// Many writers at once: every version gets its own number and none is lost.
pub(crate) async fn secret_versions_concurrent_writers(db: TestDb) {
    with_app(&db, "a1").await;
    db.store
        .insert_secret(&secret("a1", "n"), b"v1", None)
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for w in 0..8 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..10 {
                let data = format!("w{w}-{i}");
                let v = s
                    .put_secret_version("a1", "n", data.as_bytes(), T0)
                    .await
                    .unwrap();
                got.push((v.unwrap(), data));
            }
            got
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let ids: BTreeSet<i64> = all.iter().map(|(v, _)| *v).collect();
    assert_eq!(ids, (2..=81).collect());
    for (v, data) in all {
        let stored = db
            .store
            .get_secret_version("a1", "n", Some(v))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.ciphertext, data.into_bytes());
    }
}

pub(crate) async fn secret_description_set_and_remove(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    s.insert_secret(&secret("a1", "n"), b"v1", None)
        .await
        .unwrap();
    assert!(
        s.set_secret_description("a1", "n", Some("new"))
            .await
            .unwrap()
    );
    let got = s.get_secret("a1", "n").await.unwrap().unwrap();
    assert_eq!(got.description.as_deref(), Some("new"));
    assert!(s.set_secret_description("a1", "n", None).await.unwrap());
    assert_eq!(
        s.get_secret("a1", "n").await.unwrap().unwrap().description,
        None
    );
    assert!(!s.set_secret_description("a1", "x", None).await.unwrap());
    assert!(!s.set_secret_description("a2", "n", None).await.unwrap());
}

pub(crate) async fn secret_deletion_schedule_restore_and_purge(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    s.insert_secret(&secret("a1", "n"), b"v1", None)
        .await
        .unwrap();
    s.insert_secret(&secret("a1", "keep"), b"v1", None)
        .await
        .unwrap();
    assert!(
        s.schedule_secret_deletion("a1", "n", scheduled(30))
            .await
            .unwrap()
    );
    assert!(
        !s.schedule_secret_deletion("a1", "x", scheduled(30))
            .await
            .unwrap()
    );
    let got = s.get_secret("a1", "n").await.unwrap().unwrap();
    assert_eq!(got.deletion, Some(scheduled(30)));
    // A secret pending deletion takes no new value or description.
    assert_eq!(
        s.put_secret_version("a1", "n", b"v2", T0).await.unwrap(),
        None
    );
    assert!(
        !s.set_secret_description("a1", "n", Some("d"))
            .await
            .unwrap()
    );
    // Restore cancels; rescheduling replaces the date.
    assert!(s.restore_secret("a1", "n").await.unwrap());
    assert_eq!(
        s.get_secret("a1", "n").await.unwrap().unwrap().deletion,
        None
    );
    assert!(s.restore_secret("a1", "n").await.unwrap(), "idempotent");
    assert!(!s.restore_secret("a1", "x").await.unwrap());
    assert!(
        s.schedule_secret_deletion("a1", "n", scheduled(1))
            .await
            .unwrap()
    );
    assert!(
        s.schedule_secret_deletion("a1", "n", scheduled(7))
            .await
            .unwrap()
    );
    // Not due yet: nothing happens.
    assert_eq!(s.purge_due_secrets(T0 + 7 * DAY - 1).await.unwrap(), 0);
    assert!(s.get_secret("a1", "n").await.unwrap().is_some());
    // Due: the secret and its versions go; the name can be used again.
    assert_eq!(s.purge_due_secrets(T0 + 7 * DAY).await.unwrap(), 1);
    assert_eq!(s.get_secret("a1", "n").await.unwrap(), None);
    assert_eq!(s.list_secret_versions("a1", "n", 10).await.unwrap(), []);
    assert_eq!(s.get_secret_version("a1", "n", None).await.unwrap(), None);
    assert!(s.get_secret("a1", "keep").await.unwrap().is_some());
    assert!(
        s.insert_secret(&secret("a1", "n"), b"again", None)
            .await
            .unwrap()
    );
    let v = s
        .get_secret_version("a1", "n", None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((v.version_id, v.ciphertext), (1, b"again".to_vec()));
}

pub(crate) async fn secret_force_delete_removes_versions(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    s.insert_secret(&secret("a1", "n"), b"v1", None)
        .await
        .unwrap();
    s.put_secret_version("a1", "n", b"v2", T0).await.unwrap();
    assert!(!s.delete_secret("a2", "n").await.unwrap());
    assert!(s.delete_secret("a1", "n").await.unwrap());
    assert!(!s.delete_secret("a1", "n").await.unwrap());
    assert_eq!(s.list_secret_versions("a1", "n", 10).await.unwrap(), []);
}

/// Several nodes running the deletion job at once delete each due secret exactly once.
pub(crate) async fn secret_purge_concurrent_exactly_once(db: TestDb) {
    with_app(&db, "a1").await;
    for i in 0..200 {
        let name = format!("s{i}");
        db.store
            .insert_secret(&secret("a1", &name), b"v", None)
            .await
            .unwrap();
        db.store
            .schedule_secret_deletion("a1", &name, scheduled(1 + i % 2))
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let s = db.store.clone();
        tasks.push(tokio::spawn(async move {
            s.purge_due_secrets(T0 + DAY).await.unwrap()
        }));
    }
    let mut deleted = 0;
    for t in tasks {
        deleted += t.await.unwrap();
    }
    assert_eq!(deleted, 100);
    assert_eq!(
        db.store.list_secrets("a1", None, 1000).await.unwrap().len(),
        100
    );
}

/// Names, values and descriptions hold any printable text, byte-exact.
pub(crate) async fn secret_text_round_trips(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    let printable: String = (' '..='~').collect();
    let names = [
        printable.as_str(),
        "a & b = \"c\" \\ 'd'",
        "tab\tnew\nline\r\n",
        "Grüße, 鍵管理, 🔑",
    ];
    for name in names {
        let mut r = secret("a1", name);
        r.description = Some(format!("{name} (described)"));
        assert!(s.insert_secret(&r, name.as_bytes(), None).await.unwrap());
        assert_eq!(s.get_secret("a1", name).await.unwrap(), Some(r));
        let listed = s.list_secrets("a1", Some(name), 10).await.unwrap();
        assert_eq!(listed.len(), 1);
    }
    assert!(matches!(
        s.insert_secret(&secret("a1", "nul\0"), b"x", None).await,
        Err(Error::InvalidInput(_))
    ));
}
