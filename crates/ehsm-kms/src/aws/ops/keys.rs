//! CreateKey, DescribeKey, ListKeys, EnableKey, DisableKey.

use ehsm_core::spec::{KeySpec, KeyUsage, Origin};
use ehsm_store::KeyState;
use serde_json::{Value, json};

use super::{Caller, epoch_seconds, refusal};
use crate::actions::keys::{self as shared, NewKey};
use crate::aws::error::AwsError;
use crate::aws::input::Input;
use crate::keys::{self, Key};
use crate::state::now_ms;

const ENCRYPT_DECRYPT: &str = "ENCRYPT_DECRYPT";
const SIGN_VERIFY: &str = "SIGN_VERIFY";
const GENERATE_VERIFY_MAC: &str = "GENERATE_VERIFY_MAC";
const KEY_AGREEMENT: &str = "KEY_AGREEMENT";

/// AWS's key specs: the eHSM spec each is, and the key usages it allows. `None`: a spec AWS
/// has and the core does not (HMAC with other digests than SHA-256, ML-DSA, Ed25519).
const SPECS: &[(&str, Option<KeySpec>, &[&str])] = &[
    (
        "SYMMETRIC_DEFAULT",
        Some(KeySpec::AesGcm256),
        &[ENCRYPT_DECRYPT],
    ),
    (
        "RSA_2048",
        Some(KeySpec::Rsa2048),
        &[ENCRYPT_DECRYPT, SIGN_VERIFY],
    ),
    (
        "RSA_3072",
        Some(KeySpec::Rsa3072),
        &[ENCRYPT_DECRYPT, SIGN_VERIFY],
    ),
    (
        "RSA_4096",
        Some(KeySpec::Rsa4096),
        &[ENCRYPT_DECRYPT, SIGN_VERIFY],
    ),
    ("ECC_NIST_P256", Some(KeySpec::EcP256), &[SIGN_VERIFY]),
    ("ECC_NIST_P384", Some(KeySpec::EcP384), &[SIGN_VERIFY]),
    ("ECC_NIST_P521", Some(KeySpec::EcP521), &[SIGN_VERIFY]),
    ("ECC_SECG_P256K1", Some(KeySpec::EcP256k), &[SIGN_VERIFY]),
    ("HMAC_224", None, &[GENERATE_VERIFY_MAC]),
    ("HMAC_256", Some(KeySpec::Hmac), &[GENERATE_VERIFY_MAC]),
    ("HMAC_384", None, &[GENERATE_VERIFY_MAC]),
    ("HMAC_512", None, &[GENERATE_VERIFY_MAC]),
    ("SM2", Some(KeySpec::Sm2), &[ENCRYPT_DECRYPT, SIGN_VERIFY]),
    ("ML_DSA_44", None, &[SIGN_VERIFY]),
    ("ML_DSA_65", None, &[SIGN_VERIFY]),
    ("ML_DSA_87", None, &[SIGN_VERIFY]),
    ("ECC_NIST_EDWARDS25519", None, &[SIGN_VERIFY]),
];

const USAGES: &[&str] = &[
    SIGN_VERIFY,
    ENCRYPT_DECRYPT,
    GENERATE_VERIFY_MAC,
    KEY_AGREEMENT,
];
const ORIGINS: &[&str] = &["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];

/// The AWS name of a key's spec. Specs AWS has no name for (AES-128 and -192, SM4, EC P-224)
/// keep their eHSM name, so a client sees what the key is.
pub(super) fn aws_spec(spec: KeySpec) -> &'static str {
    SPECS
        .iter()
        .find(|(_, s, _)| *s == Some(spec))
        .map_or(spec.as_str(), |(name, _, _)| name)
}

/// The AWS name of a key's usage: eHSM's HMAC keys sign and verify, AWS's generate and verify MACs.
pub(super) fn aws_usage(spec: KeySpec, usage: KeyUsage) -> &'static str {
    match (spec, usage) {
        (KeySpec::Hmac, _) => GENERATE_VERIFY_MAC,
        (_, KeyUsage::SignVerify) => SIGN_VERIFY,
        (_, KeyUsage::EncryptDecrypt) => ENCRYPT_DECRYPT,
    }
}

