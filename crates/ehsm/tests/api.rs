//! The eHSM REST API end to end: the real server over HTTPS, the Rust SDK and raw signed
//! requests. One server per test keeps the tests independent (a server starts in milliseconds).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use ehsm_client::{DigestMode, Error, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
use serde_json::{Value, json};
use util::{Server, assert_code, call, envelope, now_ms, post};

const SIGNING_SPECS: [KeySpec; 9] = [
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::Rsa4096,
    KeySpec::EcP224,
    KeySpec::EcP256,
    KeySpec::EcP256k,
    KeySpec::EcP384,
    KeySpec::EcP521,
    KeySpec::Sm2,
];

#[tokio::test(flavor = "multi_thread")]
async fn version_enroll_and_an_empty_key_list() {
    let s = Server::start(&[]);
    let v = s.client().get_version().await.unwrap();
    assert_eq!(v.version, "0.3.2");
    assert_eq!(v.git_sha.len(), 7);
    let (c, creds) = s.enrolled().await;
    assert_eq!(creds.apikey.len(), 32);
    assert_eq!(creds.appid.len(), 36);
    assert!(
        c.list_keys().await.unwrap().is_empty(),
        "a fresh app lists no keys"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn symmetric_keys_data_keys_and_export() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let rsa = c
        .create_key(KeySpec::Rsa2048, Origin::Internal, KeyUsage::EncryptDecrypt)
        .await
        .unwrap();
    let sm2 = c
        .create_key(KeySpec::Sm2, Origin::Internal, KeyUsage::EncryptDecrypt)
        .await
        .unwrap();
    for spec in [
        KeySpec::AesGcm128,
        KeySpec::AesGcm192,
        KeySpec::AesGcm256,
        KeySpec::Sm4Ctr,
        KeySpec::Sm4Cbc,
    ] {
        let k = c
            .create_key(spec, Origin::Internal, KeyUsage::EncryptDecrypt)
            .await
            .unwrap();
        for pt in [&b"x"[..], &[7u8; 6144][..]] {
            let ct = c.encrypt(&k, pt, Some(b"aad")).await.unwrap();
            assert_eq!(
                c.decrypt(&k, &ct, Some(b"aad")).await.unwrap(),
                pt,
                "{spec}"
            );
        }
        let dk = c.generate_data_key(&k, 48, Some(b"ctx")).await.unwrap();
        assert_eq!(dk.plaintext.len(), 48);
        assert_eq!(
            c.decrypt(&k, &dk.ciphertext, Some(b"ctx")).await.unwrap(),
            dk.plaintext
        );
        let ct = c
            .generate_data_key_without_plaintext(&k, 32, None)
            .await
            .unwrap();
        assert_eq!(c.decrypt(&k, &ct, None).await.unwrap().len(), 32);
        let to_rsa = c
            .export_data_key(&k, &rsa, &dk.ciphertext, Some(b"ctx"))
            .await
            .unwrap();
        let back = c
            .asymmetric_decrypt(&rsa, PaddingMode::RsaPkcs1Oaep, &to_rsa)
            .await
            .unwrap();
        assert_eq!(back, dk.plaintext, "{spec} to RSA");
        let to_sm2 = c
            .export_data_key(&k, &sm2, &dk.ciphertext, Some(b"ctx"))
            .await
            .unwrap();
        let back = c
            .asymmetric_decrypt(&sm2, PaddingMode::None, &to_sm2)
            .await
            .unwrap();
        assert_eq!(back, dk.plaintext, "{spec} to SM2");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_signing_spec_and_public_keys() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    for spec in SIGNING_SPECS {
        let k = c
            .create_key(spec, Origin::Internal, KeyUsage::SignVerify)
            .await
            .unwrap();
        let pem = c.get_public_key(&k).await.unwrap();
        let is_rsa = matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072 | KeySpec::Rsa4096);
        if is_rsa {
            // The Rust SDK's BYOK helper parses PKCS#1 only (spec §6.6).
            assert!(
                openssl::rsa::Rsa::public_key_from_pem_pkcs1(pem.as_bytes()).is_ok(),
                "{spec}"
            );
        } else {
            assert!(
                openssl::pkey::PKey::public_key_from_pem(pem.as_bytes()).is_ok()
                    || spec == KeySpec::Sm2,
                "{spec}"
            );
        }
        let (digest, padding) = match spec {
            KeySpec::Sm2 => (DigestMode::Sm3, PaddingMode::None),
            _ if is_rsa => (DigestMode::Sha256, PaddingMode::RsaPkcs1Pss),
            _ => (DigestMode::Sha256, PaddingMode::None),
        };
        for (kind, msg) in [
            (MessageType::Raw, vec![1u8; 100]),
            (MessageType::Digest, vec![2u8; 32]),
        ] {
            let sig = c.sign(&k, digest, padding, kind, &msg).await.unwrap();
            assert!(
                c.verify(&k, digest, padding, kind, &msg, &sig)
                    .await
                    .unwrap(),
                "{spec} {kind}"
            );
            assert!(
                !c.verify(&k, digest, padding, kind, &[9u8; 32], &sig)
                    .await
                    .unwrap(),
                "{spec} {kind}"
            );
        }
        // Python's tests verify EC and SM2 signatures with EH_RSA_PKCS1: padding is ignored.
        if !is_rsa {
            let sig = c
                .sign(&k, digest, PaddingMode::None, MessageType::Raw, b"m")
                .await
                .unwrap();
            assert!(
                c.verify(
                    &k,
                    digest,
                    PaddingMode::RsaPkcs1,
                    MessageType::Raw,
                    b"m",
                    &sig
                )
                .await
                .unwrap()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn byok_import_then_encrypt() {
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
    // No material yet.
    assert!(matches!(
        c.encrypt(&k, b"x", None).await,
        Err(Error::Api { code: 400, .. })
    ));
    let p = c
        .get_parameters_for_import(&k, KeySpec::Rsa3072)
        .await
        .unwrap();
    let rsa = openssl::rsa::Rsa::public_key_from_pem_pkcs1(p.pubkey_pem.as_bytes()).unwrap();
    let material = [0x42u8; 32];
    let mut wrapped = vec![0u8; rsa.size() as usize];
    let n = rsa
        .public_encrypt(&material, &mut wrapped, openssl::rsa::Padding::PKCS1)
        .unwrap();
    wrapped.truncate(n);
    // A forged token is refused; the real one works once.
    let mut forged = p.import_token.clone().into_bytes();
    forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).unwrap();
    assert!(matches!(
        c.import_key_material(&k, PaddingMode::RsaPkcs1, &wrapped, &forged)
            .await,
        Err(Error::Api { code: 400, .. })
    ));
    c.import_key_material(&k, PaddingMode::RsaPkcs1, &wrapped, &p.import_token)
        .await
        .unwrap();
    let ct = c.encrypt(&k, b"imported", None).await.unwrap();
    assert_eq!(c.decrypt(&k, &ct, None).await.unwrap(), b"imported");
    // Data keys need an internal key.
    assert!(matches!(
        c.generate_data_key(&k, 16, None).await,
        Err(Error::Api { code: 400, .. })
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn hmac_keys() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let k = c
        .create_key(KeySpec::Hmac, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    let mac = c.generate_mac(&k, b"message").await.unwrap();
    assert_eq!(mac.len(), 32);
    assert!(c.verify_mac(&k, b"message", &mac).await.unwrap());
    assert!(!c.verify_mac(&k, b"messagE", &mac).await.unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn key_management_list_disable_enable_delete() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let a = c
        .create_key(
            KeySpec::AesGcm128,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let b = c
        .create_key(KeySpec::EcP256, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    let list = c.list_keys().await.unwrap();
    assert_eq!(list.len(), 2);
    let item = list.iter().find(|i| i.keyid == a).unwrap();
    assert_eq!(item.keyspec, KeySpec::AesGcm128);
    assert_eq!(item.alias, "");
    assert!(item.is_enabled());
    assert!(item.expire_time > item.creation_date);
    // Disabled keys refuse every use; twice is fine (idempotent).
    c.disable_key(&a).await.unwrap();
    c.disable_key(&a).await.unwrap();
    match c.encrypt(&a, b"x", None).await {
        Err(Error::Api { code: 400, message }) => assert_eq!(message, "keyid is disabled"),
        other => panic!("{other:?}"),
    }
    assert!(
        !c.list_keys()
            .await
            .unwrap()
            .iter()
            .find(|i| i.keyid == a)
            .unwrap()
            .is_enabled()
    );
    c.enable_key(&a).await.unwrap();
    c.encrypt(&a, b"x", None).await.unwrap();
    c.delete_key(&a).await.unwrap();
    // Upstream answers success for a key that does not exist.
    c.delete_key(&a).await.unwrap();
    assert_eq!(c.list_keys().await.unwrap().len(), 1);
    match c.enable_key(&a).await {
        Err(Error::Api { code: 400, message }) => assert_eq!(message, "not find this keyid"),
        other => panic!("{other:?}"),
    }
    c.delete_all_keys().await.unwrap();
    assert!(c.list_keys().await.unwrap().is_empty());
    let _ = b;
}

#[tokio::test(flavor = "multi_thread")]
async fn another_apps_key_is_indistinguishable_from_a_missing_one() {
    let s = Server::start(&[]);
    let (alice, _) = s.enrolled().await;
    let (mallory, _) = s.enrolled().await;
    let k = alice
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let missing = "00000000-0000-4000-8000-000000000000";
    for keyid in [k.as_str(), missing] {
        match mallory.encrypt(keyid, b"x", None).await {
            Err(Error::Api { code: 400, message }) => assert_eq!(message, "keyid error"),
            other => panic!("{other:?}"),
        }
    }
    // Mallory cannot disable or delete it either.
    assert!(mallory.disable_key(&k).await.is_err());
    mallory.delete_key(&k).await.unwrap();
    alice.encrypt(&k, b"still mine", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_usage_and_wrong_key_kind_are_client_errors() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let sign_rsa = c
        .create_key(KeySpec::Rsa2048, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    assert!(matches!(
        c.asymmetric_encrypt(&sign_rsa, PaddingMode::RsaPkcs1Oaep, b"x")
            .await,
        Err(Error::Api { code: 400, .. })
    ));
    // RSA signatures with EH_PAD_NONE must fail (Go and Rust SDK tests).
    assert!(matches!(
        c.sign(
            &sign_rsa,
            DigestMode::Sha256,
            PaddingMode::None,
            MessageType::Raw,
            b"x"
        )
        .await,
        Err(Error::Api { code: 400, .. })
    ));
    // AES with SIGN_VERIFY cannot be created.
    assert!(matches!(
        c.create_key(KeySpec::AesGcm256, Origin::Internal, KeyUsage::SignVerify)
            .await,
        Err(Error::Api { code: 400, .. })
    ));
    let aes = c
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let ct = c.encrypt(&aes, b"x", Some(b"a")).await.unwrap();
    match c.decrypt(&aes, &ct, Some(b"b")).await {
        Err(Error::Api { code: 400, message }) => {
            assert_eq!(
                message,
                "Decryption failed, Please confirm that your parameters are correct."
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_requests_on_one_key() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let k = c
        .create_key(KeySpec::EcP256, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..64u8)
        .map(|i| {
            let (c, k) = (c.clone(), k.clone());
            tokio::spawn(async move {
                let msg = [i; 40];
                let sig = c
                    .sign(
                        &k,
                        DigestMode::Sha256,
                        PaddingMode::None,
                        MessageType::Raw,
                        &msg,
                    )
                    .await
                    .unwrap();
                assert!(
                    c.verify(
                        &k,
                        DigestMode::Sha256,
                        PaddingMode::None,
                        MessageType::Raw,
                        &msg,
                        &sig
                    )
                    .await
                    .unwrap()
                );
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

// ---- the envelope and its errors, with raw requests ------------------------------------------

#[tokio::test(flavor = "multi_thread")]
async fn envelope_errors_in_upstreams_order() {
    let s = Server::start(&[]);
    let (_, creds) = s.enrolled().await;
    let url = &s.url;
    let ts = now_ms().to_string();
    // Missing fields, wrong types.
    let (status, body) = post(url, "ListKey", &json!({})).await;
    assert_eq!(status, 200);
    assert_code(&body, 400, "Missing required parameters");
    let (_, body) = post(
        url,
        "ListKey",
        &json!({"appid": creds.appid, "timestamp": 1, "sign": "x"}),
    )
    .await;
    assert_code(&body, 400, "param type error");
    let (_, body) = post(
        url,
        "Encrypt",
        &Value::Object(envelope(&creds, None, &ts, Some("n1"))),
    )
    .await;
    assert_code(&body, 400, "Missing required parameters");
    // Nonce and timestamp.
    let long = "n".repeat(65);
    let (_, body) = post(
        url,
        "ListKey",
        &Value::Object(envelope(&creds, None, &ts, Some(&long))),
    )
    .await;
    assert_code(&body, 400, "Nonce length error");
    let (_, body) = post(
        url,
        "ListKey",
        &Value::Object(envelope(&creds, None, "123", Some("n2"))),
    )
    .await;
    assert_code(&body, 400, "Timestamp length error");
    for skew in [-601_000i64, 601_000] {
        let t = (now_ms() as i64 + skew).to_string();
        let (_, body) = post(
            url,
            "ListKey",
            &Value::Object(envelope(&creds, None, &t, Some("n3"))),
        )
        .await;
        assert_code(&body, 400, "Timestamp error");
    }
    // Wrong sign, unknown appid (the same answer: appids cannot be probed).
    let mut bad = envelope(&creds, None, &ts, Some("n4"));
    bad.insert("sign".into(), json!(util::sign("wrong-key", "x")));
    let (_, body) = post(url, "ListKey", &Value::Object(bad)).await;
    assert_code(&body, 400, "sign error");
    let mut other = ehsm_client::Credentials {
        appid: "nobody".into(),
        apikey: creds.apikey.clone(),
    };
    other.appid = "11111111-2222-4333-8444-555555555555".into();
    let (_, body) = post(
        url,
        "ListKey",
        &Value::Object(envelope(&other, None, &ts, Some("n5"))),
    )
    .await;
    assert_code(&body, 400, "sign error");
    // Validation messages (spec §5.2) come before the signature check.
    let payload = json!({"keyid": "not-a-key", "plaintext": "aGk="});
    let (_, body) = post(
        url,
        "Encrypt",
        &Value::Object(envelope(&creds, Some(payload), &ts, Some("n6"))),
    )
    .await;
    assert_code(&body, 400, "Parameter invalid, The keyid length error.");
    let payload =
        json!({"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef", "plaintext": "not base64!"});
    let (_, body) = post(
        url,
        "Encrypt",
        &Value::Object(envelope(&creds, Some(payload), &ts, Some("n7"))),
    )
    .await;
    assert_code(
        &body,
        400,
        "Parameter invalid, The plaintext not a vailed base64 string.",
    );
    let payload = json!({"keyid": "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef", "keylen": "16"});
    let (_, body) = post(
        url,
        "GenerateDataKey",
        &Value::Object(envelope(&creds, Some(payload), &ts, Some("n8"))),
    )
    .await;
    assert_code(
        &body,
        400,
        "Parameter invalid, The keylen must be of integer type.",
    );
    let payload =
        json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_NOPE"});
    let (_, body) = post(
        url,
        "CreateKey",
        &Value::Object(envelope(&creds, Some(payload), &ts, Some("n9"))),
    )
    .await;
    assert_code(
        &body,
        400,
        "Parameter invalid, The keyusage type is incorrect.",
    );
    // Unknown action with a valid signature; a GET of a signed action.
    let (_, body) = post(
        url,
        "NoSuchAction",
        &Value::Object(envelope(&creds, None, &ts, Some("n10"))),
    )
    .await;
    assert_code(&body, 404, "API Not Found");
    let (_, body) = post(url, "GetVersion", &json!({})).await;
    assert_code(&body, 404, "API Not Found");
}

#[tokio::test(flavor = "multi_thread")]
async fn transport_level_oddities() {
    let s = Server::start(&[]);
    let http = util::http();
    // Kubernetes probes: GET / answers HTTP 200.
    let r = http.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("x-request-id").is_some(),
        "every answer has a request id"
    );
    assert_code(&r.json().await.unwrap(), 400, "Missing required parameters");
    // Invalid JSON, wrong content type, oversized body.
    let r = http
        .post(format!("{}/ehsm?Action=ListKey", s.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_code(&r.json().await.unwrap(), 400, "Invalid JSON");
    let r = http
        .post(format!("{}/ehsm/?Action=ListKey", s.url))
        .body("appid=x")
        .send()
        .await
        .unwrap();
    assert_code(&r.json().await.unwrap(), 400, "Missing required parameters");
    let big = json!({"appid": "x".repeat(200 * 1024)});
    let r = http
        .post(format!("{}/ehsm?Action=ListKey", s.url))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    // Health, readiness and metrics.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let r = http.get(format!("{}{path}", s.url)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    let metrics = http
        .get(format!("{}/metrics", s.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ehsm_requests_total"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replays_are_refused_also_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let (_, creds) = s.enrolled().await;
    let body = Value::Object(envelope(&creds, None, &now_ms().to_string(), None));
    let (_, first) = post(&s.url, "ListKey", &body).await;
    assert_code(&first, 200, "successful");
    let (_, again) = post(&s.url, "ListKey", &body).await;
    assert_code(&again, 400, "Timestamp can't be repeated in 20 minutes");
    // The same request after a restart is still a replay.
    assert!(s.stop().success());
    let s = Server::start_in(dir.path(), &[]);
    let (_, after) = post(&s.url, "ListKey", &body).await;
    assert_code(&after, 400, "Timestamp can't be repeated in 20 minutes");
    // A fresh request works, and keys survive the restart.
    let r = call(&s.url, &creds, "ListKey", None).await;
    assert_code(&r, 200, "successful");
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let (c, creds) = s.enrolled().await;
    let k = c
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let ct = c.encrypt(&k, b"durable", None).await.unwrap();
    drop(s);
    let s = Server::start_in(dir.path(), &[]);
    let c = s.client().with_credentials(creds);
    assert_eq!(c.decrypt(&k, &ct, None).await.unwrap(), b"durable");
}

#[tokio::test(flavor = "multi_thread")]
async fn enrollment_modes() {
    // `off` refuses; `token` wants the token printed at first start.
    let s = Server::start(&["--enroll", "off"]);
    assert!(matches!(
        s.client().enroll().await,
        Err(Error::Api { code: 400, .. })
    ));
    let s = Server::start(&["--enroll", "token"]);
    assert!(matches!(
        s.client().enroll().await,
        Err(Error::Api { code: 400, .. })
    ));
    let log = s.log.lock().unwrap().clone();
    let line = log
        .lines()
        .find(|l| l.contains("enrollment token"))
        .expect("token line");
    let token = line.split_whitespace().last().unwrap().to_owned();
    let r = util::http()
        .get(format!("{}/ehsm?Action=Enroll", s.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    assert_code(&body, 200, "successful");
}
