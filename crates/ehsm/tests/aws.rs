//! The AWS KMS API (`/aws`) end to end: a real `ehsm serve`, raw HTTP requests signed with
//! SigV4 by a small signer of this file (the access key id is an enrolled app's appid, the
//! secret access key its API key). Every served operation, AWS's refusals of bad input, and one
//! key used through both APIs. boto3 drives the same server in tests/python/test_aws.py.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod util;

use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::{digest, hmac};
use ehsm_client::Credentials;
use serde_json::{Value, json};
use util::{Server, b64, b64_decode, call};

const REGION: &str = "us-east-1";
const ACCOUNT: &str = "000000000000";

/// A client of one app on the AWS API.
struct Aws {
    /// `https://127.0.0.1:PORT`
    url: String,
    creds: Credentials,
}

/// An answer: HTTP status and body (JSON, or the text when it is not).
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    /// AWS's `__type`, for an error.
    fn kind(&self) -> &str {
        self.body["__type"].as_str().unwrap_or("")
    }

    fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or("")
    }
}

/// Hex of bytes, lower case, as SigV4 writes digests and signatures.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `YYYYMMDD'T'HHMMSS'Z'` of a time, as X-Amz-Date.
fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

/// The request headers, `Authorization` included, of a SigV4-signed POST to `path` (AWS's
/// algorithm: canonical request, string to sign, derived key, signature).
fn signed_headers(
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    (access_key_id, secret): (&str, &str),
    region: &str,
    when: SystemTime,
) -> Vec<(String, String)> {
    let date_time = amz_date(when);
    let date = &date_time[..8];
    let mut all: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
        .collect();
    all.push(("host".into(), host.into()));
    all.push(("x-amz-date".into(), date_time.clone()));
    all.sort();
    let names: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    let signed = names.join(";");
    let canonical_headers: String = all.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let canonical = format!(
        "POST\n{path}\n\n{canonical_headers}\n{signed}\n{}",
        hex(digest::digest(&digest::SHA256, body).as_ref())
    );
    let scope = format!("{date}/{region}/kms/aws4_request");
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date_time}\n{scope}\n{}",
        hex(digest::digest(&digest::SHA256, canonical.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "kms", "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    all.push((
        "authorization".into(),
        format!(
            "AWS4-HMAC-SHA256 Credential={access_key_id}/{scope}, SignedHeaders={signed}, \
             Signature={signature}"
        ),
    ));
    all.retain(|(k, _)| k != "host");
    all
}

impl Aws {
    fn new(server: &Server, creds: Credentials) -> Self {
        Self {
            url: server.url.clone(),
            creds,
        }
    }

    /// A signed request for `target` (`None`: no X-Amz-Target) with `body` as it is.
    /// The headers of a signed request for `target` (`None`: no X-Amz-Target). It signs a
    /// fresh `amz-sdk-invocation-id`, so that two identical calls in the same second are two
    /// requests, not a replay (botocore sends that header unsigned: docs/aws.md, replays).
    fn sign(&self, target: Option<&str>, content_type: &str, body: &[u8]) -> Vec<(String, String)> {
        self.sign_with(
            target,
            content_type,
            body,
            (&self.creds.appid, &self.creds.apikey),
            REGION,
            SystemTime::now(),
        )
    }

    fn sign_with(
        &self,
        target: Option<&str>,
        content_type: &str,
        body: &[u8],
        creds: (&str, &str),
        region: &str,
        when: SystemTime,
    ) -> Vec<(String, String)> {
        let host = self.url.trim_start_matches("https://");
        let target = target.map(|t| format!("TrentService.{t}"));
        let invocation = format!("{:016x}{:016x}", util::rand_u64(), util::rand_u64());
        let mut headers = vec![
            ("Content-Type", content_type),
            ("amz-sdk-invocation-id", invocation.as_str()),
        ];
        if let Some(t) = &target {
            headers.push(("X-Amz-Target", t));
        }
        signed_headers(host, "/aws/", &headers, body, creds, region, when)
    }

    /// Sends a request with these headers and body as they are.
    async fn send_signed(&self, headers: &[(String, String)], body: &[u8]) -> Answer {
        let mut request = util::http().post(format!("{}/aws/", self.url));
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let r = request.body(body.to_vec()).send().await.unwrap();
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        Answer {
            status,
            body: serde_json::from_str(&text).unwrap_or(Value::String(text)),
        }
    }

    /// A signed request for `target` with `body` as it is.
    async fn send(&self, target: Option<&str>, content_type: &str, body: &[u8]) -> Answer {
        self.send_signed(&self.sign(target, content_type, body), body)
            .await
    }

    async fn call(&self, op: &str, input: Value) -> Answer {
        let body = serde_json::to_vec(&input).unwrap();
        self.send(Some(op), "application/x-amz-json-1.1", &body)
            .await
    }

    /// The output of an operation that must succeed.
    async fn ok(&self, op: &str, input: Value) -> Value {
        let a = self.call(op, input).await;
        assert_eq!(a.status, 200, "{op}: {}", a.body);
        a.body
    }

    /// The refusal of an operation that must fail: (HTTP status, __type, message).
    async fn refused(&self, op: &str, input: Value) -> (u16, String, String) {
        let a = self.call(op, input).await;
        assert_ne!(a.status, 200, "{op} must fail: {}", a.body);
        (a.status, a.kind().to_owned(), a.message().to_owned())
    }

