//! The checks: each takes a fresh database and must pass on every backend.

use std::collections::BTreeSet;

use ehsm_store::{
    AppRecord, CmkRecord, CmkVersion, Error, ImportParams, Invalidation, KeyState, ReplayEntry,
};

pub(crate) use crate::guard_checks::*;
use crate::harness::TestDb;
pub(crate) use crate::job_checks::*;
pub(crate) use crate::lifecycle_checks::*;
pub(crate) use crate::quote_checks::*;
pub(crate) use crate::secret_checks::*;

pub(crate) fn app(appid: &str) -> AppRecord {
    AppRecord {
        appid: appid.into(),
        apikey_blob: format!("apikey of {appid}").into(),
        created_at: 1_700_000_000_000,
    }
}

pub(crate) fn key(appid: &str, keyid: &str) -> CmkRecord {
    CmkRecord {
        keyid: keyid.into(),
        appid: appid.into(),
        keyspec: "EH_AES_GCM_256".into(),
        origin: "EH_INTERNAL_KEY".into(),
        keyusage: "EH_KEYUSAGE_ENCRYPT_DECRYPT".into(),
        primary_version: 1,
        state: KeyState::Enabled,
        creation_date: 1_700_000_000_000,
        expire_time: 1_700_000_000_000 + 365 * 86_400_000,
        listed: true,
        import: None,
        description: None,
        rotation_interval_days: None,
        next_rotation: None,
        deletion_date: None,
        versions: vec![CmkVersion {
            version: 1,
            blob: format!("blob of {keyid}").into(),
            creation_date: 1_700_000_000_000,
        }],
    }
}

/// `key` with one version, holding `blob`.
pub(crate) fn with_blob(key: CmkRecord, blob: &[u8]) -> CmkRecord {
    CmkRecord {
        versions: vec![CmkVersion {
            blob: blob.to_vec(),
            ..key.versions[0].clone()
        }],
        ..key
    }
}

/// The blob of the primary version.
pub(crate) fn blob(key: &CmkRecord) -> &[u8] {
    &key.primary().expect("a primary version").blob
}

pub(crate) fn hidden(appid: &str, keyid: &str) -> CmkRecord {
    CmkRecord {
        listed: false,
        keyspec: "EH_SM4_CBC".into(),
        ..key(appid, keyid)
    }
}

fn params(tag: &str) -> ImportParams {
    ImportParams {
        wrapping_spec: "EH_RSA_3072".into(),
        wrapping_blob: format!("wrapping key pair {tag}").into(),
        expires_at: 1_700_000_086_400,
    }
}

fn keyids(keys: &[CmkRecord]) -> Vec<&str> {
    keys.iter().map(|k| k.keyid.as_str()).collect()
}

pub(crate) async fn app_crud(db: TestDb) {
    let s = &db.store;
    assert_eq!(s.get_app("a1").await.unwrap(), None);
    let internal = [hidden("a1", "a1-cmk"), hidden("a1", "a1-sm-default")];
    s.insert_app(&app("a1"), &internal).await.unwrap();
    assert_eq!(s.get_app("a1").await.unwrap(), Some(app("a1")));
    assert_eq!(
        s.get_app("A1").await.unwrap(),
        None,
        "appids are case-sensitive"
    );
    // Internal keys are readable by id but never listed.
    for k in &internal {
        assert_eq!(s.get_cmk(&k.keyid).await.unwrap().as_ref(), Some(k));
    }
    assert_eq!(s.list_cmks("a1", "", 100).await.unwrap(), []);
    // An app without internal keys is fine too.
    s.insert_app(&app("a2"), &[]).await.unwrap();
    assert_eq!(s.get_app("a2").await.unwrap(), Some(app("a2")));
}

pub(crate) async fn duplicate_appid_is_conflict(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    let other = AppRecord {
        apikey_blob: b"another".to_vec(),
        ..app("a1")
    };
    let err = s
        .insert_app(&other, &[hidden("a1", "k-new")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict), "{err:?}");
    assert_eq!(
        s.get_app("a1").await.unwrap(),
        Some(app("a1")),
        "first app unchanged"
    );
    assert_eq!(
        s.get_cmk("k-new").await.unwrap(),
        None,
        "its keys were not inserted"
    );
}