/// The eHSM spec and usage of an AWS KeySpec and KeyUsage, if the combination is valid.
fn ehsm_kind(spec: &str, usage: &str) -> Result<(KeySpec, KeyUsage), AwsError> {
    // Both come from the enum lists, so the spec is in the table.
    let (_, ehsm, usages) = SPECS
        .iter()
        .find(|(name, _, _)| *name == spec)
        .ok_or_else(|| AwsError::validation(format!("KeySpec {spec} is not known.")))?;
    if usage == KEY_AGREEMENT {
        return Err(AwsError::unsupported_operation(
            "ehsm does not support KEY_AGREEMENT keys (DeriveSharedSecret).".to_owned(),
        ));
    }
    if !usages.contains(&usage) {
        return Err(AwsError::validation(format!(
            "KeySpec {spec} does not support KeyUsage {usage}: it takes {}.",
            usages.join(" or ")
        )));
    }
    let ehsm = ehsm.ok_or_else(|| {
        AwsError::unsupported_operation(format!(
            "ehsm does not support KeySpec {spec}: its key specs are SYMMETRIC_DEFAULT, \
             RSA_2048/3072/4096, ECC_NIST_P256/P384/P521, ECC_SECG_P256K1, HMAC_256 and SM2."
        ))
    })?;
    let usage = if usage == ENCRYPT_DECRYPT {
        KeyUsage::EncryptDecrypt
    } else {
        KeyUsage::SignVerify
    };
    Ok((ehsm, usage))
}

pub(super) async fn create_key(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    refuse_unsupported_create_members(input)?;
    let specs: Vec<&'static str> = SPECS.iter().map(|(name, _, _)| *name).collect();
    let spec = match (
        input.opt_enum("KeySpec", &specs)?,
        input.opt_enum("CustomerMasterKeySpec", &specs)?,
    ) {
        (Some(_), Some(_)) => {
            return Err(AwsError::validation(
                "KeySpec and CustomerMasterKeySpec are the same member (the latter deprecated): \
                 send one."
                    .to_owned(),
            ));
        }
        (Some(spec), None) | (None, Some(spec)) => spec,
        (None, None) => "SYMMETRIC_DEFAULT",
    };
    let usage = input
        .opt_enum("KeyUsage", USAGES)?
        .unwrap_or(ENCRYPT_DECRYPT);
    let (spec, usage) = ehsm_kind(spec, usage)?;
    let origin = match input.opt_enum("Origin", ORIGINS)?.unwrap_or("AWS_KMS") {
        "AWS_KMS" => Origin::Internal,
        "EXTERNAL" => Origin::External,
        other => {
            return Err(AwsError::unsupported_operation(format!(
                "ehsm does not support Origin {other}: its keys are AWS_KMS (made in the TEE) or \
                 EXTERNAL (imported)."
            )));
        }
    };
    let new = NewKey {
        spec,
        origin,
        usage,
        description: input.opt_string_within("Description", 0, 8192)?,
        rotation_days: None,
    };
    let record = shared::create(caller.state, caller.appid(), &new)
        .await
        .map_err(|e| refusal(caller.names(), e, ""))?;
    let key = Key::new(record).map_err(|e| refusal(caller.names(), e, ""))?;
    Ok(json!({ "KeyMetadata": metadata(caller, &key)? }))
}

/// CreateKey's members for what ehsm does not have: key policies (an app's keys are its own),
/// custom key stores, multi-Region keys; and tags, until TagResource is served.
fn refuse_unsupported_create_members(input: &Input) -> Result<(), AwsError> {
    input.opt_bool("BypassPolicyLockoutSafetyCheck")?;
    if input.has("Policy") {
        return Err(AwsError::unsupported_operation(
            "ehsm has no key policies: an app's keys are usable by that app only.".to_owned(),
        ));
    }
    if !input.opt_list("Tags")?.is_empty() {
        return Err(AwsError::unsupported_operation(
            "ehsm does not support tags yet.".to_owned(),
        ));
    }
    if input.opt_bool("MultiRegion")? == Some(true) {
        return Err(AwsError::unsupported_operation(
            "ehsm has no multi-Region keys: nodes sharing a database serve the same keys."
                .to_owned(),
        ));
    }
    for name in ["CustomKeyStoreId", "XksKeyId"] {
        if input.has(name) {
            return Err(AwsError::unsupported_operation(format!(
                "ehsm has no custom key stores ({name})."
            )));
        }
    }
    Ok(())
}

