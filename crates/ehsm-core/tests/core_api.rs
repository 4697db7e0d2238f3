//! The core's public API as the service uses it: every key spec and operation, the origin/usage
//! matrix of spec §6.1–6.2, blob binding, API keys and BYOK.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::sync::OnceLock;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_core::spec::{DigestMode, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
use ehsm_core::{Core, DomainKeySet, Error, KeyBlob, KeyContext, MacVerified, SigV4Scope};

const APP: &str = "b7c62e4d-c238-4016-b35f-47bc4b57dc03";
const OTHER_APP: &str = "0b5e1f3a-0000-4000-8000-000000000000";

struct Fixture {
    core: Core,
    apikey: String,
    apikey_blob: KeyBlob,
}

/// One core for the whole file: starting one runs every self-test.
fn fx() -> &'static Fixture {
    static FX: OnceLock<Fixture> = OnceLock::new();
    FX.get_or_init(|| {
        let core = Core::new(DomainKeySet::generate().unwrap()).unwrap();
        let (key, blob) = core.create_api_key(APP).unwrap();
        Fixture {
            apikey: key.expose().to_owned(),
            apikey_blob: blob,
            core,
        }
    })
}

fn sign(apikey: &str, canonical: &str) -> String {
    let k = hmac::Key::new(hmac::HMAC_SHA256, apikey.as_bytes());
    STANDARD.encode(hmac::sign(&k, canonical.as_bytes()))
}

fn auth() -> MacVerified<'static> {
    let f = fx();
    let canon = format!("appid={APP}&timestamp=1700000000000");
    f.core
        .verify_request_mac(
            APP,
            &f.apikey_blob,
            canon.as_bytes(),
            &sign(&f.apikey, &canon),
        )
        .unwrap()
}

fn ctx(keyid: &'static str, spec: KeySpec, usage: KeyUsage) -> KeyContext<'static> {
    KeyContext {
        keyid,
        appid: APP,
        spec,
        origin: Origin::Internal,
        usage,
        version: 1,
    }
}

const KID: &str = "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef";
const UKID: &str = "bbc3e45a-d3dc-4791-89b6-4ada0e38e6ef";

#[test]
fn request_mac_accepts_the_right_sign_only() {
    let f = fx();
    let canon = "appid=x&payload=&timestamp=1700000000000";
    let good = sign(&f.apikey, canon);
    assert!(
        f.core
            .verify_request_mac(APP, &f.apikey_blob, canon.as_bytes(), &good)
            .is_ok()
    );
    let wrong = sign("not-the-key-not-the-key-not-the-", canon);
    assert_eq!(
        f.core
            .verify_request_mac(APP, &f.apikey_blob, canon.as_bytes(), &wrong)
            .err(),
        Some(Error::RequestMacMismatch)
    );
    assert_eq!(
        f.core
            .verify_request_mac(APP, &f.apikey_blob, b"other", &good)
            .err(),
        Some(Error::RequestMacMismatch)
    );
    // The API key blob is bound to its app: presenting it for another appid fails to unwrap.
    assert!(matches!(
        f.core
            .verify_request_mac(OTHER_APP, &f.apikey_blob, canon.as_bytes(), &good),
        Err(Error::IntegrityFailure(_))
    ));
}

/// A SigV4 signature as a client computes it: AWS's key chain, written out here on its own
/// rather than through the core. (The core's known-answer tests use AWS's published vectors.)
fn sigv4(secret: &str, scope: &SigV4Scope<'_>, string_to_sign: &str) -> String {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [scope.date, scope.region, scope.service, "aws4_request"] {
        key = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &key), part.as_bytes())
            .as_ref()
            .to_vec();
    }
    hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        string_to_sign.as_bytes(),
    ))
}

