//! The SDK against the real server: its connection options (trusting its generated certificate
//! with `ClientBuilder::ca_certificate`, enrolling on a token server with
//! `Client::enroll_with_token`) and the typed key-lifecycle methods, with their refusals. (Their
//! unit tests in `ehsm-client` use a fake plain-HTTP server.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::time::Duration;

use ehsm_client::{
    Alias, Client, DigestMode, Error, KeyOptions, KeySpec, KeyUsage, MessageType, Origin,
    PaddingMode, RotatedKey, RotationPolicy,
};
use util::Server;

/// The server's generated certificate, once written (`ehsm serve` logs its address first).
fn cert_pem(server: &Server) -> Vec<u8> {
    let path = server.data_dir.join("tls-cert.pem");
    for _ in 0..200 {
        if let Ok(pem) = std::fs::read(&path)
            && pem.windows(25).any(|w| w == b"-----END CERTIFICATE-----")
        {
            return pem;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} was not written", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_certificate_trusts_exactly_the_given_certificate() {
    let s = Server::start(&[]);
    let other = Server::start(&[]);
    let pem = cert_pem(&s);

    let trusted = Client::builder(&s.url)
        .ca_certificate(&pem)
        .build()
        .unwrap();
    assert_eq!(trusted.get_version().await.unwrap().version, "0.3.2");
    let creds = trusted.enroll().await.unwrap();
    let app = trusted.with_credentials(creds);
    assert!(
        app.list_keys().await.unwrap().is_empty(),
        "signed calls over the trusted connection"
    );

    // The certificate is issued for localhost as well as 127.0.0.1.
    let localhost = s.url.replace("127.0.0.1", "localhost");
    let by_name = Client::builder(&localhost)
        .ca_certificate(&pem)
        .build()
        .unwrap();
    by_name.get_version().await.unwrap();

    // Without it the self-signed certificate is refused; another server's does not help.
    let default = Client::builder(&s.url).build().unwrap();
    assert!(matches!(
        default.get_version().await,
        Err(Error::Transport(_))
    ));
    let wrong = Client::builder(&s.url)
        .ca_certificate(&cert_pem(&other))
        .build()
        .unwrap();
    assert!(matches!(
        wrong.get_version().await,
        Err(Error::Transport(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn enroll_with_token_is_needed_on_a_token_server() {
    let s = Server::start(&["--enroll", "token"]);
    let log = s.log.lock().unwrap().clone();
    let token = log
        .lines()
        .find_map(|l| l.split("Bearer <token>'): ").nth(1))
        .expect("the server prints its enrollment token")
        .trim()
        .to_owned();
    let c = s.client();
    let refused = |r: Result<_, Error>| matches!(r, Err(Error::Api { code: 400, .. }));
    assert!(refused(c.enroll().await), "no token");
    assert!(
        refused(c.enroll_with_token("ehsm-enroll-wrong").await),
        "wrong token"
    );
    let creds = c.enroll_with_token(&token).await.unwrap();
    assert_eq!(creds.apikey.len(), 32);
    let app = c.with_credentials(creds);
    assert!(app.list_keys().await.unwrap().is_empty());
}

const DAY_MS: i64 = 86_400_000;

/// Asserts a 400 refusal whose message contains `expected`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, Error>, expected: &str) {
    match result {
        Err(Error::Api { code: 400, message }) => {
            assert!(
                message.contains(expected),
                "{expected:?} not in {message:?}"
            );
        }
        other => panic!("expected a 400 with {expected:?}, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn symmetric_keys_rotate_reencrypt_and_go_by_alias() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let options = KeyOptions {
        rotation_interval_days: Some(30),
        description: Some("orders".into()),
    };
    let (spec, origin, usage) = (
        KeySpec::AesGcm256,
        Origin::Internal,
        KeyUsage::EncryptDecrypt,
    );
    let aes = c
        .create_key_with_options(spec, origin, usage, &options)
        .await
        .unwrap();
    c.create_alias("alias/orders", &aes).await.unwrap();
    let d = c.describe_key("alias/orders").await.unwrap();
    assert_eq!(
        (d.keyid.as_str(), d.keyspec, d.origin, d.keyusage),
        (aes.as_str(), spec, origin, usage)
    );
    assert_eq!(d.description.as_deref(), Some("orders"));
    assert_eq!(d.aliases, ["alias/orders"]);
    assert_eq!((d.primary_version, d.deletion_date), (1, None));
    assert!(d.is_enabled());
    assert!(d.rotation.enabled && d.rotation.interval_days == Some(30));
    assert!(d.rotation.next_rotation_date.unwrap() >= d.creation_date + 30 * DAY_MS);

    let v1 = c
        .encrypt("alias/orders", b"order 1", Some(b"ctx"))
        .await
        .unwrap();
    assert_eq!(
        c.rotate_key("alias/orders").await.unwrap(),
        RotatedKey {
            keyid: aes.clone(),
            version: 2
        }
    );
    let versions = c.list_key_versions("alias/orders").await.unwrap();
    assert_eq!(
        (versions.keyid.as_str(), versions.primary_version),
        (aes.as_str(), 2)
    );
    let numbers: Vec<u32> = versions.versions.iter().map(|v| v.version).collect();
    assert_eq!(numbers, [1, 2]);
    assert!(versions.versions[0].creation_date <= versions.versions[1].creation_date);
    assert_eq!(
        c.decrypt(&aes, &v1, Some(b"ctx")).await.unwrap(),
        b"order 1",
        "made by version 1, still decrypts"
    );
    // ReEncrypt to the newest version, with a new aad.
    let moved = c
        .reencrypt(
            "alias/orders",
            &v1,
            Some(b"ctx"),
            "alias/orders",
            Some(b"new"),
        )
        .await
        .unwrap();
    assert_eq!((moved.keyid.as_str(), moved.version), (aes.as_str(), 2));
    assert_eq!(
        (v1[1], moved.ciphertext[1]),
        (1, 2),
        "the header's version byte"
    );
    assert_eq!(
        c.decrypt(&aes, &moved.ciphertext, Some(b"new"))
            .await
            .unwrap(),
        b"order 1"
    );
    // ... and to another key, without an aad.
    let other = c
        .create_key(KeySpec::AesGcm128, origin, usage)
        .await
        .unwrap();
    let there = c
        .reencrypt(&aes, &v1, Some(b"ctx"), &other, None)
        .await
        .unwrap();
    assert_eq!((there.keyid.as_str(), there.version), (other.as_str(), 1));
    assert_eq!(
        c.decrypt(&other, &there.ciphertext, None).await.unwrap(),
        b"order 1"
    );

    // Rotation policy: off keeps the interval; on with a new one.
    c.update_rotation_policy(&aes, false, None).await.unwrap();
    assert_eq!(
        c.describe_key(&aes).await.unwrap().rotation,
        RotationPolicy {
            enabled: false,
            interval_days: Some(30),
            next_rotation_date: None
        }
    );
    c.update_rotation_policy("alias/orders", true, Some(90))
        .await
        .unwrap();
    let rotation = c.describe_key(&aes).await.unwrap().rotation;
    assert_eq!((rotation.enabled, rotation.interval_days), (true, Some(90)));

    // Aliases: repointed, listed per key, deleted.
    c.update_alias("alias/orders", &other).await.unwrap();
    let listed = c.list_aliases(None).await.unwrap();
    assert_eq!(
        listed,
        [Alias {
            alias: "alias/orders".into(),
            keyid: other.clone()
        }]
    );
    assert_eq!(c.list_aliases(Some(&other)).await.unwrap(), listed);
    assert!(c.list_aliases(Some(&aes)).await.unwrap().is_empty());
    let keys = c.list_keys().await.unwrap();
    let item = keys.iter().find(|k| k.keyid == other).unwrap();
    assert_eq!(item.alias, "alias/orders", "ListKey shows the aliases too");
    c.delete_alias("alias/orders").await.unwrap();
    assert!(c.list_aliases(None).await.unwrap().is_empty());

    // Scheduled deletion: the key is disabled at once; cancelled, it stays disabled.
    let before = i64::try_from(util::now_ms()).unwrap();
    let date = c.schedule_key_deletion(&other, Some(7)).await.unwrap();
    let after = i64::try_from(util::now_ms()).unwrap();
    assert!(
        (before + 7 * DAY_MS..=after + 7 * DAY_MS).contains(&date),
        "{date}"
    );
    let d = c.describe_key(&other).await.unwrap();
    assert_eq!(d.deletion_date, Some(date));
    assert!(!d.is_enabled());
    refused(c.encrypt(&other, b"x", None).await, "pending deletion");
    c.cancel_key_deletion(&other).await.unwrap();
    let d = c.describe_key(&other).await.unwrap();
    assert_eq!(d.deletion_date, None);
    assert!(!d.is_enabled());
    c.enable_key(&other).await.unwrap();
    c.encrypt(&other, b"x", None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn asymmetric_versions_sign_verify_encrypt_and_publish() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let ec = c
        .create_key(KeySpec::EcP256, Origin::Internal, KeyUsage::SignVerify)
        .await
        .unwrap();
    let modes = (DigestMode::Sha256, PaddingMode::None, MessageType::Raw);
    let signed = c
        .sign_versioned(&ec, None, modes.0, modes.1, modes.2, b"m")
        .await
        .unwrap();
    assert_eq!(signed.version, 1);
    let pem1 = c.get_public_key_versioned(&ec, None).await.unwrap();
    assert_eq!(pem1.version, 1);
    assert_eq!(c.rotate_key(&ec).await.unwrap().version, 2);

    let verify =
        |version| c.verify_versioned(&ec, version, modes.0, modes.1, modes.2, b"m", &signed.value);
    assert_eq!(verify(None).await.unwrap(), Some(1), "any version verifies");
    assert_eq!(verify(Some(1)).await.unwrap(), Some(1));
    assert_eq!(verify(Some(2)).await.unwrap(), None, "only version 2");
    assert!(
        c.verify(&ec, modes.0, modes.1, modes.2, b"m", &signed.value)
            .await
            .unwrap(),
        "the plain method verifies old signatures too"
    );
    let signed_v1 = c
        .sign_versioned(&ec, Some(1), modes.0, modes.1, modes.2, b"n")
        .await
        .unwrap();
    assert_eq!(signed_v1.version, 1);
    let v1 = c.get_public_key_versioned(&ec, Some(1)).await.unwrap();
    assert_eq!(v1, pem1);
    let primary = c.get_public_key_versioned(&ec, None).await.unwrap();
    assert_eq!(primary.version, 2);
    assert_ne!(primary.value, pem1.value, "a new version is a new key pair");
    assert_eq!(c.get_public_key(&ec).await.unwrap(), primary.value);

    let rsa = c
        .create_key(KeySpec::Rsa2048, Origin::Internal, KeyUsage::EncryptDecrypt)
        .await
        .unwrap();
    let oaep = PaddingMode::RsaPkcs1Oaep;
    let ct = c
        .asymmetric_encrypt_versioned(&rsa, None, oaep, b"secret")
        .await
        .unwrap();
    assert_eq!(ct.version, 1);
    c.rotate_key(&rsa).await.unwrap();
    let pt = c
        .asymmetric_decrypt_versioned(&rsa, Some(1), oaep, &ct.value)
        .await
        .unwrap();
    assert_eq!((pt.value.as_slice(), pt.version), (&b"secret"[..], 1));
    let pt = c
        .asymmetric_decrypt_versioned(&rsa, None, oaep, &ct.value)
        .await
        .unwrap();
    assert_eq!(pt.version, 1, "every version is tried");
    refused(
        c.asymmetric_decrypt_versioned(&rsa, Some(2), oaep, &ct.value)
            .await,
        "Decryption failed",
    );
    let ct2 = c
        .asymmetric_encrypt_versioned(&rsa, None, oaep, b"later")
        .await
        .unwrap();
    assert_eq!(ct2.version, 2);
    assert_eq!(
        c.asymmetric_decrypt(&rsa, oaep, &ct2.value).await.unwrap(),
        b"later"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lifecycle_methods_refuse_bad_input_with_the_servers_reason() {
    let s = Server::start(&[]);
    let (c, _) = s.enrolled().await;
    let (spec, origin, usage) = (
        KeySpec::AesGcm256,
        Origin::Internal,
        KeyUsage::EncryptDecrypt,
    );
    let aes = c.create_key(spec, origin, usage).await.unwrap();
    let ec = c
        .create_key(KeySpec::EcP256, origin, KeyUsage::SignVerify)
        .await
        .unwrap();
    let unknown = "Parameter invalid, The alias alias/nope does not exist.";
    refused(c.encrypt("alias/nope", b"x", None).await, unknown);
    refused(c.describe_key("alias/nope").await, unknown);
    refused(c.list_key_versions("alias/nope").await, unknown);
    refused(c.rotate_key("alias/nope").await, unknown);
    refused(c.list_aliases(Some("alias/nope")).await, unknown);
    refused(c.delete_alias("alias/nope").await, unknown);
    refused(c.update_alias("alias/nope", &aes).await, unknown);
    refused(
        c.reencrypt(&aes, b"x", None, "alias/nope", None).await,
        unknown,
    );
    refused(
        c.describe_key("0e2d6e3a-0000-4000-8000-000000000000").await,
        "keyid error",
    );

    let with_days = |days| KeyOptions {
        rotation_interval_days: Some(days),
        description: None,
    };
    refused(
        c.create_key_with_options(spec, origin, usage, &with_days(6))
            .await,
        "rotationInterval value must be greater than or equal to 7",
    );
    refused(
        c.create_key_with_options(
            KeySpec::EcP256,
            origin,
            KeyUsage::SignVerify,
            &with_days(30),
        )
        .await,
        "symmetric and HMAC keys",
    );
    let long = KeyOptions {
        rotation_interval_days: None,
        description: Some("d".repeat(4097)),
    };
    refused(
        c.create_key_with_options(spec, origin, usage, &long).await,
        "description length error",
    );
    refused(
        c.update_rotation_policy(&aes, true, Some(2561)).await,
        "rotationInterval value must be less than or equal to 2560",
    );
    refused(
        c.update_rotation_policy(&ec, true, None).await,
        "symmetric and HMAC keys",
    );
    let external = c.create_key(spec, Origin::External, usage).await.unwrap();
    refused(c.rotate_key(&external).await, "cannot be rotated");

    refused(
        c.schedule_key_deletion(&aes, Some(6)).await,
        "pendingWindowInDays value must be greater than or equal to 7",
    );
    refused(
        c.schedule_key_deletion(&aes, Some(31)).await,
        "pendingWindowInDays value must be less than or equal to 30",
    );
    refused(c.cancel_key_deletion(&aes).await, "not pending deletion");

    refused(
        c.create_alias("orders-db", &aes).await,
        "The alias format wrong.",
    );
    refused(
        c.create_alias("alias/", &aes).await,
        "The alias length error.",
    );
    refused(c.create_alias("alias/aws/x", &aes).await, "alias/aws/");
    c.create_alias("alias/a", &aes).await.unwrap();
    refused(c.create_alias("alias/a", &ec).await, "already exists");
    refused(
        c.create_alias("alias/b", "alias/a").await,
        "not another alias",
    );
    refused(c.update_alias("alias/a", &ec).await, "same kind");
    assert_eq!(
        c.list_aliases(None).await.unwrap()[0].keyid,
        aes,
        "unchanged"
    );

    let modes = (DigestMode::Sha256, PaddingMode::None, MessageType::Raw);
    refused(
        c.sign_versioned(&ec, Some(9), modes.0, modes.1, modes.2, b"m")
            .await,
        "keyversion 9 does not exist",
    );
    refused(
        c.get_public_key_versioned(&ec, Some(0)).await,
        "keyversion value must be greater than or equal to 1",
    );
    let ct = c.encrypt(&aes, b"x", Some(b"right")).await.unwrap();
    refused(
        c.reencrypt(&aes, &ct, Some(b"wrong"), &aes, None).await,
        "Decryption failed",
    );
    assert_eq!(
        c.list_key_versions(&aes).await.unwrap().primary_version,
        1,
        "nothing rotated"
    );
}
