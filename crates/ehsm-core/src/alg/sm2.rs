//! SM2 (GB/T 32918, GM/T 0003): signatures and public-key encryption (compatibility spec §6.5,
//! §6.6, §6.7).
//!
//! - Signatures use SM3 and upstream's distinguishing ID `"1234567812345678"`:
//!   `e = SM3(Z_A ‖ M)`, DER `SEQUENCE { r, s }`. Signing is done here on top of the `sm2`
//!   crate's curve arithmetic, because `sm2::dsa::SigningKey` neither zeroizes its scalar nor
//!   keeps `(1 + d)⁻¹` between calls; verification is the `sm2` crate's own, so the two sides
//!   are independent implementations (and both are checked against GM/T 0003.5 and OpenSSL).
//! - Encryption is the `sm2` crate's, with SM3 and OpenSSL's DER C1C3C2 form. Decryption is done
//!   here so that the C3 check is constant-time and the plaintext lives only in zeroizing memory.

use sm2::dsa::signature::Verifier as _;
use sm2::elliptic_curve::ops::Reduce as _;
use sm2::elliptic_curve::point::AffineCoordinates as _;
use sm2::elliptic_curve::{Generate as _, Group as _};
use sm2::pkcs8::der::Decode as _;
use sm2::pke::{Cipher, EncryptingKey};
use sm2::{NonZeroScalar, ProjectivePoint, PublicKey, Scalar};
use sm3::{Digest as _, Sm3};
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize as _, Zeroizing};

use super::ec::{der_signature, ec_spki_der};
use super::unhex;
use crate::alg::pem;
use crate::rand::CoreRng;
use crate::spec::DigestMode;
use crate::{Error, Result, SecretBytes};

/// The distinguishing ID upstream passes for every SM2 signature (`SM2_DEFAULT_USERID`).
const DISTID: &str = "1234567812345678";

/// Curve OID sm2 1.2.156.10197.1.301, DER-encoded.
const SM2_OID_DER: &[u8] = &[0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D];

/// Upstream refuses to encrypt more than this (spec §6.5).
const MAX_PLAINTEXT: usize = 255;

/// SM3 output length, also the length of C3.
const SM3_LEN: usize = 32;

/// An SM2 key pair. Parsed once, then used for every call.
pub(crate) struct Sm2Key {
    /// The private scalar `d`, in `[1, n - 2]`.
    d: NonZeroScalar,
    /// `(1 + d)⁻¹ mod n`, the signing constant.
    d_plus_1_inv: Scalar,
    /// `Z_A = SM3(ENTL_A ‖ ID_A ‖ a ‖ b ‖ x_G ‖ y_G ‖ x_A ‖ y_A)`.
    z_a: [u8; SM3_LEN],
    verifying: sm2::dsa::VerifyingKey,
    encrypting: EncryptingKey,
    /// SEC1 uncompressed point `04 ‖ x_A ‖ y_A`.
    point: [u8; 65],
}

impl Drop for Sm2Key {
    fn drop(&mut self) {
        self.d.zeroize();
        self.d_plus_1_inv.zeroize();
    }
}

impl Sm2Key {
    /// Generates a key pair. The secret is the 32-byte big-endian private scalar.
    pub(crate) fn generate() -> Result<(Self, SecretBytes)> {
        // d = n - 1 has no (1 + d)⁻¹; the chance of drawing it is 2⁻²⁵⁶, but retry anyway.
        for _ in 0..8 {
            let d = NonZeroScalar::try_generate_from_rng(&mut CoreRng)?;
            if let Some(key) = Self::from_scalar(d)? {
                let mut bytes = d.to_bytes();
                let secret = SecretBytes::copy_from(&bytes);
                bytes.as_mut_slice().zeroize();
                return Ok((key, secret));
            }
        }
        Err(Error::Backend("SM2 key generation failed"))
    }

    /// Loads a key pair from the secret that [`Sm2Key::generate`] returned.
    pub(crate) fn from_secret(secret: &[u8]) -> Result<Self> {
        const BAD_SCALAR: Error = Error::InvalidInput("invalid SM2 private key");
        if secret.len() != 32 {
            return Err(Error::InvalidInput("SM2 private key has the wrong length"));
        }
        // Rejects zero and scalars >= n.
        let d = NonZeroScalar::try_from(secret).map_err(|_| BAD_SCALAR)?;
        Self::from_scalar(d)?.ok_or(BAD_SCALAR)
    }

