//! The quote policy checks of the shared suite.

use ehsm_store::{Error, QuotePolicyRecord};

use crate::harness::TestDb;
use crate::secret_checks::with_app;

const T0: i64 = 1_700_000_000_000;

fn policy(appid: &str, id: &str, enclave: char) -> QuotePolicyRecord {
    QuotePolicyRecord {
        appid: appid.into(),
        policy_id: id.into(),
        mr_enclave: enclave.to_string().repeat(64),
        mr_signer: "b".repeat(64),
        create_time: T0,
    }
}

pub(crate) async fn quote_policy_insert_get_per_app(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    with_app(&db, "a2").await;
    let p1 = policy("a1", "p1", 'a');
    s.insert_quote_policy(&p1).await.unwrap();
    assert_eq!(s.get_quote_policy("a1", "p1").await.unwrap(), Some(p1));
    // Another app's id finds nothing, like an unknown id.
    assert_eq!(s.get_quote_policy("a2", "p1").await.unwrap(), None);
    assert_eq!(s.get_quote_policy("a1", "nope").await.unwrap(), None);
    // Ids are unique per app, not across apps.
    let p2 = policy("a2", "p1", 'c');
    s.insert_quote_policy(&p2).await.unwrap();
    assert_eq!(s.get_quote_policy("a2", "p1").await.unwrap(), Some(p2));
}

pub(crate) async fn quote_policy_duplicate_and_unknown_app_are_refused(db: TestDb) {
    let s = &db.store;
    with_app(&db, "a1").await;
    s.insert_quote_policy(&policy("a1", "p1", 'a'))
        .await
        .unwrap();
    assert!(matches!(
        s.insert_quote_policy(&policy("a1", "p1", 'c')).await,
        Err(Error::Conflict)
    ));
    // The duplicate did not overwrite the first.
    assert_eq!(
        s.get_quote_policy("a1", "p1")
            .await
            .unwrap()
            .unwrap()
            .mr_enclave,
        "a".repeat(64)
    );
    assert!(matches!(
        s.insert_quote_policy(&policy("nobody", "p1", 'a')).await,
        Err(Error::UnknownApp)
    ));
    assert!(matches!(
        s.get_quote_policy("a1", "p\0").await,
        Err(Error::InvalidInput(_))
    ));
}