#[test]
fn sigv4_accepts_the_right_signature_only() {
    let f = fx();
    let scope = SigV4Scope {
        date: "20261102",
        region: "us-east-1",
        service: "kms",
    };
    let sts = "AWS4-HMAC-SHA256\n20261102T093015Z\n20261102/us-east-1/kms/aws4_request\n\
               adfe9e4b1cabfc8f45ed2c38e5f8427bf44cecdfa61cf82479fcc3115a552427";
    let good = sigv4(&f.apikey, &scope, sts);
    let check = |appid, blob, scope: &SigV4Scope<'_>, sts: &str, sig: &str| {
        f.core.verify_sigv4(appid, blob, scope, sts.as_bytes(), sig)
    };
    let verified = check(APP, &f.apikey_blob, &scope, sts, &good).unwrap();
    assert_eq!(verified.appid(), APP);
    // The proof works for the app's keys like the eHSM request MAC's does.
    let c = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let blob = f.core.create_key(&c).unwrap();
    let ct = f.core.encrypt(&verified, &c, &blob, b"hi", b"").unwrap();
    assert_eq!(
        f.core
            .decrypt(&auth(), &c, &blob, &ct, b"")
            .unwrap()
            .as_slice(),
        b"hi"
    );

    // Wrong secret, one digit changed, and every malformed spelling: a mismatch, no panic.
    let mut flipped = good.clone().into_bytes();
    flipped[17] = if flipped[17] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    for bad in [
        sigv4("not-the-key-not-the-key-not-the-", &scope, sts),
        flipped,
        good.to_ascii_uppercase(),
        good[..63].to_owned(),
        good[..62].to_owned(),
        format!("{good}0"),
        format!("{}z", &good[..63]),
        format!("0x{}", &good[..62]),
        String::new(),
    ] {
        assert_eq!(
            check(APP, &f.apikey_blob, &scope, sts, &bad).err(),
            Some(Error::RequestMacMismatch),
            "{bad:?}"
        );
    }
    // Signed for another day, region or service, or another string to sign.
    for other in [
        SigV4Scope {
            date: "20261103",
            ..scope
        },
        SigV4Scope {
            region: "eu-west-1",
            ..scope
        },
        SigV4Scope {
            service: "s3",
            ..scope
        },
    ] {
        assert_eq!(
            check(APP, &f.apikey_blob, &other, sts, &good).err(),
            Some(Error::RequestMacMismatch)
        );
    }
    assert_eq!(
        check(APP, &f.apikey_blob, &scope, &sts.replace('a', "b"), &good).err(),
        Some(Error::RequestMacMismatch)
    );
    // The API key blob is bound to its app, and another app's blob is not this app's key.
    assert!(matches!(
        check(OTHER_APP, &f.apikey_blob, &scope, sts, &good),
        Err(Error::IntegrityFailure(_))
    ));
    let (_, other_blob) = f.core.create_api_key(OTHER_APP).unwrap();
    assert_eq!(
        check(OTHER_APP, &other_blob, &scope, sts, &good).err(),
        Some(Error::RequestMacMismatch)
    );
}

#[test]
fn response_mac_is_the_apps_hmac_and_only_under_its_own_key() {
    let f = fx();
    let canon = "nonce=bm9uY2U=&result=40961";
    assert_eq!(
        f.core
            .response_mac(&auth(), &f.apikey_blob, canon.as_bytes())
            .unwrap(),
        sign(&f.apikey, canon)
    );
    // Another app's API key blob cannot be used for this app's request: it is bound to its app.
    let (_, other_blob) = f.core.create_api_key(OTHER_APP).unwrap();
    assert!(matches!(
        f.core.response_mac(&auth(), &other_blob, canon.as_bytes()),
        Err(Error::IntegrityFailure(_))
    ));
}

#[test]
fn symmetric_keys_encrypt_decrypt_with_aad_binding() {
    let f = fx();
    for spec in [
        KeySpec::AesGcm128,
        KeySpec::AesGcm192,
        KeySpec::AesGcm256,
        KeySpec::Sm4Ctr,
        KeySpec::Sm4Cbc,
    ] {
        let c = ctx(KID, spec, KeyUsage::EncryptDecrypt);
        let blob = f.core.create_key(&c).unwrap();
        for len in [1usize, 15, 16, 17, 1024, 6144] {
            let pt = vec![0x5a; len];
            let ct = f.core.encrypt(&auth(), &c, &blob, &pt, b"aad").unwrap();
            assert_eq!(ehsm_core::ciphertext::key_version(&ct).unwrap(), 1);
            let back = f.core.decrypt(&auth(), &c, &blob, &ct, b"aad").unwrap();
            assert_eq!(back.as_slice(), &pt[..], "{spec} {len}");
        }
        let ct = f
            .core
            .encrypt(&auth(), &c, &blob, b"hello", b"aad")
            .unwrap();
        let wrong_aad = f.core.decrypt(&auth(), &c, &blob, &ct, b"other");
        if spec.as_str().starts_with("EH_AES") {
            assert_eq!(wrong_aad.err(), Some(Error::DecryptionFailed), "{spec}");
        } else {
            // SM4 ignores aad, as upstream (spec §6.3).
            assert!(wrong_aad.is_ok(), "{spec}");
        }
        // Another key of the same spec cannot decrypt (GCM: tag; CBC: padding or garbage).
        let other = ctx(UKID, spec, KeyUsage::EncryptDecrypt);
        let other_blob = f.core.create_key(&other).unwrap();
        match f.core.decrypt(&auth(), &other, &other_blob, &ct, b"aad") {
            Ok(p) => assert_ne!(p.as_slice(), b"hello", "{spec}"),
            Err(e) => assert!(
                matches!(e, Error::DecryptionFailed | Error::InvalidInput(_)),
                "{spec}: {e}"
            ),
        }
        // Bad plaintext sizes.
        assert!(matches!(
            f.core.encrypt(&auth(), &c, &blob, b"", b""),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            f.core.encrypt(&auth(), &c, &blob, &[0; 6145], b""),
            Err(Error::InvalidInput(_))
        ));
    }
}

