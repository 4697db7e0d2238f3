//! Sign, Verify, GetPublicKey, GenerateMac, VerifyMac: the eHSM actions' operations
//! (`crate::actions::{asymmetric, mac}`) under AWS's algorithm names. An AWS signing algorithm
//! is a digest and a padding of the core's; which algorithms fit a key is what DescribeKey
//! lists for it (`keys::algorithms`), so the two never disagree.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_core::spec::{DigestMode, MessageType, PaddingMode};
use serde_json::{Value, json};

use super::keys::{algorithms, aws_spec, aws_usage};
use super::{
    Caller, core_refusal, exception, internal, invalid_key_usage, refusal,
    refuse_unsupported_members,
};
use crate::actions::asymmetric::{run, verifying_version};
use crate::aws::error::AwsError;
use crate::aws::input::Input;
use crate::keys::{self, Key, Version};
use crate::params::b64;

/// AWS's limits: a Message (RAW or DIGEST), a Signature or Mac.
const MAX_MESSAGE: usize = 4096;
const MAX_SIGNATURE: usize = 6144;
const MAX_KEY_ID: usize = 2048;

/// AWS's signing algorithms: the core's digest and padding for each. ECDSA and SM2 take no
/// padding (the core ignores it for them).
const SIGNING: &[(&str, DigestMode, PaddingMode)] = &[
    (
        "RSASSA_PSS_SHA_256",
        DigestMode::Sha256,
        PaddingMode::RsaPkcs1Pss,
    ),
    (
        "RSASSA_PSS_SHA_384",
        DigestMode::Sha384,
        PaddingMode::RsaPkcs1Pss,
    ),
    (
        "RSASSA_PSS_SHA_512",
        DigestMode::Sha512,
        PaddingMode::RsaPkcs1Pss,
    ),
    (
        "RSASSA_PKCS1_V1_5_SHA_256",
        DigestMode::Sha256,
        PaddingMode::RsaPkcs1,
    ),
    (
        "RSASSA_PKCS1_V1_5_SHA_384",
        DigestMode::Sha384,
        PaddingMode::RsaPkcs1,
    ),
    (
        "RSASSA_PKCS1_V1_5_SHA_512",
        DigestMode::Sha512,
        PaddingMode::RsaPkcs1,
    ),
    ("ECDSA_SHA_256", DigestMode::Sha256, PaddingMode::None),
    ("ECDSA_SHA_384", DigestMode::Sha384, PaddingMode::None),
    ("ECDSA_SHA_512", DigestMode::Sha512, PaddingMode::None),
    ("SM2DSA", DigestMode::Sm3, PaddingMode::None),
];
/// AWS's ML-DSA and Ed25519 algorithms, which no ehsm key fits.
const NO_KEY_FITS: &[&str] = &["ML_DSA_SHAKE_256", "ED25519_SHA_512", "ED25519_PH_SHA_512"];
const SM2DSA: &str = "SM2DSA";

const MAC_ALGORITHMS: &[&str] = &[
    "HMAC_SHA_224",
    "HMAC_SHA_256",
    "HMAC_SHA_384",
    "HMAC_SHA_512",
];

const RAW: &str = "RAW";
const DIGEST: &str = "DIGEST";
const EXTERNAL_MU: &str = "EXTERNAL_MU";

/// A required enum member: present (its absence worded as AWS words it), then one of `allowed`.
fn required_enum(
    input: &Input,
    name: &str,
    allowed: &[&'static str],
) -> Result<&'static str, AwsError> {
    input.string(name, 64)?;
    Ok(input.opt_enum(name, allowed)?.unwrap_or_default())
}

/// The key KeyId names, usable now, that does `algorithm` as the `field` DescribeKey lists
/// (SigningAlgorithms or MacAlgorithms): another usage, or an algorithm another spec does
/// (ECDSA_SHA_256 on an RSA or P-384 key: AWS gives each curve one), is InvalidKeyUsage.
async fn key_for(
    caller: &Caller<'_>,
    input: &Input,
    operation: &str,
    field: &str,
    algorithm: &str,
) -> Result<Arc<Key>, AwsError> {
    let names = caller.names();
    let reference = names.reference(input.string("KeyId", MAX_KEY_ID)?)?;
    let key = keys::load(caller.state, caller.appid(), reference)
        .await
        .map_err(|e| refusal(names, e, reference))?;
    let arn = names.key_arn(&key.record.keyid);
    let (listed, fitting) = algorithms(key.spec, key.usage);
    if listed != field {
        return Err(invalid_key_usage(format!(
            "{arn} key usage is {} which is not valid for {operation}.",
            aws_usage(key.spec, key.usage)
        )));
    }
    if !fitting.contains(&algorithm) {
        return Err(invalid_key_usage(format!(
            "Algorithm {algorithm} is incompatible with key spec {}.",
            aws_spec(key.spec)
        )));
    }
    Ok(key)
}

