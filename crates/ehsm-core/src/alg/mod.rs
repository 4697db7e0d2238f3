//! The algorithms, one module per family. Each module owns its key type; none of them knows
//! about blobs, key ids or the domain key.
//!
//! Library choice (see `shared/research/deps.md`): AWS-LC (`aws-lc-rs`) wherever it has the
//! algorithm, because it is the fastest here; RustCrypto for what AWS-LC lacks or is slow at
//! (SM2, SM3, SM4, P-224, secp256k1). No library type appears outside this module.

pub(crate) mod aes_gcm;
pub(crate) mod digest;
pub(crate) mod ec;
pub(crate) mod hmac;
pub(crate) mod pem;
pub(crate) mod rsa;
pub(crate) mod sm2;
pub(crate) mod sm4;

/// Decodes a hex constant. Used only in `const` items, so it runs at compile time and
/// a mistyped vector is a build error rather than a start-up failure.
pub(crate) const fn unhex<const N: usize>(hex: &str) -> [u8; N] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not a hex digit"),
        }
    }
    let hex = hex.as_bytes();
    assert!(hex.len() == 2 * N, "hex constant has the wrong length");
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = (nibble(hex[2 * i]) << 4) | nibble(hex[2 * i + 1]);
        i += 1;
    }
    out
}