#[test]
fn reencrypt_moves_a_ciphertext_between_keys_and_versions() {
    let f = fx();
    let v1 = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let v2 = KeyContext { version: 2, ..v1 };
    let (b1, b2) = (
        f.core.create_key(&v1).unwrap(),
        f.core.create_key(&v2).unwrap(),
    );
    let sm4 = ctx(UKID, KeySpec::Sm4Cbc, KeyUsage::EncryptDecrypt);
    let sm4_blob = f.core.create_key(&sm4).unwrap();
    let ct = f.core.encrypt(&auth(), &v1, &b1, b"moved", b"a1").unwrap();
    // To the key's newer version, with new aad: the header names version 2.
    let moved = f
        .core
        .reencrypt(&auth(), &v1, &b1, &ct, b"a1", &v2, &b2, b"a2")
        .unwrap();
    assert_eq!(ehsm_core::ciphertext::key_version(&moved).unwrap(), 2);
    let back = f.core.decrypt(&auth(), &v2, &b2, &moved, b"a2").unwrap();
    assert_eq!(back.as_slice(), b"moved");
    assert_eq!(
        f.core.decrypt(&auth(), &v2, &b2, &moved, b"a1").err(),
        Some(Error::DecryptionFailed)
    );
    // To another key and spec.
    let to_sm4 = f
        .core
        .reencrypt(&auth(), &v1, &b1, &ct, b"a1", &sm4, &sm4_blob, b"")
        .unwrap();
    let back = f
        .core
        .decrypt(&auth(), &sm4, &sm4_blob, &to_sm4, b"")
        .unwrap();
    assert_eq!(back.as_slice(), b"moved");
    // The source aad must be right, and the version must be the ciphertext's.
    for (c, b, aad) in [(&v1, &b1, b"a2"), (&v2, &b2, b"a1")] {
        assert_eq!(
            f.core
                .reencrypt(&auth(), c, b, &ct, aad, &v2, &b2, b"")
                .err(),
            Some(Error::DecryptionFailed)
        );
    }
    // A destination that cannot encrypt is refused before anything is decrypted.
    let signing = ctx(UKID, KeySpec::EcP256, KeyUsage::SignVerify);
    let signing_blob = f.core.create_key(&signing).unwrap();
    assert!(matches!(
        f.core
            .reencrypt(&auth(), &v1, &b1, &ct, b"a1", &signing, &signing_blob, b""),
        Err(Error::NotPermitted(_))
    ));
}

#[test]
fn tampered_and_truncated_ciphertexts_fail_cleanly() {
    let f = fx();
    for spec in [KeySpec::AesGcm256, KeySpec::Sm4Ctr, KeySpec::Sm4Cbc] {
        let c = ctx(KID, spec, KeyUsage::EncryptDecrypt);
        let blob = f.core.create_key(&c).unwrap();
        let ct = f
            .core
            .encrypt(&auth(), &c, &blob, b"attack at dawn!!", b"")
            .unwrap();
        // A truncated ciphertext never decrypts to the plaintext. AES-GCM always refuses it;
        // SM4 has no integrity (upstream), so a truncation that leaves a well-formed length may
        // "decrypt" (CBC: when the garbage happens to end in valid padding) to other bytes.
        for len in 0..ct.len() {
            if let Ok(p) = f.core.decrypt(&auth(), &c, &blob, &ct[..len], b"") {
                assert!(
                    spec != KeySpec::AesGcm256 && p.as_slice() != b"attack at dawn!!",
                    "{spec} truncated to {len}"
                );
            }
        }
        for i in 0..ct.len() {
            let mut bad = ct.clone();
            bad[i] ^= 0x01;
            // SM4 has no integrity (upstream): a flipped bit may still decrypt, to other bytes.
            if let Ok(p) = f.core.decrypt(&auth(), &c, &blob, &bad, b"") {
                assert!(
                    spec != KeySpec::AesGcm256 && p.as_slice() != b"attack at dawn!!",
                    "{spec} byte {i}"
                );
            }
        }
    }
}