/// DescribeKey's KeyMetadata of a key, in any state.
fn metadata(caller: &Caller<'_>, key: &Key) -> Result<Value, AwsError> {
    let r = &key.record;
    let names = caller.names();
    let key_state = if r.deletion_date.is_some() {
        "PendingDeletion"
    } else if key.origin == Origin::External && !has_material(caller, key)? {
        "PendingImport"
    } else if r.state == KeyState::Disabled {
        "Disabled"
    } else if now_ms() > r.expire_time {
        // AWS has no state for a key past its lifetime; it can no longer be used.
        "Unavailable"
    } else {
        "Enabled"
    };
    let spec = aws_spec(key.spec);
    let mut m = json!({
        "AWSAccountId": names.account_id,
        "KeyId": r.keyid,
        "Arn": names.key_arn(&r.keyid),
        "CreationDate": epoch_seconds(r.creation_date),
        "Enabled": key_state == "Enabled",
        "Description": r.description.as_deref().unwrap_or(""),
        "KeyUsage": aws_usage(key.spec, key.usage),
        "KeyState": key_state,
        "Origin": if key.origin == Origin::External { "EXTERNAL" } else { "AWS_KMS" },
        "KeyManager": "CUSTOMER",
        "CustomerMasterKeySpec": spec,
        "KeySpec": spec,
        "MultiRegion": false,
        // Every ehsm key has a lifetime (`--key-lifetime-days`), after which it is refused.
        "ValidTo": epoch_seconds(r.expire_time),
    });
    if let Some(date) = r.deletion_date {
        m["DeletionDate"] = epoch_seconds(date);
    }
    let (field, algorithms) = algorithms(key.spec, key.usage);
    m[field] = json!(algorithms);
    Ok(m)
}

/// Whether an external key's material has been imported.
fn has_material(caller: &Caller<'_>, key: &Key) -> Result<bool, AwsError> {
    let primary = key.primary();
    caller
        .state
        .core
        .has_material(&caller.mac, &primary.ctx, primary.blob)
        .map_err(super::core_refusal)
}

