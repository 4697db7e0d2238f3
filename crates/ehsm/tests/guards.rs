//! Guards against one tenant filling the database and against destroying what cannot be
//! recovered (issue 12, defects 6 and 8), through real requests to `ehsm serve`: per-app quotas
//! on keys and secrets (also under parallel creates), ListKey's optional paging with its bad
//! inputs, DeleteKey and DeleteAllKey of a key that encrypts secrets, and a second
//! ImportKeyMaterial into a key that has material. Every refusal is checked to change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::collections::BTreeSet;

use ehsm_client::{Client, Error, KeySpec, KeyUsage, Origin, PaddingMode, SecretOptions};
use serde_json::{Value, json};
use util::{Server, assert_code, call};

async fn aes_key(c: &Client) -> String {
    c.create_key(
        KeySpec::AesGcm128,
        Origin::Internal,
        KeyUsage::EncryptDecrypt,
    )
    .await
    .unwrap()
}

/// The message of a code-400 refusal.
#[track_caller]
fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Api { code: 400, message }) => message,
        other => panic!("expected a 400, got {other:?}"),
    }
}

/// `n` CreateKeys at once; returns how many succeeded and the distinct refusal messages.
async fn create_keys_in_parallel(c: &Client, n: usize) -> (usize, BTreeSet<String>) {
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { aes_key_result(&c).await })
        })
        .collect();
    let (mut ok, mut refused) = (0, BTreeSet::new());
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => {
                refused.insert(refusal::<()>(Err(e)));
            }
        }
    }
    (ok, refused)
}

