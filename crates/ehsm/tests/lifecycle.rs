//! Key lifecycle through real requests to `ehsm serve` (issue 13), on the wire as any client
//! sends it: data and signatures from before a rotation keep working, aliases stand for keys in
//! every action, ReEncrypt moves ciphertexts forward, a deletion waits out its window and can
//! be cancelled, and each bad input is a 400 that changes nothing. The SDK and CLI have their
//! own tests; the Python client's are in tests/python/test_lifecycle.py.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use ehsm_client::Credentials;
use serde_json::{Value, json};
use util::{Server, b64, call};

/// A signed call that must succeed; its result.
async fn ok(s: &Server, creds: &Credentials, action: &str, payload: Value) -> Value {
    let body = call(&s.url, creds, action, Some(payload)).await;
    assert_eq!(body["code"], 200, "{action}: {body}");
    body["result"].clone()
}

/// A signed call that must be refused with a 400; its message.
async fn refused(s: &Server, creds: &Credentials, action: &str, payload: Value) -> String {
    let body = call(&s.url, creds, action, Some(payload)).await;
    assert_eq!(body["code"], 400, "{action}: {body}");
    body["message"].as_str().unwrap().to_owned()
}

async fn create(s: &Server, creds: &Credentials, spec: &str, usage: &str) -> String {
    let r = ok(
        s,
        creds,
        "CreateKey",
        json!({"keyspec": spec, "origin": "EH_INTERNAL_KEY", "keyusage": usage}),
    )
    .await;
    r["keyid"].as_str().unwrap().to_owned()
}

