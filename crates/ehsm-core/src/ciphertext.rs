//! The small header on every symmetric ciphertext the core returns to clients.
//!
//! ```text
//! ciphertext = format (1 byte, = 1) ‖ CMK version (LEB128, minimal, 1..=5 bytes) ‖ body
//! body       = upstream's layout for the key spec (spec §6.3), e.g. ct ‖ IV ‖ tag for AES-GCM
//! ```
//!
//! Clients treat ciphertexts as opaque. The header lets Decrypt find the right key version
//! after a CMK rotation without asking the caller. It costs two bytes for versions below 128,
//! so the largest AES-GCM ciphertext (6144-byte plaintext) is 6174 bytes, exactly upstream's
//! 8232-character base64 limit for Decrypt.

use crate::{Error, Result};

const FORMAT_V1: u8 = 1;

/// Appends the header for a ciphertext made with CMK version `version` (≥ 1).
pub(crate) fn write_header(version: u32, out: &mut Vec<u8>) {
    out.push(FORMAT_V1);
    let mut v = version;
    loop {
        let byte = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

/// Splits a ciphertext into the CMK version it names and its body.
pub(crate) fn parse(ciphertext: &[u8]) -> Result<(u32, &[u8])> {
    const BAD: Error = Error::InvalidInput("ciphertext header is malformed");
    let (&format, mut rest) = ciphertext.split_first().ok_or(BAD)?;
    if format != FORMAT_V1 {
        return Err(BAD);
    }
    let mut version: u64 = 0;
    for i in 0..5 {
        let (&byte, tail) = rest.split_first().ok_or(BAD)?;
        rest = tail;
        version |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            // Minimal encoding only (no trailing zero groups), so every version has exactly one
            // header and a ciphertext cannot be re-encoded into another valid one.
            if i > 0 && byte == 0 {
                return Err(BAD);
            }
            let version = u32::try_from(version).map_err(|_| BAD)?;
            if version == 0 {
                return Err(BAD);
            }
            return Ok((version, rest));
        }
    }
    Err(BAD)
}

/// The CMK version a ciphertext was made with; the service uses it to pick the key blob.
pub fn key_version(ciphertext: &[u8]) -> Result<u32> {
    parse(ciphertext).map(|(v, _)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn header_sizes() {
        for (v, len) in [
            (1u32, 2usize),
            (127, 2),
            (128, 3),
            (16_383, 3),
            (16_384, 4),
            (u32::MAX, 6),
        ] {
            let mut out = Vec::new();
            write_header(v, &mut out);
            assert_eq!(out.len(), len, "version {v}");
            assert_eq!(parse(&out).unwrap(), (v, &[][..]));
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        for bad in [
            &[][..],
            &[1],
            &[2, 1],
            &[1, 0],                                  // version 0
            &[1, 0x81, 0x00],                         // non-minimal encoding of 1
            &[1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01], // too long
            &[1, 0xff, 0xff, 0xff, 0xff, 0x7f],       // > u32::MAX
            &[1, 0x80],                               // truncated
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn round_trip(v in 1u32.., body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut out = Vec::new();
            write_header(v, &mut out);
            out.extend_from_slice(&body);
            let (got, rest) = parse(&out).unwrap();
            prop_assert_eq!(got, v);
            prop_assert_eq!(rest, &body[..]);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let _ = parse(&bytes);
        }
    }
}
