//! Each core operation next to the raw library call it wraps, with the key cache warm.
//!
//! Run: `cargo bench -p ehsm-core --bench core`. After criterion's own output, a table prints
//! the core/raw ratio of the medians for every operation. These machines are noisy, so compare
//! ratios measured in one run, never absolute numbers across runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)] // a benchmark: panics are failures, the table goes to stdout

use std::hint::black_box;
use std::time::Duration;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, RsaKeyPair};
use aws_lc_rs::{hmac, rsa};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use criterion::Criterion;
use ehsm_core::spec::{DigestMode, KeySpec, KeyUsage, MessageType, Origin, PaddingMode};
use ehsm_core::{Core, DomainKeySet, KeyBlob, KeyContext, MacVerified, SigV4Scope};

const APP: &str = "b7c62e4d-c238-4016-b35f-47bc4b57dc03";
const KID: &str = "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef";

struct Bench {
    core: Core,
    apikey: String,
    apikey_blob: KeyBlob,
}

impl Bench {
    fn auth(&self) -> MacVerified<'static> {
        let canon = "appid=a&timestamp=1";
        let sign = mac_b64(&self.apikey, canon);
        self.core
            .verify_request_mac(APP, &self.apikey_blob, canon.as_bytes(), &sign)
            .unwrap()
    }

    fn key(&self, spec: KeySpec, usage: KeyUsage) -> (KeyContext<'static>, KeyBlob) {
        let ctx = KeyContext {
            keyid: KID,
            appid: APP,
            spec,
            origin: Origin::Internal,
            usage,
            version: 1,
        };
        let blob = self.core.create_key(&ctx).unwrap();
        (ctx, blob)
    }
}

fn mac_b64(key: &str, msg: &str) -> String {
    STANDARD.encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_bytes()),
        msg.as_bytes(),
    ))
}

/// SigV4 as a client computes it, straight on AWS-LC: the key chain, then the hex signature.
fn sigv4_raw(apikey: &str, scope: &SigV4Scope<'_>, sts: &str) -> String {
    let mut key = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, format!("AWS4{apikey}").as_bytes()),
        scope.date.as_bytes(),
    );
    for part in [scope.region, scope.service, "aws4_request"] {
        key = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
            part.as_bytes(),
        );
    }
    hex::encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, key.as_ref()),
        sts.as_bytes(),
    ))
}

fn random_iv() -> [u8; 12] {
    let mut iv = [0u8; 12];
    SystemRandom::new().fill(&mut iv).unwrap();
    iv
}

/// Raw AES-256-GCM doing the same job as Encrypt: random IV, one output buffer, ct ‖ iv ‖ tag.
fn raw_aes_seal(key: &LessSafeKey, pt: &[u8], aad: &[u8]) -> Vec<u8> {
    let iv = random_iv();
    let mut out = Vec::with_capacity(pt.len() + 30);
    out.extend_from_slice(pt);
    let tag = key
        .seal_in_place_separate_tag(Nonce::assume_unique_for_key(iv), Aad::from(aad), &mut out)
        .unwrap();
    out.extend_from_slice(&iv);
    out.extend_from_slice(tag.as_ref());
    out
}

