//! Unit tests: envelope and signature construction, base64, answer decoding, and whole calls
//! against a tiny hand-written HTTP/1.1 server that captures each request.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_proto::Action;
use ehsm_proto::canon::signing_string;
use reqwest::StatusCode;
use serde_json::{Map, Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::client::{decode_envelope, endpoint};
use crate::*;

// Spec §3.6.
const APPID: &str = "b7c62e4d-c238-4016-b35f-47bc4b57dc03";
const APIKEY: &str = "D3nK2Vq90QrFkHGRZ3dBAyFEfPTtLfQy";
const KEYID: &str = "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef";

fn creds() -> Credentials {
    Credentials {
        appid: APPID.into(),
        apikey: APIKEY.into(),
    }
}

/// The sign the server would compute for `body` (which includes `sign`, ignored here).
fn expected_sign(body: &Map<String, Value>, apikey: &str) -> String {
    let mut unsigned = body.clone();
    unsigned.remove("sign");
    let key = hmac::Key::new(hmac::HMAC_SHA256, apikey.as_bytes());
    STANDARD.encode(hmac::sign(&key, signing_string(&unsigned).as_bytes()).as_ref())
}

// ---- envelope and signing ----

/// The envelope the SDK sends, parsed.
fn signed_body(
    credentials: &Credentials,
    timestamp: &str,
    nonce: &str,
    payload: Value,
) -> Map<String, Value> {
    let prepared = PreparedRequest::new(credentials, Action::Encrypt, payload);
    serde_json::from_slice(&prepared.signed_body(timestamp, nonce)).unwrap()
}

/// The envelope as the SDK built it before [`PreparedRequest`], and as spec §2.3 and §3 define
/// it: the whole body in a map, canonicalised at once. The prepared envelope must equal it.
fn reference_body(
    credentials: &Credentials,
    timestamp: &str,
    nonce: &str,
    payload: Value,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("action".into(), "Encrypt".into());
    body.insert("appid".into(), credentials.appid.clone().into());
    body.insert("timestamp".into(), timestamp.into());
    body.insert("nonce".into(), nonce.into());
    if !matches!(&payload, Value::Object(m) if m.is_empty()) {
        body.insert("payload".into(), payload);
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, credentials.apikey.as_bytes());
    let tag = hmac::sign(&key, signing_string(&body).as_bytes());
    body.insert("sign".into(), STANDARD.encode(tag.as_ref()).into());
    body
}

/// Payloads whose canon or JSON text has a trap: each rule of spec §3.1, JSON escapes, and
/// non-object payloads (which the server refuses, but which must still sign the same).
fn tricky_payloads() -> Vec<Value> {
    vec![
        json!({}),
        json!({"keyid": KEYID, "keylen": 16, "aad": ""}),
        json!({"secretName": "a b&c=d", "forceDelete": "true", "recoveryPeriod": 7}),
        json!({"b": true, "f": false, "z": 0, "e": [], "a": [1, 2], "n": {"y": 1, "x": "q"}, "s": " "}),
        json!({"q": "\"quoted\" \\ back\\slash", "c": "tab\t nl\n nul\u{0} del\u{7f}", "u": "é 漢 \u{1F600}"}),
        json!({"\u{E000}": 2, "\u{1F600}": 1, "k\"ey": "v", "": "empty key"}),
        json!({"x": 1.5e-7, "y": 1e21, "big": 9_007_199_254_740_993_u64, "neg": -0.0}),
        json!({"toString": {"toString": 1}, "arr": [[""], [null], {}]}),
        json!({"plaintext": STANDARD.encode([0xA5; 1024]), "keyid": KEYID}),
        json!({"nested": {}}),
        json!([]),
        json!([1, "a"]),
        json!(""),
        json!("text"),
        json!(null),
        json!(false),
    ]
}

#[test]
fn prepared_body_equals_the_reference_envelope() {
    let special = Credentials {
        appid: "app \"id\" & =\n".into(),
        apikey: "k".into(),
    };
    let no_appid = Credentials {
        appid: String::new(),
        apikey: APIKEY.into(),
    };
    for credentials in [creds(), special, no_appid] {
        for payload in tricky_payloads() {
            let prepared = PreparedRequest::new(&credentials, Action::Encrypt, payload.clone());
            for (timestamp, nonce) in [
                ("1700000000000", "1234567890"),
                ("1700000000000", ""),
                ("", "n"),
                ("1700000000001", "a&b=c \"\\\u{1}é"),
            ] {
                let want = reference_body(&credentials, timestamp, nonce, payload.clone());
                let mut unsigned = want.clone();
                unsigned.remove("sign");
                let case = format!("{credentials:?} {payload} {timestamp:?} {nonce:?}");
                assert_eq!(
                    prepared.signing_string(timestamp, nonce),
                    signing_string(&unsigned),
                    "{case}"
                );
                let got: Map<String, Value> =
                    serde_json::from_slice(&prepared.signed_body(timestamp, nonce)).unwrap();
                assert_eq!(got, want, "{case}");
            }
        }
    }
}

#[test]
fn prepared_body_signs_each_send_afresh() {
    let payload = json!({"keyid": KEYID, "plaintext": "aGVsbG8="});
    let prepared = PreparedRequest::new(&creds(), Action::Encrypt, payload.clone());
    assert_eq!(prepared.action(), Action::Encrypt);
    assert!(!format!("{prepared:?}").contains(APIKEY));
    let bodies: Vec<Map<String, Value>> = (0..2)
        .map(|_| serde_json::from_slice(&prepared.signed_body_now()).unwrap())
        .collect();
    for body in &bodies {
        let timestamp = body["timestamp"].as_str().unwrap();
        assert!(
            timestamp.len() == 13 && timestamp.bytes().all(|b| b.is_ascii_digit()),
            "{timestamp}"
        );
        body["nonce"].as_str().unwrap().parse::<u64>().unwrap();
        assert_eq!(body["payload"], payload);
        assert_eq!(body["sign"], expected_sign(body, APIKEY));
    }
    assert_ne!(bodies[0]["nonce"], bodies[1]["nonce"]);
}

/// Spec §3.6's vector 3 with ehsm's signed `action` in front: the rest of the signing string is
/// upstream's, byte for byte.
#[test]
fn envelope_reproduces_spec_3_6_vector_3_after_the_signed_action() {
    // The vector's payload also has `aad: ""`, which the server skips; the SDK never sends it.
    let body = signed_body(
        &creds(),
        "1700000000000",
        "1234567890",
        json!({"keyid": KEYID, "keylen": 16}),
    );
    let mut unsigned = body.clone();
    unsigned.remove("sign");
    assert_eq!(
        signing_string(&unsigned),
        format!(
            "action=Encrypt&appid={APPID}&nonce=1234567890&payload=keyid={KEYID}&keylen=16&timestamp=1700000000000"
        )
    );
    assert_eq!(body["sign"], expected_sign(&body, APIKEY));
    // Without the action, the same request signs as the vector says.
    unsigned.remove("action");
    let key = hmac::Key::new(hmac::HMAC_SHA256, APIKEY.as_bytes());
    let upstream = hmac::sign(&key, signing_string(&unsigned).as_bytes());
    assert_eq!(
        STANDARD.encode(upstream.as_ref()),
        "IERyXzk6l/brqkiHLHtXTRUnIKlhiyFOqPyaITu+GKA="
    );
    let keys: Vec<&str> = body.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        ["action", "appid", "nonce", "payload", "sign", "timestamp"]
    );
    assert_eq!(
        body["payload"]["keylen"],
        json!(16),
        "keylen must be a JSON integer"
    );
}

