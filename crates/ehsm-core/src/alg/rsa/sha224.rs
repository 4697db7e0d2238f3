//! RSA signatures with SHA-224, through AWS-LC's C API.
//!
//! Upstream (OpenSSL 3.0) signs and verifies with `EH_SHA_224` on RSA keys, and its performance
//! test uses it (spec §15.5), but aws-lc-rs has no SHA-224 RSA encodings. The AWS-LC library
//! underneath does, so this module calls four of its functions directly on an `RSA` object it
//! owns. Everything else about RSA stays in safe aws-lc-rs code; this is the core's only FFI.
//!
//! The invariants every `unsafe` block relies on:
//! - an [`Rsa`] holds a valid, non-null `RSA*` of which it owns exactly one reference, released
//!   once, in `Drop`; a [`PrivateKey`] additionally has the private components;
//! - AWS-LC documents `RSA_sign`, `RSA_sign_pss_mgf1`, `RSA_verify` and `RSA_verify_pss_mgf1` as
//!   "non-mutating for thread-safety purposes" that "may be used concurrently" (`rsa.h`, section
//!   "Signing / Verification"); apart from them only `RSA_size`, a pure read, is ever called on
//!   the object after it is built, so sharing `&Rsa` between threads is sound.
#![allow(unsafe_code)]

use core::ffi::c_uint;
use core::ptr::NonNull;

use aws_lc_sys as ffi;

use crate::{Error, Result};

/// The SHA-224 digest length.
pub(super) const DIGEST_LEN: usize = 28;

/// The RSA padding for a SHA-224 signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Padding {
    /// RSASSA-PKCS1-v1_5 with the SHA-224 DigestInfo.
    Pkcs1,
    /// RSASSA-PSS, MGF1-SHA-224, salt length 28 (signing writes it, verifying requires it).
    Pss,
}

/// An owned `RSA*`.
struct Rsa(NonNull<ffi::RSA>);

// SAFETY: the object is owned (no other Rust value aliases it) and AWS-LC allows it to move
// between threads; see the module invariants.
unsafe impl Send for Rsa {}
// SAFETY: `&Rsa` only reaches `RSA_size` and the four signing and verification functions, which
// AWS-LC documents as safe to call concurrently on one object (module invariants).
unsafe impl Sync for Rsa {}

impl Drop for Rsa {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a valid `RSA` (module invariants) and release it once.
        unsafe { ffi::RSA_free(self.0.as_ptr()) }
    }
}

impl Rsa {
    /// The modulus length in bytes (the signature length).
    fn len(&self) -> usize {
        // SAFETY: the pointer is valid (module invariants); `RSA_size` only reads it.
        let len = unsafe { ffi::RSA_size(self.0.as_ptr()) };
        len as usize
    }

    fn verify(&self, padding: Padding, digest: &[u8; DIGEST_LEN], sig: &[u8]) -> bool {
        let rsa = self.0.as_ptr();
        let ok = match padding {
            // SAFETY: `digest` and `sig` are valid for the lengths passed; `rsa` is valid and the
            // call is non-mutating (module invariants). Returns 1 for a valid signature, 0 else.
            Padding::Pkcs1 => unsafe {
                ffi::RSA_verify(
                    ffi::NID_sha224,
                    digest.as_ptr(),
                    digest.len(),
                    sig.as_ptr(),
                    sig.len(),
                    rsa,
                )
            },
            // SAFETY: as above; `EVP_sha224()` returns a pointer to a static `EVP_MD`.
            Padding::Pss => unsafe {
                ffi::RSA_verify_pss_mgf1(
                    rsa,
                    digest.as_ptr(),
                    digest.len(),
                    ffi::EVP_sha224(),
                    ffi::EVP_sha224(),
                    ffi::RSA_PSS_SALTLEN_DIGEST,
                    sig.as_ptr(),
                    sig.len(),
                )
            },
        };
        ok == 1
    }
}

/// The public half, for verification.
pub(super) struct PublicKey(Rsa);

impl PublicKey {
    /// Parses a PKCS#1 `RSAPublicKey` DER.
    pub(super) fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        // SAFETY: `der` is valid for `der.len()` bytes and only read. The result is a new `RSA`
        // that we own, or null on error (AWS-LC rejects trailing data itself).
        let rsa = unsafe { ffi::RSA_public_key_from_bytes(der.as_ptr(), der.len()) };
        NonNull::new(rsa)
            .map(|p| Self(Rsa(p)))
            .ok_or(Error::Backend("RSA public key does not parse for SHA-224"))
    }

    /// True if `sig` is a valid SHA-224 signature of `digest` with `padding`.
    pub(super) fn verify(&self, padding: Padding, digest: &[u8; DIGEST_LEN], sig: &[u8]) -> bool {
        self.0.verify(padding, digest, sig)
    }
}

/// The private key, for signing.
pub(super) struct PrivateKey(Rsa);

/// An owned `EVP_PKEY*`, only alive while a private key is being parsed.
struct EvpPkey(NonNull<ffi::EVP_PKEY>);

impl Drop for EvpPkey {
    fn drop(&mut self) {
        // SAFETY: we own one reference to a valid `EVP_PKEY` and release it once.
        unsafe { ffi::EVP_PKEY_free(self.0.as_ptr()) }
    }
}