#[test]
fn random_bytes_are_1_to_1024_and_differ() {
    let f = fx();
    for len in [1usize, 32, 1024] {
        assert_eq!(f.core.generate_random(len).unwrap().len(), len);
    }
    let a = f.core.generate_random(32).unwrap();
    let b = f.core.generate_random(32).unwrap();
    assert_ne!(a.as_slice(), b.as_slice());
    for bad in [0usize, 1025] {
        assert!(matches!(
            f.core.generate_random(bad),
            Err(Error::InvalidInput(_))
        ));
    }
}

#[test]
fn data_keys_decrypt_with_decrypt_and_export_to_rsa_and_sm2() {
    let f = fx();
    let c = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let blob = f.core.create_key(&c).unwrap();
    for len in [1usize, 48, 1024] {
        let dk = f
            .core
            .generate_data_key(&auth(), &c, &blob, len, b"ctx")
            .unwrap();
        assert_eq!(dk.plaintext.len(), len);
        let back = f
            .core
            .decrypt(&auth(), &c, &blob, &dk.ciphertext, b"ctx")
            .unwrap();
        assert_eq!(back.as_slice(), dk.plaintext.as_slice());
    }
    for bad in [0usize, 1025] {
        assert!(matches!(
            f.core.generate_data_key(&auth(), &c, &blob, bad, b""),
            Err(Error::InvalidInput(_))
        ));
    }
    let dk = f
        .core
        .generate_data_key(&auth(), &c, &blob, 48, b"ctx")
        .unwrap();
    for (uspec, padding) in [
        (KeySpec::Rsa2048, PaddingMode::RsaPkcs1Oaep),
        (KeySpec::Sm2, PaddingMode::None),
    ] {
        let u = ctx(UKID, uspec, KeyUsage::EncryptDecrypt);
        let ublob = f.core.create_key(&u).unwrap();
        let new = f
            .core
            .export_data_key(&auth(), &c, &blob, &u, &ublob, &dk.ciphertext, b"ctx")
            .unwrap();
        let got = f
            .core
            .asymmetric_decrypt(&auth(), &u, &ublob, padding, &new)
            .unwrap();
        assert_eq!(got.as_slice(), dk.plaintext.as_slice(), "{uspec}");
        // Wrong aad: the old data key does not decrypt.
        assert!(
            f.core
                .export_data_key(&auth(), &c, &blob, &u, &ublob, &dk.ciphertext, b"no")
                .is_err()
        );
        // A signing key cannot receive exports.
        let s = ctx(UKID, uspec, KeyUsage::SignVerify);
        let sblob = f.core.create_key(&s).unwrap();
        assert!(matches!(
            f.core
                .export_data_key(&auth(), &c, &blob, &s, &sblob, &dk.ciphertext, b"ctx"),
            Err(Error::NotPermitted(_))
        ));
    }
}