#[test]
fn empty_payload_and_empty_aad_are_left_out() {
    let body = signed_body(&creds(), "1700000000000", "1", json!({}));
    assert!(!body.contains_key("payload"));
    let mut unsigned = body.clone();
    unsigned.remove("sign");
    assert_eq!(
        signing_string(&unsigned),
        format!("action=Encrypt&appid={APPID}&nonce=1&timestamp=1700000000000")
    );
    assert_eq!(body["sign"], expected_sign(&body, APIKEY));
}

#[test]
fn credentials_debug_redacts_the_apikey() {
    let shown = format!("{:?}", creds());
    assert!(shown.contains(APPID));
    assert!(!shown.contains(APIKEY));
    let key = DataKey {
        plaintext: vec![0xAB; 4],
        ciphertext: vec![1],
    };
    assert!(!format!("{key:?}").contains("171"));
}

// ---- configuration ----

#[test]
fn endpoint_appends_ehsm_once() {
    for (base, want) in [
        ("https://127.0.0.1:9000", "https://127.0.0.1:9000/ehsm"),
        ("https://127.0.0.1:9000/", "https://127.0.0.1:9000/ehsm"),
        ("https://127.0.0.1:9002/ehsm", "https://127.0.0.1:9002/ehsm"),
        (
            "https://127.0.0.1:9002/ehsm/",
            "https://127.0.0.1:9002/ehsm",
        ),
        ("http://proxy/kms", "http://proxy/kms/ehsm"),
    ] {
        assert_eq!(endpoint(base).unwrap().as_str(), want, "{base}");
    }
}

#[test]
fn builder_refuses_bad_configuration() {
    for base in [
        "not a url",
        "ftp://host/",
        "https://host/?Action=X",
        "https://host/#x",
    ] {
        assert!(
            matches!(Client::builder(base).build(), Err(Error::InvalidConfig(_))),
            "{base}"
        );
    }
    let empty = Client::builder("https://host")
        .credentials(APPID, "")
        .build();
    assert!(matches!(empty, Err(Error::InvalidConfig(_))));
}

#[tokio::test]
async fn signed_call_without_credentials_is_a_config_error() {
    // Nothing listens on this address: the error must come before any connection attempt.
    let client = Client::builder("http://127.0.0.1:9").build().unwrap();
    let err = client.list_keys().await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidConfig(m) if m.contains("ListKey")),
        "{err}"
    );
}

// ---- answers ----