impl PrivateKey {
    /// Parses an unencrypted PKCS#8 `PrivateKeyInfo` holding an RSA key.
    pub(super) fn from_pkcs8(der: &[u8]) -> Result<Self> {
        const BAD: Error = Error::Backend("RSA private key does not parse for SHA-224");
        let mut cbs = ffi::CBS {
            data: der.as_ptr(),
            len: der.len(),
        };
        // SAFETY: `cbs` describes `der`, which outlives the call; AWS-LC only reads through it
        // and advances it. The result is a new `EVP_PKEY` that we own, or null on error.
        let pkey =
            EvpPkey(NonNull::new(unsafe { ffi::EVP_parse_private_key(&mut cbs) }).ok_or(BAD)?);
        if cbs.len != 0 {
            return Err(BAD);
        }
        // SAFETY: `pkey` is valid; the result is a new reference to its `RSA` (which survives
        // the `EVP_PKEY_free` in `pkey`'s drop), or null when it is not an RSA key.
        let rsa = unsafe { ffi::EVP_PKEY_get1_RSA(pkey.0.as_ptr()) };
        NonNull::new(rsa).map(|p| Self(Rsa(p))).ok_or(BAD)
    }

    /// Signs a SHA-224 `digest`. The signature is exactly the modulus length.
    pub(super) fn sign(&self, padding: Padding, digest: &[u8; DIGEST_LEN]) -> Result<Vec<u8>> {
        const FAILED: Error = Error::Backend("RSA SHA-224 signing failed");
        let rsa = self.0.0.as_ptr();
        let k = self.0.len();
        let mut sig = vec![0u8; k];
        let written = match padding {
            Padding::Pkcs1 => {
                let mut out_len: c_uint = 0;
                // SAFETY: `digest` is valid for its length; `sig` has `RSA_size` bytes, the most
                // `RSA_sign` writes; `out_len` is a valid out-pointer; `rsa` is a valid private
                // key and the call is non-mutating (module invariants).
                let ok = unsafe {
                    ffi::RSA_sign(
                        ffi::NID_sha224,
                        digest.as_ptr(),
                        digest.len(),
                        sig.as_mut_ptr(),
                        &mut out_len,
                        rsa,
                    )
                };
                if ok != 1 {
                    return Err(FAILED);
                }
                out_len as usize
            }
            Padding::Pss => {
                let mut out_len: usize = 0;
                // SAFETY: as above, with `max_out` = `sig.len()` bounding the write;
                // `EVP_sha224()` returns a pointer to a static `EVP_MD`.
                let ok = unsafe {
                    ffi::RSA_sign_pss_mgf1(
                        rsa,
                        &mut out_len,
                        sig.as_mut_ptr(),
                        sig.len(),
                        digest.as_ptr(),
                        digest.len(),
                        ffi::EVP_sha224(),
                        ffi::EVP_sha224(),
                        ffi::RSA_PSS_SALTLEN_DIGEST,
                    )
                };
                if ok != 1 {
                    return Err(FAILED);
                }
                out_len
            }
        };
        // RSA signatures are always exactly k bytes; anything else is a library fault.
        if written != k {
            return Err(FAILED);
        }
        Ok(sig)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn openssl_key() -> (Vec<u8>, Vec<u8>) {
        let rsa = openssl::rsa::Rsa::generate(2048).unwrap();
        let pkcs1_pub = rsa.public_key_to_der_pkcs1().unwrap();
        let pkcs8 = openssl::pkey::PKey::from_rsa(rsa)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        (pkcs8, pkcs1_pub)
    }

    #[test]
    fn garbage_and_trailing_bytes_are_refused() {
        assert!(PrivateKey::from_pkcs8(b"").is_err());
        assert!(PrivateKey::from_pkcs8(&[0x30, 0x03, 0x02, 0x01, 0x00]).is_err());
        assert!(PublicKey::from_pkcs1_der(b"not a key").is_err());
        let (mut pkcs8, mut pkcs1_pub) = openssl_key();
        assert!(PrivateKey::from_pkcs8(&pkcs8).is_ok());
        assert!(PublicKey::from_pkcs1_der(&pkcs1_pub).is_ok());
        pkcs8.push(0);
        pkcs1_pub.push(0);
        assert!(PrivateKey::from_pkcs8(&pkcs8).is_err());
        assert!(PublicKey::from_pkcs1_der(&pkcs1_pub).is_err());
    }

    #[test]
    fn an_ec_key_is_not_an_rsa_key() {
        let ec = openssl::ec::EcKey::generate(
            &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1).unwrap(),
        )
        .unwrap();
        let pkcs8 = openssl::pkey::PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        assert!(PrivateKey::from_pkcs8(&pkcs8).is_err());
    }

    #[test]
    fn sign_and_verify_both_paddings() {
        let (pkcs8, pkcs1_pub) = openssl_key();
        let private = PrivateKey::from_pkcs8(&pkcs8).unwrap();
        let public = PublicKey::from_pkcs1_der(&pkcs1_pub).unwrap();
        let digest = [0x5a; DIGEST_LEN];
        for padding in [Padding::Pkcs1, Padding::Pss] {
            let sig = private.sign(padding, &digest).unwrap();
            assert_eq!(sig.len(), 256);
            assert!(public.verify(padding, &digest, &sig));
            let other = if padding == Padding::Pss {
                Padding::Pkcs1
            } else {
                Padding::Pss
            };
            assert!(!public.verify(other, &digest, &sig));
            let mut bad = sig.clone();
            bad[100] ^= 1;
            assert!(!public.verify(padding, &digest, &bad));
            assert!(!public.verify(padding, &[0x5b; DIGEST_LEN], &sig));
            assert!(!public.verify(padding, &digest, &sig[1..]));
        }
        // PKCS#1 v1.5 is deterministic; PSS is randomised by its salt.
        assert_eq!(
            private.sign(Padding::Pkcs1, &digest).unwrap(),
            private.sign(Padding::Pkcs1, &digest).unwrap()
        );
        assert_ne!(
            private.sign(Padding::Pss, &digest).unwrap(),
            private.sign(Padding::Pss, &digest).unwrap()
        );
    }
}