#[test]
fn every_signing_spec_signs_and_verifies_raw_and_digest() {
    let f = fx();
    let specs = [
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
    for spec in specs {
        let c = ctx(KID, spec, KeyUsage::SignVerify);
        let blob = f.core.create_key(&c).unwrap();
        let pem = f.core.public_key_pem(&auth(), &c, &blob).unwrap();
        let label = if spec.as_str().starts_with("EH_RSA") {
            "RSA PUBLIC KEY"
        } else {
            "PUBLIC KEY"
        };
        assert!(
            pem.starts_with(&format!("-----BEGIN {label}-----\n")),
            "{spec}: {pem}"
        );
        let digest = if spec == KeySpec::Sm2 {
            DigestMode::Sm3
        } else {
            DigestMode::Sha256
        };
        let paddings: &[PaddingMode] = if spec.as_str().starts_with("EH_RSA") {
            &[PaddingMode::RsaPkcs1, PaddingMode::RsaPkcs1Pss]
        } else {
            // Padding is ignored for EC and SM2 (python's tests verify with EH_RSA_PKCS1).
            &[PaddingMode::None, PaddingMode::RsaPkcs1]
        };
        for &padding in paddings {
            for (kind, msg) in [
                (MessageType::Raw, b"hello world".to_vec()),
                (MessageType::Digest, vec![7u8; 32]),
            ] {
                let sig = f
                    .core
                    .sign(&auth(), &c, &blob, digest, padding, kind, &msg)
                    .unwrap();
                assert!(
                    f.core
                        .verify(&auth(), &c, &blob, digest, padding, kind, &msg, &sig)
                        .unwrap(),
                    "{spec} {padding} {kind}"
                );
                let mut other = msg.clone();
                other[0] ^= 1;
                assert!(
                    !f.core
                        .verify(&auth(), &c, &blob, digest, padding, kind, &other, &sig)
                        .unwrap(),
                    "{spec} {padding} {kind}"
                );
            }
        }
        // Wrong usage: an ENCRYPT_DECRYPT key of the same spec may not sign.
        let e = ctx(UKID, spec, KeyUsage::EncryptDecrypt);
        let eblob = f.core.create_key(&e).unwrap();
        assert!(matches!(
            f.core.sign(
                &auth(),
                &e,
                &eblob,
                digest,
                paddings[0],
                MessageType::Raw,
                b"x"
            ),
            Err(Error::NotPermitted(_))
        ));
    }
}

#[test]
fn rsa_and_sm2_asymmetric_encryption() {
    let f = fx();
    for (spec, paddings) in [
        (
            KeySpec::Rsa2048,
            &[PaddingMode::RsaPkcs1, PaddingMode::RsaPkcs1Oaep][..],
        ),
        (KeySpec::Rsa3072, &[PaddingMode::RsaPkcs1Oaep][..]),
        (
            KeySpec::Sm2,
            &[PaddingMode::None, PaddingMode::RsaPkcs1Oaep][..],
        ),
    ] {
        let c = ctx(KID, spec, KeyUsage::EncryptDecrypt);
        let blob = f.core.create_key(&c).unwrap();
        for &p in paddings {
            let ct = f
                .core
                .asymmetric_encrypt(&auth(), &c, &blob, p, b"secret")
                .unwrap();
            let pt = f
                .core
                .asymmetric_decrypt(&auth(), &c, &blob, p, &ct)
                .unwrap();
            assert_eq!(pt.as_slice(), b"secret", "{spec} {p}");
        }
        if spec != KeySpec::Sm2 {
            assert!(
                f.core
                    .asymmetric_encrypt(&auth(), &c, &blob, PaddingMode::None, b"x")
                    .is_err()
            );
            assert!(
                f.core
                    .asymmetric_encrypt(&auth(), &c, &blob, PaddingMode::RsaPkcs1Pss, b"x")
                    .is_err()
            );
            // Padding must match on decrypt.
            let ct = f
                .core
                .asymmetric_encrypt(&auth(), &c, &blob, PaddingMode::RsaPkcs1Oaep, b"x")
                .unwrap();
            assert!(
                f.core
                    .asymmetric_decrypt(&auth(), &c, &blob, PaddingMode::RsaPkcs1, &ct)
                    .is_err()
            );
        }
    }
}

#[test]
fn create_key_matrix_follows_upstream() {
    let f = fx();
    for &spec in KeySpec::ALL {
        for &usage in KeyUsage::ALL {
            let c = ctx(KID, spec, usage);
            let ok = f.core.create_key(&c).is_ok();
            let expected = match spec {
                KeySpec::AesGcm128
                | KeySpec::AesGcm192
                | KeySpec::AesGcm256
                | KeySpec::Sm4Ctr
                | KeySpec::Sm4Cbc => usage == KeyUsage::EncryptDecrypt,
                KeySpec::Hmac => usage == KeyUsage::SignVerify,
                _ => true,
            };
            assert_eq!(ok, expected, "internal {spec} {usage}");
            // External keys are created for any spec and usage, with no material yet.
            let ext = KeyContext {
                origin: Origin::External,
                ..c
            };
            assert!(f.core.create_key(&ext).is_ok(), "external {spec} {usage}");
        }
    }
}

#[test]
fn operations_refuse_the_wrong_kind_of_key() {
    let f = fx();
    let aes = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let aes_blob = f.core.create_key(&aes).unwrap();
    let ec = ctx(UKID, KeySpec::EcP256, KeyUsage::SignVerify);
    let ec_blob = f.core.create_key(&ec).unwrap();
    let np = |r: Result<(), Error>| assert!(matches!(r, Err(Error::NotPermitted(_))), "{r:?}");
    np(f.core.encrypt(&auth(), &ec, &ec_blob, b"x", b"").map(drop));
    np(f.core
        .sign(
            &auth(),
            &aes,
            &aes_blob,
            DigestMode::Sha256,
            PaddingMode::None,
            MessageType::Raw,
            b"x",
        )
        .map(drop));
    np(f.core.public_key_pem(&auth(), &aes, &aes_blob).map(drop));
    np(f.core
        .asymmetric_encrypt(&auth(), &aes, &aes_blob, PaddingMode::RsaPkcs1, b"x")
        .map(drop));
    np(f.core
        .generate_mac(&auth(), &aes, &aes_blob, b"x")
        .map(drop));
    // An external key before import has no material.
    let ext = KeyContext {
        origin: Origin::External,
        ..aes
    };
    let ext_blob = f.core.create_key(&ext).unwrap();
    np(f.core
        .encrypt(&auth(), &ext, &ext_blob, b"x", b"")
        .map(drop));
    // Data keys need an internal key.
    np(f.core
        .generate_data_key(&auth(), &ext, &ext_blob, 16, b"")
        .map(drop));
}

#[test]
fn blobs_cannot_move_between_keys_apps_or_usages() {
    let f = fx();
    let c = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let blob = f.core.create_key(&c).unwrap();
    let other_key = KeyContext { keyid: UKID, ..c };
    let other_usage = KeyContext {
        usage: KeyUsage::SignVerify,
        ..c
    };
    let other_spec = KeyContext {
        spec: KeySpec::AesGcm128,
        ..c
    };
    for bad in [other_key, other_spec] {
        assert!(matches!(
            f.core.encrypt(&auth(), &bad, &blob, b"x", b""),
            Err(Error::IntegrityFailure(_))
        ));
    }
    assert!(
        f.core
            .encrypt(&auth(), &other_usage, &blob, b"x", b"")
            .is_err()
    );
    // A key of another app is refused before its blob is even opened.
    let foreign = KeyContext {
        appid: OTHER_APP,
        ..c
    };
    assert_eq!(
        f.core.encrypt(&auth(), &foreign, &blob, b"x", b"").err(),
        Some(Error::NotPermitted("key belongs to another app"))
    );
}

#[test]
fn hmac_keys_generate_and_verify_macs() {
    let f = fx();
    let c = ctx(KID, KeySpec::Hmac, KeyUsage::SignVerify);
    let blob = f.core.create_key(&c).unwrap();
    let mac = f.core.generate_mac(&auth(), &c, &blob, b"message").unwrap();
    assert!(
        f.core
            .verify_mac(&auth(), &c, &blob, b"message", &mac)
            .unwrap()
    );
    assert!(
        !f.core
            .verify_mac(&auth(), &c, &blob, b"messagf", &mac)
            .unwrap()
    );
    assert!(
        !f.core
            .verify_mac(&auth(), &c, &blob, b"message", &mac[..31])
            .unwrap()
    );
}

mod byok {
    use super::*;
    use openssl::encrypt::Encrypter;
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::{Padding, Rsa};

    fn wrap(pem: &str, padding: PaddingMode, material: &[u8]) -> Vec<u8> {
        let rsa = Rsa::public_key_from_pem_pkcs1(pem.as_bytes()).unwrap();
        let pkey = PKey::from_rsa(rsa).unwrap();
        let mut enc = Encrypter::new(&pkey).unwrap();
        if padding == PaddingMode::RsaPkcs1Oaep {
            enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            enc.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
            enc.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        } else {
            enc.set_rsa_padding(Padding::PKCS1).unwrap();
        }
        let mut out = vec![0; enc.encrypt_len(material).unwrap()];
        let n = enc.encrypt(material, &mut out).unwrap();
        out.truncate(n);
        out
    }

    const NOW: u64 = 1_700_000_000_000;
    const DAY: u64 = 24 * 3600 * 1000;

    #[test]
    fn import_then_encrypt_for_every_symmetric_spec_and_padding() {
        let f = fx();
        for (spec, len) in [
            (KeySpec::AesGcm128, 16),
            (KeySpec::AesGcm192, 24),
            (KeySpec::AesGcm256, 32),
            (KeySpec::Sm4Cbc, 16),
        ] {
            for padding in [PaddingMode::RsaPkcs1, PaddingMode::RsaPkcs1Oaep] {
                let c = KeyContext {
                    origin: Origin::External,
                    ..ctx(KID, spec, KeyUsage::EncryptDecrypt)
                };
                f.core.create_key(&c).unwrap();
                let p = f
                    .core
                    .get_parameters_for_import(&auth(), &c, KeySpec::Rsa2048, NOW + DAY)
                    .unwrap();
                let material = vec![0x42u8; len];
                let wrapped = wrap(&p.public_key_pem, padding, &material);
                let blob = f
                    .core
                    .import_key_material(
                        &auth(),
                        &c,
                        p.wrapping_spec,
                        &p.wrapping_blob,
                        &p.token,
                        NOW,
                        padding,
                        &wrapped,
                    )
                    .unwrap();
                let ct = f
                    .core
                    .encrypt(&auth(), &c, &blob, b"imported", b"")
                    .unwrap();
                assert_eq!(
                    f.core
                        .decrypt(&auth(), &c, &blob, &ct, b"")
                        .unwrap()
                        .as_slice(),
                    b"imported"
                );
            }
        }
    }

    #[test]
    fn import_is_checked() {
        let f = fx();
        let c = KeyContext {
            origin: Origin::External,
            ..ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt)
        };
        let p = f
            .core
            .get_parameters_for_import(&auth(), &c, KeySpec::Rsa2048, NOW + DAY)
            .unwrap();
        let good = wrap(&p.public_key_pem, PaddingMode::RsaPkcs1Oaep, &[1u8; 32]);
        let import = |c: &KeyContext<'_>, token: &str, now: u64, material: &[u8]| {
            f.core.import_key_material(
                &auth(),
                c,
                p.wrapping_spec,
                &p.wrapping_blob,
                token,
                now,
                PaddingMode::RsaPkcs1Oaep,
                material,
            )
        };
        // Expired token.
        assert_eq!(
            import(&c, &p.token, NOW + DAY + 1, &good).err(),
            Some(Error::ImportTokenExpired)
        );
        // Forged, truncated or foreign tokens.
        let mut forged = p.token.clone().into_bytes();
        forged[20] = if forged[20] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        for t in [forged.as_str(), "", "AAAA", &p.token[..p.token.len() - 4]] {
            assert_eq!(
                import(&c, t, NOW, &good).err(),
                Some(Error::InvalidImportToken),
                "{t}"
            );
        }
        // Token and wrapping key for another keyid.
        let other = KeyContext { keyid: UKID, ..c };
        assert!(import(&other, &p.token, NOW, &good).is_err());
        // A later GetParametersForImport makes the earlier token useless with the new key.
        let p2 = f
            .core
            .get_parameters_for_import(&auth(), &c, KeySpec::Rsa2048, NOW + DAY)
            .unwrap();
        assert!(
            f.core
                .import_key_material(
                    &auth(),
                    &c,
                    p2.wrapping_spec,
                    &p2.wrapping_blob,
                    &p.token,
                    NOW,
                    PaddingMode::RsaPkcs1Oaep,
                    &good
                )
                .is_err()
        );
        // Wrong material length.
        let short = wrap(&p.public_key_pem, PaddingMode::RsaPkcs1Oaep, &[1u8; 16]);
        assert!(matches!(
            import(&c, &p.token, NOW, &short),
            Err(Error::InvalidInput(_))
        ));
        // Internal keys and key pairs take no imports.
        let internal = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
        assert!(
            f.core
                .get_parameters_for_import(&auth(), &internal, KeySpec::Rsa2048, NOW)
                .is_err()
        );
        let rsa = KeyContext {
            origin: Origin::External,
            ..ctx(KID, KeySpec::Rsa2048, KeyUsage::EncryptDecrypt)
        };
        assert!(
            f.core
                .get_parameters_for_import(&auth(), &rsa, KeySpec::Rsa2048, NOW)
                .is_err()
        );
        // The wrapping spec must be RSA.
        assert!(
            f.core
                .get_parameters_for_import(&auth(), &c, KeySpec::EcP256, NOW)
                .is_err()
        );
    }
}

