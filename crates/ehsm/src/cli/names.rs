//! Command-line names for the wire enums: a short lower-case name shown in `--help`
//! (`aes-gcm-256`), with the wire name (`EH_AES_GCM_256`) accepted as a hidden alias. Matching
//! ignores case.

use clap::builder::PossibleValue;
use ehsm_client::{DigestMode, KeySpec, KeyUsage, Origin, PaddingMode};

/// A newtype over a wire enum with the listed variants and their friendly names.
macro_rules! cli_enum {
    ($(#[$meta:meta])* $name:ident($inner:ident) { $($variant:ident => $friendly:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) struct $name(pub(crate) $inner);

        impl $name {
            const ALL: &'static [$name] = &[$($name($inner::$variant),)+];
        }

        impl clap::ValueEnum for $name {
            fn value_variants<'a>() -> &'a [Self] {
                Self::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                #[allow(unreachable_patterns)] // some wrappers list every variant
                let friendly = match self.0 {
                    $($inner::$variant => $friendly,)+
                    _ => return None,
                };
                Some(PossibleValue::new(friendly).alias(self.0.as_str()))
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                #[allow(unreachable_patterns)]
                let friendly = match self.0 {
                    $($inner::$variant => $friendly,)+
                    _ => self.0.as_str(),
                };
                f.write_str(friendly)
            }
        }
    };
}

cli_enum! {
    /// A key spec.
    Spec(KeySpec) {
        AesGcm128 => "aes-gcm-128",
        AesGcm192 => "aes-gcm-192",
        AesGcm256 => "aes-gcm-256",
        Sm4Ctr => "sm4-ctr",
        Sm4Cbc => "sm4-cbc",
        Rsa2048 => "rsa-2048",
        Rsa3072 => "rsa-3072",
        Rsa4096 => "rsa-4096",
        EcP224 => "ec-p224",
        EcP256 => "ec-p256",
        EcP256k => "ec-p256k",
        EcP384 => "ec-p384",
        EcP521 => "ec-p521",
        Sm2 => "sm2",
        Hmac => "hmac",
    }
}

cli_enum! {
    /// An RSA spec for the BYOK wrapping key.
    WrapSpec(KeySpec) {
        Rsa2048 => "rsa-2048",
        Rsa3072 => "rsa-3072",
        Rsa4096 => "rsa-4096",
    }
}

cli_enum! {
    /// A key usage.
    Usage(KeyUsage) {
        EncryptDecrypt => "encrypt-decrypt",
        SignVerify => "sign-verify",
    }
}

cli_enum! {
    /// A key origin.
    KeyOrigin(Origin) {
        Internal => "internal",
        External => "external",
    }
}

cli_enum! {
    /// A signature padding (RSA; EC and SM2 ignore it).
    SignPadding(PaddingMode) {
        RsaPkcs1 => "pkcs1",
        RsaPkcs1Pss => "pss",
        None => "none",
    }
}

cli_enum! {
    /// An RSA encryption padding for BYOK.
    WrapPadding(PaddingMode) {
        RsaPkcs1Oaep => "oaep",
        RsaPkcs1 => "pkcs1",
    }
}

cli_enum! {
    /// A digest.
    Digest(DigestMode) {
        Sha224 => "sha224",
        Sha256 => "sha256",
        Sha384 => "sha384",
        Sha512 => "sha512",
        Sm3 => "sm3",
    }
}

/// The usage `ehsm key create` picks when `--usage` is not given: encrypt-decrypt for the
/// symmetric ciphers (AES, SM4), sign-verify for everything else. RSA and SM2 can do both;
/// signing is their common use in a KMS, and encryption is one `--usage encrypt-decrypt` away.
pub(crate) fn default_usage(spec: KeySpec) -> KeyUsage {
    if spec.is_symmetric_cipher() {
        KeyUsage::EncryptDecrypt
    } else {
        KeyUsage::SignVerify
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::ValueEnum as _;

    use super::*;

    #[test]
    fn friendly_and_wire_names_parse_in_any_case() {
        for spec in KeySpec::ALL {
            let w = Spec(*spec);
            let friendly = w.to_string();
            assert_eq!(Spec::from_str(&friendly, true).unwrap(), w);
            assert_eq!(Spec::from_str(spec.as_str(), true).unwrap(), w);
            assert_eq!(
                Spec::from_str(&spec.as_str().to_lowercase(), true).unwrap(),
                w
            );
            assert_eq!(Spec::from_str(&friendly.to_uppercase(), true).unwrap(), w);
        }
        assert_eq!(
            Usage::from_str("EH_KEYUSAGE_SIGN_VERIFY", true).unwrap(),
            Usage(KeyUsage::SignVerify)
        );
        assert_eq!(
            KeyOrigin::from_str("external", true).unwrap(),
            KeyOrigin(Origin::External)
        );
        assert_eq!(
            Digest::from_str("EH_SHA_256", true).unwrap(),
            Digest(DigestMode::Sha256)
        );
        assert_eq!(
            WrapPadding::from_str("oaep", true).unwrap(),
            WrapPadding(PaddingMode::RsaPkcs1Oaep)
        );
        assert!(Spec::from_str("aes-256", true).is_err());
        assert!(WrapSpec::from_str("ec-p256", true).is_err());
        assert!(SignPadding::from_str("oaep", true).is_err());
    }

    #[test]
    fn default_usage_follows_the_key_kind() {
        assert_eq!(default_usage(KeySpec::AesGcm256), KeyUsage::EncryptDecrypt);
        assert_eq!(default_usage(KeySpec::Sm4Cbc), KeyUsage::EncryptDecrypt);
        for spec in [
            KeySpec::EcP256,
            KeySpec::Rsa3072,
            KeySpec::Sm2,
            KeySpec::Hmac,
        ] {
            assert_eq!(default_usage(spec), KeyUsage::SignVerify, "{spec}");
        }
    }
}
