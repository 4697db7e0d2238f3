//! Encrypt, Decrypt, GenerateDataKey(WithoutPlaintext), GenerateRandom: the eHSM actions'
//! operations (`crate::actions::symmetric`), with AWS's framing of the ciphertext (so that
//! Decrypt finds the key) and EncryptionContext as the additional data.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{
    Caller, core_refusal, invalid_ciphertext, invalid_key_usage, refusal,
    refuse_unsupported_members,
};
use crate::actions::symmetric;
use crate::aws::ciphertext::{self, Blob};
use crate::aws::context;
use crate::aws::error::AwsError;
use crate::aws::input::Input;
use crate::keys::{self, Key};
use crate::params::b64;

/// AWS's limits: Encrypt's plaintext, a CiphertextBlob.
const MAX_PLAINTEXT: usize = 4096;
pub(super) const MAX_CIPHERTEXT: usize = 6144;
/// AWS's cap on a KeyId member (an ARN or alias ARN at most).
pub(super) const MAX_KEY_ID: usize = 2048;
/// GenerateDataKey's and GenerateRandom's NumberOfBytes.
const MAX_BYTES: i64 = 1024;

pub(super) const SYMMETRIC_DEFAULT: &str = "SYMMETRIC_DEFAULT";
const ENCRYPTION_ALGORITHMS: &[&str] = &[
    SYMMETRIC_DEFAULT,
    "RSAES_OAEP_SHA_1",
    "RSAES_OAEP_SHA_256",
    "SM2PKE",
];

/// An EncryptionAlgorithm member (ReEncrypt has two, `member` names which): SYMMETRIC_DEFAULT
/// (the default) is what this server does; the asymmetric ones are refused until Encrypt and
/// Decrypt serve asymmetric keys.
pub(super) fn algorithm(input: &Input, member: &str) -> Result<(), AwsError> {
    match input.opt_enum(member, ENCRYPTION_ALGORITHMS)? {
        None | Some(SYMMETRIC_DEFAULT) => Ok(()),
        Some(other) => Err(AwsError::unsupported_operation(format!(
            "ehsm's Encrypt and Decrypt do not serve {other} yet: only symmetric keys \
             (SYMMETRIC_DEFAULT)."
        ))),
    }
}

/// The key a KeyId member names, usable now; refusals name it as the client did.
pub(super) async fn usable_key(caller: &Caller<'_>, key_id: &str) -> Result<Arc<Key>, AwsError> {
    load(caller, caller.names().reference(key_id)?).await
}

/// The key `reference` (a key id or alias) names, usable now.
async fn load(caller: &Caller<'_>, reference: &str) -> Result<Arc<Key>, AwsError> {
    keys::load(caller.state, caller.appid(), reference)
        .await
        .map_err(|e| refusal(caller.names(), e, reference))
}

/// A symmetric encryption key, as Encrypt, Decrypt and the data-key operations need: any other
/// is AWS's InvalidKeyUsageException, before the core is asked.
pub(super) fn check_symmetric(caller: &Caller<'_>, key: &Key) -> Result<(), AwsError> {
    if key.spec.is_symmetric_cipher() && key.usage == ehsm_core::spec::KeyUsage::EncryptDecrypt {
        return Ok(());
    }
    Err(invalid_key_usage(format!(
        "{} is not a symmetric encryption key (ENCRYPT_DECRYPT, SYMMETRIC_DEFAULT): ehsm's \
         Encrypt and Decrypt serve symmetric keys only, for now.",
        caller.names().key_arn(&key.record.keyid)
    )))
}

pub(super) async fn encrypt(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let key = usable_key(caller, input.string("KeyId", MAX_KEY_ID)?).await?;
    let plaintext = input.blob("Plaintext", MAX_PLAINTEXT)?;
    let aad = context::aad(&input.string_map("EncryptionContext")?);
    algorithm(input, "EncryptionAlgorithm")?;
    refuse_unsupported_members(input)?;
    check_symmetric(caller, &key)?;
    let body = symmetric::encrypt_with(caller.state, &caller.mac, &key, &plaintext, &aad)
        .map_err(core_refusal)?;
    let keyid = &key.record.keyid;
    Ok(json!({
        "CiphertextBlob": b64(&ciphertext::frame(keyid, &body)),
        "KeyId": caller.names().key_arn(keyid),
        "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
    }))
}