pub(crate) async fn insert_app_rolls_back_on_duplicate_keyid(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[hidden("a1", "taken")])
        .await
        .unwrap();
    // The second key collides with another app's key: nothing of app b may remain.
    let err = s
        .insert_app(&app("b"), &[hidden("b", "b-1"), hidden("b", "taken")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict), "{err:?}");
    assert_eq!(s.get_app("b").await.unwrap(), None);
    assert_eq!(s.get_cmk("b-1").await.unwrap(), None);
    assert_eq!(s.get_cmk("taken").await.unwrap().unwrap().appid, "a1");
    // The same keyid twice in one enrollment: also nothing.
    let err = s
        .insert_app(&app("c"), &[hidden("c", "c-1"), hidden("c", "c-1")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict), "{err:?}");
    assert_eq!(s.get_app("c").await.unwrap(), None);
    assert_eq!(s.get_cmk("c-1").await.unwrap(), None);
    // And the store still works after the rollbacks.
    s.insert_app(&app("b"), &[hidden("b", "b-1")])
        .await
        .unwrap();
    assert!(s.get_cmk("b-1").await.unwrap().is_some());
}

pub(crate) async fn insert_app_rejects_keys_of_another_app(db: TestDb) {
    let s = &db.store;
    let err = s
        .insert_app(&app("a1"), &[hidden("zz", "k")])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err:?}");
    assert_eq!(s.get_app("a1").await.unwrap(), None);
    assert_eq!(s.get_cmk("k").await.unwrap(), None);
}

pub(crate) async fn cmk_crud(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    assert_eq!(s.get_cmk("k1").await.unwrap(), None);
    let k = CmkRecord {
        state: KeyState::Disabled,
        creation_date: i64::MIN,
        expire_time: i64::MAX,
        origin: "EH_EXTERNAL_KEY".into(),
        import: Some(params("p")),
        description: Some("a description".into()),
        rotation_interval_days: Some(2560),
        next_rotation: Some(i64::MAX),
        deletion_date: Some(i64::MIN),
        primary_version: 3,
        versions: (1..=3)
            .map(|version| CmkVersion {
                version,
                blob: vec![version as u8; 40],
                creation_date: i64::from(version),
            })
            .collect(),
        ..key("a1", "k1")
    };
    s.insert_cmk(&k).await.unwrap();
    assert_eq!(s.get_cmk("k1").await.unwrap(), Some(k.clone()));
    let plain = key("a1", "k2");
    s.insert_cmk(&plain).await.unwrap();
    assert_eq!(s.get_cmk("k2").await.unwrap(), Some(plain.clone()));
    assert_eq!(s.list_cmks("a1", "", 10).await.unwrap(), [k, plain]);
    let empty_blob = with_blob(key("a1", "k3"), b"");
    s.insert_cmk(&empty_blob).await.unwrap();
    assert_eq!(s.get_cmk("k3").await.unwrap(), Some(empty_blob));
}

pub(crate) async fn duplicate_keyid_is_conflict(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "k1")).await.unwrap();
    let again = with_blob(key("a1", "k1"), b"other");
    assert!(matches!(
        s.insert_cmk(&again).await.unwrap_err(),
        Error::Conflict
    ));
    // Key ids are unique across apps.
    assert!(matches!(
        s.insert_cmk(&key("a2", "k1")).await.unwrap_err(),
        Error::Conflict
    ));
    assert_eq!(s.get_cmk("k1").await.unwrap(), Some(key("a1", "k1")));
}

pub(crate) async fn cmk_of_unknown_app_is_refused(db: TestDb) {
    let s = &db.store;
    let err = s.insert_cmk(&key("ghost", "k1")).await.unwrap_err();
    assert!(matches!(err, Error::UnknownApp), "{err:?}");
    assert_eq!(s.get_cmk("k1").await.unwrap(), None);
}

