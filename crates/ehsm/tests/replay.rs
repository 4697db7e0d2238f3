//! Replay protection end to end (issue 12, defects 1, 3, 4 and 7): a signed request is accepted
//! once whatever its spelling, cannot be sent to another action, is remembered across a crash,
//! and forged requests cost a victim nothing. Raw, hand-signed requests as upstream's clients
//! send them, and the SDK.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use ehsm_client::{KeySpec, KeyUsage, Origin, SecretOptions};
use serde_json::{Map, Value, json};
use util::{Server, assert_code, call, envelope, now_ms, post};

const REPLAY: &str = "Timestamp can't be repeated in 20 minutes";

/// `body` with `field` set to `value` (the `sign` unchanged).
fn respelled(body: &Map<String, Value>, field: &str, value: Value) -> Value {
    let mut b = body.clone();
    b.insert(field.into(), value);
    Value::Object(b)
}

async fn key_count(url: &str, creds: &ehsm_client::Credentials) -> usize {
    let r = call(url, creds, "ListKey", None).await;
    r["result"]["list"].as_array().unwrap().len()
}

/// Every spelling of "no nonce" that the canonical string drops, and every spelling of a nonce
/// that renders the same, signs the same: each is the same request, accepted once.
#[tokio::test(flavor = "multi_thread")]
async fn one_signed_request_is_accepted_once_whatever_its_spelling() {
    let s = Server::start(&[]);
    let (_, creds) = s.enrolled().await;
    let create = json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
        "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"});
    let body = envelope(&creds, Some(create.clone()), &now_ms().to_string(), None);
    let (_, first) = post(&s.url, "CreateKey", &Value::Object(body.clone())).await;
    assert_code(&first, 200, "success!");
    let empty_nonces = [
        json!(false),
        json!(0),
        json!(0.0),
        json!(-0.0),
        json!([]),
        json!([""]),
        json!([[]]),
        json!(""),
        json!(null),
    ];
    for nonce in empty_nonces {
        let (_, again) = post(&s.url, "CreateKey", &respelled(&body, "nonce", nonce)).await;
        assert_code(&again, 400, REPLAY);
    }
    assert_eq!(key_count(&s.url, &creds).await, 1, "one key made, not ten");

    // A string nonce and the numbers that render as it.
    let ts = now_ms().to_string();
    let body = envelope(&creds, Some(create), &ts, Some("123456789"));
    let (_, first) = post(&s.url, "CreateKey", &Value::Object(body.clone())).await;
    assert_code(&first, 200, "success!");
    for nonce in [
        json!(123_456_789),
        json!(123_456_789.0),
        json!(["123456789"]),
    ] {
        let (_, again) = post(&s.url, "CreateKey", &respelled(&body, "nonce", nonce)).await;
        assert_code(&again, 400, REPLAY);
    }
    assert_eq!(key_count(&s.url, &creds).await, 2);

    // The payload moved into the nonce: `nonce=n&payload=keyid=K` is the same signed string.
    let keyid = s
        .client()
        .with_credentials(creds.clone())
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let body = envelope(
        &creds,
        Some(json!({ "keyid": keyid })),
        &now_ms().to_string(),
        Some("n"),
    );
    let (_, first) = post(&s.url, "DisableKey", &Value::Object(body.clone())).await;
    assert_code(&first, 200, "successful");
    let mut moved = body.clone();
    moved.remove("payload");
    moved.insert("nonce".into(), json!(format!("n&payload=keyid={keyid}")));
    let (_, again) = post(&s.url, "DisableKey", &Value::Object(moved)).await;
    assert_code(&again, 400, REPLAY);
}

/// Upstream signs no action (`?Action=` is outside the signature). A captured request is
/// refused by another action: as a replay once the original was accepted, by its payload when
/// the other action takes other fields, and by ehsm's signed `action` when the client sent it.
#[tokio::test(flavor = "multi_thread")]
async fn a_captured_request_cannot_be_sent_to_another_action() {
    let s = Server::start(&[]);
    let (c, creds) = s.enrolled().await;
    let keyid = c
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let encrypt = json!({"keyid": keyid, "plaintext": util::b64(b"attack at dawn")});

    // Accepted as Encrypt, then re-sent (re-spelled) to DeleteKey: a replay.
    let body = envelope(&creds, Some(encrypt.clone()), &now_ms().to_string(), None);
    let (_, first) = post(&s.url, "Encrypt", &Value::Object(body.clone())).await;
    assert_code(&first, 200, "success!");
    let (_, deleted) = post(
        &s.url,
        "DeleteKey",
        &respelled(&body, "nonce", json!(false)),
    )
    .await;
    assert_code(&deleted, 400, REPLAY);

    // Sent to DeleteKey before it reached Encrypt (an interception): an Encrypt payload is not
    // a DeleteKey payload. Nothing was recorded, so the real request still goes through.
    let body = envelope(&creds, Some(encrypt), &now_ms().to_string(), Some("n1"));
    let (_, deleted) = post(&s.url, "DeleteKey", &Value::Object(body.clone())).await;
    assert_code(
        &deleted,
        400,
        "Parameter invalid, The plaintext is not a parameter of DeleteKey.",
    );
    let (_, encrypted) = post(&s.url, "Encrypt", &Value::Object(body)).await;
    assert_code(&encrypted, 200, "success!");

    // Same fields, other action (GetSecretValue → DeleteSecret): only the signed action tells
    // them apart.
    c.create_secret("db", "hunter2", &SecretOptions::default())
        .await
        .unwrap();
    let mut signed = Map::new();
    signed.insert("action".into(), json!("GetSecretValue"));
    signed.insert("appid".into(), json!(creds.appid));
    signed.insert("nonce".into(), json!("n2"));
    signed.insert("payload".into(), json!({"secretName": "db"}));
    signed.insert("timestamp".into(), json!(now_ms().to_string()));
    let sign = util::sign(&creds.apikey, &ehsm_proto::canon::signing_string(&signed));
    signed.insert("sign".into(), json!(sign));
    let (_, deleted) = post(&s.url, "DeleteSecret", &Value::Object(signed.clone())).await;
    assert_code(
        &deleted,
        400,
        "The signed action does not match the Action of the request",
    );
    let (_, read) = post(&s.url, "GetSecretValue", &Value::Object(signed)).await;
    assert_code(&read, 200, "successful");
    assert_eq!(read["result"]["secretData"], "hunter2");

    // A key still there, and the SDK (which always signs its action) works as before.
    let ct = c.encrypt(&keyid, b"still here", None).await.unwrap();
    assert_eq!(c.decrypt(&keyid, &ct, None).await.unwrap(), b"still here");
}