/// Sign's and Verify's members, read and checked against the key.
struct Signing {
    key: Arc<Key>,
    algorithm: &'static str,
    digest: DigestMode,
    padding: PaddingMode,
    kind: MessageType,
    message: Vec<u8>,
}

async fn signing(caller: &Caller<'_>, input: &Input, operation: &str) -> Result<Signing, AwsError> {
    let mut names: Vec<&'static str> = SIGNING.iter().map(|(n, _, _)| *n).collect();
    names.extend(NO_KEY_FITS);
    let algorithm = required_enum(input, "SigningAlgorithm", &names)?;
    let message = input.blob("Message", MAX_MESSAGE)?;
    let kind = match input
        .opt_enum("MessageType", &[RAW, DIGEST, EXTERNAL_MU])?
        .unwrap_or(RAW)
    {
        RAW => MessageType::Raw,
        DIGEST => MessageType::Digest,
        _ => {
            return Err(AwsError::unsupported_operation(
                "ehsm has no ML-DSA keys: MessageType EXTERNAL_MU is for them.".to_owned(),
            ));
        }
    };
    refuse_unsupported_members(input)?;
    let key = key_for(caller, input, operation, "SigningAlgorithms", algorithm).await?;
    // The key fits, so the algorithm is one of SIGNING's (NO_KEY_FITS fit no key).
    let &(_, digest, padding) = SIGNING
        .iter()
        .find(|(n, _, _)| *n == algorithm)
        .ok_or_else(|| internal(&"a fitting algorithm outside SIGNING"))?;
    if kind == MessageType::Digest {
        // The core signs an SM2 "digest" as a message (upstream's way), which is not AWS's
        // SM2DSA digest (SM3 of Z and the message): refused rather than signed wrongly.
        if algorithm == SM2DSA {
            return Err(AwsError::unsupported_operation(
                "ehsm signs SM2DSA messages only: send MessageType RAW.".to_owned(),
            ));
        }
        if message.len() != digest.len() {
            return Err(AwsError::validation(format!(
                "Digest is invalid length for algorithm {algorithm}."
            )));
        }
    }
    Ok(Signing {
        key,
        algorithm,
        digest,
        padding,
        kind,
        message,
    })
}

pub(super) async fn sign(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let s = signing(caller, input, "Sign").await?;
    let primary = s.key.primary();
    let signature = run(caller.state, &s.key, true, || {
        caller.state.core.sign(
            &caller.mac,
            &primary.ctx,
            primary.blob,
            s.digest,
            s.padding,
            s.kind,
            &s.message,
        )
    })
    .await
    .map_err(core_refusal)?;
    Ok(json!({
        "KeyId": caller.names().key_arn(&s.key.record.keyid),
        "Signature": b64(&signature),
        "SigningAlgorithm": s.algorithm,
    }))
}

/// As the eHSM action: a signature made by any version of the key verifies, the primary tried
/// first, so that signatures made before a rotation keep verifying.
pub(super) async fn verify(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let signature = input.blob("Signature", MAX_SIGNATURE)?;
    let s = signing(caller, input, "Verify").await?;
    let candidates = newest_first(&s.key);
    let verified = run(caller.state, &s.key, false, || {
        verifying_version(&candidates, |v| {
            caller.state.core.verify(
                &caller.mac,
                &v.ctx,
                v.blob,
                s.digest,
                s.padding,
                s.kind,
                &s.message,
                &signature,
            )
        })
    })
    .await
    .map_err(core_refusal)?;
    if verified.is_none() {
        return Err(exception("KMSInvalidSignatureException", String::new()));
    }
    Ok(json!({
        "KeyId": caller.names().key_arn(&s.key.record.keyid),
        "SignatureValid": true,
        "SigningAlgorithm": s.algorithm,
    }))
}

/// Every version of the key, the primary first: the ones Verify and VerifyMac try, as the
/// eHSM actions do when the client names no version.
fn newest_first(key: &Key) -> Vec<Version<'_>> {
    let mut versions: Vec<Version<'_>> = key.versions().collect();
    versions.reverse();
    versions
}

pub(super) async fn get_public_key(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let names = caller.names();
    let reference = names.reference(input.string("KeyId", MAX_KEY_ID)?)?;
    refuse_unsupported_members(input)?;
    let key = keys::load(caller.state, caller.appid(), reference)
        .await
        .map_err(|e| refusal(names, e, reference))?;
    let arn = names.key_arn(&key.record.keyid);
    if !key.spec.is_asymmetric() {
        return Err(AwsError::unsupported_operation(format!(
            "{arn} is not an asymmetric key: only RSA, ECC and SM2 keys have a public key."
        )));
    }
    let primary = key.primary();
    let pem = caller
        .state
        .core
        .public_key_pem(&caller.mac, &primary.ctx, primary.blob)
        .map_err(core_refusal)?;
    let der = spki_der(&pem).ok_or_else(|| internal(&"the core's public key PEM"))?;
    let (field, algorithms) = algorithms(key.spec, key.usage);
    let mut out = json!({
        "KeyId": arn,
        "PublicKey": STANDARD.encode(der),
        "KeySpec": aws_spec(key.spec),
        "CustomerMasterKeySpec": aws_spec(key.spec),
        "KeyUsage": aws_usage(key.spec, key.usage),
    });
    out[field] = json!(algorithms);
    Ok(out)
}

