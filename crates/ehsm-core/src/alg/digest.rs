//! Message digests for Sign/Verify: SHA-2 from AWS-LC, SM3 from RustCrypto.

use aws_lc_rs::digest;
use sm3::Digest as _;

use crate::spec::DigestMode;

/// A computed digest. Fixed-size storage so that hashing a message never allocates.
#[derive(Clone, Copy)]
pub(crate) struct Hash {
    bytes: [u8; 64],
    len: usize,
}

impl Hash {
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }

    fn from_slice(s: &[u8]) -> Self {
        let mut bytes = [0u8; 64];
        bytes[..s.len()].copy_from_slice(s);
        Self {
            bytes,
            len: s.len(),
        }
    }
}

/// The AWS-LC algorithm for a SHA-2 digest mode; `None` for SM3, which AWS-LC lacks.
pub(crate) fn aws_lc_algorithm(mode: DigestMode) -> Option<&'static digest::Algorithm> {
    match mode {
        DigestMode::Sha224 => Some(&digest::SHA224),
        DigestMode::Sha256 => Some(&digest::SHA256),
        DigestMode::Sha384 => Some(&digest::SHA384),
        DigestMode::Sha512 => Some(&digest::SHA512),
        DigestMode::Sm3 => None,
    }
}

/// Hashes `msg` with `mode`.
pub(crate) fn hash(mode: DigestMode, msg: &[u8]) -> Hash {
    match aws_lc_algorithm(mode) {
        Some(alg) => Hash::from_slice(digest::digest(alg, msg).as_ref()),
        None => Hash::from_slice(&sm3::Sm3::digest(msg)),
    }
}

/// Known-answer test (the FIPS 180-4 and GB/T 32905 "abc" examples), run at start-up.
pub(crate) fn self_test() -> crate::Result<()> {
    let sha256: [u8; 32] = [
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22,
        0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00,
        0x15, 0xad,
    ];
    let sm3: [u8; 32] = [
        0x66, 0xc7, 0xf0, 0xf4, 0x62, 0xee, 0xed, 0xd9, 0xd1, 0xf2, 0xd4, 0x6b, 0xdc, 0x10, 0xe4,
        0xe2, 0x41, 0x67, 0xc4, 0x87, 0x5c, 0xf2, 0xf7, 0xa2, 0x29, 0x7d, 0xa0, 0x2b, 0x8f, 0x4b,
        0xa8, 0xe0,
    ];
    if hash(DigestMode::Sha256, b"abc").as_slice() != sha256
        || hash(DigestMode::Sm3, b"abc").as_slice() != sm3
    {
        return Err(crate::Error::SelfTest("SHA-256/SM3"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // FIPS 180-4 "abc" examples and GB/T 32905-2016 Appendix A example 1 ("abc").
    #[test]
    fn known_answers() {
        let cases = [
            (
                DigestMode::Sha224,
                "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7",
            ),
            (
                DigestMode::Sha256,
                "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
            ),
            (
                DigestMode::Sha384,
                "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7",
            ),
            (
                DigestMode::Sha512,
                "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
            ),
            (
                DigestMode::Sm3,
                "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0",
            ),
        ];
        for (mode, want) in cases {
            let h = hash(mode, b"abc");
            assert_eq!(h.as_slice().len(), mode.len());
            assert_eq!(hex::encode(h.as_slice()), want, "{mode}");
        }
    }

    // GB/T 32905-2016 Appendix A example 2: "abcd" repeated 16 times.
    #[test]
    fn sm3_two_blocks() {
        let msg = b"abcd".repeat(16);
        assert_eq!(
            hex::encode(hash(DigestMode::Sm3, &msg).as_slice()),
            "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"
        );
    }
}