pub(super) async fn decrypt(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let blob = input.blob("CiphertextBlob", MAX_CIPHERTEXT)?;
    let aad = context::aad(&input.string_map("EncryptionContext")?);
    let key_id = input.opt_string_within("KeyId", 1, MAX_KEY_ID)?;
    algorithm(input, "EncryptionAlgorithm")?;
    refuse_unsupported_members(input)?;
    let (key, body) = ciphertext_key(caller, &blob, key_id).await?;
    check_symmetric(caller, &key)?;
    let plaintext = symmetric::decrypt_with(caller.state, &caller.mac, &key, body, &aad)
        .map_err(decrypt_refusal)?;
    let names = caller.names();
    Ok(json!({
        "KeyId": names.key_arn(&key.record.keyid),
        "Plaintext": b64(plaintext.as_slice()),
        "EncryptionAlgorithm": SYMMETRIC_DEFAULT,
    }))
}

/// The key a CiphertextBlob decrypts under, and its eHSM body: the key its frame names (which
/// `key_id`, if sent, must name too), or for an eHSM ciphertext the key `key_id` names.
pub(super) async fn ciphertext_key<'b>(
    caller: &Caller<'_>,
    blob: &'b [u8],
    key_id: Option<&str>,
) -> Result<(Arc<Key>, &'b [u8]), AwsError> {
    let names = caller.names();
    match (ciphertext::parse(blob)?, key_id) {
        (Blob::Framed { keyid, body }, asked) => {
            if let Some(asked) = asked {
                let reference = names.reference(asked)?;
                let named = keys::resolve(caller.state, caller.appid(), reference)
                    .await
                    .map_err(|e| refusal(names, e, reference))?;
                if named != keyid {
                    return Err(AwsError::incorrect_key(
                        "The key ID in the request does not identify a CMK that can perform \
                         this operation.",
                    ));
                }
            }
            Ok((load(caller, keyid).await?, body))
        }
        // An eHSM ciphertext names no key: KeyId must.
        (Blob::Bare(body), Some(asked)) => Ok((usable_key(caller, asked).await?, body)),
        (Blob::Bare(_), None) => Err(AwsError::invalid_ciphertext(
            "The ciphertext was made through the eHSM API, which does not name its key: \
             send the KeyId."
                .to_owned(),
        )),
    }
}

/// The core's refusal to decrypt a CiphertextBlob's body.
pub(super) fn decrypt_refusal(e: ehsm_core::Error) -> AwsError {
    match e {
        // A malformed body or version: the ciphertext is wrong, as a tampered one is.
        ehsm_core::Error::InvalidInput(_) => invalid_ciphertext(),
        e => core_refusal(e),
    }
}

const DATA_KEY_SPECS: &[&str] = &["AES_256", "AES_128"];

pub(super) async fn generate_data_key(
    caller: &Caller<'_>,
    input: &Input,
    with_plaintext: bool,
) -> Result<Value, AwsError> {
    let key = usable_key(caller, input.string("KeyId", MAX_KEY_ID)?).await?;
    let aad = context::aad(&input.string_map("EncryptionContext")?);
    let len = match (
        input.opt_integer("NumberOfBytes", 1, MAX_BYTES)?,
        input.opt_enum("KeySpec", DATA_KEY_SPECS)?,
    ) {
        (Some(n), None) => n,
        (None, Some("AES_128")) => 16,
        (None, Some(_)) => 32,
        _ => {
            return Err(AwsError::validation(
                "Please specify either number of bytes or key spec.".to_owned(),
            ));
        }
    };
    refuse_unsupported_members(input)?;
    check_symmetric(caller, &key)?;
    // Within 1..=1024.
    let len = usize::try_from(len).unwrap_or(0);
    let dk = symmetric::data_key_with(caller.state, &caller.mac, &key, len, &aad)
        .map_err(core_refusal)?;
    let keyid = &key.record.keyid;
    let mut out = json!({
        "CiphertextBlob": b64(&ciphertext::frame(keyid, &dk.ciphertext)),
        "KeyId": caller.names().key_arn(keyid),
    });
    if with_plaintext {
        out["Plaintext"] = b64(dk.plaintext.as_slice()).into();
    }
    Ok(out)
}

pub(super) fn generate_random(caller: &Caller<'_>, input: &Input) -> Result<Value, AwsError> {
    let len = input.integer("NumberOfBytes", 1, MAX_BYTES)?;
    refuse_unsupported_members(input)?;
    let bytes = caller
        .state
        .core
        .generate_random(usize::try_from(len).unwrap_or(0))
        .map_err(core_refusal)?;
    Ok(json!({ "Plaintext": b64(bytes.as_slice()) }))
}