const ENCRYPT: &str = "EH_KEYUSAGE_ENCRYPT_DECRYPT";
const SIGN: &str = "EH_KEYUSAGE_SIGN_VERIFY";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciphertexts_and_signatures_outlive_rotations() {
    let s = Server::start(&[]);
    let (_, creds) = s.enrolled().await;
    for spec in ["EH_AES_GCM_256", "EH_SM4_CBC"] {
        let keyid = create(&s, &creds, spec, ENCRYPT).await;
        let plaintext = b64(b"made under version 1");
        let enc = json!({"keyid": keyid, "plaintext": plaintext, "aad": b64(b"a")});
        let v1 = ok(&s, &creds, "Encrypt", enc.clone()).await["ciphertext"].clone();
        let dk = ok(
            &s,
            &creds,
            "GenerateDataKey",
            json!({"keyid": keyid, "keylen": 32}),
        )
        .await;
        for expected in [2, 3] {
            let r = ok(&s, &creds, "RotateKey", json!({"keyid": keyid})).await;
            assert_eq!(r, json!({"keyid": keyid, "keyversion": expected}));
        }
        let dec =
            |ct: &Value, aad: &[u8]| json!({"keyid": keyid, "ciphertext": ct, "aad": b64(aad)});
        let back = ok(&s, &creds, "Decrypt", dec(&v1, b"a")).await;
        assert_eq!(back["plaintext"], plaintext.as_str(), "{spec}");
        let back = ok(&s, &creds, "Decrypt", dec(&dk["ciphertext"], b"")).await;
        assert_eq!(back["plaintext"], dk["plaintext"], "{spec}");
        // New ciphertexts are made by version 3; ReEncrypt moves the old one there.
        let v3 = ok(&s, &creds, "Encrypt", enc).await["ciphertext"].clone();
        let moved = ok(
            &s,
            &creds,
            "ReEncrypt",
            json!({"keyid": keyid, "ciphertext": v1, "aad": b64(b"a"),
                   "destinationkeyid": keyid, "destinationaad": b64(b"b")}),
        )
        .await;
        assert_eq!(
            (&moved["keyid"], &moved["keyversion"]),
            (&json!(keyid), &json!(3))
        );
        let back = ok(&s, &creds, "Decrypt", dec(&moved["ciphertext"], b"b")).await;
        assert_eq!(back["plaintext"], plaintext.as_str());
        // The version is the header's second byte (LEB128 below 128).
        let version = |ct: &Value| util::b64_decode(ct.as_str().unwrap())[1];
        assert_eq!((version(&v1), version(&v3)), (1, 3), "{spec}");
        let versions = ok(&s, &creds, "ListKeyVersions", json!({"keyid": keyid})).await;
        assert_eq!(versions["primaryVersion"], 3);
        let numbers: Vec<_> = versions["versions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["keyversion"].as_u64().unwrap())
            .collect();
        assert_eq!(numbers, [1, 2, 3]);
    }

    // Signatures: without keyversion any version verifies; with one, only that one.
    let keyid = create(&s, &creds, "EH_EC_P256", SIGN).await;
    let message = json!({"keyid": keyid, "message": b64(b"signed"), "message_type": "EH_RAW",
        "digest_mode": "EH_SHA_256", "padding_mode": "EH_PAD_NONE"});
    let signed = ok(&s, &creds, "Sign", message.clone()).await;
    assert_eq!(signed["keyversion"], 1);
    let pem1 = ok(&s, &creds, "GetPublicKey", json!({"keyid": keyid})).await["pubkey"].clone();
    ok(&s, &creds, "RotateKey", json!({"keyid": keyid})).await;
    let mut verify = message.clone();
    verify["signature"] = signed["signature"].clone();
    let r = ok(&s, &creds, "Verify", verify.clone()).await;
    assert_eq!(r, json!({"result": true, "keyversion": 1}));
    verify["keyversion"] = json!(1);
    assert_eq!(
        ok(&s, &creds, "Verify", verify.clone()).await["result"],
        true
    );
    verify["keyversion"] = json!(2);
    assert_eq!(
        ok(&s, &creds, "Verify", verify).await,
        json!({"result": false})
    );
    let pem2 = ok(&s, &creds, "GetPublicKey", json!({"keyid": keyid})).await;
    assert_eq!(pem2["keyversion"], 2);
    assert_ne!(pem2["pubkey"], pem1, "a new version is a new key pair");
    let mut old = json!({"keyid": keyid, "keyversion": 1});
    assert_eq!(
        ok(&s, &creds, "GetPublicKey", old.clone()).await["pubkey"],
        pem1
    );
    old["keyversion"] = json!(9);
    let m = refused(&s, &creds, "GetPublicKey", old).await;
    assert!(m.contains("keyversion 9 does not exist"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aliases_name_keys_in_every_action() {
    let s = Server::start(&[]);
    let (_, creds) = s.enrolled().await;
    let (_, other_app) = s.enrolled().await;
    let first = create(&s, &creds, "EH_AES_GCM_128", ENCRYPT).await;
    let second = create(&s, &creds, "EH_AES_GCM_256", ENCRYPT).await;
    let alias = json!({"alias": "alias/app/data-key_1", "keyid": first});
    ok(&s, &creds, "CreateAlias", alias.clone()).await;
    let by_alias = json!({"keyid": "alias/app/data-key_1", "plaintext": b64(b"x")});
    let ct = ok(&s, &creds, "Encrypt", by_alias.clone()).await["ciphertext"].clone();
    let dec = json!({"keyid": first, "ciphertext": ct});
    ok(&s, &creds, "Decrypt", dec).await;
    let described = ok(
        &s,
        &creds,
        "DescribeKey",
        json!({"keyid": "alias/app/data-key_1"}),
    )
    .await;
    assert_eq!(described["keyid"], first.as_str());
    assert_eq!(described["aliases"], json!(["alias/app/data-key_1"]));
    let listed = ok(&s, &creds, "ListKey", json!({})).await;
    let item = listed["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["keyid"] == first.as_str())
        .unwrap()
        .clone();
    assert_eq!(item["alias"], "alias/app/data-key_1");
    // Another app sees no such alias, and may have its own of the same name.
    let m = refused(&s, &other_app, "Encrypt", by_alias.clone()).await;
    assert_eq!(
        m,
        "Parameter invalid, The alias alias/app/data-key_1 does not exist."
    );
    // Repointed: the alias now encrypts under the second key.
    let repoint = json!({"alias": "alias/app/data-key_1", "keyid": second});
    ok(&s, &creds, "UpdateAlias", repoint).await;
    let ct = ok(&s, &creds, "Encrypt", by_alias.clone()).await["ciphertext"].clone();
    ok(
        &s,
        &creds,
        "Decrypt",
        json!({"keyid": second, "ciphertext": ct}),
    )
    .await;
    let aliases = ok(&s, &creds, "ListAliases", json!({})).await;
    assert_eq!(
        aliases,
        json!({"aliases": [{"alias": "alias/app/data-key_1", "keyid": second}]})
    );
    assert_eq!(
        ok(&s, &creds, "ListAliases", json!({"keyid": first})).await,
        json!({"aliases": []})
    );
    // Bad input, each refused with nothing changed.
    for (payload, expected) in [
        (
            json!({"alias": "alias/app/data-key_1", "keyid": first}),
            "already exists",
        ),
        (
            json!({"alias": "alias/x", "keyid": "alias/app/data-key_1"}),
            "not another alias",
        ),
        (
            json!({"alias": "alias/aws/x", "keyid": first}),
            "alias/aws/",
        ),
        (
            json!({"alias": "data-key", "keyid": first}),
            "The alias format wrong.",
        ),
        (
            json!({"alias": "alias/", "keyid": first}),
            "The alias length error.",
        ),
        (
            json!({"alias": format!("alias/{}", "a".repeat(251)), "keyid": first}),
            "The alias length error.",
        ),
        (
            json!({"alias": "alias/a b", "keyid": first}),
            "The alias format wrong.",
        ),
    ] {
        let m = refused(&s, &creds, "CreateAlias", payload).await;
        assert!(m.contains(expected), "{m}");
    }
    let signing = create(&s, &creds, "EH_EC_P256", SIGN).await;
    let m = refused(
        &s,
        &creds,
        "UpdateAlias",
        json!({"alias": "alias/app/data-key_1", "keyid": signing}),
    )
    .await;
    assert!(m.contains("same kind"), "{m}");
    assert_eq!(ok(&s, &creds, "ListAliases", json!({})).await, aliases);
    // Deleting the alias leaves the key; deleting the key removes its aliases.
    ok(
        &s,
        &creds,
        "DeleteAlias",
        json!({"alias": "alias/app/data-key_1"}),
    )
    .await;
    let m = refused(
        &s,
        &creds,
        "DeleteAlias",
        json!({"alias": "alias/app/data-key_1"}),
    )
    .await;
    assert!(m.contains("does not exist"), "{m}");
    ok(
        &s,
        &creds,
        "CreateAlias",
        json!({"alias": "alias/gone", "keyid": first}),
    )
    .await;
    ok(&s, &creds, "DeleteKey", json!({"keyid": "alias/gone"})).await;
    assert_eq!(
        ok(&s, &creds, "ListAliases", json!({})).await,
        json!({"aliases": []})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_deletion_refuses_use_until_cancelled() {
    let s = Server::start(&["--max-versions-per-key", "2"]);
    let (_, creds) = s.enrolled().await;
    let keyid = create(&s, &creds, "EH_AES_GCM_256", ENCRYPT).await;
    let enc = json!({"keyid": keyid, "plaintext": b64(b"x")});
    let before = util::now_ms() as i64;
    let r = ok(
        &s,
        &creds,
        "ScheduleKeyDeletion",
        json!({"keyid": keyid, "pendingWindowInDays": 7}),
    )
    .await;
    let date = r["deletionDate"].as_i64().unwrap();
    let week = 7 * 86_400_000;
    assert!(
        (before + week..=util::now_ms() as i64 + week).contains(&date),
        "{date}"
    );
    for (action, payload) in [
        ("Encrypt", enc.clone()),
        ("RotateKey", json!({"keyid": keyid})),
        ("EnableKey", json!({"keyid": keyid})),
    ] {
        let m = refused(&s, &creds, action, payload).await;
        assert!(m.contains("pending deletion"), "{action}: {m}");
    }
    let m = refused(&s, &creds, "ScheduleKeyDeletion", json!({"keyid": keyid})).await;
    assert!(m.contains("already pending deletion"), "{m}");
    let described = ok(&s, &creds, "DescribeKey", json!({"keyid": keyid})).await;
    assert_eq!(
        (&described["deletionDate"], &described["keyState"]),
        (&json!(date), &json!(0))
    );
    // Cancelled: the key is disabled, as AWS KMS leaves it, until enabled.
    ok(&s, &creds, "CancelKeyDeletion", json!({"keyid": keyid})).await;
    let m = refused(&s, &creds, "CancelKeyDeletion", json!({"keyid": keyid})).await;
    assert!(m.contains("not pending deletion"), "{m}");
    assert_eq!(
        refused(&s, &creds, "Encrypt", enc.clone()).await,
        "keyid is disabled"
    );
    ok(&s, &creds, "EnableKey", json!({"keyid": keyid})).await;
    ok(&s, &creds, "Encrypt", enc).await;
    // The version quota: one rotation, then a clear refusal.
    ok(&s, &creds, "RotateKey", json!({"keyid": keyid})).await;
    let m = refused(&s, &creds, "RotateKey", json!({"keyid": keyid})).await;
    assert!(m.starts_with("Key version quota exceeded"), "{m}");
    let versions = ok(&s, &creds, "ListKeyVersions", json!({"keyid": keyid})).await;
    assert_eq!(versions["primaryVersion"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_policy_and_its_refusals() {
    let s = Server::start(&[]);
    let (_, creds) = s.enrolled().await;
    let r = ok(
        &s,
        &creds,
        "CreateKey",
        json!({"keyspec": "EH_HMAC", "origin": "EH_INTERNAL_KEY", "keyusage": SIGN,
               "rotationInterval": 30, "description": "webhook MACs"}),
    )
    .await;
    let keyid = r["keyid"].as_str().unwrap();
    // Upstream's two success messages: `success!` where the core runs (as CreateKey's),
    // `successful` for the key's records alone (as ListKey's).
    for (action, message) in [("RotateKey", "success!"), ("DescribeKey", "successful")] {
        let body = call(&s.url, &creds, action, Some(json!({"keyid": keyid}))).await;
        assert_eq!(body["message"], message, "{action}: {body}");
    }
    let d = ok(&s, &creds, "DescribeKey", json!({"keyid": keyid})).await;
    assert_eq!(d["description"], "webhook MACs");
    assert_eq!(
        (&d["rotation"]["enable"], &d["rotation"]["rotationInterval"]),
        (&json!(true), &json!(30))
    );
    let next = d["rotation"]["nextRotationDate"].as_i64().unwrap();
    assert!(next >= d["creationDate"].as_i64().unwrap() + 30 * 86_400_000);
    let off = json!({"keyid": keyid, "enable": false});
    ok(&s, &creds, "UpdateRotationPolicy", off).await;
    let d = ok(&s, &creds, "DescribeKey", json!({"keyid": keyid})).await;
    assert_eq!(
        d["rotation"],
        json!({"enable": false, "rotationInterval": 30, "nextRotationDate": null})
    );
    let rsa = create(&s, &creds, "EH_RSA_2048", SIGN).await;
    for (payload, expected) in [
        (
            json!({"keyid": keyid, "enable": true, "rotationInterval": 6}),
            "greater than or equal to 7",
        ),
        (
            json!({"keyid": keyid, "enable": "yes"}),
            "The enable must be of boolean type.",
        ),
        (
            json!({"keyid": rsa, "enable": true}),
            "symmetric and HMAC keys",
        ),
    ] {
        let m = refused(&s, &creds, "UpdateRotationPolicy", payload).await;
        assert!(m.contains(expected), "{m}");
    }
    // External keys never rotate; disabled keys do not either.
    let external = ok(
        &s,
        &creds,
        "CreateKey",
        json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_EXTERNAL_KEY", "keyusage": ENCRYPT}),
    )
    .await["keyid"]
        .clone();
    let m = refused(&s, &creds, "RotateKey", json!({"keyid": external})).await;
    assert!(m.contains("external"), "{m}");
    ok(&s, &creds, "DisableKey", json!({"keyid": rsa})).await;
    assert_eq!(
        refused(&s, &creds, "RotateKey", json!({"keyid": rsa})).await,
        "keyid is disabled"
    );
    let versions = ok(&s, &creds, "ListKeyVersions", json!({"keyid": rsa})).await;
    assert_eq!(versions["primaryVersion"], 1, "nothing changed");
}
