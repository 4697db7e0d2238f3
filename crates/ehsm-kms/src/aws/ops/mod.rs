//! The AWS KMS operations this server serves, one function each with one shape:
//! `(caller, input) -> JSON answer`, dispatched by a plain `match`. Each reads its members
//! with AWS's names and limits (`super::input`), calls the operations the eHSM actions call
//! (`crate::keys`, `crate::actions::*`), and words every refusal as AWS does, here.

mod aliases;
mod crypto;
mod keys;
mod lifecycle;
mod signing;

use ehsm_core::MacVerified;
use serde_json::Value;

use super::error::AwsError;
use super::ids::AwsConfig;
use super::input::Input;
use crate::op_error::OpError;
use crate::state::AppState;

/// Who is asking, proven: the app whose SigV4 signature checked out.
pub(crate) struct Caller<'a> {
    pub(crate) state: &'a AppState,
    pub(crate) mac: MacVerified<'a>,
}

impl Caller<'_> {
    fn appid(&self) -> &str {
        self.mac.appid()
    }

    fn names(&self) -> &AwsConfig {
        &self.state.aws
    }
}

/// The operations served.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    CancelKeyDeletion,
    CreateAlias,
    CreateKey,
    Decrypt,
    DeleteAlias,
    DescribeKey,
    DisableKey,
    DisableKeyRotation,
    EnableKey,
    EnableKeyRotation,
    Encrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GenerateMac,
    GenerateRandom,
    GetKeyRotationStatus,
    GetPublicKey,
    ListAliases,
    ListKeyRotations,
    ListKeys,
    ReEncrypt,
    RotateKeyOnDemand,
    ScheduleKeyDeletion,
    Sign,
    UpdateAlias,
    Verify,
    VerifyMac,
}

impl Operation {
    const SERVED: &[(&str, Operation)] = &[
        ("CancelKeyDeletion", Operation::CancelKeyDeletion),
        ("CreateAlias", Operation::CreateAlias),
        ("CreateKey", Operation::CreateKey),
        ("Decrypt", Operation::Decrypt),
        ("DeleteAlias", Operation::DeleteAlias),
        ("DescribeKey", Operation::DescribeKey),
        ("DisableKey", Operation::DisableKey),
        ("DisableKeyRotation", Operation::DisableKeyRotation),
        ("EnableKey", Operation::EnableKey),
        ("EnableKeyRotation", Operation::EnableKeyRotation),
        ("Encrypt", Operation::Encrypt),
        ("GenerateDataKey", Operation::GenerateDataKey),
        (
            "GenerateDataKeyWithoutPlaintext",
            Operation::GenerateDataKeyWithoutPlaintext,
        ),
        ("GenerateMac", Operation::GenerateMac),
        ("GenerateRandom", Operation::GenerateRandom),
        ("GetKeyRotationStatus", Operation::GetKeyRotationStatus),
        ("GetPublicKey", Operation::GetPublicKey),
        ("ListAliases", Operation::ListAliases),
        ("ListKeyRotations", Operation::ListKeyRotations),
        ("ListKeys", Operation::ListKeys),
        ("ReEncrypt", Operation::ReEncrypt),
        ("RotateKeyOnDemand", Operation::RotateKeyOnDemand),
        ("ScheduleKeyDeletion", Operation::ScheduleKeyDeletion),
        ("Sign", Operation::Sign),
        ("UpdateAlias", Operation::UpdateAlias),
        ("Verify", Operation::Verify),
        ("VerifyMac", Operation::VerifyMac),
    ];

    /// The operation an `X-Amz-Target` header names. Every other operation of AWS KMS's
    /// `TrentService` is `UnsupportedOperationException`, with a message naming it; a target
    /// that is no KMS operation at all is `UnknownOperationException`, as AWS answers.
    pub(crate) fn from_target(target: Option<&str>) -> Result<Self, AwsError> {
        let name = target
            .and_then(|t| t.strip_prefix(TARGET_PREFIX))
            .ok_or_else(AwsError::unknown_operation)?;
        if let Some((_, op)) = Self::SERVED.iter().find(|(n, _)| *n == name) {
            return Ok(*op);
        }
        if NOT_SERVED.contains(&name) {
            return Err(AwsError::unsupported_operation(format!(
                "ehsm does not serve {name}: docs/aws.md lists the AWS KMS operations it serves."
            )));
        }
        Err(AwsError::unknown_operation())
    }
}

/// What the AWS KMS JSON protocol's `X-Amz-Target` starts with.
const TARGET_PREFIX: &str = "TrentService.";

