//! The eHSM enumerations (compatibility spec §4): key specs, origins, usages, paddings, digests
//! and message types.
//!
//! The wire carries the *names* (`"EH_AES_GCM_256"`); upstream's enclave used the numbers. Both
//! are kept here, in one table per enum, so that a name can never drift from its number.

use core::fmt;

/// A name that is not one of the enum's wire names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnknownName(pub &'static str);

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {}", self.0)
    }
}

impl std::error::Error for UnknownName {}

macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal, $num:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every value, in upstream's numeric order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The name used on the wire, e.g. in JSON payloads and in ListKey results.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire,)+ }
            }

            /// Upstream's numeric value (its `ehsm_*` C enums); also the byte used in key-blob AAD.
            pub const fn number(self) -> u32 {
                match self { $($name::$variant => $num,)+ }
            }

            /// Parses a wire name, case-sensitively as upstream does.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($wire => Some($name::$variant),)+ _ => None }
            }

            /// Parses upstream's numeric value.
            pub fn from_number(n: u32) -> Option<Self> {
                match n { $($num => Some($name::$variant),)+ _ => None }
            }
        }

        impl core::fmt::Display for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl core::str::FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                Self::from_name(s).ok_or(UnknownName(stringify!($name)))
            }
        }
    };
}

wire_enum! {
    /// The kind of a customer master key (CMK).
    KeySpec {
        /// AES-128 in GCM mode.
        AesGcm128 = "EH_AES_GCM_128", 1;
        /// AES-192 in GCM mode.
        AesGcm192 = "EH_AES_GCM_192", 2;
        /// AES-256 in GCM mode.
        AesGcm256 = "EH_AES_GCM_256", 3;
        /// RSA with a 2048-bit modulus.
        Rsa2048 = "EH_RSA_2048", 10;
        /// RSA with a 3072-bit modulus.
        Rsa3072 = "EH_RSA_3072", 11;
        /// RSA with a 4096-bit modulus.
        Rsa4096 = "EH_RSA_4096", 12;
        /// ECDSA on NIST P-224 (secp224r1).
        EcP224 = "EH_EC_P224", 20;
        /// ECDSA on NIST P-256 (prime256v1).
        EcP256 = "EH_EC_P256", 21;
        /// ECDSA on secp256k1.
        EcP256k = "EH_EC_P256K", 22;
        /// ECDSA on NIST P-384 (secp384r1).
        EcP384 = "EH_EC_P384", 23;
        /// ECDSA on NIST P-521 (secp521r1).
        EcP521 = "EH_EC_P521", 24;
        /// SM2 (GM/T 0003): signatures and public-key encryption.
        Sm2 = "EH_SM2", 30;
        /// SM4 in CTR mode (no integrity, as upstream).
        Sm4Ctr = "EH_SM4_CTR", 31;
        /// SM4 in CBC mode with PKCS#7 padding (no integrity, as upstream).
        Sm4Cbc = "EH_SM4_CBC", 32;
        /// HMAC-SHA256 with a 32-byte key (declared upstream, built here).
        Hmac = "EH_HMAC", 40;
    }
}

wire_enum! {
    /// Where a CMK's key material came from.
    Origin {
        /// Generated inside the core.
        Internal = "EH_INTERNAL_KEY", 1;
        /// Imported by the customer (BYOK).
        External = "EH_EXTERNAL_KEY", 2;
    }
}

wire_enum! {
    /// What a CMK may be used for.
    KeyUsage {
        /// Encrypt and decrypt (symmetric, RSA, SM2).
        EncryptDecrypt = "EH_KEYUSAGE_ENCRYPT_DECRYPT", 1;
        /// Sign and verify (RSA, EC, SM2, HMAC).
        SignVerify = "EH_KEYUSAGE_SIGN_VERIFY", 2;
    }
}

wire_enum! {
    /// RSA padding for encryption and signatures.
    PaddingMode {
        /// No padding: refused for every RSA operation.
        None = "EH_PAD_NONE", 0;
        /// PKCS#1 v1.5 (encryption or signature).
        RsaPkcs1 = "EH_RSA_PKCS1", 1;
        /// RSASSA-PSS, salt length = digest length, MGF1 with the same digest.
        RsaPkcs1Pss = "EH_RSA_PKCS1_PSS", 2;
        /// RSAES-OAEP with SHA-256 and MGF1-SHA-256, empty label.
        RsaPkcs1Oaep = "EH_RSA_PKCS1_OAEP", 3;
    }
}

wire_enum! {
    /// The message digest used by Sign and Verify.
    DigestMode {
        /// SHA-224.
        Sha224 = "EH_SHA_224", 1;
        /// SHA-256.
        Sha256 = "EH_SHA_256", 2;
        /// SHA-384.
        Sha384 = "EH_SHA_384", 3;
        /// SHA-512.
        Sha512 = "EH_SHA_512", 4;
        /// SM3.
        Sm3 = "EH_SM3", 5;
    }
}

wire_enum! {
    /// Whether Sign/Verify get the message itself or its digest.
    MessageType {
        /// The message; the core hashes it with the digest mode.
        Raw = "EH_RAW", 1;
        /// A digest the caller computed (its length must match the digest mode; SM2 excepted).
        Digest = "EH_DIGEST", 2;
    }
}

impl KeySpec {
    /// The length in bytes of a symmetric key of this spec (AES, SM4, HMAC); `None` for key pairs.
    pub const fn symmetric_key_len(self) -> Option<usize> {
        match self {
            KeySpec::AesGcm128 | KeySpec::Sm4Ctr | KeySpec::Sm4Cbc => Some(16),
            KeySpec::AesGcm192 => Some(24),
            KeySpec::AesGcm256 | KeySpec::Hmac => Some(32),
            _ => None,
        }
    }

    /// True for the specs that Encrypt/Decrypt and the data-key actions use.
    pub const fn is_symmetric_cipher(self) -> bool {
        matches!(
            self,
            KeySpec::AesGcm128
                | KeySpec::AesGcm192
                | KeySpec::AesGcm256
                | KeySpec::Sm4Ctr
                | KeySpec::Sm4Cbc
        )
    }

    /// True for key pairs (RSA, EC, SM2), which have a public key.
    pub const fn is_asymmetric(self) -> bool {
        !self.is_symmetric_cipher() && !matches!(self, KeySpec::Hmac)
    }
}

impl DigestMode {
    /// The digest length in bytes.
    // A digest mode names a length, not a collection; it is never empty.
    #[allow(clippy::len_without_is_empty)]
    pub const fn len(self) -> usize {
        match self {
            DigestMode::Sha224 => 28,
            DigestMode::Sha256 | DigestMode::Sm3 => 32,
            DigestMode::Sha384 => 48,
            DigestMode::Sha512 => 64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_round_trip() {
        for s in KeySpec::ALL {
            assert_eq!(KeySpec::from_name(s.as_str()), Some(*s));
            assert_eq!(KeySpec::from_number(s.number()), Some(*s));
        }
        for p in PaddingMode::ALL {
            assert_eq!(p.as_str().parse::<PaddingMode>().unwrap(), *p);
        }
        assert_eq!(KeySpec::ALL.len(), 15);
    }

    #[test]
    fn names_are_case_sensitive_and_doc_aliases_are_refused() {
        assert_eq!(KeySpec::from_name("eh_aes_gcm_256"), None);
        // The API doc's padding names never worked on the wire (spec §4).
        assert_eq!(PaddingMode::from_name("EH_PAD_RSA_PKCS1"), None);
        assert_eq!(PaddingMode::from_name("EH_PAD_PKCS1"), None);
    }
}