    /// Asserts the exception type (with HTTP 400) and returns the message.
    async fn error(&self, op: &str, input: Value, kind: &str) -> String {
        let (status, got, message) = self.refused(op, input).await;
        assert_eq!((status, got.as_str()), (400, kind), "{op}: {message}");
        message
    }

    async fn create(&self, input: Value) -> Value {
        self.ok("CreateKey", input).await["KeyMetadata"].clone()
    }

    async fn symmetric_key(&self) -> String {
        self.create(json!({})).await["KeyId"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

fn arn(keyid: &str) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{keyid}")
}

async fn app(server: &Server) -> Aws {
    let (_, creds) = server.enrolled().await;
    Aws::new(server, creds)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[tokio::test(flavor = "multi_thread")]
async fn create_describe_and_list_keys() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let m = aws.create(json!({"Description": "orders DB"})).await;
    let keyid = m["KeyId"].as_str().unwrap().to_owned();
    assert_eq!(m["Arn"], json!(arn(&keyid)));
    assert_eq!(m["AWSAccountId"], json!(ACCOUNT));
    for (field, value) in [
        ("KeySpec", "SYMMETRIC_DEFAULT"),
        ("CustomerMasterKeySpec", "SYMMETRIC_DEFAULT"),
        ("KeyUsage", "ENCRYPT_DECRYPT"),
        ("KeyState", "Enabled"),
        ("Origin", "AWS_KMS"),
        ("KeyManager", "CUSTOMER"),
        ("Description", "orders DB"),
    ] {
        assert_eq!(m[field], json!(value), "{field}: {m}");
    }
    assert_eq!(m["Enabled"], json!(true));
    assert_eq!(m["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
    let created = m["CreationDate"].as_f64().unwrap();
    assert!((created - now_secs()).abs() < 120.0, "{created}");
    assert!(m["ValidTo"].as_f64().unwrap() > created + 364.0 * 86_400.0);

    // DescribeKey by every name of the key.
    aws.ok(
        "CreateAlias",
        json!({"AliasName": "alias/orders", "TargetKeyId": keyid}),
    )
    .await;
    for name in [
        keyid.clone(),
        arn(&keyid),
        "alias/orders".into(),
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/orders"),
    ] {
        let d = aws.ok("DescribeKey", json!({"KeyId": name})).await;
        assert_eq!(d["KeyMetadata"], m, "{name}");
    }

    // Every spec the core has, with the usages AWS allows for it.
    for (spec, usage, field, first) in [
        (
            "RSA_2048",
            "ENCRYPT_DECRYPT",
            "EncryptionAlgorithms",
            "RSAES_OAEP_SHA_256",
        ),
        (
            "RSA_2048",
            "SIGN_VERIFY",
            "SigningAlgorithms",
            "RSASSA_PSS_SHA_256",
        ),
        (
            "ECC_NIST_P256",
            "SIGN_VERIFY",
            "SigningAlgorithms",
            "ECDSA_SHA_256",
        ),
        (
            "ECC_NIST_P384",
            "SIGN_VERIFY",
            "SigningAlgorithms",
            "ECDSA_SHA_384",
        ),
        (
            "ECC_NIST_P521",
            "SIGN_VERIFY",
            "SigningAlgorithms",
            "ECDSA_SHA_512",
        ),
        (
            "ECC_SECG_P256K1",
            "SIGN_VERIFY",
            "SigningAlgorithms",
            "ECDSA_SHA_256",
        ),
        (
            "HMAC_256",
            "GENERATE_VERIFY_MAC",
            "MacAlgorithms",
            "HMAC_SHA_256",
        ),
        ("SM2", "ENCRYPT_DECRYPT", "EncryptionAlgorithms", "SM2PKE"),
        ("SM2", "SIGN_VERIFY", "SigningAlgorithms", "SM2DSA"),
    ] {
        let m = aws
            .create(json!({"KeySpec": spec, "KeyUsage": usage}))
            .await;
        assert_eq!(
            (m["KeySpec"].as_str(), m["KeyUsage"].as_str()),
            (Some(spec), Some(usage))
        );
        assert_eq!(m[field][0], json!(first), "{spec} {usage}: {m}");
    }
    // The deprecated spelling of KeySpec.
    let m = aws
        .create(json!({"CustomerMasterKeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}))
        .await;
    assert_eq!(m["KeySpec"], json!("ECC_NIST_P256"));
    // An external key waits for its material.
    let m = aws.create(json!({"Origin": "EXTERNAL"})).await;
    assert_eq!(
        (m["Origin"].as_str(), m["KeyState"].as_str()),
        (Some("EXTERNAL"), Some("PendingImport"))
    );
    assert_eq!(m["Enabled"], json!(false));

    // ListKeys pages through all of them by key id.
    let mut listed = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        let mut input = json!({"Limit": 4});
        if let Some(m) = &marker {
            input["Marker"] = json!(m);
        }
        let page = aws.ok("ListKeys", input).await;
        let keys = page["Keys"].as_array().unwrap();
        assert!(keys.len() <= 4);
        for k in keys {
            assert_eq!(k["KeyArn"], json!(arn(k["KeyId"].as_str().unwrap())));
            listed.push(k["KeyId"].as_str().unwrap().to_owned());
        }
        if page["Truncated"] == json!(false) {
            assert!(page.get("NextMarker").is_none(), "{page}");
            break;
        }
        marker = Some(page["NextMarker"].as_str().unwrap().to_owned());
    }
    assert_eq!(listed.len(), 12);
    let mut sorted = listed.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "in key id order, each once");
    assert!(listed.contains(&keyid));
    assert_eq!(
        aws.ok("ListKeys", json!({})).await["Keys"]
            .as_array()
            .unwrap()
            .len(),
        12
    );

    // Another app sees none of them.
    let other = app(&server).await;
    assert_eq!(other.ok("ListKeys", json!({})).await["Keys"], json!([]));
    let message = other
        .error("DescribeKey", json!({"KeyId": keyid}), "NotFoundException")
        .await;
    assert_eq!(message, format!("Key '{}' does not exist", arn(&keyid)));
}

#[tokio::test(flavor = "multi_thread")]
async fn create_key_refuses_what_it_cannot_make_and_makes_nothing() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    for (input, kind, says) in [
        (
            json!({"KeySpec": "HMAC_384", "KeyUsage": "GENERATE_VERIFY_MAC"}),
            "UnsupportedOperationException",
            "HMAC_384",
        ),
        (
            json!({"KeySpec": "ML_DSA_44", "KeyUsage": "SIGN_VERIFY"}),
            "UnsupportedOperationException",
            "ML_DSA_44",
        ),
        (
            json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "KEY_AGREEMENT"}),
            "UnsupportedOperationException",
            "KEY_AGREEMENT",
        ),
        (
            json!({"Origin": "AWS_CLOUDHSM"}),
            "UnsupportedOperationException",
            "AWS_CLOUDHSM",
        ),
        (
            json!({"Policy": "{}"}),
            "UnsupportedOperationException",
            "key policies",
        ),
        (
            json!({"Tags": [{"TagKey": "a", "TagValue": "b"}]}),
            "UnsupportedOperationException",
            "tags",
        ),
        (
            json!({"MultiRegion": true}),
            "UnsupportedOperationException",
            "multi-Region",
        ),
        (
            json!({"CustomKeyStoreId": "cks-1"}),
            "UnsupportedOperationException",
            "custom key stores",
        ),
        (
            json!({"KeySpec": "HMAC_256"}),
            "ValidationException",
            "GENERATE_VERIFY_MAC",
        ),
        (
            json!({"KeyUsage": "SIGN_VERIFY"}),
            "ValidationException",
            "SYMMETRIC_DEFAULT does not support",
        ),
        (
            json!({"KeySpec": "ECC_NIST_P256"}),
            "ValidationException",
            "ECC_NIST_P256 does not support",
        ),
        (
            json!({"KeySpec": "AES_256"}),
            "ValidationException",
            "enum value set",
        ),
        (
            json!({"KeyUsage": "ENCRYPT"}),
            "ValidationException",
            "enum value set",
        ),
        (
            json!({"KeySpec": "RSA_2048", "CustomerMasterKeySpec": "RSA_2048"}),
            "ValidationException",
            "send one",
        ),
        (
            json!({"Description": "x".repeat(8193)}),
            "ValidationException",
            "8192",
        ),
        (
            json!({"Description": 7}),
            "SerializationException",
            "Description must be a string",
        ),
        (
            json!({"KeySpec": ["RSA_2048"]}),
            "SerializationException",
            "KeySpec must be a string",
        ),
    ] {
        let message = aws.error("CreateKey", input.clone(), kind).await;
        assert!(message.contains(says), "{input}: {message}");
    }
    assert_eq!(
        aws.ok("ListKeys", json!({})).await["Keys"],
        json!([]),
        "nothing was made"
    );
    for limit in [0, 1001] {
        aws.error("ListKeys", json!({"Limit": limit}), "ValidationException")
            .await;
    }
    aws.error("DescribeKey", json!({}), "ValidationException")
        .await;
    let message = aws
        .error(
            "DescribeKey",
            json!({"KeyId": "alias/none"}),
            "NotFoundException",
        )
        .await;
    assert_eq!(
        message,
        format!("Alias arn:aws:kms:{REGION}:{ACCOUNT}:alias/none is not found.")
    );
    aws.error(
        "DescribeKey",
        json!({"KeyId": "arn:aws:kms:eu-west-1:000000000000:key/x"}),
        "NotFoundException",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn encrypt_and_decrypt_with_encryption_context() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let keyid = aws.symmetric_key().await;
    aws.ok(
        "CreateAlias",
        json!({"AliasName": "alias/db", "TargetKeyId": keyid}),
    )
    .await;
    let context = json!({"table": "cards", "tenant": "7"});
    let out = aws
        .ok("Encrypt", json!({"KeyId": "alias/db", "Plaintext": b64(b"card 4111"), "EncryptionContext": context}))
        .await;
    assert_eq!(out["KeyId"], json!(arn(&keyid)));
    assert_eq!(out["EncryptionAlgorithm"], json!("SYMMETRIC_DEFAULT"));
    let blob = out["CiphertextBlob"].as_str().unwrap().to_owned();

    // The ciphertext names its key: Decrypt needs no KeyId, and the context's order is free
    // (the body is sent as text, so that the order is the one written here).
    let reordered = format!(
        r#"{{"CiphertextBlob": "{blob}", "EncryptionContext": {{"tenant": "7", "table": "cards"}}}}"#
    );
    let a = aws
        .send(
            Some("Decrypt"),
            "application/x-amz-json-1.1",
            reordered.as_bytes(),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        b64_decode(a.body["Plaintext"].as_str().unwrap()),
        b"card 4111"
    );
    assert_eq!(a.body["KeyId"], json!(arn(&keyid)));
    // With KeyId in each form AWS takes.
    for name in [
        keyid.clone(),
        arn(&keyid),
        "alias/db".into(),
        format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/db"),
    ] {
        let d = aws
            .ok(
                "Decrypt",
                json!({"CiphertextBlob": blob, "EncryptionContext": context, "KeyId": name}),
            )
            .await;
        assert_eq!(
            b64_decode(d["Plaintext"].as_str().unwrap()),
            b"card 4111",
            "{name}"
        );
    }

    // Another context, none, a subset or a superset: InvalidCiphertextException.
    for wrong in [
        json!({}),
        json!({"table": "cards"}),
        json!({"table": "cards", "tenant": "8"}),
        json!({"table": "cards", "tenant": "7", "x": ""}),
    ] {
        aws.error(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": wrong}),
            "InvalidCiphertextException",
        )
        .await;
    }
    // Every byte of the ciphertext is covered: the frame (key id), the header and the body.
    let raw = b64_decode(&blob);
    for i in [0, 1, 2, 20, 38, 39, 45, raw.len() - 1] {
        let mut bad = raw.clone();
        bad[i] ^= 0x01;
        let (status, kind, _) = aws
            .refused(
                "Decrypt",
                json!({"CiphertextBlob": b64(&bad), "EncryptionContext": context}),
            )
            .await;
        assert_eq!(status, 400, "byte {i}");
        assert!(
            ["InvalidCiphertextException", "NotFoundException"].contains(&kind.as_str()),
            "byte {i}: {kind}"
        );
    }
    aws.error(
        "Decrypt",
        json!({"CiphertextBlob": b64(&raw[..raw.len() - 1]), "EncryptionContext": context}),
        "InvalidCiphertextException",
    )
    .await;

    // Another key named: IncorrectKeyException; another key's ciphertext: the same.
    let other = aws.symmetric_key().await;
    aws.error(
        "Decrypt",
        json!({"CiphertextBlob": blob, "EncryptionContext": context, "KeyId": other}),
        "IncorrectKeyException",
    )
    .await;
    // Without context, and with an empty one: the same (no context).
    let plain = aws
        .ok("Encrypt", json!({"KeyId": other, "Plaintext": b64(b"x")}))
        .await;
    let d = aws
        .ok(
            "Decrypt",
            json!({"CiphertextBlob": plain["CiphertextBlob"], "EncryptionContext": {}}),
        )
        .await;
    assert_eq!(b64_decode(d["Plaintext"].as_str().unwrap()), b"x");

    // AWS's limits on the plaintext.
    let big = aws
        .ok(
            "Encrypt",
            json!({"KeyId": keyid, "Plaintext": b64(&[7u8; 4096])}),
        )
        .await;
    assert!(b64_decode(big["CiphertextBlob"].as_str().unwrap()).len() <= 6144);
    let d = aws
        .ok("Decrypt", json!({"CiphertextBlob": big["CiphertextBlob"]}))
        .await;
    assert_eq!(
        b64_decode(d["Plaintext"].as_str().unwrap()),
        vec![7u8; 4096]
    );
    for (input, kind) in [
        (
            json!({"KeyId": keyid, "Plaintext": b64(&[7u8; 4097])}),
            "ValidationException",
        ),
        (
            json!({"KeyId": keyid, "Plaintext": ""}),
            "ValidationException",
        ),
        (json!({"KeyId": keyid}), "ValidationException"),
        (json!({"Plaintext": b64(b"x")}), "ValidationException"),
        (
            json!({"KeyId": keyid, "Plaintext": "%%%"}),
            "SerializationException",
        ),
        (
            json!({"KeyId": keyid, "Plaintext": b64(b"x"), "EncryptionContext": {"a": 1}}),
            "SerializationException",
        ),
        (
            json!({"KeyId": keyid, "Plaintext": b64(b"x"), "EncryptionContext": ["a"]}),
            "SerializationException",
        ),
        (
            json!({"KeyId": keyid, "Plaintext": b64(b"x"), "EncryptionAlgorithm": "RSAES_OAEP_SHA_256"}),
            "UnsupportedOperationException",
        ),
        (
            json!({"KeyId": keyid, "Plaintext": b64(b"x"), "GrantTokens": ["t"]}),
            "UnsupportedOperationException",
        ),
        (
            json!({"KeyId": keyid, "Plaintext": b64(b"x"), "DryRun": true}),
            "UnsupportedOperationException",
        ),
        (
            json!({"KeyId": "alias/none", "Plaintext": b64(b"x")}),
            "NotFoundException",
        ),
        (
            json!({"KeyId": "0f5e9c1a-0000-4000-8000-000000000000", "Plaintext": b64(b"x")}),
            "NotFoundException",
        ),
    ] {
        aws.error("Encrypt", input.clone(), kind).await;
    }
    aws.error(
        "Decrypt",
        json!({"CiphertextBlob": b64(&[7u8; 6145])}),
        "ValidationException",
    )
    .await;
    // A signing key does not encrypt.
    let signing = aws
        .create(json!({"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"}))
        .await;
    aws.error(
        "Encrypt",
        json!({"KeyId": signing["KeyId"], "Plaintext": b64(b"x")}),
        "InvalidKeyUsageException",
    )
    .await;
    // Another app's key is not found, by id or in a ciphertext.
    let stranger = app(&server).await;
    stranger
        .error(
            "Encrypt",
            json!({"KeyId": keyid, "Plaintext": b64(b"x")}),
            "NotFoundException",
        )
        .await;
    stranger
        .error(
            "Decrypt",
            json!({"CiphertextBlob": blob, "EncryptionContext": context}),
            "NotFoundException",
        )
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn data_keys_and_random_bytes() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let keyid = aws.symmetric_key().await;
    let context = json!({"purpose": "backup"});
    for (input, len) in [
        (json!({"KeySpec": "AES_256"}), 32),
        (json!({"KeySpec": "AES_128"}), 16),
        (json!({"NumberOfBytes": 1}), 1),
        (json!({"NumberOfBytes": 1024}), 1024),
    ] {
        let mut input = input;
        input["KeyId"] = json!(keyid);
        input["EncryptionContext"] = context.clone();
        let dk = aws.ok("GenerateDataKey", input.clone()).await;
        let plaintext = b64_decode(dk["Plaintext"].as_str().unwrap());
        assert_eq!(plaintext.len(), len, "{input}");
        assert_eq!(dk["KeyId"], json!(arn(&keyid)));
        let d = aws
            .ok(
                "Decrypt",
                json!({"CiphertextBlob": dk["CiphertextBlob"], "EncryptionContext": context}),
            )
            .await;
        assert_eq!(b64_decode(d["Plaintext"].as_str().unwrap()), plaintext);
        aws.error(
            "Decrypt",
            json!({"CiphertextBlob": dk["CiphertextBlob"]}),
            "InvalidCiphertextException",
        )
        .await;

        let dk = aws.ok("GenerateDataKeyWithoutPlaintext", input).await;
        assert!(dk.get("Plaintext").is_none(), "{dk}");
        let d = aws
            .ok(
                "Decrypt",
                json!({"CiphertextBlob": dk["CiphertextBlob"], "EncryptionContext": context}),
            )
            .await;
        assert_eq!(b64_decode(d["Plaintext"].as_str().unwrap()).len(), len);
    }
    for op in ["GenerateDataKey", "GenerateDataKeyWithoutPlaintext"] {
        for (input, kind) in [
            (json!({"KeyId": keyid}), "ValidationException"),
            (
                json!({"KeyId": keyid, "KeySpec": "AES_256", "NumberOfBytes": 32}),
                "ValidationException",
            ),
            (
                json!({"KeyId": keyid, "NumberOfBytes": 0}),
                "ValidationException",
            ),
            (
                json!({"KeyId": keyid, "NumberOfBytes": 1025}),
                "ValidationException",
            ),
            (
                json!({"KeyId": keyid, "NumberOfBytes": "32"}),
                "SerializationException",
            ),
            (
                json!({"KeyId": keyid, "KeySpec": "AES_512"}),
                "ValidationException",
            ),
            (json!({"KeySpec": "AES_256"}), "ValidationException"),
        ] {
            aws.error(op, input, kind).await;
        }
    }
    let message = aws
        .error(
            "GenerateDataKey",
            json!({"KeyId": keyid, "NumberOfBytes": 0}),
            "ValidationException",
        )
        .await;
    assert_eq!(
        message,
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint: \
         Member must have value greater than or equal to 1"
    );

    for n in [1usize, 32, 1024] {
        let r = aws.ok("GenerateRandom", json!({"NumberOfBytes": n})).await;
        assert_eq!(b64_decode(r["Plaintext"].as_str().unwrap()).len(), n);
    }
    let a = aws.ok("GenerateRandom", json!({"NumberOfBytes": 32})).await;
    let b = aws.ok("GenerateRandom", json!({"NumberOfBytes": 32})).await;
    assert_ne!(a["Plaintext"], b["Plaintext"]);
    for input in [
        json!({}),
        json!({"NumberOfBytes": 0}),
        json!({"NumberOfBytes": 1025}),
    ] {
        aws.error("GenerateRandom", input, "ValidationException")
            .await;
    }
    aws.error(
        "GenerateRandom",
        json!({"NumberOfBytes": 8, "CustomKeyStoreId": "c"}),
        "UnsupportedOperationException",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn enable_disable_and_pending_deletion() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let keyid = aws.symmetric_key().await;
    let encrypt = json!({"KeyId": keyid, "Plaintext": b64(b"x")});
    let blob = aws.ok("Encrypt", encrypt.clone()).await["CiphertextBlob"].clone();
    assert_eq!(
        aws.ok("DisableKey", json!({"KeyId": arn(&keyid)})).await,
        json!({})
    );
    let m = aws.ok("DescribeKey", json!({"KeyId": keyid})).await["KeyMetadata"].clone();
    assert_eq!(
        (m["KeyState"].as_str(), m["Enabled"].as_bool()),
        (Some("Disabled"), Some(false))
    );
    let message = aws
        .error("Encrypt", encrypt.clone(), "DisabledException")
        .await;
    assert_eq!(message, format!("{} is disabled.", arn(&keyid)));
    aws.error(
        "Decrypt",
        json!({"CiphertextBlob": blob}),
        "DisabledException",
    )
    .await;
    aws.error(
        "GenerateDataKey",
        json!({"KeyId": keyid, "KeySpec": "AES_256"}),
        "DisabledException",
    )
    .await;
    aws.ok("EnableKey", json!({"KeyId": keyid})).await;
    aws.ok("Encrypt", encrypt.clone()).await;
    aws.ok("Decrypt", json!({"CiphertextBlob": blob})).await;

    for op in ["EnableKey", "DisableKey"] {
        aws.error(
            op,
            json!({"KeyId": "0f5e9c1a-0000-4000-8000-000000000000"}),
            "NotFoundException",
        )
        .await;
        aws.error(op, json!({}), "ValidationException").await;
    }
    // A key pending deletion (scheduled through the eHSM API) is in KMSInvalidStateException.
    let out = call(
        &server.url,
        &aws.creds,
        "ScheduleKeyDeletion",
        Some(json!({"keyid": keyid, "pendingWindowInDays": 7})),
    )
    .await;
    assert_eq!(out["code"], json!(200), "{out}");
    let m = aws.ok("DescribeKey", json!({"KeyId": keyid})).await["KeyMetadata"].clone();
    assert_eq!(m["KeyState"], json!("PendingDeletion"));
    let deletion = m["DeletionDate"].as_f64().unwrap();
    assert!(
        (deletion - (now_secs() + 7.0 * 86_400.0)).abs() < 120.0,
        "{m}"
    );
    for (op, input) in [
        ("Encrypt", encrypt.clone()),
        ("Decrypt", json!({"CiphertextBlob": blob})),
        ("EnableKey", json!({"KeyId": keyid})),
        ("DisableKey", json!({"KeyId": keyid})),
    ] {
        let message = aws.error(op, input, "KMSInvalidStateException").await;
        assert_eq!(
            message,
            format!("{} is pending deletion.", arn(&keyid)),
            "{op}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn aliases() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let a = aws.symmetric_key().await;
    let b = aws.symmetric_key().await;
    for (alias, key) in [("alias/a1", &a), ("alias/a2", &a), ("alias/b/x_y-z", &b)] {
        assert_eq!(
            aws.ok(
                "CreateAlias",
                json!({"AliasName": alias, "TargetKeyId": key})
            )
            .await,
            json!({})
        );
    }
    // By key ARN too.
    aws.ok(
        "CreateAlias",
        json!({"AliasName": "alias/b2", "TargetKeyId": arn(&b)}),
    )
    .await;
    let all = aws.ok("ListAliases", json!({})).await;
    let names: Vec<&str> = all["Aliases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["AliasName"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alias/a1", "alias/a2", "alias/b/x_y-z", "alias/b2"]);
    assert_eq!(all["Truncated"], json!(false));
    let first = &all["Aliases"][0];
    assert_eq!(
        first["AliasArn"],
        json!(format!("arn:aws:kms:{REGION}:{ACCOUNT}:alias/a1"))
    );
    assert_eq!(first["TargetKeyId"], json!(a));
    assert!((first["CreationDate"].as_f64().unwrap() - now_secs()).abs() < 120.0);
    // One key's; pages.
    let of_b = aws.ok("ListAliases", json!({"KeyId": arn(&b)})).await;
    assert_eq!(of_b["Aliases"].as_array().unwrap().len(), 2);
    let page = aws.ok("ListAliases", json!({"Limit": 3})).await;
    assert_eq!(
        (
            page["Aliases"].as_array().unwrap().len(),
            page["Truncated"].as_bool()
        ),
        (3, Some(true))
    );
    assert_eq!(page["NextMarker"], json!("alias/b/x_y-z"));
    let rest = aws
        .ok(
            "ListAliases",
            json!({"Limit": 3, "Marker": "alias/b/x_y-z"}),
        )
        .await;
    assert_eq!(rest["Aliases"][0]["AliasName"], json!("alias/b2"));
    assert_eq!(rest["Truncated"], json!(false));

    // An alias works wherever a key is named.
    let ct = aws
        .ok(
            "Encrypt",
            json!({"KeyId": "alias/b2", "Plaintext": b64(b"y")}),
        )
        .await;
    assert_eq!(ct["KeyId"], json!(arn(&b)));

    for (input, kind) in [
        (
            json!({"AliasName": "alias/a1", "TargetKeyId": b}),
            "AlreadyExistsException",
        ),
        (
            json!({"AliasName": "a1", "TargetKeyId": b}),
            "ValidationException",
        ),
        (
            json!({"AliasName": "alias/", "TargetKeyId": b}),
            "ValidationException",
        ),
        (
            json!({"AliasName": "alias/with space", "TargetKeyId": b}),
            "ValidationException",
        ),
        (
            json!({"AliasName": format!("alias/{}", "x".repeat(251)), "TargetKeyId": b}),
            "ValidationException",
        ),
        (
            json!({"AliasName": "alias/aws/mine", "TargetKeyId": b}),
            "AccessDeniedException",
        ),
        (
            json!({"AliasName": "alias/c", "TargetKeyId": "alias/a1"}),
            "ValidationException",
        ),
        (
            json!({"AliasName": "alias/c", "TargetKeyId": "0f5e9c1a-0000-4000-8000-000000000000"}),
            "NotFoundException",
        ),
        (json!({"AliasName": "alias/c"}), "ValidationException"),
    ] {
        aws.error("CreateAlias", input.clone(), kind).await;
    }
    let message = aws
        .error(
            "CreateAlias",
            json!({"AliasName": "alias/a1", "TargetKeyId": b}),
            "AlreadyExistsException",
        )
        .await;
    assert_eq!(
        message,
        format!("An alias with the name arn:aws:kms:{REGION}:{ACCOUNT}:alias/a1 already exists")
    );
    aws.error(
        "ListAliases",
        json!({"KeyId": "alias/a1"}),
        "ValidationException",
    )
    .await;
    aws.error("ListAliases", json!({"Limit": 0}), "ValidationException")
        .await;

    assert_eq!(
        aws.ok("DeleteAlias", json!({"AliasName": "alias/a1"}))
            .await,
        json!({})
    );
    aws.error(
        "DeleteAlias",
        json!({"AliasName": "alias/a1"}),
        "NotFoundException",
    )
    .await;
    aws.error(
        "Encrypt",
        json!({"KeyId": "alias/a1", "Plaintext": b64(b"y")}),
        "NotFoundException",
    )
    .await;
    // Another app's names are its own.
    let other = app(&server).await;
    other
        .error(
            "DeleteAlias",
            json!({"AliasName": "alias/a2"}),
            "NotFoundException",
        )
        .await;
    assert_eq!(
        other.ok("ListAliases", json!({})).await["Aliases"],
        json!([])
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_key_through_both_apis() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let url = &server.url;
    // A key made over the eHSM API, used over the AWS API.
    let out = call(url, &aws.creds, "CreateKey", Some(json!({"keyspec": "EH_AES_GCM_256", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"}))).await;
    let ehsm_key = out["result"]["keyid"].as_str().unwrap().to_owned();
    let m = aws.ok("DescribeKey", json!({"KeyId": ehsm_key})).await["KeyMetadata"].clone();
    assert_eq!(
        (m["KeySpec"].as_str(), m["Origin"].as_str()),
        (Some("SYMMETRIC_DEFAULT"), Some("AWS_KMS"))
    );
    let ct = aws
        .ok(
            "Encrypt",
            json!({"KeyId": ehsm_key, "Plaintext": b64(b"both")}),
        )
        .await;
    let d = aws
        .ok("Decrypt", json!({"CiphertextBlob": ct["CiphertextBlob"]}))
        .await;
    assert_eq!(b64_decode(d["Plaintext"].as_str().unwrap()), b"both");
    // An eHSM ciphertext decrypts over the AWS API when KeyId names its key (it names none).
    let out = call(
        url,
        &aws.creds,
        "Encrypt",
        Some(json!({"keyid": ehsm_key, "plaintext": b64(b"from ehsm")})),
    )
    .await;
    let bare = out["result"]["ciphertext"].as_str().unwrap().to_owned();
    let d = aws
        .ok(
            "Decrypt",
            json!({"CiphertextBlob": bare, "KeyId": ehsm_key}),
        )
        .await;
    assert_eq!(b64_decode(d["Plaintext"].as_str().unwrap()), b"from ehsm");
    let message = aws
        .error(
            "Decrypt",
            json!({"CiphertextBlob": bare}),
            "InvalidCiphertextException",
        )
        .await;
    assert!(message.contains("send the KeyId"), "{message}");

    // A key made over the AWS API, used over the eHSM API (the eHSM `aad` of an empty context
    // is empty).
    let aws_key = aws.symmetric_key().await;
    let out = call(
        url,
        &aws.creds,
        "Encrypt",
        Some(json!({"keyid": aws_key, "plaintext": b64(b"from aws")})),
    )
    .await;
    let out = call(
        url,
        &aws.creds,
        "Decrypt",
        Some(json!({"keyid": aws_key, "ciphertext": out["result"]["ciphertext"]})),
    )
    .await;
    assert_eq!(
        b64_decode(out["result"]["plaintext"].as_str().unwrap()),
        b"from aws"
    );
    let out = call(
        url,
        &aws.creds,
        "DescribeKey",
        Some(json!({"keyid": aws_key})),
    )
    .await;
    assert_eq!(out["result"]["keyspec"], json!("EH_AES_GCM_256"), "{out}");

    // An alias of either API names the key on both; a state change on one shows on the other.
    call(
        url,
        &aws.creds,
        "CreateAlias",
        Some(json!({"alias": "alias/from-ehsm", "keyid": aws_key})),
    )
    .await;
    aws.ok(
        "Encrypt",
        json!({"KeyId": "alias/from-ehsm", "Plaintext": b64(b"z")}),
    )
    .await;
    aws.ok(
        "CreateAlias",
        json!({"AliasName": "alias/from-aws", "TargetKeyId": ehsm_key}),
    )
    .await;
    let out = call(
        url,
        &aws.creds,
        "Encrypt",
        Some(json!({"keyid": "alias/from-aws", "plaintext": b64(b"z")})),
    )
    .await;
    assert_eq!(out["code"], json!(200), "{out}");
    aws.ok("DisableKey", json!({"KeyId": ehsm_key})).await;
    let out = call(
        url,
        &aws.creds,
        "Encrypt",
        Some(json!({"keyid": ehsm_key, "plaintext": b64(b"z")})),
    )
    .await;
    assert_eq!(out["message"], json!("keyid is disabled"));
    // ListKeys lists the keys of both.
    let listed: Vec<Value> = aws.ok("ListKeys", json!({})).await["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["KeyId"].clone())
        .collect();
    assert!(
        listed.contains(&json!(ehsm_key)) && listed.contains(&json!(aws_key)),
        "{listed:?}"
    );
    // eHSM-only specs keep their eHSM name.
    let out = call(url, &aws.creds, "CreateKey", Some(json!({"keyspec": "EH_SM4_CBC", "origin": "EH_INTERNAL_KEY", "keyusage": "EH_KEYUSAGE_ENCRYPT_DECRYPT"}))).await;
    let sm4 = out["result"]["keyid"].as_str().unwrap().to_owned();
    let m = aws.ok("DescribeKey", json!({"KeyId": sm4})).await["KeyMetadata"].clone();
    assert_eq!(m["KeySpec"], json!("EH_SM4_CBC"));
    assert_eq!(m["EncryptionAlgorithms"], json!(["SYMMETRIC_DEFAULT"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_protocol_refuses_what_is_not_a_kms_request() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let json_1_1 = "application/x-amz-json-1.1";
    let a = aws.send(Some("Nope"), json_1_1, b"{}").await;
    assert_eq!(
        (a.status, a.kind()),
        (400, "UnknownOperationException"),
        "{}",
        a.body
    );
    let a = aws.send(None, json_1_1, b"{}").await;
    assert_eq!((a.status, a.kind()), (400, "UnknownOperationException"));
    for op in [
        "CreateGrant",
        "PutKeyPolicy",
        "ReplicateKey",
        "ListGrants",
        "TagResource",
    ] {
        let a = aws.send(Some(op), json_1_1, b"{}").await;
        assert_eq!(
            (a.status, a.kind()),
            (400, "UnsupportedOperationException"),
            "{op}"
        );
        assert!(a.message().contains(op), "{op}: {}", a.message());
    }
    for body in [&b"{"[..], b"[1]", b"\"KeyId\"", b"{\"KeyId\": }"] {
        let a = aws.send(Some("DescribeKey"), json_1_1, body).await;
        assert_eq!(
            (a.status, a.kind()),
            (400, "SerializationException"),
            "{body:?}"
        );
    }
    let a = aws.send(Some("ListKeys"), "application/json", b"{}").await;
    assert_eq!((a.status, a.kind()), (400, "SerializationException"));
    // Only POST is a KMS request.
    let r = util::http()
        .get(format!("{}/aws", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    // The eHSM API is where it was.
    let r = util::http()
        .get(format!("{}/ehsm?Action=GetVersion", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn authentication_and_replays() {
    let server = Server::start(&[]);
    let aws = app(&server).await;
    let json_1_1 = "application/x-amz-json-1.1";
    let body = br#"{"NumberOfBytes": 16}"#;
    let headers = aws.sign(Some("GenerateRandom"), json_1_1, body);
    let first = aws.send_signed(&headers, body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The same signed request again: refused, as an eHSM request sent twice is, with the
    // error SDKs retry (re-signed).
    let again = aws.send_signed(&headers, body).await;
    assert_eq!(
        (again.status, again.kind()),
        (400, "ThrottlingException"),
        "{}",
        again.body
    );
    assert!(
        again.message().contains("already received"),
        "{}",
        again.message()
    );

    let now = SystemTime::now();
    let appid = aws.creds.appid.clone();
    for (creds, region, when, kind) in [
        // Another secret: the core's check fails.
        (
            (appid.as_str(), "not-the-api-key"),
            REGION,
            now,
            "InvalidSignatureException",
        ),
        // An access key id that is no app.
        (
            ("no-such-app", aws.creds.apikey.as_str()),
            REGION,
            now,
            "UnrecognizedClientException",
        ),
        // Signed for another region, or too long ago.
        (
            (appid.as_str(), aws.creds.apikey.as_str()),
            "eu-west-1",
            now,
            "InvalidSignatureException",
        ),
        (
            (appid.as_str(), aws.creds.apikey.as_str()),
            REGION,
            now - std::time::Duration::from_secs(600),
            "InvalidSignatureException",
        ),
    ] {
        let headers = aws.sign_with(Some("GenerateRandom"), json_1_1, body, creds, region, when);
        let a = aws.send_signed(&headers, body).await;
        assert_eq!(
            (a.status, a.kind()),
            (400, kind),
            "{creds:?} {region}: {}",
            a.body
        );
    }
    // Another app's key does not sign for this app.
    let other = app(&server).await;
    let headers = aws.sign_with(
        Some("GenerateRandom"),
        json_1_1,
        body,
        (&appid, &other.creds.apikey),
        REGION,
        now,
    );
    let a = aws.send_signed(&headers, body).await;
    assert_eq!((a.status, a.kind()), (400, "InvalidSignatureException"));
    // A body changed after signing.
    let headers = aws.sign(Some("GenerateRandom"), json_1_1, body);
    let a = aws.send_signed(&headers, br#"{"NumberOfBytes": 17}"#).await;
    assert_eq!((a.status, a.kind()), (400, "InvalidSignatureException"));
    // No signature at all: nothing is served, not even the operation's name.
    let r = util::http()
        .post(format!("{}/aws/", server.url))
        .header("Content-Type", json_1_1)
        .header("X-Amz-Target", "TrentService.GenerateRandom")
        .body(&body[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let answer: Value = r.json().await.unwrap();
    assert_eq!(
        answer["__type"],
        json!("MissingAuthenticationTokenException")
    );
}