    /// `Ok(None)` for `d = n - 1`, which GB/T 32918 excludes.
    fn from_scalar(d: NonZeroScalar) -> Result<Option<Self>> {
        let Some(d_plus_1_inv) = Option::<Scalar>::from((*d + Scalar::ONE).invert()) else {
            return Ok(None);
        };
        let public = PublicKey::from_secret_scalar(&d);
        let affine = public.as_affine();
        let mut point = [0u8; 65];
        point[0] = 0x04;
        point[1..33].copy_from_slice(&affine.x());
        point[33..].copy_from_slice(&affine.y());
        let verifying = sm2::dsa::VerifyingKey::new(DISTID, public)
            .map_err(|_| Error::Backend("SM2 public key setup failed"))?;
        Ok(Some(Self {
            d,
            d_plus_1_inv,
            z_a: z_a(&point),
            verifying,
            encrypting: EncryptingKey::new(public),
            point,
        }))
    }

    /// `-----BEGIN PUBLIC KEY-----`: SPKI with id-ecPublicKey and the sm2 curve OID, as OpenSSL 3
    /// writes it for an SM2 key (spec §6.6).
    pub(crate) fn public_key_pem(&self) -> String {
        pem::encode("PUBLIC KEY", &ec_spki_der(SM2_OID_DER, &self.point))
    }

    /// Signs `msg` with SM3 and Z_A. Upstream ignores the digest mode and treats an `EH_DIGEST`
    /// input as the message, so there is no digest parameter: the caller passes `msg` either way.
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>> {
        let e = self.e(msg);
        // A retry is needed only when r = 0, r + k = n or s = 0: probability about 2⁻²⁵⁴.
        for _ in 0..8 {
            let k = NonZeroScalar::try_generate_from_rng(&mut CoreRng)?;
            if let Some((r, s)) = self.sign_with_k(&e, &k) {
                return Ok(der_signature(&r.to_bytes(), &s.to_bytes()));
            }
        }
        Err(Error::Backend("SM2 signing failed"))
    }

    /// `e = SM3(Z_A ‖ M)` as a scalar.
    fn e(&self, msg: &[u8]) -> Scalar {
        let digest = Sm3::new()
            .chain_update(self.z_a)
            .chain_update(msg)
            .finalize();
        Scalar::reduce(&digest)
    }

    /// GB/T 32918.2 §6.1 steps A4–A7 with a given `k`; `None` if `k` must be replaced.
    fn sign_with_k(&self, e: &Scalar, k: &NonZeroScalar) -> Option<(Scalar, Scalar)> {
        let x1 = ProjectivePoint::mul_by_generator(k).to_affine().x();
        let r = *e + Scalar::reduce(&x1);
        if bool::from(r.is_zero() | (r + **k).is_zero()) {
            return None;
        }
        let s = self.d_plus_1_inv * (**k - r * *self.d);
        if bool::from(s.is_zero()) {
            return None;
        }
        Some((r, s))
    }

    /// Verifies a DER signature over `msg`. Upstream refuses any digest mode but SM3 with an
    /// error, not `false`; anything else that is not a valid signature is `Ok(false)`.
    pub(crate) fn verify(&self, digest: DigestMode, msg: &[u8], sig: &[u8]) -> Result<bool> {
        if digest != DigestMode::Sm3 {
            return Err(Error::NotPermitted("SM2 verification requires EH_SM3"));
        }
        Ok(sm2::dsa::Signature::from_der(sig)
            .is_ok_and(|sig| self.verifying.verify(msg, &sig).is_ok()))
    }