/// The algorithms a key does, and the KeyMetadata member that lists them.
pub(super) fn algorithms(
    spec: KeySpec,
    usage: KeyUsage,
) -> (&'static str, &'static [&'static str]) {
    const RSA_SIGNING: &[&str] = &[
        "RSASSA_PSS_SHA_256",
        "RSASSA_PSS_SHA_384",
        "RSASSA_PSS_SHA_512",
        "RSASSA_PKCS1_V1_5_SHA_256",
        "RSASSA_PKCS1_V1_5_SHA_384",
        "RSASSA_PKCS1_V1_5_SHA_512",
    ];
    match (spec, usage) {
        (KeySpec::Hmac, _) => ("MacAlgorithms", &["HMAC_SHA_256"]),
        (s, KeyUsage::EncryptDecrypt) if s.is_symmetric_cipher() => {
            ("EncryptionAlgorithms", &["SYMMETRIC_DEFAULT"])
        }
        (KeySpec::Sm2, KeyUsage::EncryptDecrypt) => ("EncryptionAlgorithms", &["SM2PKE"]),
        (_, KeyUsage::EncryptDecrypt) => ("EncryptionAlgorithms", &["RSAES_OAEP_SHA_256"]),
        (KeySpec::Sm2, KeyUsage::SignVerify) => ("SigningAlgorithms", &["SM2DSA"]),
        (KeySpec::EcP384, _) => ("SigningAlgorithms", &["ECDSA_SHA_384"]),
        (KeySpec::EcP521, _) => ("SigningAlgorithms", &["ECDSA_SHA_512"]),
        (KeySpec::EcP224 | KeySpec::EcP256 | KeySpec::EcP256k, _) => {
            ("SigningAlgorithms", &["ECDSA_SHA_256"])
        }
        (_, KeyUsage::SignVerify) => ("SigningAlgorithms", RSA_SIGNING),
    }
}

pub(super) async fn describe_key(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let asked = caller.names().reference(input.string("KeyId", 2048)?)?;
    let key = keys::find_listed(caller.state, caller.appid(), asked)
        .await
        .map_err(|e| refusal(caller.names(), e, asked))?;
    Ok(json!({ "KeyMetadata": metadata(caller, &key)? }))
}

/// ListKeys's page size when the client sends no Limit (AWS's default).
const LIST_DEFAULT: i64 = 100;

pub(super) async fn list_keys(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let limit = input
        .opt_integer("Limit", 1, i64::from(crate::actions::LIST_KEY_PAGE_MAX))?
        .unwrap_or(LIST_DEFAULT);
    let marker = input.opt_string_within("Marker", 1, 1024)?.unwrap_or("");
    // Within 1..=1000, so the conversion holds.
    let limit = u32::try_from(limit).unwrap_or(1);
    let (records, more) = shared::page(caller.state, caller.appid(), marker, limit)
        .await
        .map_err(|e| refusal(caller.names(), e.into(), ""))?;
    let names = caller.names();
    let keys: Vec<Value> = records
        .iter()
        .map(|r| json!({ "KeyId": r.keyid, "KeyArn": names.key_arn(&r.keyid) }))
        .collect();
    let mut out = json!({ "Keys": keys, "Truncated": more });
    if more && let Some(last) = records.last() {
        out["NextMarker"] = last.keyid.clone().into();
    }
    Ok(out)
}

/// EnableKey and DisableKey. A key pending deletion is refused for both, as AWS refuses it
/// (it stays disabled until CancelKeyDeletion).
pub(super) async fn set_enabled(
    caller: &Caller<'_>,
    input: &Input,
    enabled: bool,
) -> Result<Value, AwsError> {
    let names = caller.names();
    let asked = names.reference(input.string("KeyId", 2048)?)?;
    let key = keys::find_listed(caller.state, caller.appid(), asked)
        .await
        .map_err(|e| refusal(names, e, asked))?;
    let keyid = &key.record.keyid;
    if key.record.deletion_date.is_some() {
        return Err(AwsError::invalid_state(format!(
            "{} is pending deletion.",
            names.key_arn(keyid)
        )));
    }
    shared::set_enabled(caller.state, caller.appid(), keyid, enabled)
        .await
        .map_err(|e| refusal(names, e, keyid))?;
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_aws_spec_maps_to_the_core_or_is_refused() {
        for (name, ehsm, usages) in SPECS {
            for usage in USAGES {
                let got = ehsm_kind(name, usage);
                match (ehsm, usages.contains(usage), *usage == KEY_AGREEMENT) {
                    (_, _, true) => {
                        assert_eq!(got.unwrap_err().type_name, "UnsupportedOperationException")
                    }
                    (_, false, _) => assert_eq!(got.unwrap_err().type_name, "ValidationException"),
                    (None, true, _) => {
                        assert_eq!(got.unwrap_err().type_name, "UnsupportedOperationException")
                    }
                    (Some(spec), true, _) => {
                        let (s, u) = got.unwrap();
                        assert_eq!(s, *spec);
                        // And back: the names DescribeKey answers are the ones asked for.
                        assert_eq!(aws_spec(s), *name);
                        assert_eq!(aws_usage(s, u), *usage);
                    }
                }
            }
        }
    }

    #[test]
    fn specs_aws_does_not_name_keep_their_ehsm_names() {
        for spec in [KeySpec::AesGcm128, KeySpec::Sm4Cbc, KeySpec::EcP224] {
            assert_eq!(aws_spec(spec), spec.as_str());
        }
    }

    #[test]
    fn algorithms_per_kind() {
        use KeySpec as S;
        use KeyUsage as U;
        for (spec, usage, field, first) in [
            (
                S::AesGcm256,
                U::EncryptDecrypt,
                "EncryptionAlgorithms",
                "SYMMETRIC_DEFAULT",
            ),
            (
                S::Sm4Ctr,
                U::EncryptDecrypt,
                "EncryptionAlgorithms",
                "SYMMETRIC_DEFAULT",
            ),
            (
                S::Rsa3072,
                U::EncryptDecrypt,
                "EncryptionAlgorithms",
                "RSAES_OAEP_SHA_256",
            ),
            (S::Sm2, U::EncryptDecrypt, "EncryptionAlgorithms", "SM2PKE"),
            (
                S::Rsa2048,
                U::SignVerify,
                "SigningAlgorithms",
                "RSASSA_PSS_SHA_256",
            ),
            (
                S::EcP256,
                U::SignVerify,
                "SigningAlgorithms",
                "ECDSA_SHA_256",
            ),
            (
                S::EcP384,
                U::SignVerify,
                "SigningAlgorithms",
                "ECDSA_SHA_384",
            ),
            (
                S::EcP521,
                U::SignVerify,
                "SigningAlgorithms",
                "ECDSA_SHA_512",
            ),
            (S::Sm2, U::SignVerify, "SigningAlgorithms", "SM2DSA"),
            (S::Hmac, U::SignVerify, "MacAlgorithms", "HMAC_SHA_256"),
        ] {
            let (f, algs) = algorithms(spec, usage);
            assert_eq!((f, algs[0]), (field, first), "{spec} {usage}");
        }
    }
}
