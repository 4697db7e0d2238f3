//! The actions of the eHSM API (`?Action=<Name>`, case-sensitive), spec §7, plus ehsm's
//! extensions for HMAC keys.

macro_rules! actions {
    ($($(#[$meta:meta])* $variant:ident,)+) => {
        /// An action of the eHSM API.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Action {
            $($(#[$meta])* $variant,)+
        }

        impl Action {
            /// Every action.
            pub const ALL: &'static [Action] = &[$(Action::$variant,)+];

            /// The name in `?Action=`.
            pub const fn as_str(self) -> &'static str {
                match self { $(Action::$variant => stringify!($variant),)+ }
            }

            /// Parses an `Action` query value, case-sensitively as upstream.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $(stringify!($variant) => Some(Action::$variant),)+ _ => None }
            }
        }
    };
}

actions! {
    /// Server version (GET, no authentication).
    GetVersion,
    /// Mint an appid and API key (GET, no authentication upstream).
    Enroll,
    /// The platform's evidence over a client's challenge and the server's TLS key (POST, no
    /// authentication; ehsm extension): what a client checks before it trusts the server.
    GetServerEvidence,
    /// Create a customer master key.
    CreateKey,
    /// Symmetric encryption.
    Encrypt,
    /// Symmetric decryption.
    Decrypt,
    /// RSA or SM2 encryption.
    AsymmetricEncrypt,
    /// RSA or SM2 decryption.
    AsymmetricDecrypt,
    /// Signature.
    Sign,
    /// Signature check.
    Verify,
    /// A data key and its ciphertext.
    GenerateDataKey,
    /// A data key's ciphertext only.
    GenerateDataKeyWithoutPlaintext,
    /// Re-encrypt a data key to a public key.
    ExportDataKey,
    /// A key pair's public key.
    GetPublicKey,
    /// BYOK step 1: a wrapping key and an import token.
    GetParametersForImport,
    /// BYOK step 2: import wrapped key material.
    ImportKeyMaterial,
    /// The caller's keys.
    ListKey,
    /// Delete one key.
    DeleteKey,
    /// Delete all the caller's keys.
    DeleteAllKey,
    /// Enable a key.
    EnableKey,
    /// Disable a key.
    DisableKey,
    /// HMAC-SHA256 with an `EH_HMAC` key (ehsm extension).
    GenerateMac,
    /// Check an HMAC-SHA256 tag (ehsm extension).
    VerifyMac,
    /// Quote with a challenge.
    GenerateQuote,
    /// Verify a quote.
    VerifyQuote,
    /// Store a quote policy.
    UploadQuotePolicy,
    /// Read a quote policy.
    GetQuotePolicy,
    /// Create a secret.
    CreateSecret,
    /// Change a secret's description.
    UpdateSecretDesc,
    /// Add a secret version.
    PutSecretValue,
    /// List a secret's versions.
    ListSecretVersionIds,
    /// List secrets.
    ListSecrets,
    /// Describe a secret.
    DescribeSecret,
    /// Delete (or schedule deletion of) a secret.
    DeleteSecret,
    /// Read a secret value.
    GetSecretValue,
    /// Cancel a scheduled deletion.
    RestoreSecret,
    /// Make a new primary version of a key now (ehsm extension: key lifecycle).
    RotateKey,
    /// Turn automatic rotation of a key on or off.
    UpdateRotationPolicy,
    /// A key's versions.
    ListKeyVersions,
    /// A key's metadata.
    DescribeKey,
    /// Name a key.
    CreateAlias,
    /// Point an alias at another key.
    UpdateAlias,
    /// Remove an alias.
    DeleteAlias,
    /// The app's aliases.
    ListAliases,
    /// Decrypt under one key and encrypt under another, inside the core.
    ReEncrypt,
    /// Delete a key after a waiting period.
    ScheduleKeyDeletion,
    /// Cancel a scheduled key deletion.
    CancelKeyDeletion,
}

impl Action {
    /// Actions served without authentication (spec §2.4 step 0): upstream's GetVersion and
    /// Enroll on GET, and ehsm's GetServerEvidence on POST (a client asks for it before it has
    /// credentials, to decide whether to enroll at all).
    pub const fn is_unauthenticated(self) -> bool {
        matches!(
            self,
            Action::GetVersion | Action::Enroll | Action::GetServerEvidence
        )
    }

    /// Actions that need a `payload` in the envelope (spec §2.4 step 2). The HMAC extensions are
    /// cryptographic too, and the key-lifecycle extensions all name a key or an alias (except
    /// ListAliases, whose one field is optional).
    pub const fn needs_payload(self) -> bool {
        matches!(
            self,
            Action::CreateKey
                | Action::Encrypt
                | Action::Decrypt
                | Action::GenerateDataKey
                | Action::GenerateDataKeyWithoutPlaintext
                | Action::Sign
                | Action::Verify
                | Action::AsymmetricEncrypt
                | Action::AsymmetricDecrypt
                | Action::ExportDataKey
                | Action::GetPublicKey
                | Action::ImportKeyMaterial
                | Action::GetParametersForImport
                | Action::GenerateMac
                | Action::VerifyMac
                | Action::RotateKey
                | Action::UpdateRotationPolicy
                | Action::ListKeyVersions
                | Action::DescribeKey
                | Action::CreateAlias
                | Action::UpdateAlias
                | Action::DeleteAlias
                | Action::ReEncrypt
                | Action::ScheduleKeyDeletion
                | Action::CancelKeyDeletion
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_case_sensitive() {
        for a in Action::ALL {
            assert_eq!(Action::from_name(a.as_str()), Some(*a));
        }
        assert_eq!(Action::from_name("createkey"), None);
        // The API doc's spelling never existed in the code (spec §7.18).
        assert_eq!(Action::from_name("DeleteALLKey"), None);
        assert_eq!(Action::ALL.len(), 47);
    }

    #[test]
    fn unauthenticated_actions_are_the_three_without_a_payload() {
        let open: Vec<_> = Action::ALL
            .iter()
            .filter(|a| a.is_unauthenticated())
            .collect();
        assert_eq!(
            open,
            [
                &Action::GetVersion,
                &Action::Enroll,
                &Action::GetServerEvidence
            ]
        );
        // Their bodies carry no envelope, so no envelope payload either.
        assert!(open.iter().all(|a| !a.needs_payload()));
        assert_eq!(
            Action::from_name("GetServerEvidence"),
            Some(Action::GetServerEvidence)
        );
    }
}