/// The rest of AWS KMS's operations (botocore's kms 2014-11-01 service model).
const NOT_SERVED: &[&str] = &[
    "ConnectCustomKeyStore",
    "CreateCustomKeyStore",
    "CreateGrant",
    "DeleteCustomKeyStore",
    "DeleteImportedKeyMaterial",
    "DeriveSharedSecret",
    "DescribeCustomKeyStores",
    "DisconnectCustomKeyStore",
    "GenerateDataKeyPair",
    "GenerateDataKeyPairWithoutPlaintext",
    "GetKeyLastUsage",
    "GetKeyPolicy",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "ListGrants",
    "ListKeyPolicies",
    "ListResourceTags",
    "ListRetirableGrants",
    "PutKeyPolicy",
    "ReplicateKey",
    "RetireGrant",
    "RevokeGrant",
    "TagResource",
    "UntagResource",
    "UpdateCustomKeyStore",
    "UpdateKeyDescription",
    "UpdatePrimaryRegion",
];

/// Runs an operation for an authenticated caller; the answer is its output structure.
pub(crate) async fn dispatch(
    caller: &Caller<'_>,
    op: Operation,
    input: &Input,
) -> Result<Value, AwsError> {
    match op {
        Operation::CreateKey => keys::create_key(caller, input).await,
        Operation::DescribeKey => keys::describe_key(caller, input).await,
        Operation::ListKeys => keys::list_keys(caller, input).await,
        Operation::EnableKey => keys::set_enabled(caller, input, true).await,
        Operation::DisableKey => keys::set_enabled(caller, input, false).await,
        Operation::Encrypt => crypto::encrypt(caller, input).await,
        Operation::Decrypt => crypto::decrypt(caller, input).await,
        Operation::GenerateDataKey => crypto::generate_data_key(caller, input, true).await,
        Operation::GenerateDataKeyWithoutPlaintext => {
            crypto::generate_data_key(caller, input, false).await
        }
        Operation::GenerateRandom => crypto::generate_random(caller, input),
        Operation::CreateAlias => aliases::create_alias(caller, input).await,
        Operation::DeleteAlias => aliases::delete_alias(caller, input).await,
        Operation::ListAliases => aliases::list_aliases(caller, input).await,
        Operation::UpdateAlias => aliases::update_alias(caller, input).await,
        Operation::ReEncrypt => lifecycle::reencrypt(caller, input).await,
        Operation::ScheduleKeyDeletion => lifecycle::schedule_key_deletion(caller, input).await,
        Operation::CancelKeyDeletion => lifecycle::cancel_key_deletion(caller, input).await,
        Operation::EnableKeyRotation => lifecycle::set_key_rotation(caller, input, true).await,
        Operation::DisableKeyRotation => lifecycle::set_key_rotation(caller, input, false).await,
        Operation::GetKeyRotationStatus => lifecycle::get_key_rotation_status(caller, input).await,
        Operation::RotateKeyOnDemand => lifecycle::rotate_key_on_demand(caller, input).await,
        Operation::ListKeyRotations => lifecycle::list_key_rotations(caller, input).await,
        Operation::Sign => signing::sign(caller, input).await,
        Operation::Verify => signing::verify(caller, input).await,
        Operation::GetPublicKey => signing::get_public_key(caller, input).await,
        Operation::GenerateMac => signing::generate_mac(caller, input).await,
        Operation::VerifyMac => signing::verify_mac(caller, input).await,
    }
}

// ---- AWS's exceptions -------------------------------------------------------------------------

/// A KMS exception that `AwsError` has no constructor for (400, as every client error).
fn exception(type_name: &'static str, message: String) -> AwsError {
    AwsError {
        status: 400,
        type_name,
        message,
    }
}

fn invalid_key_usage(message: String) -> AwsError {
    exception("InvalidKeyUsageException", message)
}

/// AWS's answer for a ciphertext that does not decrypt, whatever the reason (tampered, another
/// key's, another EncryptionContext): no message, so that it tells nothing about which.
pub(crate) fn invalid_ciphertext() -> AwsError {
    AwsError::invalid_ciphertext("")
}

/// A server fault: AWS's `KMSInternalException` (which SDKs retry), with no detail; the log
/// has it.
pub(crate) fn internal(detail: &dyn std::fmt::Display) -> AwsError {
    tracing::error!(%detail, "internal error (AWS API)");
    AwsError::internal()
}