/// `--require-signed-action`: upstream-style requests (no `action`) are refused, with a message
/// that says what is missing; ehsm's SDK is served.
#[tokio::test(flavor = "multi_thread")]
async fn the_signed_action_can_be_required() {
    let s = Server::start(&["--require-signed-action"]);
    let (c, creds) = s.enrolled().await;
    let r = call(&s.url, &creds, "ListKey", None).await;
    assert_eq!(r["code"], 400, "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .contains("requires the signed action"),
        "{r}"
    );
    // An empty `action` is not signed (canon drops it), so it does not count.
    let mut body = envelope(&creds, None, &now_ms().to_string(), Some("n"));
    body.insert("action".into(), json!(""));
    let (_, r) = post(&s.url, "ListKey", &Value::Object(body)).await;
    assert_eq!(r["code"], 400, "{r}");
    assert!(c.list_keys().await.unwrap().is_empty());
}

/// Requests whose MAC does not check out are not recorded: a flood of forged requests with a
/// victim's appid and the timestamps it will use cannot lock the victim out.
#[tokio::test(flavor = "multi_thread")]
async fn forged_requests_record_nothing() {
    let s = Server::start(&[]);
    let (_, victim) = s.enrolled().await;
    let ts = (now_ms() + 5_000).to_string();
    let genuine = envelope(&victim, None, &ts, None);
    for i in 0..50 {
        let mut forged = genuine.clone();
        forged.insert(
            "sign".into(),
            json!(util::sign("not-the-key", &i.to_string())),
        );
        let (_, r) = post(&s.url, "ListKey", &Value::Object(forged)).await;
        assert_code(&r, 400, "sign error");
    }
    // The genuine request with the same appid, timestamp and (no) nonce is served.
    let (_, r) = post(&s.url, "ListKey", &Value::Object(genuine.clone())).await;
    assert_code(&r, 200, "successful");
    // The same forged request twice is a sign error twice, not a replay the second time.
    let mut forged = genuine;
    forged.insert("sign".into(), json!(util::sign("not-the-key", "again")));
    for _ in 0..2 {
        let (_, r) = post(&s.url, "ListKey", &Value::Object(forged.clone())).await;
        assert_code(&r, 400, "sign error");
    }
}

/// An answered request is durable before its answer: after a kill -9 straight after the answer,
/// the restarted server refuses it. Five rounds, each with a new request.
#[tokio::test(flavor = "multi_thread")]
async fn replays_are_refused_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start_in(dir.path(), &[]);
    let (_, creds) = s.enrolled().await;
    for round in 0..5 {
        let body = Value::Object(envelope(
            &creds,
            None,
            &now_ms().to_string(),
            Some(&format!("crash-{round}")),
        ));
        let (_, first) = post(&s.url, "ListKey", &body).await;
        assert_code(&first, 200, "successful");
        s.kill();
        s = Server::start_in(dir.path(), &[]);
        let (_, after) = post(&s.url, "ListKey", &body).await;
        assert_code(&after, 400, REPLAY);
    }
}

/// A NUL in any string of the body is a client mistake (400 with a message), before the
/// envelope checks too, and logs no error.
#[tokio::test(flavor = "multi_thread")]
async fn nul_characters_are_refused_with_a_400() {
    let s = Server::start(&[]);
    let (_, creds) = s.enrolled().await;
    let nul = "Parameter invalid, strings must not contain NUL characters.";
    let forged = json!({"appid": "a\u{0}b", "timestamp": now_ms().to_string(), "sign": "x"});
    let (status, r) = post(&s.url, "ListKey", &forged).await;
    assert_eq!(status, 200);
    assert_code(&r, 400, nul);
    for payload in [
        json!({"secretName": "a\u{0}", "secretData": "x"}),
        json!({"secretName": "a", "secretData": "x", "description": "\u{0}"}),
        json!({"secretName": "a", "secretData": "x", "nested": {"\u{0}": 1}}),
    ] {
        let r = call(&s.url, &creds, "CreateSecret", Some(payload)).await;
        assert_code(&r, 400, nul);
    }
    let policy =
        json!({"mr_enclave": format!("{}\u{0}", "a".repeat(63)), "mr_signer": "b".repeat(64)});
    let r = call(&s.url, &creds, "UploadQuotePolicy", Some(policy)).await;
    assert_code(&r, 400, nul);
    let r = call(&s.url, &creds, "ListSecrets", None).await;
    assert_eq!(r["result"]["totalCount"], 0, "{r}");
    assert!(!s.logged("ERROR"), "{}", s.log.lock().unwrap());
}