pub(crate) async fn list_only_listed_keys_of_app_in_keyid_order(db: TestDb) {
    let s = &db.store;
    s.insert_app(
        &app("a1"),
        &[hidden("a1", "a-hidden"), hidden("a1", "z-hidden")],
    )
    .await
    .unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    // Byte order, on both backends: uppercase < lowercase < non-ASCII.
    for id in ["k-b", "é-1", "K-A", "k-a", "Z", "k-10", "k-9"] {
        s.insert_cmk(&key("a1", id)).await.unwrap();
    }
    s.insert_cmk(&key("a2", "a2-key")).await.unwrap();
    s.insert_cmk(&key("a2", "0-first")).await.unwrap();
    let all = s.list_cmks("a1", "", 1000).await.unwrap();
    assert_eq!(
        keyids(&all),
        ["K-A", "Z", "k-10", "k-9", "k-a", "k-b", "é-1"]
    );
    assert!(all.iter().all(|k| k.appid == "a1" && k.listed));
    assert_eq!(
        keyids(&s.list_cmks("a1", "", 2).await.unwrap()),
        ["K-A", "Z"]
    );
    assert_eq!(s.list_cmks("a1", "", 0).await.unwrap(), []);
    // Pages: the keys after a keyid, whether or not it still exists.
    assert_eq!(
        keyids(&s.list_cmks("a1", "k-9", 2).await.unwrap()),
        ["k-a", "k-b"]
    );
    assert_eq!(
        keyids(&s.list_cmks("a1", "k-0", 2).await.unwrap()),
        ["k-10", "k-9"]
    );
    assert_eq!(s.list_cmks("a1", "é-1", 10).await.unwrap(), []);
    assert_eq!(
        keyids(&s.list_cmks("a2", "", u32::MAX).await.unwrap()),
        ["0-first", "a2-key"]
    );
    assert_eq!(s.list_cmks("nobody", "", 10).await.unwrap(), []);
}

pub(crate) async fn delete_touches_only_own_listed_key(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[hidden("a1", "a1-hidden")])
        .await
        .unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "a1-k")).await.unwrap();
    s.insert_cmk(&key("a2", "a2-k")).await.unwrap();
    assert!(
        !s.delete_cmk("a1", "a2-k").await.unwrap(),
        "another app's key"
    );
    assert!(s.get_cmk("a2-k").await.unwrap().is_some());
    assert!(
        !s.delete_cmk("a1", "a1-hidden").await.unwrap(),
        "an internal key"
    );
    assert!(s.get_cmk("a1-hidden").await.unwrap().is_some());
    assert!(!s.delete_cmk("a1", "missing").await.unwrap());
    assert!(s.delete_cmk("a1", "a1-k").await.unwrap());
    assert_eq!(s.get_cmk("a1-k").await.unwrap(), None);
    assert!(!s.delete_cmk("a1", "a1-k").await.unwrap(), "already gone");
}

pub(crate) async fn delete_all_touches_only_own_listed_keys(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[hidden("a1", "a1-hidden")])
        .await
        .unwrap();
    s.insert_app(&app("a2"), &[hidden("a2", "a2-hidden")])
        .await
        .unwrap();
    for i in 0..5 {
        s.insert_cmk(&key("a1", &format!("a1-{i}"))).await.unwrap();
        s.insert_cmk(&key("a2", &format!("a2-{i}"))).await.unwrap();
    }
    assert_eq!(s.delete_all_cmks("a1").await.unwrap(), 5);
    assert_eq!(s.list_cmks("a1", "", 100).await.unwrap(), []);
    assert!(s.get_cmk("a1-hidden").await.unwrap().is_some());
    assert!(s.get_cmk("a2-hidden").await.unwrap().is_some());
    assert_eq!(s.list_cmks("a2", "", 100).await.unwrap().len(), 5);
    assert_eq!(s.delete_all_cmks("a1").await.unwrap(), 0);
    assert_eq!(s.delete_all_cmks("nobody").await.unwrap(), 0);
}