async fn aes_key_result(c: &Client) -> Result<String, Error> {
    c.create_key(
        KeySpec::AesGcm128,
        Origin::Internal,
        KeyUsage::EncryptDecrypt,
    )
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_creates_never_exceed_the_key_quota() {
    let s = Server::start(&["--max-keys-per-app", "5"]);
    let (c, _) = s.enrolled().await;
    let (ok, refused) = create_keys_in_parallel(&c, 24).await;
    assert_eq!(ok, 5);
    assert_eq!(
        refused,
        BTreeSet::from([
            "Key quota exceeded: this app already has 5 keys (the server's limit is 5 per app)."
                .to_owned()
        ])
    );
    assert_eq!(c.list_keys().await.unwrap().len(), 5, "nothing more stored");
    // The app's default secret key is the server's: secrets still work at the key quota.
    c.create_secret("s", "v", &SecretOptions::default())
        .await
        .unwrap();
    assert_eq!(c.list_keys().await.unwrap().len(), 5);
    // Deleting a key makes room for one; other apps have quotas of their own.
    let first = c.list_keys().await.unwrap()[0].keyid.clone();
    c.delete_key(&first).await.unwrap();
    aes_key(&c).await;
    refusal(aes_key_result(&c).await);
    let (other, _) = s.enrolled().await;
    assert_eq!(create_keys_in_parallel(&other, 7).await.0, 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_creates_never_exceed_the_secret_quota() {
    let s = Server::start(&["--max-secrets-per-app", "3"]);
    let (c, _) = s.enrolled().await;
    let key = aes_key(&c).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let c = c.clone();
            // Half under the default key, half under the app's own.
            let options = SecretOptions {
                encryption_keyid: (i % 2 == 0).then(|| key.clone()),
                ..SecretOptions::default()
            };
            tokio::spawn(async move { c.create_secret(&format!("s{i}"), "v", &options).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(()) => ok += 1,
            Err(e) => assert_eq!(
                refusal::<()>(Err(e)),
                "Secret quota exceeded: this app already has 3 secrets (the server's limit is \
                 3 per app)."
            ),
        }
    }
    assert_eq!(ok, 3);
    assert_eq!(c.list_secrets(None).await.unwrap().len(), 3);
    // A secret scheduled for deletion still counts; deleted at once, it makes room.
    let name = c.list_secrets(None).await.unwrap()[0].name.clone();
    c.delete_secret(&name, Some(7)).await.unwrap();
    refusal(
        c.create_secret("late", "v", &SecretOptions::default())
            .await,
    );
    c.force_delete_secret(&name).await.unwrap();
    c.create_secret("late", "v", &SecretOptions::default())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn zero_is_no_quota() {
    let s = Server::start(&["--max-keys-per-app", "0", "--max-secrets-per-app", "0"]);
    let (c, _) = s.enrolled().await;
    assert_eq!(create_keys_in_parallel(&c, 12).await.0, 12);
}

/// The ListKey items of a raw answer, by keyid.
fn keyids(body: &Value) -> Vec<String> {
    body["result"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["keyid"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn list_key_pages_only_when_asked_and_refuses_bad_paging() {
    let s = Server::start(&[]);
    let (c, creds) = s.enrolled().await;
    let mut all: Vec<String> = Vec::new();
    for _ in 0..25 {
        all.push(aes_key(&c).await);
    }
    all.sort();
    // Without paging fields (no payload, or an empty one): upstream's answer, all keys, by
    // keyid, with exactly upstream's fields.
    for payload in [
        None,
        Some(json!({})),
        Some(json!({"limit": "", "marker": null})),
    ] {
        let body = call(&s.url, &creds, "ListKey", payload).await;
        assert_code(&body, 200, "successful");
        let result = body["result"].as_object().unwrap();
        assert_eq!(result.keys().collect::<Vec<_>>(), ["list"], "{body}");
        assert_eq!(keyids(&body), all);
        let item = body["result"]["list"][0].as_object().unwrap();
        let fields: BTreeSet<&str> = item.keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            BTreeSet::from([
                "alias",
                "creationDate",
                "expireTime",
                "keyState",
                "keyid",
                "keyspec"
            ])
        );
    }
    // Pages of 10: 10, 10, 5, each pointing to the next; together every key once, in order.
    let mut paged = Vec::new();
    let mut marker: Option<String> = None;
    let mut sizes = Vec::new();
    loop {
        let mut payload = json!({"limit": 10});
        if let Some(m) = &marker {
            payload["marker"] = json!(m);
        }
        let body = call(&s.url, &creds, "ListKey", Some(payload)).await;
        assert_code(&body, 200, "successful");
        let page = keyids(&body);
        sizes.push(page.len());
        paged.extend(page);
        match body["result"].get("nextMarker") {
            None => break,
            Some(next) => {
                assert_eq!(next, &json!(paged.last().unwrap()));
                marker = Some(next.as_str().unwrap().to_owned());
            }
        }
    }
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(paged, all);
    // A page that ends exactly at the last key has no nextMarker; a marker alone pages by 1000.
    let body = call(&s.url, &creds, "ListKey", Some(json!({"limit": 25}))).await;
    assert_eq!(keyids(&body), all);
    assert!(body["result"].get("nextMarker").is_none(), "{body}");
    let body = call(&s.url, &creds, "ListKey", Some(json!({"marker": all[19]}))).await;
    assert_eq!(keyids(&body), all[20..]);
    // A marker is a position: a deleted key's id still works.
    c.delete_key(&all[4]).await.unwrap();
    let body = call(
        &s.url,
        &creds,
        "ListKey",
        Some(json!({"marker": all[4], "limit": 2})),
    )
    .await;
    assert_eq!(keyids(&body), all[5..7]);
    assert_eq!(body["result"]["nextMarker"], json!(all[6]));
    // The SDK (and `ehsm key list`) pages through.
    let listed: Vec<String> = c
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.keyid)
        .collect();
    let mut expected = all.clone();
    expected.remove(4);
    assert_eq!(listed, expected);

    // Bad paging fields: a 400 that names the field.
    let bad = [
        (
            json!({"limit": 0}),
            "Parameter invalid, The limit value must be greater than or equal to 1.",
        ),
        (
            json!({"limit": -5}),
            "Parameter invalid, The limit value must be greater than or equal to 1.",
        ),
        (
            json!({"limit": 1001}),
            "Parameter invalid, The limit value must be less than or equal to 1000.",
        ),
        (
            json!({"limit": 1e300}),
            "Parameter invalid, The limit must be of integer type.",
        ),
        (
            json!({"limit": 9_007_199_254_740_993_u64}),
            "Parameter invalid, The limit value must be less than or equal to 1000.",
        ),
        (
            json!({"limit": 2.5}),
            "Parameter invalid, The limit must be of integer type.",
        ),
        (
            json!({"limit": "10"}),
            "Parameter invalid, The limit must be of integer type.",
        ),
        (
            json!({"limit": [10]}),
            "Parameter invalid, The limit must be of integer type.",
        ),
        (
            json!({"marker": "not-a-keyid"}),
            "Parameter invalid, The marker length error.",
        ),
        (
            json!({"marker": all[0].to_uppercase()}),
            "Parameter invalid, The marker format wrong.",
        ),
        (
            json!({"marker": 42}),
            "Parameter invalid, The marker must be of string type.",
        ),
        (
            json!({"marker": {"keyid": all[0]}}),
            "Parameter invalid, The marker must be of string type.",
        ),
        (
            json!({"limit": 10, "marker": "x".repeat(100_000)}),
            "Parameter invalid, The marker length error.",
        ),
    ];
    for (payload, message) in bad {
        let body = call(&s.url, &creds, "ListKey", Some(payload.clone())).await;
        assert_code(&body, 400, message);
        assert!(
            body["result"].as_object().unwrap().is_empty(),
            "{payload}: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_encrypts_secrets_is_not_deleted() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let used = aes_key(&c).await;
    let free = aes_key(&c).await;
    let with_key = SecretOptions {
        encryption_keyid: Some(used.clone()),
        ..SecretOptions::default()
    };
    c.create_secret("one", "v1", &with_key).await.unwrap();
    c.create_secret("two", "v2", &with_key).await.unwrap();
    // Under the default key: does not hold any listed key.
    c.create_secret("plain", "v", &SecretOptions::default())
        .await
        .unwrap();
    let ct = c.encrypt(&used, b"data", None).await.unwrap();
    let hint = "A secret scheduled for deletion counts until it is gone; DeleteSecret with \
                forceDelete removes it at once.";
    assert_eq!(
        refusal(c.delete_key(&used).await),
        format!(
            "Cannot delete the key: it encrypts 2 secrets, which would become unreadable; \
             delete them first. {hint}"
        )
    );
    assert_eq!(
        refusal(c.delete_all_keys().await),
        format!(
            "Cannot delete the keys, none was deleted: 1 of them encrypt 2 secrets, which would \
             become unreadable; delete them first. {hint}"
        )
    );
    // Nothing changed: both keys listed and usable, the secrets readable.
    let listed: BTreeSet<String> = c
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.keyid)
        .collect();
    assert_eq!(listed, BTreeSet::from([used.clone(), free.clone()]));
    assert_eq!(c.decrypt(&used, &ct, None).await.unwrap(), b"data");
    aes_key_result(&c).await.unwrap();
    assert_eq!(
        c.get_secret_value("one", None)
            .await
            .unwrap()
            .unwrap()
            .value,
        "v1"
    );
    // One secret left (the other scheduled for deletion still counts), then none.
    c.force_delete_secret("one").await.unwrap();
    c.delete_secret("two", Some(1)).await.unwrap();
    assert!(refusal(c.delete_key(&used).await).contains("it encrypts 1 secret, which"));
    c.force_delete_secret("two").await.unwrap();
    c.delete_key(&used).await.unwrap();
    c.delete_all_keys().await.unwrap();
    assert!(c.list_keys().await.unwrap().is_empty());
    assert_eq!(
        c.get_secret_value("plain", None)
            .await
            .unwrap()
            .unwrap()
            .value,
        "v"
    );
}

/// Wraps `material` for a BYOK import with the parameters' RSA public key (PKCS#1 v1.5).
fn wrap(pubkey_pem: &str, material: &[u8]) -> Vec<u8> {
    let rsa = openssl::rsa::Rsa::public_key_from_pem_pkcs1(pubkey_pem.as_bytes()).unwrap();
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(material, &mut wrapped, openssl::rsa::Padding::PKCS1)
        .unwrap();
    wrapped.truncate(n);
    wrapped
}

#[tokio::test(flavor = "multi_thread")]
async fn material_is_imported_once() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let k = c
        .create_key(
            KeySpec::AesGcm256,
            Origin::External,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let p = c
        .get_parameters_for_import(&k, KeySpec::Rsa2048)
        .await
        .unwrap();
    c.import_key_material(
        &k,
        PaddingMode::RsaPkcs1,
        &wrap(&p.pubkey_pem, &[1; 32]),
        &p.import_token,
    )
    .await
    .unwrap();
    let ct = c.encrypt(&k, b"first material", None).await.unwrap();
    // New parameters can be had, but other material is refused with them.
    let p = c
        .get_parameters_for_import(&k, KeySpec::Rsa2048)
        .await
        .unwrap();
    let again = c
        .import_key_material(
            &k,
            PaddingMode::RsaPkcs1,
            &wrap(&p.pubkey_pem, &[2; 32]),
            &p.import_token,
        )
        .await;
    assert_eq!(
        refusal(again),
        "Key material has already been imported into this key; importing other material would \
         leave its ciphertexts undecryptable. Create a new external key instead."
    );
    // The first material is still the key's.
    assert_eq!(c.decrypt(&k, &ct, None).await.unwrap(), b"first material");
}