    /// SM2 encryption with SM3 (GB/T 32918.4), as OpenSSL's DER
    /// `SEQUENCE { INTEGER x1, INTEGER y1, OCTET STRING C3, OCTET STRING C2 }`.
    pub(crate) fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::InvalidInput("SM2 plaintext must be 1 to 255 bytes"));
        }
        self.encrypting
            .encrypt_der(&mut CoreRng, plaintext)
            .map_err(|_| Error::Backend("SM2 encryption failed"))
    }

    /// Reverses [`Sm2Key::encrypt`] (GB/T 32918.4 §7.1). A ciphertext that does not parse is
    /// `InvalidInput`; a C3 mismatch is `DecryptionFailed`.
    pub(crate) fn decrypt(&self, ciphertext: &[u8]) -> Result<SecretBytes> {
        // Parses the DER strictly (no trailing bytes, 32-byte C3) and checks that C1 is a point
        // on the curve; the cofactor is 1, so that point has order n.
        let cipher = Cipher::<sm2::Sm2, Sm3>::from_der(ciphertext)
            .map_err(|_| Error::InvalidInput("malformed SM2 ciphertext"))?;
        let c2 = cipher.c2();
        if c2.is_empty() {
            return Err(Error::InvalidInput("malformed SM2 ciphertext"));
        }
        // B3: (x2, y2) = [d]C1.
        let shared = (ProjectivePoint::from(*cipher.c1()) * *self.d).to_affine();
        let x2 = Zeroizing::new(shared.x());
        let y2 = Zeroizing::new(shared.y());
        // B4, B5: t = KDF(x2 ‖ y2, klen), which must not be all zero; M' = C2 ⊕ t.
        let mut plaintext = Zeroizing::new(c2.to_vec());
        let mut t_bits = 0u8;
        for (i, chunk) in plaintext.chunks_mut(SM3_LEN).enumerate() {
            let counter =
                u32::try_from(i + 1).map_err(|_| Error::InvalidInput("SM2 ciphertext too long"))?;
            let t = Zeroizing::new(
                Sm3::new()
                    .chain_update(x2.as_slice())
                    .chain_update(y2.as_slice())
                    .chain_update(counter.to_be_bytes())
                    .finalize(),
            );
            for (m, t) in chunk.iter_mut().zip(t.iter()) {
                t_bits |= *t;
                *m ^= *t;
            }
        }
        // B6: u = SM3(x2 ‖ M' ‖ y2) must equal C3.
        let u = Sm3::new()
            .chain_update(x2.as_slice())
            .chain_update(plaintext.as_slice())
            .chain_update(y2.as_slice())
            .finalize();
        let c3_ok = u.as_slice().ct_eq(cipher.c3().as_slice());
        if !bool::from(c3_ok) || t_bits == 0 {
            return Err(Error::DecryptionFailed);
        }
        Ok(SecretBytes::copy_from(&plaintext))
    }

    /// Known-answer tests from GB/T 32918.5-2017 / GM/T 0003.5-2012 Annex A and C (recommended
    /// curve): verify the published signature, decrypt the published ciphertext; then a
    /// pair-wise sign/verify and encrypt/decrypt with the same key.
    pub(crate) fn self_test() -> Result<()> {
        const FAILED: Error = Error::SelfTest("SM2 known answer");
        let key = Sm2Key::from_secret(&KAT_D).map_err(|_| FAILED)?;
        let sig = der_signature(&KAT_R, &KAT_S);
        if !key.verify(DigestMode::Sm3, KAT_SIGNED_MSG, &sig)? {
            return Err(FAILED);
        }
        let mut bad_s = KAT_S;
        bad_s[31] ^= 1;
        if key.verify(
            DigestMode::Sm3,
            KAT_SIGNED_MSG,
            &der_signature(&KAT_R, &bad_s),
        )? {
            return Err(FAILED);
        }
        let plaintext = key.decrypt(&KAT_CIPHERTEXT).map_err(|_| FAILED)?;
        if plaintext.as_slice() != KAT_PLAINTEXT {
            return Err(FAILED);
        }

        const PAIRWISE: Error = Error::SelfTest("SM2 pair-wise test");
        let msg = b"ehsm pair-wise test";
        let sig = key.sign(msg)?;
        if !key.verify(DigestMode::Sm3, msg, &sig)? || key.verify(DigestMode::Sm3, b"x", &sig)? {
            return Err(PAIRWISE);
        }
        let ciphertext = key.encrypt(msg)?;
        if key.decrypt(&ciphertext).map_err(|_| PAIRWISE)?.as_slice() != msg {
            return Err(PAIRWISE);
        }
        Ok(())
    }
}

