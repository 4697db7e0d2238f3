//! Key derivation: every key the core derives from a domain key or a sealing key goes through
//! HKDF-SHA256 with its own label, so that no two uses ever share a key.

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::{Error, Result};

/// The labels, in one place so that a reviewer can see that they are all distinct.
pub(crate) mod label {
    /// Wraps key blobs (CMK material, BYOK wrapping keys, API keys).
    pub(crate) const KEY_BLOB: &[u8] = b"ehsm v1 key blob";
    /// MACs BYOK import tokens.
    pub(crate) const IMPORT_TOKEN: &[u8] = b"ehsm v1 import token";
    /// Seals the domain-key set to the platform's sealing key.
    pub(crate) const SEAL_DOMAIN_KEYS: &[u8] = b"ehsm v1 seal domain keys";
    /// The public fingerprint of a domain key (one-way; says which DK, reveals nothing of it).
    pub(crate) const FINGERPRINT: &[u8] = b"ehsm v1 domain key fingerprint";
}

/// Derives a 32-byte key from `ikm` for the purpose named by `label`.
pub(crate) fn derive(ikm: &[u8], label: &[u8]) -> Result<Zeroizing<[u8; 32]>> {
    let mut out = Zeroizing::new([0u8; 32]);
    hkdf::Salt::new(hkdf::HKDF_SHA256, b"ehsm")
        .extract(ikm)
        .expand(&[label], hkdf::HKDF_SHA256)
        .and_then(|okm| okm.fill(out.as_mut_slice()))
        .map_err(|_| Error::Backend("HKDF failed"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_give_different_keys() {
        let ikm = [7u8; 32];
        let a = derive(&ikm, label::KEY_BLOB).unwrap();
        let b = derive(&ikm, label::IMPORT_TOKEN).unwrap();
        let c = derive(&ikm, label::SEAL_DOMAIN_KEYS).unwrap();
        let d = derive(&ikm, label::FINGERPRINT).unwrap();
        let all = [*a, *b, *c, *d];
        for i in 0..all.len() {
            for j in i + 1..all.len() {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_eq!(*a, *derive(&ikm, label::KEY_BLOB).unwrap());
    }

    // RFC 5869 test case 1 checks the primitive itself (salt, ikm and info from the RFC).
    #[test]
    fn hkdf_sha256_rfc5869_case_1() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf::Salt::new(hkdf::HKDF_SHA256, &salt)
            .extract(&ikm)
            .expand(&[&info], Len42)
            .unwrap()
            .fill(&mut okm)
            .unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
    }

    struct Len42;
    impl hkdf::KeyType for Len42 {
        fn len(&self) -> usize {
            42
        }
    }
}