pub(crate) async fn key_state_set_and_foreign_key_refused(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    s.insert_cmk(&key("a1", "k1")).await.unwrap();
    s.insert_cmk(&key("a2", "k2")).await.unwrap();
    for _ in 0..2 {
        // Idempotent, as upstream's tests expect.
        assert!(
            s.set_key_state("a1", "k1", KeyState::Disabled)
                .await
                .unwrap()
        );
        assert_eq!(
            s.get_cmk("k1").await.unwrap().unwrap().state,
            KeyState::Disabled
        );
    }
    assert!(
        s.set_key_state("a1", "k1", KeyState::Enabled)
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_cmk("k1").await.unwrap().unwrap().state,
        KeyState::Enabled
    );
    assert!(
        !s.set_key_state("a1", "k2", KeyState::Disabled)
            .await
            .unwrap(),
        "foreign key"
    );
    assert_eq!(
        s.get_cmk("k2").await.unwrap().unwrap().state,
        KeyState::Enabled
    );
    assert!(
        !s.set_key_state("a1", "missing", KeyState::Disabled)
            .await
            .unwrap()
    );
    // The rest of the record is untouched.
    let mut expected = key("a1", "k1");
    expected.state = KeyState::Enabled;
    assert_eq!(s.get_cmk("k1").await.unwrap(), Some(expected));
}