#[test]
fn answers_decode_by_fault() {
    let decode = |status: u16, body: &str| {
        decode_envelope(
            Action::Encrypt,
            StatusCode::from_u16(status).unwrap(),
            body.as_bytes(),
        )
    };
    let ok = decode(
        200,
        r#"{"code":200,"message":"success!","result":{"ciphertext":"AAEC"}}"#,
    )
    .unwrap();
    assert_eq!(ok.bytes("ciphertext").unwrap(), [0, 1, 2]);

    let err = decode(200, r#"{"code":400,"message":"keyid error","result":{}}"#).unwrap_err();
    assert!(matches!(&err, Error::Api { code: 400, message } if message == "keyid error"));
    assert_eq!(err.to_string(), "ehsm answered 400: keyid error");
    // Upstream's unknown-appid answer has no message; enclave errors have a null result.
    let err = decode(200, r#"{"code":400,"result":{}}"#).unwrap_err();
    assert!(matches!(&err, Error::Api { code: 400, message } if message.is_empty()));
    let err = decode(
        200,
        r#"{"code":500,"message":"Server exception.","result":null}"#,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Api { code: 500, .. }));

    for (status, body) in [
        (200, "<html>hi</html>"),
        (200, r#"{"message":"no code"}"#),
        (200, "[1]"),
        (500, ""),
    ] {
        assert!(
            matches!(decode(status, body), Err(Error::Decode(_))),
            "{status} {body}"
        );
    }
}

#[test]
fn check_reply_reads_answers_as_decode_envelope_does() {
    let answers = [
        (
            200,
            r#"{"code":200,"message":"success!","result":{"ciphertext":"AAEC"}}"#,
        ),
        (200, r#" {"code":200}"#),
        (200, r#"{"code":400,"message":"keyid error","result":{}}"#),
        (200, r#"{"code":400,"result":{}}"#),
        (200, r#"{"code":400,"message":null}"#),
        (200, r#"{"code":400,"message":["odd"]}"#),
        (
            200,
            r#"{"code":500,"message":"Server exception.","result":null}"#,
        ),
        (200, r#"{"code":200.0,"result":{}}"#),
        (200, r#"{"code":"200","result":{}}"#),
        (200, r#"{"code":200,"result":{"a":"#),
        (200, r#"{"message":"no code"}"#),
        (200, "[200]"),
        (200, "<html>hi</html>"),
        (200, ""),
        (500, r#"{"code":200,"result":{}}"#),
    ];
    for (status, body) in answers {
        let status = StatusCode::from_u16(status).unwrap();
        let full = decode_envelope(Action::Encrypt, status, body.as_bytes());
        let cheap = check_reply(Action::Encrypt, status, body.as_bytes());
        match (full, cheap) {
            (Ok(_), Ok(())) => {}
            (
                Err(Error::Api { code, message }),
                Err(Error::Api {
                    code: cheap_code,
                    message: cheap_message,
                }),
            ) => assert_eq!((code, message), (cheap_code, cheap_message), "{body}"),
            (Err(Error::Decode(full)), Err(Error::Decode(cheap))) => {
                assert_eq!(full, cheap, "{body}");
            }
            (full, cheap) => panic!("{body}: {full:?} but {cheap:?}"),
        }
    }
}

#[test]
fn result_fields_are_typed_and_base64_is_checked() {
    let reply = decode_envelope(
        Action::Verify,
        StatusCode::OK,
        br#"{"code":200,"message":"success!","result":{"result":true,"b":"aGk=","n":3,"bad":"a?=="}}"#,
    )
    .unwrap();
    assert!(reply.bool("result").unwrap());
    assert_eq!(reply.bytes("b").unwrap(), b"hi");
    for err in [reply.bytes("bad"), reply.bytes("n"), reply.bytes("missing")] {
        let err = err.unwrap_err();
        assert!(
            matches!(&err, Error::Decode(m) if m.starts_with("Verify: result.")),
            "{err}"
        );
    }
    assert!(matches!(reply.string("n"), Err(Error::Decode(_))));
    assert!(matches!(reply.bool("b"), Err(Error::Decode(_))));
    assert_eq!(crate::client::b64(b"\xff\xfe\x00"), "//4A");
}

// ---- whole calls against a fake server ----

/// One request as the fake server saw it.
#[derive(Debug)]
struct Seen {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Map<String, Value> {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A server that answers each connection's one request with the next `(status line, body)` and
/// hands back what it received. `connection: close` makes reqwest open a new connection per call.
async fn fake_server(answers: Vec<(&'static str, String)>) -> (String, JoinHandle<Vec<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut seen = Vec::new();
        for (status, reply) in answers {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let head_end = loop {
                read_more(&mut socket, &mut buf).await;
                if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break i;
                }
            };
            let head = String::from_utf8(buf[..head_end].to_vec()).unwrap();
            let mut lines = head.split("\r\n");
            let mut request_line = lines.next().unwrap().split(' ');
            let (method, target) = (request_line.next().unwrap(), request_line.next().unwrap());
            let headers: Vec<(String, String)> = lines
                .map(|l| {
                    let (n, v) = l.split_once(':').unwrap();
                    (n.trim().to_ascii_lowercase(), v.trim().to_owned())
                })
                .collect();
            let len = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| v.parse().unwrap());
            while buf.len() < head_end + 4 + len {
                read_more(&mut socket, &mut buf).await;
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{reply}",
                reply.len()
            );
            socket.write_all(answer.as_bytes()).await.unwrap();
            socket.shutdown().await.unwrap();
            let body = buf[head_end + 4..].to_vec();
            seen.push(Seen {
                method: method.into(),
                target: target.into(),
                headers,
                body,
            });
        }
        seen
    });
    (url, task)
}

async fn read_more(socket: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 4096];
    let n = socket.read(&mut chunk).await.unwrap();
    assert!(n > 0, "the client closed the connection mid-request");
    buf.extend_from_slice(&chunk[..n]);
}

fn ok(result: Value) -> (&'static str, String) {
    (
        "200 OK",
        json!({"code": 200, "message": "success!", "result": result}).to_string(),
    )
}

fn client(url: &str) -> Client {
    Client::builder(url)
        .credentials(APPID, APIKEY)
        .build()
        .unwrap()
}

/// Checks what every signed request must look like, and returns its payload.
fn assert_signed_post(seen: &Seen, action: &str) -> Value {
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, format!("/ehsm?Action={action}"));
    assert_eq!(seen.header("content-type"), Some("application/json"));
    let body = seen.json();
    assert_eq!(body["appid"], APPID);
    let timestamp = body["timestamp"].as_str().unwrap();
    assert!(
        timestamp.len() == 13 && timestamp.bytes().all(|b| b.is_ascii_digit()),
        "{timestamp}"
    );
    body["nonce"].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(
        body["sign"],
        expected_sign(&body, APIKEY),
        "sign must verify under the apikey"
    );
    body.get("payload").cloned().unwrap_or(Value::Null)
}

#[tokio::test]
async fn signed_calls_send_the_spec_envelope_and_payloads() {
    let (url, server) = fake_server(vec![
        ok(json!({"ciphertext": STANDARD.encode(b"sealed")})),
        ok(json!({"plaintext": STANDARD.encode([7u8; 16]), "ciphertext": STANDARD.encode(b"wrapped")})),
        ok(json!({"newdatakey": STANDARD.encode(b"new")})),
        ok(json!({"result": true})),
        ok(json!({"result": true})),
        ok(json!({})),
    ])
    .await;
    let c = client(&url);
    assert_eq!(
        c.encrypt(KEYID, b"hello", Some(b"ctx")).await.unwrap(),
        b"sealed"
    );
    let dk = c.generate_data_key(KEYID, 16, None).await.unwrap();
    assert_eq!(
        (dk.plaintext, dk.ciphertext),
        (vec![7u8; 16], b"wrapped".to_vec())
    );
    assert_eq!(
        c.export_data_key(KEYID, "u", b"old", Some(b""))
            .await
            .unwrap(),
        b"new"
    );
    let verified = c
        .verify(
            KEYID,
            DigestMode::Sha256,
            PaddingMode::RsaPkcs1Pss,
            MessageType::Raw,
            b"m",
            b"s",
        )
        .await
        .unwrap();
    assert!(verified);
    c.import_key_material(KEYID, PaddingMode::RsaPkcs1Oaep, b"wrapped", "token")
        .await
        .unwrap();
    c.list_keys().await.unwrap_err(); // `{}` has no `list`: checked in its own test below.

    let seen = server.await.unwrap();
    let payloads: Vec<Value> = seen
        .iter()
        .zip([
            "Encrypt",
            "GenerateDataKey",
            "ExportDataKey",
            "Verify",
            "ImportKeyMaterial",
            "ListKey",
        ])
        .map(|(s, action)| assert_signed_post(s, action))
        .collect();
    assert_eq!(
        payloads[0],
        json!({"keyid": KEYID, "plaintext": "aGVsbG8=", "aad": "Y3R4"})
    );
    // Vector 3's payload: keylen is an integer, and no aad is sent when none is given.
    assert_eq!(payloads[1], json!({"keyid": KEYID, "keylen": 16}));
    // An empty aad is left out too, and the old data key goes in `olddatakey_base`.
    assert_eq!(
        payloads[2],
        json!({"keyid": KEYID, "ukeyid": "u", "olddatakey_base": "b2xk"})
    );
    assert_eq!(
        payloads[3],
        json!({"keyid": KEYID, "message": "bQ==", "signature": "cw==", "message_type": "EH_RAW",
               "digest_mode": "EH_SHA_256", "padding_mode": "EH_RSA_PKCS1_PSS"})
    );
    assert_eq!(
        payloads[4],
        json!({"keyid": KEYID, "padding_mode": "EH_RSA_PKCS1_OAEP", "key_material": "d3JhcHBlZA==",
               "importToken": "token"})
    );
    // ListKey asks for a page (upstream's server ignores the field and answers everything).
    assert_eq!(payloads[5], json!({"limit": 1000}));
    // Fresh nonces: two requests in the same millisecond must not look like replays.
    let nonces: std::collections::HashSet<String> =
        seen.iter().map(|s| s.json()["nonce"].to_string()).collect();
    assert_eq!(nonces.len(), seen.len());
}

#[tokio::test]
async fn results_decode_into_sdk_types() {
    let key = |id: &str, spec: &str, state: i64| {
        json!({"keyid": id, "creationDate": 1_700_000_000_000_i64, "expireTime": 1_731_536_000_000_i64,
               "alias": "", "keyspec": spec, "keyState": state})
    };
    let (url, server) = fake_server(vec![
        ok(json!({"list": [key(KEYID, "EH_RSA_3072", 1), key("k2", "EH_SM4_CBC", 0)]})),
        ok(json!({"pubkey": "-----BEGIN RSA PUBLIC KEY-----\n", "importToken": "t"})),
        ok(json!({"keyid": KEYID})),
        ok(json!({"mac": STANDARD.encode([9u8; 32])})),
        ok(json!({"result": false})),
        (
            "200 OK",
            json!({"code": 200, "message": "successful", "result": {}}).to_string(),
        ),
        ok(json!({"list": [key("k3", "EH_NOT_A_SPEC", 1)]})),
        ok(json!({"result": false})),
    ])
    .await;
    let c = client(&url);
    let keys = c.list_keys().await.unwrap();
    assert_eq!(keys.len(), 2);
    assert_eq!(
        keys[0],
        KeyInfo {
            keyid: KEYID.into(),
            creation_date: 1_700_000_000_000,
            expire_time: 1_731_536_000_000,
            alias: String::new(),
            keyspec: KeySpec::Rsa3072,
            key_state: 1,
        }
    );
    assert!(keys[0].is_enabled() && !keys[1].is_enabled());
    let params = c
        .get_parameters_for_import(KEYID, KeySpec::Rsa2048)
        .await
        .unwrap();
    assert_eq!(
        (params.pubkey_pem.as_str(), params.import_token.as_str()),
        ("-----BEGIN RSA PUBLIC KEY-----\n", "t")
    );
    let keyid = c
        .create_key(KeySpec::Hmac, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    assert_eq!(keyid, KEYID);
    assert_eq!(c.generate_mac(KEYID, b"m").await.unwrap(), [9u8; 32]);
    assert!(!c.verify_mac(KEYID, b"m", &[9u8; 32]).await.unwrap());
    c.delete_all_keys().await.unwrap();
    assert!(matches!(c.list_keys().await, Err(Error::Decode(m)) if m.contains("EH_NOT_A_SPEC")));
    let refused = c
        .import_key_material(KEYID, PaddingMode::RsaPkcs1, b"w", "t")
        .await;
    assert!(matches!(refused, Err(Error::Decode(_))));

    let seen = server.await.unwrap();
    let payloads: Vec<Value> = seen
        .iter()
        .zip([
            "ListKey",
            "GetParametersForImport",
            "CreateKey",
            "GenerateMac",
            "VerifyMac",
            "DeleteAllKey",
            "ListKey",
            "ImportKeyMaterial",
        ])
        .map(|(s, action)| assert_signed_post(s, action))
        .collect();
    assert_eq!(
        payloads[1],
        json!({"keyid": KEYID, "keyspec": "EH_RSA_2048"})
    );
    assert_eq!(
        payloads[2],
        json!({"keyspec": "EH_HMAC", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_SIGN_VERIFY"})
    );
    assert_eq!(payloads[3], json!({"keyid": KEYID, "message": "bQ=="}));
    assert_eq!(
        payloads[4],
        json!({"keyid": KEYID, "message": "bQ==", "mac": STANDARD.encode([9u8; 32])})
    );
    assert_eq!(payloads[5], Value::Null);
}

#[tokio::test]
async fn list_keys_pages_through_and_stops_at_a_marker_that_does_not_advance() {
    let key = |id: &str| {
        json!({"keyid": id, "creationDate": 1, "expireTime": 2, "alias": "",
               "keyspec": "EH_AES_GCM_128", "keyState": 1})
    };
    let (url, server) = fake_server(vec![
        ok(json!({"list": [key("a"), key("b")], "nextMarker": "b"})),
        ok(json!({"list": [key("c")], "nextMarker": "c"})),
        ok(json!({"list": [key("d")]})),
        ok(json!({"list": [key("x")], "nextMarker": "x"})),
        ok(json!({"list": [], "nextMarker": "x"})),
    ])
    .await;
    let c = client(&url);
    let ids: Vec<String> = c
        .list_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.keyid)
        .collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    // A server that answers the same marker again would be asked forever: refused.
    let err = c.list_keys().await.unwrap_err();
    assert!(
        matches!(&err, Error::Decode(m) if m.contains("does not follow")),
        "{err:?}"
    );

    let seen = server.await.unwrap();
    let payloads: Vec<Value> = seen
        .iter()
        .map(|s| assert_signed_post(s, "ListKey"))
        .collect();
    assert_eq!(
        payloads,
        [
            json!({"limit": 1000}),
            json!({"limit": 1000, "marker": "b"}),
            json!({"limit": 1000, "marker": "c"}),
            json!({"limit": 1000}),
            json!({"limit": 1000, "marker": "x"}),
        ]
    );
}

#[tokio::test]
async fn secret_calls_send_upstreams_fields_and_decode_empty_answers() {
    let value = json!({"secretName": "db", "secretData": "pw", "versionId": 3, "createTime": 5});
    let (url, server) = fake_server(vec![
        ok(json!({})),
        ok(json!({})),
        ok(value),
        ok(json!({})),
        ok(json!({"secretName": "db", "totalCount": 2,
                  "versionIds": [{"versionId": 1, "createTime": 1}, {"versionId": 2, "createTime": 2}]})),
        ok(json!({"totalCount": 1, "secretList": [{"secretName": "db", "createTime": 1, "plannedDeleteTime": 9}]})),
        ok(json!({"secretName": "db", "createTime": 1, "rotationInterval": "1d",
                  "lastRotationDate": "", "nextRotationDate": 86_400_001_i64})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({})),
    ])
    .await;
    let c = client(&url);
    let options = SecretOptions {
        encryption_keyid: Some(KEYID.into()),
        description: None,
        rotation_interval: Some("30d".into()),
    };
    c.create_secret("db", "pw", &options).await.unwrap();
    c.put_secret_value("db", "pw2").await.unwrap();
    let got = c.get_secret_value("db", Some(3)).await.unwrap().unwrap();
    assert_eq!(
        (got.value.as_str(), got.version_id, got.create_time),
        ("pw", 3, 5)
    );
    assert!(!format!("{got:?}").contains("pw"), "Debug hides the value");
    assert!(
        c.get_secret_value("db", None).await.unwrap().is_none(),
        "{{}}: no such version"
    );
    let versions = c.list_secret_versions("db").await.unwrap();
    assert_eq!(
        versions[1],
        SecretVersionInfo {
            version_id: 2,
            create_time: 2
        }
    );
    let list = c.list_secrets(None).await.unwrap();
    assert_eq!(
        (list[0].name.as_str(), list[0].planned_delete_time),
        ("db", Some(9))
    );
    let info = c.describe_secret("db").await.unwrap().unwrap();
    assert_eq!(info.next_rotation_date, Some(86_400_001));
    assert!(
        c.describe_secret("db").await.unwrap().is_none(),
        "{{}}: no such secret"
    );
    c.update_secret_description("db", None).await.unwrap();
    c.delete_secret("db", Some(7)).await.unwrap();
    c.force_delete_secret("db").await.unwrap();
    c.restore_secret("db").await.unwrap();

    let seen = server.await.unwrap();
    let payloads: Vec<Value> = seen
        .iter()
        .zip([
            "CreateSecret",
            "PutSecretValue",
            "GetSecretValue",
            "GetSecretValue",
            "ListSecretVersionIds",
            "ListSecrets",
            "DescribeSecret",
            "DescribeSecret",
            "UpdateSecretDesc",
            "DeleteSecret",
            "DeleteSecret",
            "RestoreSecret",
        ])
        .map(|(s, action)| assert_signed_post(s, action))
        .collect();
    assert_eq!(
        payloads[0],
        json!({"secretName": "db", "secretData": "pw", "encryptionKeyId": KEYID, "rotationInterval": "30d"})
    );
    assert_eq!(
        payloads[1],
        json!({"secretName": "db", "secretData": "pw2"})
    );
    assert_eq!(payloads[2], json!({"secretName": "db", "versionId": 3}));
    assert_eq!(payloads[3], json!({"secretName": "db"}));
    assert_eq!(payloads[5], Value::Null, "no filter: no payload");
    assert_eq!(
        payloads[8],
        json!({"secretName": "db"}),
        "no description: removed"
    );
    assert_eq!(
        payloads[9],
        json!({"secretName": "db", "recoveryPeriod": 7})
    );
    assert_eq!(
        payloads[10],
        json!({"secretName": "db", "forceDelete": "true"})
    );
}

#[tokio::test]
async fn enroll_and_get_version_are_unsigned_gets() {
    let (url, server) = fake_server(vec![
        ("200 OK", json!({"code": 200, "message": "successful", "result": {"appid": APPID, "apikey": APIKEY}}).to_string()),
        ok(json!({"version": "0.3.2", "git_sha": "3454cac"})),
    ])
    .await;
    // Trailing `/ehsm/` as in upstream's docs: not doubled.
    let c = Client::builder(format!("{url}/ehsm/")).build().unwrap();
    assert_eq!(c.enroll().await.unwrap(), creds());
    assert_eq!(
        c.get_version().await.unwrap(),
        Version {
            version: "0.3.2".into(),
            git_sha: "3454cac".into()
        }
    );
    let seen = server.await.unwrap();
    for (s, action) in seen.iter().zip(["Enroll", "GetVersion"]) {
        assert_eq!(
            (s.method.as_str(), s.target.as_str()),
            ("GET", format!("/ehsm?Action={action}").as_str())
        );
        assert!(s.body.is_empty());
    }
}

#[tokio::test]
async fn enroll_with_token_sends_a_bearer_header() {
    let enrolled = || {
        (
            "200 OK",
            json!({"code": 200, "message": "successful", "result": {"appid": APPID, "apikey": APIKEY}})
                .to_string(),
        )
    };
    let (url, server) = fake_server(vec![enrolled(), enrolled()]).await;
    let c = Client::builder(&url).build().unwrap();
    assert_eq!(
        c.enroll_with_token("ehsm-enroll-0123").await.unwrap(),
        creds()
    );
    assert_eq!(c.enroll().await.unwrap(), creds());
    let seen = server.await.unwrap();
    assert_eq!(
        (seen[0].method.as_str(), seen[0].target.as_str()),
        ("GET", "/ehsm?Action=Enroll")
    );
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer ehsm-enroll-0123")
    );
    assert!(seen[0].body.is_empty());
    assert_eq!(
        seen[1].header("authorization"),
        None,
        "plain enroll sends no token"
    );
}

/// A self-signed P-256 certificate for `localhost` (openssl req -x509), only parsed here; the
/// handshake against ehsm's own certificate is tested with the real server in
/// `crates/ehsm/tests/sdk.rs`.
const CERT_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBlTCCATugAwIBAgIUI6lnQ6ltHP2JyNu+v307NXhOxXAwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJZWhzbS10ZXN0MCAXDTI2MTEyOTAzMTExOFoYDzIxMjYxMTA1
MDMxMTE4WjAUMRIwEAYDVQQDDAllaHNtLXRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAQC2C70z4mpLRC3U+pxoSIMyEnktq3vAtuGBJoSgF1kPsg0qXBk8sc0
oHgg43o1zuh3t1muBdWuUBymJ3YIm4uoo2kwZzAdBgNVHQ4EFgQU6IXJyaACnBn2
YU1FMK4pdsKzBr8wHwYDVR0jBBgwFoAU6IXJyaACnBn2YU1FMK4pdsKzBr8wDwYD
VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID
SAAwRQIhAM0lN8b5lM/MXoozc+sCe9imi7eTujCdzDUDvT59+YxqAiBKds57sEzN
3Ox9p13riSiiDPUf+SSN6d40E/J47WJbIA==
-----END CERTIFICATE-----
";

#[test]
fn ca_certificate_takes_pem_certificates_only() {
    let builder = || Client::builder("https://127.0.0.1:9000");
    builder()
        .ca_certificate(CERT_PEM.as_bytes())
        .build()
        .unwrap();
    let bundle = format!("{CERT_PEM}{CERT_PEM}");
    builder().ca_certificate(bundle.as_bytes()).build().unwrap();
    for bad in [
        &b""[..],
        b"not a certificate",
        b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
    ] {
        let err = builder().ca_certificate(bad).build().unwrap_err();
        assert!(
            matches!(&err, Error::InvalidConfig(m) if m.contains("CA certificate")),
            "{err}"
        );
    }
}

#[tokio::test]
async fn error_answers_become_typed_errors() {
    let (url, server) = fake_server(vec![
        (
            "200 OK",
            r#"{"code":400,"message":"keyid error","result":{}}"#.into(),
        ),
        ("200 OK", r#"{"code":400,"result":{}}"#.into()),
        (
            "200 OK",
            r#"{"code":404,"message":"API Not Found","result":{}}"#.into(),
        ),
        ("200 OK", "this is not json".into()),
        (
            "500 Internal Server Error",
            r#"{"code":500,"message":"x","result":{}}"#.into(),
        ),
        ("413 Payload Too Large", "<html>too large</html>".into()),
    ])
    .await;
    // GET actions: the answer path is the same as for signed calls, and needs no signature.
    let c = Client::builder(&url).build().unwrap();
    let errors = [
        c.get_version().await.unwrap_err(),
        c.enroll().await.unwrap_err(),
        c.get_version().await.unwrap_err(),
        c.get_version().await.unwrap_err(),
        c.get_version().await.unwrap_err(),
        c.enroll().await.unwrap_err(),
    ];
    server.await.unwrap();
    assert!(matches!(&errors[0], Error::Api { code: 400, message } if message == "keyid error"));
    assert_eq!(errors[0].to_string(), "ehsm answered 400: keyid error");
    assert!(matches!(&errors[1], Error::Api { code: 400, message } if message.is_empty()));
    assert!(matches!(&errors[2], Error::Api { code: 404, message } if message == "API Not Found"));
    assert!(
        matches!(&errors[3], Error::Decode(m) if m.contains("not an ehsm") && m.contains("this is not json"))
    );
    assert!(
        matches!(&errors[4], Error::Decode(m) if m.contains("500")),
        "{}",
        errors[4]
    );
    assert!(matches!(&errors[5], Error::Decode(m) if m.contains("413") && m.contains("Enroll")));
}

#[tokio::test]
async fn unreachable_server_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let err = Client::builder(url)
        .build()
        .unwrap()
        .get_version()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Transport(_)));
    assert!(std::error::Error::source(&err).is_some());
}

// ---- key lifecycle and versions (ehsm extensions) ----

#[tokio::test]
async fn lifecycle_calls_send_ehsm_fields_and_decode_results() {
    let described = json!({
        "keyid": KEYID, "keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
        "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT", "keyState": 0, "creationDate": 10,
        "expireTime": 20, "primaryVersion": 2, "aliases": ["alias/a", "alias/b"],
        "rotation": {"enable": true, "rotationInterval": 30, "nextRotationDate": 40},
        "deletionDate": 50, "description": "orders"});
    let (url, server) = fake_server(vec![
        ok(json!({"keyid": KEYID})),
        ok(json!({"keyid": KEYID})),
        ok(json!({"keyid": KEYID, "keyversion": 2})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({"keyid": KEYID, "primaryVersion": 2,
                  "versions": [{"keyversion": 1, "creationDate": 1}, {"keyversion": 2, "creationDate": 2}]})),
        ok(described),
        ok(json!({"ciphertext": STANDARD.encode(b"moved"), "keyid": "k2", "keyversion": 3})),
        ok(json!({"ciphertext": STANDARD.encode(b"same"), "keyid": KEYID, "keyversion": 2})),
        ok(json!({"deletionDate": 1_700_000_000_000_i64})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({})),
        ok(json!({"aliases": [{"alias": "alias/a", "keyid": KEYID}]})),
        ok(json!({"aliases": []})),
    ])
    .await;
    let c = client(&url);
    let options = KeyOptions {
        rotation_interval_days: Some(90),
        description: Some("orders".into()),
    };
    let spec = (
        KeySpec::AesGcm256,
        Origin::Internal,
        KeyUsage::EncryptDecrypt,
    );
    let keyid = c
        .create_key_with_options(spec.0, spec.1, spec.2, &options)
        .await
        .unwrap();
    assert_eq!(keyid, KEYID);
    c.create_key_with_options(spec.0, spec.1, spec.2, &KeyOptions::default())
        .await
        .unwrap();
    assert_eq!(
        c.rotate_key("alias/a").await.unwrap(),
        RotatedKey {
            keyid: KEYID.into(),
            version: 2
        }
    );
    c.update_rotation_policy(KEYID, true, Some(30))
        .await
        .unwrap();
    c.update_rotation_policy(KEYID, false, None).await.unwrap();
    let versions = c.list_key_versions(KEYID).await.unwrap();
    assert_eq!(versions.primary_version, 2);
    assert_eq!(
        versions.versions[1],
        KeyVersionInfo {
            version: 2,
            creation_date: 2
        }
    );
    let d = c.describe_key(KEYID).await.unwrap();
    assert_eq!(
        d,
        KeyDescription {
            keyid: KEYID.into(),
            keyspec: KeySpec::AesGcm256,
            origin: Origin::Internal,
            keyusage: KeyUsage::EncryptDecrypt,
            key_state: 0,
            creation_date: 10,
            expire_time: 20,
            primary_version: 2,
            aliases: vec!["alias/a".into(), "alias/b".into()],
            rotation: RotationPolicy {
                enabled: true,
                interval_days: Some(30),
                next_rotation_date: Some(40)
            },
            deletion_date: Some(50),
            description: Some("orders".into()),
        }
    );
    assert!(!d.is_enabled());
    let moved = c
        .reencrypt(KEYID, b"old", Some(b"a"), "alias/dst", Some(b"b"))
        .await
        .unwrap();
    assert_eq!(
        moved,
        ReEncrypted {
            ciphertext: b"moved".to_vec(),
            keyid: "k2".into(),
            version: 3
        }
    );
    c.reencrypt(KEYID, b"old", None, KEYID, Some(b""))
        .await
        .unwrap();
    assert_eq!(
        c.schedule_key_deletion(KEYID, Some(7)).await.unwrap(),
        1_700_000_000_000
    );
    c.cancel_key_deletion(KEYID).await.unwrap();
    c.create_alias("alias/a", KEYID).await.unwrap();
    c.update_alias("alias/a", "k2").await.unwrap();
    c.delete_alias("alias/a").await.unwrap();
    assert_eq!(
        c.list_aliases(None).await.unwrap(),
        [Alias {
            alias: "alias/a".into(),
            keyid: KEYID.into()
        }]
    );
    assert!(c.list_aliases(Some("alias/a")).await.unwrap().is_empty());

    let seen = server.await.unwrap();
    let payloads: Vec<Value> = seen
        .iter()
        .zip([
            "CreateKey",
            "CreateKey",
            "RotateKey",
            "UpdateRotationPolicy",
            "UpdateRotationPolicy",
            "ListKeyVersions",
            "DescribeKey",
            "ReEncrypt",
            "ReEncrypt",
            "ScheduleKeyDeletion",
            "CancelKeyDeletion",
            "CreateAlias",
            "UpdateAlias",
            "DeleteAlias",
            "ListAliases",
            "ListAliases",
        ])
        .map(|(s, action)| assert_signed_post(s, action))
        .collect();
    let plain_key = json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY",
                           "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"});
    let mut with_options = plain_key.clone();
    with_options["rotationInterval"] = json!(90);
    with_options["description"] = json!("orders");
    assert_eq!(payloads[0], with_options, "an integer interval in days");
    assert_eq!(
        payloads[1], plain_key,
        "default options: create_key's payload"
    );
    assert_eq!(payloads[2], json!({"keyid": "alias/a"}));
    assert_eq!(
        payloads[3],
        json!({"keyid": KEYID, "enable": true, "rotationInterval": 30})
    );
    assert_eq!(payloads[4], json!({"keyid": KEYID, "enable": false}));
    assert_eq!(payloads[6], json!({"keyid": KEYID}));
    assert_eq!(
        payloads[7],
        json!({"keyid": KEYID, "ciphertext": "b2xk", "aad": "YQ==",
               "destinationkeyid": "alias/dst", "destinationaad": "Yg=="})
    );
    assert_eq!(
        payloads[8],
        json!({"keyid": KEYID, "ciphertext": "b2xk", "destinationkeyid": KEYID}),
        "absent and empty aads are left out"
    );
    assert_eq!(
        payloads[9],
        json!({"keyid": KEYID, "pendingWindowInDays": 7})
    );
    assert_eq!(payloads[11], json!({"alias": "alias/a", "keyid": KEYID}));
    assert_eq!(payloads[12], json!({"alias": "alias/a", "keyid": "k2"}));
    assert_eq!(payloads[13], json!({"alias": "alias/a"}));
    assert_eq!(payloads[14], Value::Null, "no filter: no payload");
    assert_eq!(payloads[15], json!({"keyid": "alias/a"}));
}

#[tokio::test]
async fn versioned_calls_send_keyversion_and_read_the_version_used() {
    let sig = STANDARD.encode(b"sig");
    let (url, server) = fake_server(vec![
        ok(json!({"signature": sig, "keyversion": 2})),
        ok(json!({"signature": sig, "keyversion": 3})),
        ok(json!({"result": true, "keyversion": 1})),
        ok(json!({"result": false})),
        ok(json!({"ciphertext": STANDARD.encode(b"ct"), "keyversion": 3})),
        ok(json!({"plaintext": STANDARD.encode(b"pt"), "keyversion": 1})),
        ok(json!({"pubkey": "PEM", "keyid": KEYID, "keyversion": 2})),
        // Upstream's answers, without keyversion.
        ok(json!({"signature": sig})),
        ok(json!({"result": true})),
        ok(json!({"signature": sig})),
        ok(json!({"plaintext": STANDARD.encode(b"pt")})),
    ])
    .await;
    let c = client(&url);
    let modes = (DigestMode::Sha256, PaddingMode::None, MessageType::Raw);
    let signed = c
        .sign_versioned(KEYID, Some(2), modes.0, modes.1, modes.2, b"m")
        .await
        .unwrap();
    assert_eq!(
        signed,
        Versioned {
            value: b"sig".to_vec(),
            version: 2
        }
    );
    let signed = c
        .sign_versioned("alias/s", None, modes.0, modes.1, modes.2, b"m")
        .await
        .unwrap();
    assert_eq!(signed.version, 3);
    let verified = c
        .verify_versioned(KEYID, Some(1), modes.0, modes.1, modes.2, b"m", b"sig")
        .await
        .unwrap();
    assert_eq!(verified, Some(1));
    let verified = c
        .verify_versioned(KEYID, None, modes.0, modes.1, modes.2, b"m", b"bad")
        .await
        .unwrap();
    assert_eq!(verified, None, "an invalid signature has no version");
    let ct = c
        .asymmetric_encrypt_versioned(KEYID, None, PaddingMode::RsaPkcs1Oaep, b"pt")
        .await
        .unwrap();
    assert_eq!((ct.value.as_slice(), ct.version), (&b"ct"[..], 3));
    let pt = c
        .asymmetric_decrypt_versioned(KEYID, Some(1), PaddingMode::RsaPkcs1, b"ct")
        .await
        .unwrap();
    assert_eq!((pt.value.as_slice(), pt.version), (&b"pt"[..], 1));
    let pem = c.get_public_key_versioned(KEYID, Some(2)).await.unwrap();
    assert_eq!((pem.value.as_str(), pem.version), ("PEM", 2));
    // A versioned call needs the version in the answer; a match without one is no answer.
    for err in [
        c.sign_versioned(KEYID, None, modes.0, modes.1, modes.2, b"m")
            .await
            .unwrap_err(),
        c.verify_versioned(KEYID, None, modes.0, modes.1, modes.2, b"m", b"s")
            .await
            .unwrap_err(),
    ] {
        assert!(
            matches!(&err, Error::Decode(m) if m.contains("result.keyversion")),
            "{err}"
        );
    }
    // The plain methods still send upstream's payloads and ignore any version.
    c.sign(KEYID, modes.0, modes.1, modes.2, b"m")
        .await
        .unwrap();
    c.asymmetric_decrypt(KEYID, PaddingMode::RsaPkcs1Oaep, b"ct")
        .await
        .unwrap();

    let seen = server.await.unwrap();
    let payloads: Vec<Value> = seen
        .iter()
        .zip([
            "Sign",
            "Sign",
            "Verify",
            "Verify",
            "AsymmetricEncrypt",
            "AsymmetricDecrypt",
            "GetPublicKey",
            "Sign",
            "Verify",
            "Sign",
            "AsymmetricDecrypt",
        ])
        .map(|(s, action)| assert_signed_post(s, action))
        .collect();
    let sign = json!({"keyid": KEYID, "message": "bQ==", "message_type": "EH_RAW",
                      "digest_mode": "EH_SHA_256", "padding_mode": "EH_PAD_NONE"});
    let mut sign_v2 = sign.clone();
    sign_v2["keyversion"] = json!(2);
    assert_eq!(payloads[0], sign_v2);
    assert_eq!(payloads[1]["keyid"], "alias/s");
    assert!(
        payloads[1].get("keyversion").is_none(),
        "no version: none sent"
    );
    assert_eq!(payloads[2]["keyversion"], 1);
    assert_eq!(payloads[2]["signature"], "c2ln");
    assert!(payloads[3].get("keyversion").is_none());
    assert_eq!(
        payloads[4],
        json!({"keyid": KEYID, "plaintext": "cHQ=", "padding_mode": "EH_RSA_PKCS1_OAEP"})
    );
    assert_eq!(
        payloads[5],
        json!({"keyid": KEYID, "ciphertext": "Y3Q=", "padding_mode": "EH_RSA_PKCS1",
               "keyversion": 1})
    );
    assert_eq!(payloads[6], json!({"keyid": KEYID, "keyversion": 2}));
    assert_eq!(payloads[9], sign);
    assert_eq!(
        payloads[10],
        json!({"keyid": KEYID, "ciphertext": "Y3Q=", "padding_mode": "EH_RSA_PKCS1_OAEP"})
    );
}

#[tokio::test]
async fn describe_key_refuses_what_it_cannot_type() {
    let described = |spec: &str, usage: &str| {
        json!({"keyid": KEYID, "keyspec": spec, "origin": "EH_INTERNAL_KEY", "keyusage": usage,
               "keyState": 1, "creationDate": 1, "expireTime": 2, "primaryVersion": 1,
               "aliases": [], "rotation": {"enable": false, "rotationInterval": null,
               "nextRotationDate": null}, "deletionDate": null, "description": null})
    };
    let mut no_rotation = described("EH_HMAC", "EH_KEYUSAGE_SIGN_VERIFY");
    no_rotation.as_object_mut().unwrap().remove("rotation");
    let (url, server) = fake_server(vec![
        ok(described("EH_HMAC", "EH_KEYUSAGE_SIGN_VERIFY")),
        ok(described("EH_AES_XTS", "EH_KEYUSAGE_ENCRYPT_DECRYPT")),
        ok(described("EH_HMAC", "EH_KEYUSAGE_WRAP")),
        ok(no_rotation),
        ok(json!({"keyid": KEYID, "keyversion": -1})),
    ])
    .await;
    let c = client(&url);
    let d = c.describe_key(KEYID).await.unwrap();
    assert_eq!(
        (d.rotation, d.deletion_date, d.description),
        (
            RotationPolicy {
                enabled: false,
                interval_days: None,
                next_rotation_date: None
            },
            None,
            None
        ),
        "nulls are absent values"
    );
    for unknown in ["EH_AES_XTS", "EH_KEYUSAGE_WRAP"] {
        let err = c.describe_key(KEYID).await.unwrap_err();
        assert!(
            matches!(&err, Error::Decode(m) if m.starts_with("DescribeKey: unknown") && m.contains(unknown)),
            "{err}"
        );
    }
    assert!(matches!(
        c.describe_key(KEYID).await,
        Err(Error::Decode(m)) if m.contains("rotation")
    ));
    assert!(matches!(
        c.rotate_key(KEYID).await,
        Err(Error::Decode(m)) if m.contains("result.keyversion")
    ));
    server.await.unwrap();
}