/// A shared operation's refusal in AWS's words. `asked` is the key id or alias the request
/// named (AWS's messages name the key by its ARN).
fn refusal(names: &AwsConfig, e: OpError, asked: &str) -> AwsError {
    let arn = || names.arn_of(asked);
    match e {
        OpError::UnknownKey => AwsError::not_found(format!("Key '{}' does not exist", arn())),
        OpError::UnknownAlias(alias) => {
            AwsError::not_found(format!("Alias {} is not found.", names.alias_arn(&alias)))
        }
        OpError::Disabled => AwsError::disabled(format!("{} is disabled.", arn())),
        OpError::Expired => AwsError::invalid_state(format!(
            "{} is expired: ehsm keys are usable for the server's key lifetime (ValidTo).",
            arn()
        )),
        OpError::PendingDeletion(_) | OpError::EnablePendingDeletion => {
            AwsError::invalid_state(format!("{} is pending deletion.", arn()))
        }
        OpError::AliasExists(alias) => AwsError::already_exists(format!(
            "An alias with the name {} already exists",
            names.alias_arn(&alias)
        )),
        OpError::AliasOfAlias => AwsError::validation(format!(
            "{asked} is an alias: an alias names a key by its key id or key ARN."
        )),
        OpError::AliasKind { alias, spec, usage } => AwsError::validation(format!(
            "{} names a key of spec {} and usage {}: UpdateAlias points it at a key of the same \
             kind only.",
            names.alias_arn(&alias),
            spec.as_str(),
            usage.as_str()
        )),
        // AWS denies every change to its managed aliases.
        OpError::ReservedAlias => AwsError::access_denied(format!(
            "The app is not authorized to change {}: names beginning with {} are reserved for \
             AWS managed keys.",
            names.alias_arn(asked),
            crate::validate::RESERVED_ALIAS_PREFIX
        )),
        OpError::QuotaExceeded {
            quota,
            count,
            limit,
        } => {
            let plural = match quota {
                crate::op_error::Quota::Keys => "keys",
                crate::op_error::Quota::Aliases => "aliases",
            };
            AwsError::limit_exceeded(format!(
                "This app already has {count} {plural}: the server's limit is {limit} per app."
            ))
        }
        OpError::Core(e) => core_refusal(e),
        OpError::Store(e) => internal(&e),
        OpError::Corrupt(what) => internal(&what),
    }
}

/// The core's refusals in AWS's words.
pub(crate) fn core_refusal(e: ehsm_core::Error) -> AwsError {
    use ehsm_core::Error as E;
    match e {
        E::InvalidInput(what) => AwsError::validation(format!("{what}.")),
        // The key exists but cannot do this (its spec, usage or origin).
        E::NotPermitted(what) => invalid_key_usage(format!("{what}.")),
        E::DecryptionFailed => invalid_ciphertext(),
        E::RequestMacMismatch => AwsError::signature_mismatch(),
        E::ImportTokenExpired => exception(
            "ExpiredImportTokenException",
            "The import token has expired: call GetParametersForImport again.".to_owned(),
        ),
        E::InvalidImportToken => exception(
            "InvalidImportTokenException",
            "The import token is not valid for this key.".to_owned(),
        ),
        E::IntegrityFailure(_) | E::UnknownDomainKey(_) | E::Backend(_) | E::SelfTest(_) => {
            internal(&e)
        }
    }
}

/// Members that ask for what ehsm does not have, refused rather than ignored (ignoring them
/// would be a silent success): grants, dry runs, attested release to a Nitro enclave.
fn refuse_unsupported_members(input: &Input) -> Result<(), AwsError> {
    let tokens = input.opt_list("GrantTokens")?;
    if tokens.len() > 10 {
        return Err(AwsError::validation(
            "1 validation error detected: Value at 'grantTokens' failed to satisfy \
             constraint: Member must have length less than or equal to 10"
                .to_owned(),
        ));
    }
    if !tokens.is_empty() {
        return Err(AwsError::unsupported_operation(
            "ehsm has no grants: GrantTokens must be empty (an app uses its own keys).".to_owned(),
        ));
    }
    if input.opt_bool("DryRun")? == Some(true) {
        return Err(AwsError::unsupported_operation(
            "ehsm does not support DryRun.".to_owned(),
        ));
    }
    for name in ["Recipient", "CustomKeyStoreId"] {
        if input.has(name) {
            return Err(AwsError::unsupported_operation(format!(
                "ehsm does not support {name}."
            )));
        }
    }
    Ok(())
}

/// A time in ms since the epoch as AWS's JSON timestamps: seconds since the epoch, a number.
fn epoch_seconds(ms: i64) -> Value {
    Value::from(ms as f64 / 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Operation::from_target(Some("TrentService.Encrypt")).unwrap(),
            Operation::Encrypt
        );
        for (name, op) in Operation::SERVED {
            let target = format!("{TARGET_PREFIX}{name}");
            assert_eq!(Operation::from_target(Some(&target)).unwrap(), *op);
            assert!(!NOT_SERVED.contains(name), "{name}");
        }
        let e = Operation::from_target(Some("TrentService.CreateGrant")).unwrap_err();
        assert_eq!(
            (e.status, e.type_name),
            (400, "UnsupportedOperationException")
        );
        assert!(e.message.contains("CreateGrant"), "{}", e.message);
        for bad in [
            None,
            Some(""),
            Some("TrentService."),
            Some("TrentService.Nope"),
            Some("TrentService.encrypt"),
            Some("Encrypt"),
            Some("DynamoDB_20120810.Encrypt"),
        ] {
            let e = Operation::from_target(bad).unwrap_err();
            assert_eq!(
                (e.status, e.type_name),
                (400, "UnknownOperationException"),
                "{bad:?}"
            );
        }
        // The model has 54 operations: every one is either served or refused by name.
        assert_eq!(Operation::SERVED.len() + NOT_SERVED.len(), 54);
    }
}
