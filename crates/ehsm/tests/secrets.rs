//! The secrets manager end to end (spec §10): the real server over HTTPS, the Rust SDK and raw
//! signed requests. The deletion job's timing is tested in `ehsm-kms` with an injected clock;
//! here, that scheduled deletions are persisted and refuse use until restored.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use ehsm_client::{Client, Credentials, Error, KeySpec, KeyUsage, Origin, SecretOptions};
use serde_json::{Value, json};
use util::{Server, assert_code, call, now_ms};

const DAY_MS: i64 = 86_400_000;

/// The server's refusal of a call, as (code, message).
#[track_caller]
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (i64, String) {
    match result {
        Err(Error::Api { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn bad(message: &str) -> (i64, String) {
    (400, message.to_owned())
}

/// A raw signed call with a payload; the whole answer.
async fn signed(s: &Server, creds: &Credentials, action: &str, payload: Value) -> Value {
    call(&s.url, creds, action, Some(payload)).await
}

async fn value(c: &Client, name: &str, version: Option<i64>) -> String {
    c.get_secret_value(name, version)
        .await
        .unwrap()
        .expect("the version exists")
        .value
}

#[tokio::test(flavor = "multi_thread")]
async fn create_put_get_list_and_describe() {
    let s = Server::start(&[]);
    let (c, creds) = s.enrolled().await;
    let before = i64::try_from(now_ms()).unwrap();
    let options = SecretOptions {
        description: Some("the database password".into()),
        rotation_interval: Some("30d".into()),
        ..SecretOptions::default()
    };
    c.create_secret("db", "v1", &options).await.unwrap();

    // The raw answer: upstream's message and an empty result.
    let raw = signed(
        &s,
        &creds,
        "CreateSecret",
        json!({"secretName": "raw", "secretData": "x"}),
    )
    .await;
    assert_code(&raw, 200, "The raw create success.");
    assert_eq!(raw["result"], json!({}));

    let v1 = c.get_secret_value("db", None).await.unwrap().unwrap();
    assert_eq!(
        (v1.name.as_str(), v1.value.as_str(), v1.version_id),
        ("db", "v1", 1)
    );
    assert!(v1.create_time >= before);

    // Create + 10 puts = 11 versions, each readable, the newest by default.
    for i in 2..=11 {
        c.put_secret_value("db", &format!("v{i}")).await.unwrap();
    }
    let versions = c.list_secret_versions("db").await.unwrap();
    let ids: Vec<i64> = versions.iter().map(|v| v.version_id).collect();
    assert_eq!(ids, (1..=11).collect::<Vec<_>>());
    for i in 1..=11 {
        assert_eq!(value(&c, "db", Some(i)).await, format!("v{i}"));
    }
    assert_eq!(value(&c, "db", None).await, "v11");
    assert!(
        c.get_secret_value("db", Some(12)).await.unwrap().is_none(),
        "an unknown version is an empty answer, as upstream"
    );
    let raw = signed(
        &s,
        &creds,
        "GetSecretValue",
        json!({"secretName": "db", "versionId": 12}),
    )
    .await;
    assert_code(&raw, 200, "successful");
    assert_eq!(raw["result"], json!({}));
    let raw = signed(
        &s,
        &creds,
        "PutSecretValue",
        json!({"secretName": "db", "secretData": "v12"}),
    )
    .await;
    assert_code(&raw, 200, "The db new version put success.");

    // Describe: upstream's fields; the rotation dates follow the newest version.
    let raw = signed(&s, &creds, "DescribeSecret", json!({"secretName": "db"})).await;
    assert_code(&raw, 200, "Describe secrets success.");
    let d = &raw["result"];
    let newest = c
        .list_secret_versions("db")
        .await
        .unwrap()
        .last()
        .copied()
        .unwrap();
    assert_eq!(d["secretName"], "db");
    assert_eq!(d["description"], "the database password");
    assert_eq!(d["rotationInterval"], "30d");
    assert_eq!(d["lastRotationDate"], json!(newest.create_time));
    assert_eq!(
        d["nextRotationDate"],
        json!(newest.create_time + 30 * DAY_MS)
    );
    assert!(d.get("plannedDeleteTime").is_none());
    let info = c.describe_secret("db").await.unwrap().unwrap();
    assert_eq!(
        info.next_rotation_date,
        Some(newest.create_time + 30 * DAY_MS)
    );
    assert!(
        c.describe_secret("nope").await.unwrap().is_none(),
        "200 with {{}}"
    );

    // A secret without an interval has no rotation fields; one never rotated reports "".
    let raw = signed(&s, &creds, "DescribeSecret", json!({"secretName": "raw"})).await;
    assert_eq!(raw["result"]["secretName"], "raw");
    assert!(raw["result"].get("rotationInterval").is_none(), "{raw}");
    c.create_secret(
        "fresh",
        "x",
        &SecretOptions {
            rotation_interval: Some("6h".into()),
            ..SecretOptions::default()
        },
    )
    .await
    .unwrap();
    let raw = signed(&s, &creds, "DescribeSecret", json!({"secretName": "fresh"})).await;
    assert_eq!(raw["result"]["lastRotationDate"], "");
    assert_eq!(
        raw["result"]["nextRotationDate"],
        json!(raw["result"]["createTime"].as_i64().unwrap() + 6 * 3_600_000)
    );

    // Lists: every secret, or the one named; ListKey does not show the default secret key.
    let names: Vec<String> = c
        .list_secrets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["db", "fresh", "raw"]);
    let raw = signed(&s, &creds, "ListSecrets", json!({"secretName": "db"})).await;
    assert_code(&raw, 200, "List secrets success.");
    assert_eq!(raw["result"]["totalCount"], 1);
    assert_eq!(
        raw["result"]["secretList"][0]["description"],
        "the database password"
    );
    let raw = signed(
        &s,
        &creds,
        "ListSecretVersionIds",
        json!({"secretName": "db"}),
    )
    .await;
    assert_code(&raw, 200, "List secret versionIds success.");
    assert_eq!(raw["result"]["secretName"], "db");
    assert_eq!(raw["result"]["totalCount"], 12);
    let raw = signed(
        &s,
        &creds,
        "ListSecretVersionIds",
        json!({"secretName": "nope"}),
    )
    .await;
    assert_eq!(
        raw["result"],
        json!({"secretName": "nope", "totalCount": 0, "versionIds": []})
    );
    assert!(
        c.list_keys().await.unwrap().is_empty(),
        "the default secret key is internal"
    );

    // Descriptions: replaced, then removed.
    c.update_secret_description("db", Some("new"))
        .await
        .unwrap();
    assert_eq!(
        c.describe_secret("db")
            .await
            .unwrap()
            .unwrap()
            .description
            .as_deref(),
        Some("new")
    );
    let raw = signed(&s, &creds, "UpdateSecretDesc", json!({"secretName": "db"})).await;
    assert_code(&raw, 200, "Update secret description success.");
    assert_eq!(
        c.describe_secret("db").await.unwrap().unwrap().description,
        None
    );

    // Refusals on names that do not exist or already do.
    assert_eq!(
        refusal(
            c.create_secret("db", "again", &SecretOptions::default())
                .await
        ),
        bad("Secret name already exists, cannot use the same secret name")
    );
    assert_eq!(
        value(&c, "db", None).await,
        "v12",
        "a refused create changes nothing"
    );
    assert_eq!(
        refusal(c.put_secret_value("nope", "x").await),
        bad("Can not find secretName")
    );
    assert_eq!(
        refusal(c.update_secret_description("nope", Some("d")).await),
        bad("Cannot find secretName")
    );
    assert_eq!(
        refusal(c.get_secret_value("nope", None).await),
        bad("Can't find the nope's value.")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn scheduled_and_forced_deletion_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), &[]);
    let (c, creds) = s.enrolled().await;
    c.create_secret("s", "value", &SecretOptions::default())
        .await
        .unwrap();

    let before = i64::try_from(now_ms()).unwrap();
    let raw = signed(&s, &creds, "DeleteSecret", json!({"secretName": "s"})).await;
    assert_code(&raw, 200, "The s will be deleted after 30 days.");
    let planned = c
        .describe_secret("s")
        .await
        .unwrap()
        .unwrap()
        .planned_delete_time
        .unwrap();
    assert!((before + 30 * DAY_MS..=before + 30 * DAY_MS + 60_000).contains(&planned));
    // Pending deletion: listed (with its date) but not usable, and the name stays taken.
    let listed = c.list_secrets(None).await.unwrap();
    assert_eq!(listed[0].planned_delete_time, Some(planned));
    assert_eq!(
        refusal(c.get_secret_value("s", None).await),
        bad("Can't find the s's value.")
    );
    assert_eq!(
        refusal(c.put_secret_value("s", "x").await),
        bad("Can not put value for a deleted secret.")
    );
    assert_eq!(
        refusal(c.update_secret_description("s", Some("d")).await),
        bad("Can not modify a deleted secret.")
    );
    assert!(c.list_secret_versions("s").await.unwrap().is_empty());
    assert_eq!(
        refusal(c.create_secret("s", "x", &SecretOptions::default()).await),
        bad("Secret name already exists, cannot use the same secret name")
    );

    // Deleting again reschedules; the schedule survives a restart.
    let raw = signed(
        &s,
        &creds,
        "DeleteSecret",
        json!({"secretName": "s", "recoveryPeriod": 7}),
    )
    .await;
    assert_code(&raw, 200, "The s will be deleted after 7 days.");
    let planned = c
        .describe_secret("s")
        .await
        .unwrap()
        .unwrap()
        .planned_delete_time
        .unwrap();
    assert!(planned < before + 8 * DAY_MS);
    assert!(s.stop().success());
    let s = Server::start_in(dir.path(), &[]);
    let c = s.client().with_credentials(creds.clone());
    assert_eq!(
        c.describe_secret("s")
            .await
            .unwrap()
            .unwrap()
            .planned_delete_time,
        Some(planned),
        "the due time is stored, not a timer in memory"
    );

    // Restore cancels it and the value is back; restoring a live secret is fine too.
    let raw = signed(&s, &creds, "RestoreSecret", json!({"secretName": "s"})).await;
    assert_code(&raw, 200, "The s restore success.");
    assert_eq!(value(&c, "s", None).await, "value");
    assert_eq!(
        c.describe_secret("s")
            .await
            .unwrap()
            .unwrap()
            .planned_delete_time,
        None
    );
    c.restore_secret("s").await.unwrap();
    assert_eq!(
        refusal(c.restore_secret("nope").await),
        bad("Can not restore secret, the secretName not find.")
    );

    // forceDelete: "true"/"false" in any case pass validation, only the exact "true" forces.
    for (force, code, message) in [
        ("TRUE", 200, "The s will be deleted after 30 days."),
        ("yes", 400, "The forceDelete must be true or false"),
        ("true", 200, "The s delete success"),
    ] {
        let payload = json!({"secretName": "s", "forceDelete": force});
        let answer = signed(&s, &creds, "DeleteSecret", payload).await;
        assert_code(&answer, code, message);
    }
    assert!(
        c.list_secrets(None).await.unwrap().is_empty(),
        "forced: gone with its versions"
    );
    assert_eq!(
        refusal(c.delete_secret("s", None).await),
        bad("Delete error, Can not find the secretName")
    );
    assert_eq!(
        refusal(c.force_delete_secret("s").await),
        bad("Delete error, Can not find the secretName"),
        "forced or not, a missing secret is named as missing"
    );
    // The name is free again, and starts over at version 1.
    c.create_secret("s", "again", &SecretOptions::default())
        .await
        .unwrap();
    assert_eq!(
        c.get_secret_value("s", None)
            .await
            .unwrap()
            .unwrap()
            .version_id,
        1
    );
    c.force_delete_secret("s").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_under_the_apps_own_key_and_other_apps() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let (other, _) = s.enrolled().await;
    let aes = c
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let sm4 = c
        .create_key(KeySpec::Sm4Cbc, Origin::Internal, KeyUsage::EncryptDecrypt)
        .await
        .unwrap();
    let under = |keyid: &str| SecretOptions {
        encryption_keyid: Some(keyid.to_owned()),
        ..SecretOptions::default()
    };
    c.create_secret("aes", "a", &under(&aes)).await.unwrap();
    c.create_secret("sm4", "b", &under(&sm4)).await.unwrap();
    c.put_secret_value("aes", "a2").await.unwrap();
    assert_eq!(value(&c, "aes", Some(1)).await, "a");
    assert_eq!(value(&c, "aes", None).await, "a2");
    assert_eq!(value(&c, "sm4", None).await, "b");

    // A disabled key locks its secrets (upstream did not check), until it is enabled again.
    c.disable_key(&aes).await.unwrap();
    assert_eq!(
        refusal(c.get_secret_value("aes", None).await),
        bad("keyid is disabled")
    );
    assert_eq!(
        refusal(c.put_secret_value("aes", "a3").await),
        bad("keyid is disabled")
    );
    assert_eq!(
        refusal(c.create_secret("new", "x", &under(&aes)).await),
        bad("keyid is disabled")
    );
    c.enable_key(&aes).await.unwrap();
    assert_eq!(value(&c, "aes", None).await, "a2");
    assert_eq!(
        c.list_secret_versions("aes").await.unwrap().len(),
        2,
        "the refused put stored nothing"
    );

    // Keys that cannot hold secrets, and keys that are not the app's: no existence leak.
    let rsa = c
        .create_key(KeySpec::Rsa2048, Origin::Internal, KeyUsage::EncryptDecrypt)
        .await
        .unwrap();
    let hmac = c
        .create_key(KeySpec::Hmac, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    for keyid in [&rsa, &hmac] {
        assert_eq!(
            refusal(c.create_secret("bad", "x", &under(keyid)).await),
            bad("Wrong parameter, please check your encryptionKeyId.")
        );
    }
    let theirs = other
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    for keyid in [theirs.as_str(), "00000000-0000-4000-8000-000000000000"] {
        assert_eq!(
            refusal(c.create_secret("bad", "x", &under(keyid)).await),
            bad("Cannot find cmk by keyid.")
        );
    }
    assert!(
        c.describe_secret("bad").await.unwrap().is_none(),
        "refused creates store nothing"
    );

    // Another app sees none of this app's secrets and may use the same names.
    assert!(other.list_secrets(None).await.unwrap().is_empty());
    assert_eq!(
        refusal(other.get_secret_value("aes", None).await),
        bad("Can't find the aes's value.")
    );
    assert!(other.describe_secret("aes").await.unwrap().is_none());
    assert!(other.list_secret_versions("aes").await.unwrap().is_empty());
    assert_eq!(
        refusal(other.delete_secret("aes", None).await),
        bad("Delete error, Can not find the secretName")
    );
    other
        .create_secret("aes", "theirs", &SecretOptions::default())
        .await
        .unwrap();
    assert_eq!(value(&other, "aes", None).await, "theirs");
    assert_eq!(value(&c, "aes", None).await, "a2");
}

/// Names, values and descriptions of every printable character (and the whitespace upstream's
/// test clients generate) come back byte for byte.
#[tokio::test(flavor = "multi_thread")]
async fn printable_text_round_trips_exactly() {
    let s = Server::start(&[]);
    let (c, creds) = s.enrolled().await;
    let printable: String = (0x20u8..0x7f)
        .map(char::from)
        .chain("\t\n\r\x0b\x0c".chars())
        .collect();
    let names: Vec<String> = printable
        .as_bytes()
        .chunks(60)
        .map(|chunk| format!("n{}", String::from_utf8(chunk.to_vec()).unwrap()))
        .chain([
            " leading and trailing ".to_owned(),
            "a&b=c\"d'e\\f".to_owned(),
            "ünïcødé 🔑".to_owned(),
        ])
        .collect();
    let value = format!("{printable} and ünïcødé 🔑 {printable}");
    for name in &names {
        let options = SecretOptions {
            description: Some(printable.clone()),
            ..SecretOptions::default()
        };
        c.create_secret(name, &value, &options).await.unwrap();
        let got = c.get_secret_value(name, None).await.unwrap().unwrap();
        assert_eq!((&got.name, &got.value), (name, &value));
        let info = c.describe_secret(name).await.unwrap().unwrap();
        assert_eq!(info.description.as_deref(), Some(printable.as_str()));
        // The raw wire text, as another language's client would read it.
        let raw = signed(&s, &creds, "GetSecretValue", json!({"secretName": name})).await;
        assert_eq!(raw["result"]["secretData"], Value::String(value.clone()));
    }
    let listed: Vec<String> = c
        .list_secrets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(listed, sorted, "listed by name, in byte order");
}

/// Many writers putting values at once: every put gets its own version number and none is lost.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_writers_never_lose_or_share_a_version() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    c.create_secret("shared", "initial", &SecretOptions::default())
        .await
        .unwrap();
    let (writers, puts) = (8, 10);
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                for i in 0..puts {
                    c.put_secret_value("shared", &format!("w{w}-{i}"))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let versions = c.list_secret_versions("shared").await.unwrap();
    let ids: Vec<i64> = versions.iter().map(|v| v.version_id).collect();
    assert_eq!(
        ids,
        (1..=1 + writers * puts).collect::<Vec<i64>>(),
        "no gap, no duplicate"
    );
    let mut values = std::collections::BTreeSet::new();
    for v in &versions {
        values.insert(value(&c, "shared", Some(v.version_id)).await);
    }
    assert_eq!(
        values.len(),
        versions.len(),
        "every version holds a different put's value"
    );
    for w in 0..writers {
        for i in 0..puts {
            assert!(values.contains(&format!("w{w}-{i}")), "w{w}-{i} lost");
        }
    }
}

/// Every validation rule of spec §5 for the secret actions: code 400, upstream's message, and
/// nothing stored.
#[tokio::test(flavor = "multi_thread")]
async fn bad_secret_payloads_are_refused_and_change_nothing() {
    let s = Server::start(&[]);
    let (c, creds) = s.enrolled().await;
    c.create_secret("kept", "value", &SecretOptions::default())
        .await
        .unwrap();
    let long_name = "n".repeat(65);
    let long_data = "d".repeat(4097);
    let long_desc = "d".repeat(4097);
    let cases: Vec<(&str, Value, String)> = vec![
        (
            "CreateSecret",
            json!({"secretData": "x"}),
            "Missing required parameters, The secretName cannot be empty.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a"}),
            "Missing required parameters, The secretData cannot be empty.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "", "secretData": "x"}),
            "Missing required parameters, The secretName cannot be empty.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": 7, "secretData": "x"}),
            "Parameter invalid, The secretName must be of string type.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": long_name, "secretData": "x"}),
            "Parameter invalid, The secretName length error.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a", "secretData": long_data}),
            "Parameter invalid, The secretData length error.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a", "secretData": "x", "description": long_desc}),
            "Parameter invalid, The description length error.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a", "secretData": "x", "rotationInterval": "30x"}),
            "Parameter invalid, The rotationInterval format wrong.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a", "secretData": "x", "rotationInterval": "12345d"}),
            "Parameter invalid, The rotationInterval length error.".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a", "secretData": "x", "rotationInterval": "5h"}),
            "The rotation time is less than 6 hours or more than 8760 hours".into(),
        ),
        (
            "CreateSecret",
            json!({"secretName": "a", "secretData": "x", "rotationInterval": "366d"}),
            "The rotation time is less than 6 hours or more than 8760 hours".into(),
        ),
        (
            "PutSecretValue",
            json!({"secretName": "kept"}),
            "Missing required parameters, The secretData cannot be empty.".into(),
        ),
        (
            "PutSecretValue",
            json!({"secretName": "kept", "secretData": long_data}),
            "Parameter invalid, The secretData length error.".into(),
        ),
        (
            "UpdateSecretDesc",
            json!({"description": "d"}),
            "Missing required parameters, The secretName cannot be empty.".into(),
        ),
        (
            "ListSecretVersionIds",
            json!({}),
            "Missing required parameters, The secretName cannot be empty.".into(),
        ),
        (
            "ListSecrets",
            json!({"secretName": long_name}),
            "Parameter invalid, The secretName length error.".into(),
        ),
        (
            "DescribeSecret",
            json!({"secretName": ["kept"]}),
            "Parameter invalid, The secretName must be of string type.".into(),
        ),
        (
            "DeleteSecret",
            json!({"secretName": "kept", "recoveryPeriod": 0}),
            "Parameter invalid, The recoveryPeriod value must be greater than or equal to 1."
                .into(),
        ),
        (
            "DeleteSecret",
            json!({"secretName": "kept", "recoveryPeriod": 366}),
            "Parameter invalid, The recoveryPeriod value must be less than or equal to 365.".into(),
        ),
        (
            "DeleteSecret",
            json!({"secretName": "kept", "recoveryPeriod": "7"}),
            "Parameter invalid, The recoveryPeriod must be of integer type.".into(),
        ),
        (
            "DeleteSecret",
            json!({"secretName": "kept", "recoveryPeriod": 1.5}),
            "Parameter invalid, The recoveryPeriod must be of integer type.".into(),
        ),
        (
            "DeleteSecret",
            json!({"secretName": "kept", "forceDelete": "truely"}),
            "Parameter invalid, The forceDelete length error.".into(),
        ),
        (
            "DeleteSecret",
            json!({"secretName": "kept", "forceDelete": true}),
            "Parameter invalid, The forceDelete must be of string type.".into(),
        ),
        (
            "GetSecretValue",
            json!({"secretName": "kept", "versionId": 0}),
            "Parameter invalid, The versionId value must be greater than or equal to 1.".into(),
        ),
        (
            "GetSecretValue",
            json!({"secretName": "kept", "versionId": "1"}),
            "Parameter invalid, The versionId must be of integer type.".into(),
        ),
        (
            "RestoreSecret",
            json!({}),
            "Missing required parameters, The secretName cannot be empty.".into(),
        ),
    ];
    for (action, payload, message) in &cases {
        let body = call(&s.url, &creds, action, Some(payload.clone())).await;
        assert_eq!(body["code"], 400, "{action} {payload}: {body}");
        assert_eq!(body["message"], json!(message), "{action} {payload}");
    }
    // Nothing was created, put, scheduled or changed.
    let names: Vec<String> = c
        .list_secrets(None)
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["kept"]);
    assert_eq!(c.list_secret_versions("kept").await.unwrap().len(), 1);
    let info = c.describe_secret("kept").await.unwrap().unwrap();
    assert_eq!((info.planned_delete_time, info.description), (None, None));
}