#[test]
fn key_cache_serves_repeat_use() {
    let core = Core::with_cache_capacity(DomainKeySet::generate().unwrap(), 8).unwrap();
    let (key, apiblob) = core.create_api_key(APP).unwrap();
    let canon = "appid=a&timestamp=1";
    let auth = core
        .verify_request_mac(APP, &apiblob, canon.as_bytes(), &sign(key.expose(), canon))
        .unwrap();
    let c = ctx(KID, KeySpec::EcP256, KeyUsage::SignVerify);
    let blob = core.create_key(&c).unwrap();
    let before = core.cache_stats();
    for _ in 0..10 {
        core.sign(
            &auth,
            &c,
            &blob,
            DigestMode::Sha256,
            PaddingMode::None,
            MessageType::Raw,
            b"m",
        )
        .unwrap();
    }
    let after = core.cache_stats();
    assert_eq!(after.misses, before.misses, "ten signatures, no miss");
    // The API key is loaded once too: request MACs after the first are cache hits.
    for _ in 0..10 {
        core.verify_request_mac(APP, &apiblob, canon.as_bytes(), &sign(key.expose(), canon))
            .unwrap();
    }
    let last = core.cache_stats();
    assert_eq!(
        last.misses, after.misses,
        "the API key was loaded by the first check"
    );
    assert!(after.entries <= 8);
}