/// `Z_A` for upstream's ID and the public point `04 ‖ x ‖ y` (GB/T 32918.2 §5.5).
fn z_a(point: &[u8; 65]) -> [u8; SM3_LEN] {
    // Curve parameters of the recommended curve (GB/T 32918.5 §3).
    const A: [u8; 32] = unhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
    const B: [u8; 32] = unhex("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
    const XG: [u8; 32] = unhex("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
    const YG: [u8; 32] = unhex("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");
    // ENTL_A: the ID's length in bits, as two bytes (128 for the 16-byte ID).
    const ENTL: [u8; 2] = ((DISTID.len() * 8) as u16).to_be_bytes();
    Sm3::new()
        .chain_update(ENTL)
        .chain_update(DISTID.as_bytes())
        .chain_update(A)
        .chain_update(B)
        .chain_update(XG)
        .chain_update(YG)
        .chain_update(&point[1..])
        .finalize()
        .into()
}

// The example of GB/T 32918.5-2017 / GM/T 0003.5-2012 Annex A (signature) and Annex C
// (encryption) on the recommended curve, with ID "1234567812345678". The ciphertext is
// serialised as GM/T 0009 ASN.1, as in OpenSSL's test/sm2_internal_test.c.
const KAT_D: [u8; 32] = unhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8");
const KAT_SIGNED_MSG: &[u8] = b"message digest";
const KAT_R: [u8; 32] = unhex("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3");
const KAT_S: [u8; 32] = unhex("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA");
const KAT_PLAINTEXT: &[u8] = b"encryption standard";
const KAT_CIPHERTEXT: [u8; 126] = unhex(concat!(
    "307C",
    "0220",
    "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73",
    "022100",
    "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0",
    "0420",
    "59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766",
    "0413",
    "21886CA989CA9C7D58087307CA93092D651EFA",
));

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::process::Command;
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openssl::bn::{BigNum, BigNumContext};
    use openssl::ec::{EcGroup, EcKey, EcPoint};
    use openssl::nid::Nid;
    use openssl::pkey::PKey;
    use proptest::prelude::*;
    use sm2::elliptic_curve::rand_core::{TryCryptoRng, TryRng};

    use super::*;

    /// The key shared by the tests that only need some key.
    fn key() -> &'static Sm2Key {
        static KEY: OnceLock<Sm2Key> = OnceLock::new();
        KEY.get_or_init(|| Sm2Key::generate().unwrap().0)
    }

    fn kat_key() -> Sm2Key {
        Sm2Key::from_secret(&KAT_D).unwrap()
    }

    fn sm2_group() -> EcGroup {
        EcGroup::from_curve_name(Nid::SM2).unwrap()
    }

    /// The order n of the SM2 curve, from OpenSSL.
    fn order() -> Vec<u8> {
        let mut n = BigNum::new().unwrap();
        sm2_group()
            .order(&mut n, &mut BigNumContext::new().unwrap())
            .unwrap();
        n.to_vec_padded(32).unwrap()
    }

    fn minus(v: &[u8], k: u8) -> Vec<u8> {
        let mut out = BigNum::new().unwrap();
        out.checked_sub(
            &BigNum::from_slice(v).unwrap(),
            &BigNum::from_u32(k.into()).unwrap(),
        )
        .unwrap();
        out.to_vec_padded(32).unwrap()
    }

    /// Feeds fixed bytes to the `sm2` crate where it draws its ephemeral `k`.
    struct FixedRng([u8; 32]);

    impl TryRng for FixedRng {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> core::result::Result<u32, Self::Error> {
            unreachable!()
        }
        fn try_next_u64(&mut self) -> core::result::Result<u64, Self::Error> {
            unreachable!()
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> core::result::Result<(), Self::Error> {
            dst.copy_from_slice(&self.0);
            Ok(())
        }
    }

    impl TryCryptoRng for FixedRng {}

    /// `SEQUENCE { INTEGER x, INTEGER y, OCTET STRING c3, OCTET STRING c2 }` (short lengths).
    fn cipher_der(x: &[u8], y: &[u8], c3: &[u8], c2: &[u8]) -> Vec<u8> {
        let xy = der_signature(x, y); // SEQUENCE { INTEGER x, INTEGER y }
        let mut body = xy[2..].to_vec();
        body.extend_from_slice(&[0x04, c3.len() as u8]);
        body.extend_from_slice(c3);
        body.extend_from_slice(&[0x04, c2.len() as u8]);
        body.extend_from_slice(c2);
        let mut out = vec![0x30, body.len() as u8];
        out.extend_from_slice(&body);
        out
    }

    /// (x1, y1, C3, C2) of a DER ciphertext.
    fn cipher_parts(ct: &[u8]) -> ([u8; 32], [u8; 32], Vec<u8>, Vec<u8>) {
        let c = Cipher::<sm2::Sm2, Sm3>::from_der(ct).unwrap();
        (
            c.c1().x().into(),
            c.c1().y().into(),
            c.c3().to_vec(),
            c.c2().to_vec(),
        )
    }

    #[test]
    fn self_test_passes() {
        Sm2Key::self_test().unwrap();
    }

    /// GB/T 32918.5-2017 / GM/T 0003.5-2012 Annex A (signature, ID "1234567812345678") and
    /// Annex C (encryption) on the recommended curve. The same values are in OpenSSL's
    /// test/sm2_internal_test.c and in upstream eHSM's enclave self-test (case 2).
    #[test]
    fn gb_t_32918_5_example() {
        let key = kat_key();
        assert_eq!(
            hex::encode_upper(key.point),
            "0409F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020\
             CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13"
        );
        assert_eq!(
            hex::encode_upper(key.z_a),
            "B2E14C5C79C6DF5B85F4FE7ED8DB7A262B9DA7E07CCB0EA9F4747B8CCDA8A4F3"
        );
        let e = key.e(KAT_SIGNED_MSG);
        assert_eq!(
            hex::encode_upper(e.to_bytes()),
            "F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640"
        );
        // Signing with the example's k reproduces the example's (r, s) exactly.
        let k_bytes =
            unhex::<32>("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21");
        let k = NonZeroScalar::try_from(k_bytes.as_slice()).unwrap();
        let (r, s) = key.sign_with_k(&e, &k).unwrap();
        assert_eq!(r.to_bytes().as_slice(), KAT_R);
        assert_eq!(s.to_bytes().as_slice(), KAT_S);
        let sig = der_signature(&KAT_R, &KAT_S);
        assert!(key.verify(DigestMode::Sm3, KAT_SIGNED_MSG, &sig).unwrap());
        assert!(
            !key.verify(DigestMode::Sm3, b"message digesT", &sig)
                .unwrap()
        );

        // Encrypting with the example's k gives the example's ciphertext byte for byte, and
        // the ciphertext decrypts.
        let ct = key
            .encrypting
            .encrypt_der(&mut FixedRng(k_bytes), KAT_PLAINTEXT)
            .unwrap();
        assert_eq!(ct, KAT_CIPHERTEXT);
        assert_eq!(
            key.decrypt(&KAT_CIPHERTEXT).unwrap().as_slice(),
            KAT_PLAINTEXT
        );
    }

    /// The vector shipped with the `sm2` crate (tests/sm2pke.rs), made by
    /// `openssl pkeyutl -encrypt` (DER C1C3C2): another key, another message.
    #[test]
    fn decrypts_openssl_made_vector_from_sm2_crate() {
        let key = Sm2Key::from_secret(&unhex::<32>(
            "3DDD2A3679BF6F1DFC3B49D3E99114718E48EC170EB4E4D3A82052DAB19E8B50",
        ))
        .unwrap();
        let ct = unhex::<116>(
            "307202206ba17ad462a75beeb2caf8a1282687ab7e2f248b776a481612d89425a519ce6002210083e1de8c57dae995137227839d3880eaf9fe82a885a750be29ebe58193c8e31a0420d513a555087c2b17a88dd62749435133d325a4afca675284c85d754ba35670f80409bd3a294a6d50184b37",
        );
        assert_eq!(key.decrypt(&ct).unwrap().as_slice(), b"plaintext");
    }

    #[test]
    fn public_key_pem_is_what_openssl_writes_for_sm2() {
        let group = sm2_group();
        let ossl = EcKey::generate(&group).unwrap();
        let d = ossl.private_key().to_vec_padded(32).unwrap();
        let ours = Sm2Key::from_secret(&d).unwrap().public_key_pem();
        let theirs = PKey::from_ec_key(ossl)
            .unwrap()
            .public_key_to_pem()
            .unwrap();
        assert_eq!(ours, String::from_utf8(theirs).unwrap());

        let key = key();
        let pem = key.public_key_pem();
        let parsed = PKey::public_key_from_pem(pem.as_bytes()).unwrap();
        assert_eq!(
            parsed.public_key_to_der().unwrap(),
            ec_spki_der(SM2_OID_DER, &key.point)
        );
        // OpenSSL 3 loads it as a provider-native SM2 key, which has no legacy EC_KEY (and no
        // legacy id); `openssl_cli_sees_an_sm2_public_key` checks the curve it reports.
        assert!(parsed.ec_key().is_err());
        assert_eq!(parsed.bits(), 256);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    }

    #[test]
    fn generated_secret_is_the_scalar_and_reloads() {
        let (key, secret) = Sm2Key::generate().unwrap();
        assert_eq!(secret.len(), 32);
        let again = Sm2Key::from_secret(secret.as_slice()).unwrap();
        assert_eq!(again.point, key.point);
        let group = sm2_group();
        let mut ctx = BigNumContext::new().unwrap();
        let mut q = EcPoint::new(&group).unwrap();
        q.mul_generator2(
            &group,
            &BigNum::from_slice(secret.as_slice()).unwrap(),
            &mut ctx,
        )
        .unwrap();
        let q = q
            .to_bytes(
                &group,
                openssl::ec::PointConversionForm::UNCOMPRESSED,
                &mut ctx,
            )
            .unwrap();
        assert_eq!(q, key.point);
        let sig = key.sign(b"x").unwrap();
        assert!(again.verify(DigestMode::Sm3, b"x", &sig).unwrap());
        let ct = again.encrypt(b"x").unwrap();
        assert_eq!(key.decrypt(&ct).unwrap().as_slice(), b"x");
    }

    #[test]
    fn from_secret_rejects_bad_scalars() {
        let n = order();
        for bad in [
            vec![0u8; 32],
            n.clone(),
            minus(&n, 1), // valid ECDSA scalar, but 1 + d = 0 mod n
            vec![0xFF; 32],
            vec![1u8; 31],
            vec![1u8; 33],
            vec![],
        ] {
            assert!(
                matches!(Sm2Key::from_secret(&bad), Err(Error::InvalidInput(_))),
                "accepted {}",
                hex::encode(&bad)
            );
        }
        let mut one = [0u8; 32];
        one[31] = 1;
        for good in [minus(&n, 2), one.to_vec()] {
            let key = Sm2Key::from_secret(&good).unwrap();
            let sig = key.sign(b"m").unwrap();
            assert!(key.verify(DigestMode::Sm3, b"m", &sig).unwrap());
        }
    }

    #[test]
    fn verify_requires_sm3() {
        let key = key();
        let sig = key.sign(b"m").unwrap();
        for digest in [
            DigestMode::Sha224,
            DigestMode::Sha256,
            DigestMode::Sha384,
            DigestMode::Sha512,
        ] {
            assert!(matches!(
                key.verify(digest, b"m", &sig),
                Err(Error::NotPermitted(_))
            ));
            assert!(matches!(
                key.verify(digest, b"m", b"garbage"),
                Err(Error::NotPermitted(_))
            ));
        }
        assert!(key.verify(DigestMode::Sm3, b"m", &sig).unwrap());
    }

    #[test]
    fn malformed_or_foreign_signatures_are_false() {
        let key = key();
        let sig = key.sign(b"m").unwrap();
        let parsed = openssl::ecdsa::EcdsaSig::from_der(&sig).unwrap();
        let r = parsed.r().to_vec();
        let s = parsed.s().to_vec();
        let n = order();
        let mut trailing = sig.clone();
        trailing.push(0);
        let mut flipped = sig.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let (other, _) = Sm2Key::generate().unwrap();
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", vec![]),
            ("garbage", b"not a signature".to_vec()),
            ("truncated", sig[..sig.len() - 1].to_vec()),
            ("trailing byte", trailing),
            ("flipped bit", flipped),
            ("r = 0", der_signature(&[0], &s)),
            ("s = 0", der_signature(&r, &[0])),
            ("r = n", der_signature(&n, &s)),
            ("s = n", der_signature(&r, &n)),
            ("swapped", der_signature(&s, &r)),
            ("other key", other.sign(b"m").unwrap()),
            ("raw r||s", [r.as_slice(), s.as_slice()].concat()),
            // ECDSA's (r, n - s) twin is not an SM2 signature.
            ("n - s", {
                let mut neg_s = BigNum::new().unwrap();
                neg_s
                    .checked_sub(&BigNum::from_slice(&n).unwrap(), parsed.s())
                    .unwrap();
                der_signature(&r, &neg_s.to_vec())
            }),
        ];
        for (what, bad) in cases {
            assert!(
                !key.verify(DigestMode::Sm3, b"m", &bad).unwrap(),
                "{what} verified"
            );
        }
        assert!(key.verify(DigestMode::Sm3, b"m", &sig).unwrap());
    }

    #[test]
    fn plaintext_length_limits() {
        let key = key();
        for len in [0usize, 256, 6144] {
            assert!(matches!(
                key.encrypt(&vec![1u8; len]),
                Err(Error::InvalidInput(_))
            ));
        }
        for len in [1usize, 32, 33, 255] {
            let pt = vec![0xA5u8; len];
            let ct = key.encrypt(&pt).unwrap();
            // x1 and y1 (32 or 33 bytes each), C3 (32), C2 (len), DER headers.
            assert!(ct.len() >= len + 32 + 64 + 8, "{len}");
            assert_eq!(key.decrypt(&ct).unwrap().as_slice(), pt.as_slice());
        }
    }

    #[test]
    fn tampered_or_malformed_ciphertexts_fail_cleanly() {
        let key = key();
        let ct = key.encrypt(b"secret data key").unwrap();
        let (x, y, c3, c2) = cipher_parts(&ct);
        assert_eq!(cipher_der(&x, &y, &c3, &c2), ct, "test helper re-encodes");

        let mut bad_c3 = c3.clone();
        bad_c3[0] ^= 1;
        let mut bad_c2 = c2.clone();
        bad_c2[0] ^= 1;
        let mut bad_x = x;
        bad_x[31] ^= 1;
        let other_c1 = cipher_parts(&key.encrypt(b"other").unwrap());
        let mut trailing = ct.clone();
        trailing.push(0);

        // C3 or C2 changed, or a different valid C1: the MAC check fails.
        for (what, bad) in [
            ("C3", cipher_der(&x, &y, &bad_c3, &c2)),
            ("C2", cipher_der(&x, &y, &c3, &bad_c2)),
            (
                "C1 = another point",
                cipher_der(&other_c1.0, &other_c1.1, &c3, &c2),
            ),
            ("C2 truncated", cipher_der(&x, &y, &c3, &c2[..c2.len() - 1])),
            (
                "C2 extended",
                cipher_der(&x, &y, &c3, &[c2.as_slice(), &[0]].concat()),
            ),
        ] {
            assert!(
                matches!(key.decrypt(&bad), Err(Error::DecryptionFailed)),
                "{what}"
            );
        }
        // Not a ciphertext at all.
        for (what, bad) in [
            ("C1 off the curve", cipher_der(&bad_x, &y, &c3, &c2)),
            ("C1 = (0, 0)", cipher_der(&[0], &[0], &c3, &c2)),
            ("C3 too short", cipher_der(&x, &y, &c3[..31], &c2)),
            ("C2 empty", cipher_der(&x, &y, &c3, &[])),
            ("truncated", ct[..ct.len() - 1].to_vec()),
            ("trailing byte", trailing),
            ("empty", vec![]),
            ("garbage", b"garbage".to_vec()),
            ("raw C1C3C2", {
                let mut v = vec![4u8];
                v.extend_from_slice(&x);
                v.extend_from_slice(&y);
                v.extend_from_slice(&c3);
                v.extend_from_slice(&c2);
                v
            }),
        ] {
            assert!(
                matches!(key.decrypt(&bad), Err(Error::InvalidInput(_))),
                "{what}"
            );
        }
        // Another key's ciphertext.
        let (other, _) = Sm2Key::generate().unwrap();
        assert!(matches!(other.decrypt(&ct), Err(Error::DecryptionFailed)));
        assert_eq!(key.decrypt(&ct).unwrap().as_slice(), b"secret data key");
    }

    // --- OpenSSL command-line cross-checks (OpenSSL 3 sets the SM2 ID with -pkeyopt distid) --

    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> Self {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "ehsm-sm2-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        /// Writes a file and returns its path (UTF-8, as `temp_dir` is here).
        fn write(&self, name: &str, data: &[u8]) -> String {
            let p = self.path(name);
            std::fs::write(&p, data).unwrap();
            p
        }

        fn path(&self, name: &str) -> String {
            self.0.join(name).to_str().unwrap().to_owned()
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn have_openssl_cli() -> bool {
        let ok = Command::new("openssl")
            .arg("version")
            .output()
            .is_ok_and(|o| o.status.success());
        // CI must run the cross-checks: there a missing binary is a failure, not a skip.
        assert!(
            ok || std::env::var_os("CI").is_none(),
            "CI needs the `openssl` binary"
        );
        if !ok {
            println!("skipped: no `openssl` binary on PATH");
        }
        ok
    }

    fn openssl(args: &[&str]) -> (bool, Vec<u8>) {
        let out = Command::new("openssl").args(args).output().unwrap();
        (out.status.success(), out.stdout)
    }

    /// A PKCS#8 PEM of our key that the `openssl` CLI loads as an SM2 key.
    fn private_pem(dir: &TempDir, d: &[u8], point: &[u8]) -> String {
        let group = sm2_group();
        let mut ctx = BigNumContext::new().unwrap();
        let q = EcPoint::from_bytes(&group, point, &mut ctx).unwrap();
        let k =
            EcKey::from_private_components(&group, &BigNum::from_slice(d).unwrap(), &q).unwrap();
        let pem = PKey::from_ec_key(k)
            .unwrap()
            .private_key_to_pem_pkcs8()
            .unwrap();
        dir.write("key.pem", &pem)
    }

    #[test]
    fn openssl_cli_sees_an_sm2_public_key() {
        if !have_openssl_cli() {
            return;
        }
        let dir = TempDir::new();
        let pubp = dir.write("pub.pem", key().public_key_pem().as_bytes());
        let (ok, text) = openssl(&["pkey", "-pubin", "-in", &pubp, "-text", "-noout"]);
        assert!(ok);
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("ASN1 OID: SM2"), "{text}");
    }

    #[test]
    fn signatures_interoperate_with_openssl_cli() {
        if !have_openssl_cli() {
            return;
        }
        let (key, secret) = Sm2Key::generate().unwrap();
        let dir = TempDir::new();
        let keyp = private_pem(&dir, secret.as_slice(), &key.point);
        let pubp = dir.write("pub.pem", key.public_key_pem().as_bytes());
        let distid = "distid:1234567812345678";
        for (i, msg) in [&b"hello"[..], b"", &[0u8; 1000][..]].iter().enumerate() {
            let msgp = dir.write(&format!("msg{i}"), msg);
            // Ours -> OpenSSL, with upstream's ID; and not with OpenSSL's default (empty) ID.
            let sigp = dir.write(&format!("sig{i}"), &key.sign(msg).unwrap());
            let verify = |id: Option<&str>| {
                let mut args = vec![
                    "pkeyutl", "-verify", "-pubin", "-inkey", &pubp, "-in", &msgp, "-sigfile",
                    &sigp, "-rawin", "-digest", "sm3",
                ];
                if let Some(id) = id {
                    args.extend(["-pkeyopt", id]);
                }
                openssl(&args).0
            };
            assert!(verify(Some(distid)), "OpenSSL rejected our signature");
            assert!(!verify(None), "signature verified with the empty ID");

            // OpenSSL -> ours.
            let theirs = dir.path(&format!("theirs{i}"));
            let (ok, _) = openssl(&[
                "pkeyutl", "-sign", "-inkey", &keyp, "-in", &msgp, "-out", &theirs, "-rawin",
                "-digest", "sm3", "-pkeyopt", distid,
            ]);
            assert!(ok);
            let theirs = std::fs::read(&theirs).unwrap();
            assert!(key.verify(DigestMode::Sm3, msg, &theirs).unwrap());
            assert!(!key.verify(DigestMode::Sm3, b"other", &theirs).unwrap());

            // A signature made with OpenSSL's default (empty) ID does not verify here.
            let empty_id = dir.path(&format!("empty{i}"));
            let (ok, _) = openssl(&[
                "pkeyutl", "-sign", "-inkey", &keyp, "-in", &msgp, "-out", &empty_id, "-rawin",
                "-digest", "sm3",
            ]);
            assert!(ok);
            let empty_id = std::fs::read(&empty_id).unwrap();
            assert!(!key.verify(DigestMode::Sm3, msg, &empty_id).unwrap());
        }
    }

    #[test]
    fn encryption_interoperates_with_openssl_cli() {
        if !have_openssl_cli() {
            return;
        }
        let (key, secret) = Sm2Key::generate().unwrap();
        let dir = TempDir::new();
        let keyp = private_pem(&dir, secret.as_slice(), &key.point);
        let pubp = dir.write("pub.pem", key.public_key_pem().as_bytes());
        for len in [1usize, 31, 32, 33, 48, 255] {
            let pt: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
            // Ours -> OpenSSL.
            let ctp = dir.write(&format!("ct{len}"), &key.encrypt(&pt).unwrap());
            let (ok, out) = openssl(&["pkeyutl", "-decrypt", "-inkey", &keyp, "-in", &ctp]);
            assert!(ok, "OpenSSL could not decrypt {len} bytes");
            assert_eq!(out, pt);
            // OpenSSL -> ours.
            let ptp = dir.write(&format!("pt{len}"), &pt);
            let (ok, ct) = openssl(&[
                "pkeyutl", "-encrypt", "-pubin", "-inkey", &pubp, "-in", &ptp,
            ]);
            assert!(ok);
            assert_eq!(key.decrypt(&ct).unwrap().as_slice(), pt.as_slice());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn sign_verify_round_trip(msg in prop::collection::vec(any::<u8>(), 0..300)) {
            let key = key();
            let sig = key.sign(&msg).unwrap();
            prop_assert!(sig.len() <= 72);
            prop_assert!(key.verify(DigestMode::Sm3, &msg, &sig).unwrap());
            let mut other = msg.clone();
            other.push(1);
            prop_assert!(!key.verify(DigestMode::Sm3, &other, &sig).unwrap());
        }

        #[test]
        fn encrypt_decrypt_round_trip(pt in prop::collection::vec(any::<u8>(), 1..=255)) {
            let key = key();
            let ct = key.encrypt(&pt).unwrap();
            let back = key.decrypt(&ct).unwrap();
            prop_assert_eq!(back.as_slice(), pt.as_slice());
        }

        #[test]
        fn arbitrary_input_never_panics(
            msg in prop::collection::vec(any::<u8>(), 0..64),
            bytes in prop::collection::vec(any::<u8>(), 0..200),
        ) {
            let key = key();
            prop_assert!(!key.verify(DigestMode::Sm3, &msg, &bytes).unwrap());
            prop_assert!(key.decrypt(&bytes).is_err());
        }

        #[test]
        fn mutated_ciphertext_never_decrypts_to_something_else(
            pos in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let key = key();
            let mut ct = key.encrypt(b"data key").unwrap();
            let i = pos.index(ct.len());
            let changed = ct[i] != byte;
            ct[i] = byte;
            match key.decrypt(&ct) {
                Ok(pt) => prop_assert!(!changed && pt.as_slice() == b"data key"),
                Err(_) => prop_assert!(changed),
            }
        }
    }
}