fn symmetric(c: &mut Criterion, b: &Bench) {
    let auth = b.auth();
    let pt = vec![0x42u8; 1024];
    let (ctx, blob) = b.key(KeySpec::AesGcm256, KeyUsage::EncryptDecrypt);
    let raw = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &[7u8; 32]).unwrap());

    let mut g = c.benchmark_group("aes256gcm_encrypt_1k");
    g.bench_function("raw", |x| {
        x.iter(|| raw_aes_seal(&raw, black_box(&pt), b"aad"))
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .encrypt(&auth, &ctx, &blob, black_box(&pt), b"aad")
                .unwrap()
        })
    });
    g.finish();

    let raw_ct = raw_aes_seal(&raw, &pt, b"aad");
    let core_ct = b.core.encrypt(&auth, &ctx, &blob, &pt, b"aad").unwrap();
    let mut g = c.benchmark_group("aes256gcm_decrypt_1k");
    g.bench_function("raw", |x| {
        x.iter(|| {
            let (rest, tag) = raw_ct.split_at(raw_ct.len() - 16);
            let (ct, iv) = rest.split_at(rest.len() - 12);
            let mut out = vec![0u8; ct.len()];
            raw.open_separate_gather(
                Nonce::try_assume_unique_for_key(iv).unwrap(),
                Aad::from(b"aad"),
                ct,
                tag,
                &mut out,
            )
            .unwrap();
            out
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .decrypt(&auth, &ctx, &blob, black_box(&core_ct), b"aad")
                .unwrap()
        })
    });
    g.finish();

    let mut g = c.benchmark_group("generate_data_key_32");
    g.bench_function("raw", |x| {
        x.iter(|| {
            let mut dk = [0u8; 32];
            SystemRandom::new().fill(&mut dk).unwrap();
            (dk, raw_aes_seal(&raw, &dk, b""))
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .generate_data_key(&auth, &ctx, &blob, 32, b"")
                .unwrap()
        })
    });
    g.finish();

    let (sctx, sblob) = b.key(KeySpec::Sm4Cbc, KeyUsage::EncryptDecrypt);
    let mut g = c.benchmark_group("sm4cbc_encrypt_1k");
    g.bench_function("raw", |x| {
        use cbc::cipher::block_padding::Pkcs7;
        use cbc::cipher::{BlockModeEncrypt as _, KeyIvInit as _};
        x.iter(|| {
            let mut iv = [0u8; 16];
            SystemRandom::new().fill(&mut iv).unwrap();
            let enc = cbc::Encryptor::<sm4::Sm4>::new_from_slices(&[7u8; 16], &iv).unwrap();
            let mut out = vec![0u8; pt.len() + 32];
            let n = enc
                .encrypt_padded_b2b::<Pkcs7>(black_box(&pt), &mut out)
                .unwrap()
                .len();
            out.truncate(n);
            out.extend_from_slice(&iv);
            out
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .encrypt(&auth, &sctx, &sblob, black_box(&pt), b"")
                .unwrap()
        })
    });
    g.finish();
}