/// A domain-key rotation as a node lives it: the core learns a newer set, new blobs name the new
/// version, old blobs (and ciphertexts made with them) keep working, re-wrapping moves a blob to
/// the new version without changing its key, and a set of another domain is refused.
#[test]
fn domain_key_rotation_rewraps_without_changing_keys() {
    let first = DomainKeySet::generate().unwrap();
    let transfer = first.to_transfer();
    let core = Core::new(first).unwrap();
    let (apikey, apikey_blob) = core.create_api_key(APP).unwrap();
    let c = ctx(KID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let blob = core.create_key(&c).unwrap();
    assert_eq!(blob.domain_key_version(), Some(1));
    let canon = format!("appid={APP}&timestamp=1700000000000");
    let mac = |blob: &KeyBlob| {
        core.verify_request_mac(APP, blob, canon.as_bytes(), &sign(apikey.expose(), &canon))
            .unwrap()
    };
    let ct = core
        .encrypt(&mac(&apikey_blob), &c, &blob, b"before", b"")
        .unwrap();
    assert_eq!(core.rewrap_cmk(&c, &blob).unwrap(), None, "already current");

    // The key server rotates; the node learns the new set.
    let mut rotated = DomainKeySet::from_transfer(&transfer).unwrap();
    assert_eq!(rotated.rotate().unwrap(), 2);
    let fingerprint = core.domain_fingerprint();
    assert_eq!(
        core.update_domain_keys(rotated).unwrap(),
        ehsm_core::DomainUpdate::Added(vec![2])
    );
    assert_eq!(core.domain_key_version(), 2);
    assert_ne!(core.domain_fingerprint(), fingerprint);
    let again = DomainKeySet::from_transfer(&transfer).unwrap();
    assert!(
        matches!(
            core.update_domain_keys(again),
            Ok(ehsm_core::DomainUpdate::Unchanged)
        ),
        "an older set adds nothing and removes nothing"
    );
    assert_eq!(core.domain_key_version(), 2);

    // New blobs name version 2; the old ones still work.
    let c2 = ctx(UKID, KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    assert_eq!(core.create_key(&c2).unwrap().domain_key_version(), Some(2));
    let auth = mac(&apikey_blob);
    assert_eq!(
        core.decrypt(&auth, &c, &blob, &ct, b"").unwrap().as_slice(),
        b"before"
    );

    // Re-wrapping: same key, new version, and only once.
    let new_blob = core.rewrap_cmk(&c, &blob).unwrap().unwrap();
    assert_eq!(new_blob.domain_key_version(), Some(2));
    assert_eq!(core.rewrap_cmk(&c, &new_blob).unwrap(), None);
    assert_eq!(
        core.decrypt(&auth, &c, &new_blob, &ct, b"")
            .unwrap()
            .as_slice(),
        b"before"
    );
    let new_apikey_blob = core.rewrap_api_key(APP, &apikey_blob).unwrap().unwrap();
    assert_eq!(new_apikey_blob.domain_key_version(), Some(2));
    mac(&new_apikey_blob);
    // A blob cannot be re-wrapped into another key's context.
    assert!(core.rewrap_cmk(&c2, &blob).is_err());
    assert!(core.rewrap_api_key(OTHER_APP, &apikey_blob).is_err());

    // Another domain's keys, even with more versions, are refused and change nothing.
    let mut other = DomainKeySet::generate().unwrap();
    other.rotate().unwrap();
    other.rotate().unwrap();
    assert!(matches!(
        core.update_domain_keys(other),
        Err(Error::IntegrityFailure(_))
    ));
    assert_eq!(core.domain_key_version(), 2);
    assert_eq!(
        core.decrypt(&auth, &c, &new_blob, &ct, b"")
            .unwrap()
            .as_slice(),
        b"before"
    );
}