/// The DER SubjectPublicKeyInfo of the core's public key PEM, as AWS's GetPublicKey answers:
/// EC and SM2 keys are SPKI already; an RSA key (PKCS#1 `RSA PUBLIC KEY`, upstream's format
/// for the eHSM API) is wrapped with the rsaEncryption algorithm identifier.
fn spki_der(pem: &str) -> Option<Vec<u8>> {
    let label = pem.lines().next()?.strip_prefix("-----BEGIN ")?;
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).ok()?;
    match label {
        "PUBLIC KEY-----" => Some(der),
        "RSA PUBLIC KEY-----" => {
            // AlgorithmIdentifier { rsaEncryption (1.2.840.113549.1.1.1), NULL }.
            const RSA_ENCRYPTION: &[u8] = &[
                0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
                0x00,
            ];
            let mut bits = vec![0x00];
            bits.extend_from_slice(&der);
            let mut inner = RSA_ENCRYPTION.to_vec();
            inner.extend(der_element(0x03, &bits));
            Some(der_element(0x30, &inner))
        }
        _ => None,
    }
}

/// A DER element: tag, definite length, content (content under 64 KiB, as any public key).
fn der_element(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    match len {
        0..=0x7f => out.push(len as u8),
        0x80..=0xff => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(content);
    out
}

/// GenerateMac's and VerifyMac's members: the HMAC key and the message.
async fn mac_input(
    caller: &Caller<'_>,
    input: &Input,
    operation: &str,
) -> Result<(Arc<Key>, &'static str, Vec<u8>), AwsError> {
    let algorithm = required_enum(input, "MacAlgorithm", MAC_ALGORITHMS)?;
    let message = input.blob("Message", MAX_MESSAGE)?;
    refuse_unsupported_members(input)?;
    let key = key_for(caller, input, operation, "MacAlgorithms", algorithm).await?;
    Ok((key, algorithm, message))
}

pub(super) async fn generate_mac(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let (key, algorithm, message) = mac_input(caller, input, "GenerateMac").await?;
    let primary = key.primary();
    let mac = caller
        .state
        .core
        .generate_mac(&caller.mac, &primary.ctx, primary.blob, &message)
        .map_err(core_refusal)?;
    Ok(json!({
        "Mac": b64(&mac),
        "MacAlgorithm": algorithm,
        "KeyId": caller.names().key_arn(&key.record.keyid),
    }))
}

/// As the eHSM action: a MAC made by any version of the key verifies, the primary tried first.
pub(super) async fn verify_mac(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let mac = input.blob("Mac", MAX_SIGNATURE)?;
    let (key, algorithm, message) = mac_input(caller, input, "VerifyMac").await?;
    let verified = verifying_version(&newest_first(&key), |v| {
        caller
            .state
            .core
            .verify_mac(&caller.mac, &v.ctx, v.blob, &message, &mac)
    })
    .map_err(core_refusal)?;
    if verified.is_none() {
        return Err(exception("KMSInvalidMacException", String::new()));
    }
    Ok(json!({
        "KeyId": caller.names().key_arn(&key.record.keyid),
        "MacValid": true,
        "MacAlgorithm": algorithm,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use ehsm_core::spec::{KeySpec, KeyUsage};

    use super::*;

    #[test]
    fn every_listed_signing_algorithm_maps_to_the_core() {
        for spec in KeySpec::ALL {
            let (field, listed) = algorithms(*spec, KeyUsage::SignVerify);
            if field != "SigningAlgorithms" {
                continue;
            }
            for name in listed {
                assert!(SIGNING.iter().any(|(n, _, _)| n == name), "{name}");
            }
        }
    }

    #[test]
    fn der_lengths() {
        assert_eq!(der_element(0x04, &[1; 3])[..2], [0x04, 3]);
        assert_eq!(der_element(0x04, &[1; 0x80])[..3], [0x04, 0x81, 0x80]);
        assert_eq!(
            der_element(0x04, &[1; 0x1234])[..4],
            [0x04, 0x82, 0x12, 0x34]
        );
    }

    #[test]
    fn spki_der_refuses_other_pem() {
        assert!(
            spki_der("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").is_none()
        );
        assert!(spki_der("").is_none());
        assert_eq!(
            spki_der("-----BEGIN PUBLIC KEY-----\nAQID\n-----END PUBLIC KEY-----\n").unwrap(),
            [1, 2, 3]
        );
    }
}