fn signatures(c: &mut Criterion, b: &Bench) {
    let auth = b.auth();
    let msg = b"the quick brown fox jumps over the lazy dog";
    let rng = SystemRandom::new();

    let (ctx, blob) = b.key(KeySpec::EcP256, KeyUsage::SignVerify);
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let raw = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref())
        .unwrap();
    let mut g = c.benchmark_group("ecdsa_p256_sign");
    g.bench_function("raw", |x| {
        x.iter(|| raw.sign(&rng, black_box(msg)).unwrap())
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .sign(
                    &auth,
                    &ctx,
                    &blob,
                    DigestMode::Sha256,
                    PaddingMode::None,
                    MessageType::Raw,
                    black_box(msg),
                )
                .unwrap()
        })
    });
    g.finish();

    let (ctx, blob) = b.key(KeySpec::EcP256k, KeyUsage::SignVerify);
    let sk = k256::ecdsa::SigningKey::from_slice(&[7u8; 32]).unwrap();
    let mut g = c.benchmark_group("ecdsa_secp256k1_sign");
    g.bench_function("raw", |x| {
        use k256::ecdsa::signature::Signer as _;
        x.iter(|| {
            let sig: k256::ecdsa::Signature = sk.sign(black_box(msg));
            sig.to_der()
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .sign(
                    &auth,
                    &ctx,
                    &blob,
                    DigestMode::Sha256,
                    PaddingMode::None,
                    MessageType::Raw,
                    black_box(msg),
                )
                .unwrap()
        })
    });
    g.finish();

    let (ctx, blob) = b.key(KeySpec::Sm2, KeyUsage::SignVerify);
    let secret = sm2::SecretKey::from_slice(&[7u8; 32]).unwrap();
    let sm2_raw = sm2::dsa::SigningKey::new("1234567812345678", &secret).unwrap();
    let mut g = c.benchmark_group("sm2_sign");
    g.bench_function("raw", |x| {
        use sm2::dsa::signature::Signer as _;
        x.iter(|| {
            let sig: sm2::dsa::Signature = sm2_raw.sign(black_box(msg));
            sig.to_der()
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .sign(
                    &auth,
                    &ctx,
                    &blob,
                    DigestMode::Sm3,
                    PaddingMode::None,
                    MessageType::Raw,
                    black_box(msg),
                )
                .unwrap()
        })
    });
    g.finish();

    let (ctx, blob) = b.key(KeySpec::Rsa3072, KeyUsage::SignVerify);
    let raw = RsaKeyPair::generate(rsa::KeySize::Rsa3072).unwrap();
    let mut g = c.benchmark_group("rsa3072_pkcs1_sign");
    g.sample_size(20);
    g.bench_function("raw", |x| {
        x.iter(|| {
            let mut sig = vec![0u8; raw.public_modulus_len()];
            raw.sign(&signature::RSA_PKCS1_SHA256, &rng, black_box(msg), &mut sig)
                .unwrap();
            sig
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .sign(
                    &auth,
                    &ctx,
                    &blob,
                    DigestMode::Sha256,
                    PaddingMode::RsaPkcs1,
                    MessageType::Raw,
                    black_box(msg),
                )
                .unwrap()
        })
    });
    g.finish();

    let (ctx, blob) = b.key(KeySpec::Rsa2048, KeyUsage::EncryptDecrypt);
    let raw_priv = rsa::PrivateDecryptingKey::generate(rsa::KeySize::Rsa2048).unwrap();
    let public = raw_priv.public_key();
    let raw_oaep = rsa::OaepPrivateDecryptingKey::new(raw_priv).unwrap();
    let raw_ct = {
        let enc = rsa::OaepPublicEncryptingKey::new(public).unwrap();
        let mut out = vec![0u8; enc.ciphertext_size()];
        enc.encrypt(
            &rsa::OAEP_SHA256_MGF1SHA256,
            b"a 32-byte data key, more or less",
            &mut out,
            None,
        )
        .unwrap()
        .to_vec()
    };
    let core_ct = b
        .core
        .asymmetric_encrypt(
            &auth,
            &ctx,
            &blob,
            PaddingMode::RsaPkcs1Oaep,
            b"a 32-byte data key, more or less",
        )
        .unwrap();
    let mut g = c.benchmark_group("rsa2048_oaep_decrypt");
    g.sample_size(30);
    g.bench_function("raw", |x| {
        x.iter(|| {
            let mut out = vec![0u8; raw_oaep.min_output_size()];
            raw_oaep
                .decrypt(
                    &rsa::OAEP_SHA256_MGF1SHA256,
                    black_box(&raw_ct),
                    &mut out,
                    None,
                )
                .unwrap()
                .to_vec()
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .asymmetric_decrypt(
                    &auth,
                    &ctx,
                    &blob,
                    PaddingMode::RsaPkcs1Oaep,
                    black_box(&core_ct),
                )
                .unwrap()
        })
    });
    g.finish();
}