pub(crate) async fn import_params_set_replace_complete(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_app(&app("a2"), &[]).await.unwrap();
    let pending = CmkRecord {
        origin: "EH_EXTERNAL_KEY".into(),
        ..with_blob(key("a1", "byok"), b"")
    };
    s.insert_cmk(&pending).await.unwrap();
    // Nothing pending yet: completion fails.
    assert!(
        !s.complete_import("a1", "byok", &params("1"), b"material")
            .await
            .unwrap()
    );
    assert!(
        s.set_import_params("a1", "byok", &params("1"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_cmk("byok").await.unwrap().unwrap().import,
        Some(params("1"))
    );
    // Replace.
    assert!(
        s.set_import_params("a1", "byok", &params("2"))
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_cmk("byok").await.unwrap().unwrap().import,
        Some(params("2"))
    );
    // Another app, or a missing key: refused, nothing changes.
    assert!(
        !s.set_import_params("a2", "byok", &params("3"))
            .await
            .unwrap()
    );
    assert!(
        !s.set_import_params("a1", "missing", &params("3"))
            .await
            .unwrap()
    );
    assert!(
        !s.complete_import("a2", "byok", &params("2"), b"material")
            .await
            .unwrap()
    );
    // Stale parameters (replaced) cannot complete, nor can ones differing in any field.
    assert!(
        !s.complete_import("a1", "byok", &params("1"), b"material")
            .await
            .unwrap()
    );
    let other_expiry = ImportParams {
        expires_at: 1,
        ..params("2")
    };
    assert!(
        !s.complete_import("a1", "byok", &other_expiry, b"material")
            .await
            .unwrap()
    );
    let other_spec = ImportParams {
        wrapping_spec: "EH_RSA_2048".into(),
        ..params("2")
    };
    assert!(
        !s.complete_import("a1", "byok", &other_spec, b"material")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_cmk("byok").await.unwrap(),
        Some(CmkRecord {
            import: Some(params("2")),
            ..pending.clone()
        })
    );
    // The current ones do, once.
    assert!(
        s.complete_import("a1", "byok", &params("2"), b"material")
            .await
            .unwrap()
    );
    let done = s.get_cmk("byok").await.unwrap().unwrap();
    assert_eq!(
        done,
        CmkRecord {
            import: None,
            ..with_blob(pending.clone(), b"material")
        }
    );
    assert!(
        !s.complete_import("a1", "byok", &params("2"), b"again")
            .await
            .unwrap()
    );
    assert_eq!(
        blob(&s.get_cmk("byok").await.unwrap().unwrap()),
        b"material"
    );
}

pub(crate) async fn complete_import_concurrent_exactly_one_wins(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    s.insert_cmk(&CmkRecord {
        import: Some(params("race")),
        ..key("a1", "byok")
    })
    .await
    .unwrap();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = s.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                let won = store
                    .complete_import("a1", "byok", &params("race"), &[i; 32])
                    .await
                    .unwrap();
                (i, won)
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, won) = t.await.unwrap();
        if won {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let stored = s.get_cmk("byok").await.unwrap().unwrap();
    assert_eq!(blob(&stored), [winners[0]; 32]);
    assert_eq!(stored.import, None);
}

pub(crate) async fn expired_import_params_are_destroyed(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    let pending = |keyid: &str, expires_at| CmkRecord {
        import: Some(ImportParams {
            expires_at,
            ..params(keyid)
        }),
        ..key("a1", keyid)
    };
    s.insert_cmk(&pending("old", 100)).await.unwrap();
    s.insert_cmk(&pending("new", 300)).await.unwrap();
    s.insert_cmk(&key("a1", "plain")).await.unwrap();
    assert_eq!(s.expire_import_params(99).await.unwrap(), 0);
    assert_eq!(s.expire_import_params(200).await.unwrap(), 1);
    let old = s.get_cmk("old").await.unwrap().unwrap();
    assert_eq!(old.import, None);
    assert_eq!(
        old.versions,
        key("a1", "old").versions,
        "the key itself stays"
    );
    assert_eq!(s.get_cmk("new").await.unwrap(), Some(pending("new", 300)));
    assert_eq!(s.get_cmk("plain").await.unwrap(), Some(key("a1", "plain")));
}

fn replay_entry(n: u64, seen_at: i64) -> ReplayEntry {
    let mut fingerprint = [0; 16];
    fingerprint[..8].copy_from_slice(&n.to_le_bytes());
    fingerprint[15] = 0xa5;
    ReplayEntry {
        fingerprint,
        seen_at,
    }
}

/// A large flush (one row) comes back entry for entry.
pub(crate) async fn replay_batch_of_many_entries_round_trips(db: TestDb) {
    let s = &db.store;
    let batch: Vec<ReplayEntry> = (0..20_000).map(|i| replay_entry(i, i as i64)).collect();
    s.insert_replay_entries(&batch).await.unwrap();
    let mut all = s.replay_entries_since(i64::MIN).await.unwrap();
    all.sort_by_key(|e| e.seen_at);
    assert_eq!(all, batch);
}

pub(crate) async fn replay_entries_insert_since_prune(db: TestDb) {
    let s = &db.store;
    let set = |v: Vec<ReplayEntry>| v.into_iter().collect::<BTreeSet<_>>();
    s.insert_replay_entries(&[]).await.unwrap();
    assert_eq!(s.replay_entries_since(i64::MIN).await.unwrap(), []);
    let first = [replay_entry(1, 100), replay_entry(2, 150)];
    let second = [replay_entry(3, 120), replay_entry(4, 300)];
    s.insert_replay_entries(&first).await.unwrap();
    s.insert_replay_entries(&second).await.unwrap();
    assert_eq!(
        set(s.replay_entries_since(i64::MIN).await.unwrap()),
        set([first, second].concat())
    );
    // Entries are filtered one by one, not by batch.
    assert_eq!(
        set(s.replay_entries_since(150).await.unwrap()),
        set(vec![first[1], second[1]])
    );
    // A batch is pruned only when all its entries are older than the limit.
    assert_eq!(s.prune_replay_entries(200).await.unwrap(), 1);
    assert_eq!(
        set(s.replay_entries_since(i64::MIN).await.unwrap()),
        set(second.to_vec())
    );
    assert_eq!(s.prune_replay_entries(200).await.unwrap(), 0);
    assert_eq!(s.prune_replay_entries(301).await.unwrap(), 1);
    assert_eq!(s.replay_entries_since(i64::MIN).await.unwrap(), []);
}

/// A node follows the others' flushes by id: pages in id order, nothing before the cursor.
pub(crate) async fn replay_batches_after_pages_in_id_order(db: TestDb) {
    let s = &db.store;
    assert_eq!(s.replay_batch_max_id().await.unwrap(), 0);
    assert!(s.replay_batches_after(0, 10).await.unwrap().is_empty());
    let batches: Vec<Vec<ReplayEntry>> = (0..5u64)
        .map(|b| (0..=b).map(|i| replay_entry(b * 10 + i, 100)).collect())
        .collect();
    for batch in &batches {
        s.insert_replay_entries(batch).await.unwrap();
    }
    let max = s.replay_batch_max_id().await.unwrap();
    let all = s.replay_batches_after(0, 100).await.unwrap();
    let ids: Vec<i64> = all.iter().map(|(id, _)| *id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert_eq!(ids.last(), Some(&max));
    let got: Vec<Vec<ReplayEntry>> = all.into_iter().map(|(_, e)| e).collect();
    assert_eq!(got, batches);
    // Paging: the limit, then from the last id seen.
    let first = s.replay_batches_after(0, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    let rest = s.replay_batches_after(first[1].0, 100).await.unwrap();
    assert_eq!(rest.len(), 3);
    assert_eq!(rest[0].1, batches[2]);
    assert!(s.replay_batches_after(max, 100).await.unwrap().is_empty());
    // A pruned batch is simply gone; the ids of the others do not move.
    s.insert_replay_entries(&[replay_entry(99, 5_000)])
        .await
        .unwrap();
    assert_eq!(s.prune_replay_entries(1_000).await.unwrap(), 5);
    let left = s.replay_batches_after(0, 100).await.unwrap();
    assert_eq!(left.len(), 1);
    assert!(left[0].0 > max);
    assert_eq!(left[0].1, [replay_entry(99, 5_000)]);
}

pub(crate) async fn settings_put_if_absent_never_overwrites(db: TestDb) {
    let s = &db.store;
    assert_eq!(s.get_setting("enroll_token_hash").await.unwrap(), None);
    assert!(
        s.put_setting_if_absent("enroll_token_hash", b"first")
            .await
            .unwrap()
    );
    assert!(
        !s.put_setting_if_absent("enroll_token_hash", b"second")
            .await
            .unwrap()
    );
    assert_eq!(
        s.get_setting("enroll_token_hash").await.unwrap(),
        Some(b"first".to_vec())
    );
    assert!(s.put_setting_if_absent("empty", b"").await.unwrap());
    assert_eq!(s.get_setting("empty").await.unwrap(), Some(Vec::new()));
    assert_eq!(s.get_setting("Enroll_token_hash").await.unwrap(), None);
}

pub(crate) async fn settings_put_if_absent_concurrent(db: TestDb) {
    let s = &db.store;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(16));
    let tasks: Vec<_> = (0..16u8)
        .map(|i| {
            let store = s.clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                barrier.wait().await;
                (
                    i,
                    store
                        .put_setting_if_absent("dk_sealed", &[i; 8])
                        .await
                        .unwrap(),
                )
            })
        })
        .collect();
    let mut winners = Vec::new();
    for t in tasks {
        let (i, stored) = t.await.unwrap();
        if stored {
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    assert_eq!(
        s.get_setting("dk_sealed").await.unwrap(),
        Some(vec![winners[0]; 8])
    );
}

pub(crate) async fn data_survives_close_and_reopen(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[hidden("a1", "a1-hidden")])
        .await
        .unwrap();
    let k = CmkRecord {
        import: Some(params("p")),
        ..key("a1", "k1")
    };
    s.insert_cmk(&k).await.unwrap();
    s.put_setting_if_absent("name", b"value").await.unwrap();
    let entry = replay_entry(7, 5);
    s.insert_replay_entries(std::slice::from_ref(&entry))
        .await
        .unwrap();
    s.close().await;

    let reopened = db.reopen().await;
    assert_eq!(reopened.get_app("a1").await.unwrap(), Some(app("a1")));
    assert_eq!(reopened.get_cmk("k1").await.unwrap(), Some(k.clone()));
    assert_eq!(
        reopened.get_cmk("a1-hidden").await.unwrap(),
        Some(hidden("a1", "a1-hidden"))
    );
    assert_eq!(reopened.list_cmks("a1", "", 10).await.unwrap(), [k]);
    assert_eq!(
        reopened.get_setting("name").await.unwrap(),
        Some(b"value".to_vec())
    );
    assert_eq!(reopened.replay_entries_since(0).await.unwrap(), [entry]);
    // Migrations are not re-applied destructively, and writes still work.
    reopened.insert_cmk(&key("a1", "k2")).await.unwrap();
    reopened.close().await;
    let third = db.reopen().await;
    assert_eq!(third.list_cmks("a1", "", 10).await.unwrap().len(), 2);
    third.close().await;
}

pub(crate) async fn large_blob_round_trips_byte_exact(db: TestDb) {
    let s = &db.store;
    // 6 KB covering every byte value, including NUL and invalid UTF-8.
    let blob: Vec<u8> = (0..6 * 1024)
        .map(|i: usize| (i.wrapping_mul(131) % 256) as u8)
        .collect();
    let a = AppRecord {
        apikey_blob: blob.clone(),
        ..app("a1")
    };
    s.insert_app(&a, &[]).await.unwrap();
    assert_eq!(s.get_app("a1").await.unwrap(), Some(a));
    let k = CmkRecord {
        import: Some(ImportParams {
            wrapping_blob: blob.iter().rev().copied().collect(),
            ..params("x")
        }),
        ..with_blob(key("a1", "k1"), &blob)
    };
    s.insert_cmk(&k).await.unwrap();
    let got = s.get_cmk("k1").await.unwrap().unwrap();
    assert!(self::blob(&got) == blob, "key blob differs");
    assert_eq!(got, k);
    assert!(
        s.complete_import("a1", "k1", k.import.as_ref().unwrap(), &blob[..6000])
            .await
            .unwrap()
    );
    assert!(self::blob(&s.get_cmk("k1").await.unwrap().unwrap()) == &blob[..6000]);
    s.put_setting_if_absent("big", &blob).await.unwrap();
    assert!(s.get_setting("big").await.unwrap().unwrap() == blob);
}

pub(crate) async fn tricky_strings_round_trip(db: TestDb) {
    let s = &db.store;
    let tricky = [
        "it's",
        "say \"hi\"",
        r"back\slash\\ and \x00 escapes \n",
        "'; DROP TABLE cmks; --",
        "\"); DROP TABLE apps; --",
        "line one\nline two\r\n\ttabbed",
        "Grüße, 鍵管理, ключ, 🔑",
        "$1 ? :name @p1 %s",
        " leading and trailing spaces ",
    ];
    for (i, t) in tricky.iter().enumerate() {
        let appid = format!("{t}#app{i}");
        s.insert_app(&app(&appid), &[]).await.unwrap();
        let k = CmkRecord {
            keyid: format!("{t}#key{i}"),
            keyspec: t.to_string(),
            origin: t.to_string(),
            keyusage: t.to_string(),
            description: Some(t.to_string()),
            import: Some(ImportParams {
                wrapping_spec: t.to_string(),
                ..params(t)
            }),
            ..key(&appid, "")
        };
        s.insert_cmk(&k).await.unwrap();
        assert_eq!(s.get_app(&appid).await.unwrap(), Some(app(&appid)));
        assert_eq!(s.get_cmk(&k.keyid).await.unwrap(), Some(k.clone()));
        assert_eq!(
            s.list_cmks(&appid, "", 10).await.unwrap(),
            std::slice::from_ref(&k)
        );
        assert!(
            s.set_key_state(&appid, &k.keyid, KeyState::Disabled)
                .await
                .unwrap()
        );
        assert!(
            s.complete_import(&appid, &k.keyid, k.import.as_ref().unwrap(), t.as_bytes())
                .await
                .unwrap()
        );
        assert!(s.put_setting_if_absent(t, t.as_bytes()).await.unwrap());
        assert_eq!(s.get_setting(t).await.unwrap(), Some(t.as_bytes().to_vec()));
        let entry = replay_entry(i as u64, i as i64);
        s.insert_replay_entries(std::slice::from_ref(&entry))
            .await
            .unwrap();
        assert_eq!(s.replay_entries_since(i as i64).await.unwrap(), [entry]);
        assert!(s.delete_cmk(&appid, &k.keyid).await.unwrap());
    }
    // Every table is still there and still holds everything.
    assert_eq!(s.replay_entries_since(0).await.unwrap().len(), tricky.len());
    for (i, t) in tricky.iter().enumerate() {
        assert!(s.get_app(&format!("{t}#app{i}")).await.unwrap().is_some());
    }
}

fn invalid<T>(r: Result<T, Error>) -> bool {
    matches!(r, Err(Error::InvalidInput(_)))
}

pub(crate) async fn nul_in_text_is_refused(db: TestDb) {
    let s = &db.store;
    s.insert_app(&app("a1"), &[]).await.unwrap();
    assert!(invalid(s.insert_app(&app("a\0b"), &[]).await));
    assert!(invalid(s.insert_cmk(&key("a1", "k\0")).await));
    assert!(invalid(
        s.insert_cmk(&CmkRecord {
            description: Some("x\0".into()),
            ..key("a1", "k")
        })
        .await
    ));
    assert!(invalid(s.get_cmk("k\0").await));
    assert!(invalid(s.put_setting_if_absent("n\0", b"v").await));
    assert_eq!(s.list_cmks("a1", "", 10).await.unwrap(), []);
    // Blobs may hold NUL bytes, of course.
    s.insert_cmk(&with_blob(key("a1", "k"), &[0; 16]))
        .await
        .unwrap();
}

pub(crate) async fn closed_store_errors_cleanly(db: TestDb) {
    let s = db.reopen().await;
    s.close().await;
    let err = s.get_app("a1").await.unwrap_err();
    assert!(matches!(err, Error::Database(_)), "{err:?}");
    assert!(err.to_string().contains("closed"), "{err}");
    // The suite's own store is unaffected.
    assert_eq!(db.store.get_app("a1").await.unwrap(), None);
}

/// A change made through one handle is announced to a listener on another (another node's)
/// within a second, on PostgreSQL; SQLite has no listener.
pub(crate) async fn invalidations_reach_another_handle(db: TestDb) {
    let other = db.reopen().await;
    let listener = other.listen_invalidations().await.unwrap();
    let Some(mut rx) = listener else {
        assert!(!db.is_postgres(), "PostgreSQL must offer a listener");
        other.close().await;
        return;
    };
    assert!(db.is_postgres(), "SQLite must not offer a listener");
    // Unique ids: other tests' notifications on the same database arrive here too.
    let tag = format!("{}-{}", std::process::id(), rx_tag());
    let appid = format!("inv-app-{tag}");
    let keyid = format!("inv-key-{tag}");
    let s = &db.store;
    s.insert_app(&app(&appid), &[]).await.unwrap();
    expect(&mut rx, &Invalidation::App(appid.clone())).await;
    s.insert_cmk(&key(&appid, &keyid)).await.unwrap();
    s.set_key_state(&appid, &keyid, KeyState::Disabled)
        .await
        .unwrap();
    expect(&mut rx, &Invalidation::Key(keyid.clone())).await;
    assert!(
        s.set_import_params(&appid, &keyid, &params("1"))
            .await
            .unwrap()
    );
    expect(&mut rx, &Invalidation::Key(keyid.clone())).await;
    assert_eq!(s.expire_import_params(i64::MAX).await.unwrap(), 1);
    expect(&mut rx, &Invalidation::Key(keyid.clone())).await;
    assert!(s.delete_cmk(&appid, &keyid).await.unwrap());
    expect(&mut rx, &Invalidation::Key(keyid.clone())).await;
    s.insert_cmk(&key(&appid, &keyid)).await.unwrap();
    let blob = key(&appid, &keyid).versions[0].blob.clone();
    assert!(
        s.replace_cmk_blob(&keyid, 1, &blob, b"rewrapped")
            .await
            .unwrap()
    );
    expect(&mut rx, &Invalidation::Key(keyid.clone())).await;
    assert!(
        s.replace_apikey_blob(&appid, &app(&appid).apikey_blob, b"rewrapped")
            .await
            .unwrap()
    );
    expect(&mut rx, &Invalidation::App(appid.clone())).await;
    assert_eq!(s.delete_all_cmks(&appid).await.unwrap(), 1);
    expect(&mut rx, &Invalidation::KeysOfApp(appid.clone())).await;
    // A statement that changes nothing announces nothing.
    assert!(
        !s.set_key_state(&appid, "no-such-key", KeyState::Enabled)
            .await
            .unwrap()
    );
    drop(rx);
    other.close().await;
}

fn rx_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    nanos.wrapping_add(N.fetch_add(1, Ordering::Relaxed))
}

/// Waits up to 1 s for `want`, skipping other invalidations (of other tests).
async fn expect(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Invalidation>, want: &Invalidation) {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(got)) if &got == want => return,
            Ok(Some(_)) => {}
            Ok(None) => panic!("the listener stopped before {want:?}"),
            Err(_) => panic!("{want:?} did not arrive within 1 s"),
        }
    }
}