fn macs(c: &mut Criterion, b: &Bench) {
    let auth = b.auth();
    let canon = format!(
        "appid={APP}&nonce=1234567890&payload=keyid={KID}&plaintext=aGVsbG8=&timestamp=1700000000000"
    );
    let sign = mac_b64(&b.apikey, &canon);
    let raw_key = hmac::Key::new(hmac::HMAC_SHA256, b.apikey.as_bytes());
    let mut g = c.benchmark_group("request_mac_check");
    g.bench_function("raw", |x| {
        x.iter(|| {
            let ours = STANDARD.encode(hmac::sign(&raw_key, black_box(canon.as_bytes())));
            assert!(bool::from(subtle::ConstantTimeEq::ct_eq(
                ours.as_bytes(),
                sign.as_bytes()
            )));
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .verify_request_mac(APP, &b.apikey_blob, black_box(canon.as_bytes()), &sign)
                .unwrap()
        })
    });
    g.finish();

    // The AWS API's check of a request: SigV4 derives a signing key per request (four
    // HMACs with fresh keys) before the MAC itself.
    let scope = SigV4Scope {
        date: "20261102",
        region: "us-east-1",
        service: "kms",
    };
    let sts = "AWS4-HMAC-SHA256\n20261102T093015Z\n20261102/us-east-1/kms/aws4_request\n\
               adfe9e4b1cabfc8f45ed2c38e5f8427bf44cecdfa61cf82479fcc3115a552427";
    let signature = sigv4_raw(&b.apikey, &scope, sts);
    let mut g = c.benchmark_group("sigv4_check");
    g.bench_function("raw", |x| {
        x.iter(|| {
            let ours = sigv4_raw(&b.apikey, &scope, black_box(sts));
            assert!(bool::from(subtle::ConstantTimeEq::ct_eq(
                ours.as_bytes(),
                signature.as_bytes()
            )));
        })
    });
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .verify_sigv4(
                    APP,
                    &b.apikey_blob,
                    &scope,
                    black_box(sts.as_bytes()),
                    &signature,
                )
                .unwrap()
        })
    });
    g.finish();

    let (ctx, blob) = b.key(KeySpec::Hmac, KeyUsage::SignVerify);
    let msg = vec![0x42u8; 1024];
    let mut g = c.benchmark_group("hmac_generate_mac_1k");
    g.bench_function("raw", |x| x.iter(|| hmac::sign(&raw_key, black_box(&msg))));
    g.bench_function("core", |x| {
        x.iter(|| {
            b.core
                .generate_mac(&auth, &ctx, &blob, black_box(&msg))
                .unwrap()
        })
    });
    g.finish();
}

/// Reads criterion's median estimate for `group/function` from its output directory.
fn median_ns(group: &str, function: &str) -> Option<f64> {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let path = dir
        .join("criterion")
        .join(group)
        .join(function)
        .join("new/estimates.json");
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    json["median"]["point_estimate"].as_f64()
}

const GROUPS: &[&str] = &[
    "aes256gcm_encrypt_1k",
    "aes256gcm_decrypt_1k",
    "generate_data_key_32",
    "sm4cbc_encrypt_1k",
    "ecdsa_p256_sign",
    "ecdsa_secp256k1_sign",
    "sm2_sign",
    "rsa3072_pkcs1_sign",
    "rsa2048_oaep_decrypt",
    "request_mac_check",
    "sigv4_check",
    "hmac_generate_mac_1k",
];

fn print_ratios() {
    println!(
        "\n{:<24} {:>12} {:>12} {:>8}",
        "operation", "raw (µs)", "core (µs)", "core/raw"
    );
    for g in GROUPS {
        match (median_ns(g, "raw"), median_ns(g, "core")) {
            (Some(r), Some(c)) => {
                println!("{g:<24} {:>12.3} {:>12.3} {:>8.3}", r / 1e3, c / 1e3, c / r)
            }
            _ => println!("{g:<24} (not run in this invocation)"),
        }
    }
    // The AWS API's authentication against the eHSM API's, both through the core.
    if let (Some(sigv4), Some(mac)) = (
        median_ns("sigv4_check", "core"),
        median_ns("request_mac_check", "core"),
    ) {
        println!(
            "\nSigV4 check / request-MAC check (core): {:.3}",
            sigv4 / mac
        );
    }
}

fn main() {
    let core = Core::new(DomainKeySet::generate().unwrap()).unwrap();
    let (key, apikey_blob) = core.create_api_key(APP).unwrap();
    let b = Bench {
        apikey: key.expose().to_owned(),
        apikey_blob,
        core,
    };
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    symmetric(&mut c, &b);
    signatures(&mut c, &b);
    macs(&mut c, &b);
    c.final_summary();
    print_ratios();
}
