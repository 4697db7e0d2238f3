//! The AWS API's CiphertextBlob: the eHSM ciphertext with the key id in front.
//!
//! AWS's Decrypt may omit KeyId: the ciphertext must name its key. An eHSM ciphertext names
//! its key version but not its key (`ehsm_core::ciphertext`), so the AWS API frames it:
//!
//! ```text
//! blob   = FORMAT (1 byte, 0xA1) ‖ len (1 byte, 1..=64) ‖ keyid (len bytes of [A-Za-z0-9-]) ‖ body
//! body   = the eHSM ciphertext, unchanged (its own header: format 0x01 ‖ key version ‖ ...)
//! ```
//!
//! The first byte tells the two apart: an eHSM ciphertext starts with 0x01, a framed one with
//! 0xA1. Decrypt takes both: a framed one names its key, a bare eHSM one (from the eHSM API's
//! Encrypt or GenerateDataKey) decrypts when KeyId names the key. The key id is not
//! authenticated here and need not be: a ciphertext whose key id was changed to another key's
//! is decrypted with that key, which fails like any wrong key.
//!
//! Sizes: a key id is a UUID (36 bytes), so the frame adds 38 bytes; Encrypt's largest
//! plaintext (4096 bytes) makes a 4164-byte AES-GCM blob, within AWS's 6144-byte limit.

use super::error::AwsError;
use super::ops::invalid_ciphertext;

const FORMAT_V1: u8 = 0xA1;
/// The first byte of every eHSM ciphertext (`ehsm_core::ciphertext`'s format 1).
const EHSM_FORMAT: u8 = 1;
/// The longest key id a frame holds; ehsm's are 36 characters.
const MAX_KEYID: usize = 64;

/// What a CiphertextBlob holds.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Blob<'a> {
    /// Made by this API: the key id and the eHSM ciphertext.
    Framed { keyid: &'a str, body: &'a [u8] },
    /// An eHSM ciphertext, which names no key.
    Bare(&'a [u8]),
}

/// Frames `body`, the eHSM ciphertext made by the key `keyid`.
pub(crate) fn frame(keyid: &str, body: &[u8]) -> Vec<u8> {
    debug_assert!((1..=MAX_KEYID).contains(&keyid.len()));
    let mut out = Vec::with_capacity(2 + keyid.len() + body.len());
    out.push(FORMAT_V1);
    // ehsm makes key ids (UUIDs), so the length always fits the byte.
    out.push(u8::try_from(keyid.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(keyid.as_bytes());
    out.extend_from_slice(body);
    out
}

/// Reads a CiphertextBlob; anything else than the two forms is an invalid ciphertext.
pub(crate) fn parse(blob: &[u8]) -> Result<Blob<'_>, AwsError> {
    match blob.split_first() {
        Some((&EHSM_FORMAT, _)) => Ok(Blob::Bare(blob)),
        Some((&FORMAT_V1, rest)) => {
            let (&len, rest) = rest.split_first().ok_or_else(malformed)?;
            let len = usize::from(len);
            if !(1..=MAX_KEYID).contains(&len) || rest.len() <= len {
                return Err(malformed());
            }
            let (keyid, body) = rest.split_at(len);
            let keyid = std::str::from_utf8(keyid)
                .ok()
                // A key id (a UUID), never an alias or an ARN: the frame names one key.
                .filter(|k| k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
                .ok_or_else(malformed)?;
            Ok(Blob::Framed { keyid, body })
        }
        _ => Err(malformed()),
    }
}

fn malformed() -> AwsError {
    invalid_ciphertext()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use proptest::prelude::*;

    use super::*;

    const KEYID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

    #[test]
    fn framed_and_bare_blobs() {
        let body = [1u8, 1, 9, 9, 9];
        let blob = frame(KEYID, &body);
        assert_eq!(blob.len(), 2 + 36 + body.len());
        assert_eq!(blob[..2], [0xA1, 36]);
        assert_eq!(
            parse(&blob).unwrap(),
            Blob::Framed {
                keyid: KEYID,
                body: &body
            }
        );
        assert_eq!(parse(&body).unwrap(), Blob::Bare(&body));
    }

    #[test]
    fn anything_else_is_an_invalid_ciphertext() {
        let good = frame(KEYID, &[1, 1, 0]);
        let mut bad_char = good.clone();
        bad_char[5] = b' ';
        let mut alias = vec![0xA1, 8];
        alias.extend(b"alias/db");
        alias.extend([1, 1, 0]);
        let mut too_long = vec![0xA1, 65];
        too_long.extend([b'k'; 66]);
        for bad in [
            &[][..],
            &[0],
            &[2, 1, 1],
            &[0xA1],
            &[0xA1, 0],
            &[0xA1, 0, 1],
            &[0xA1, 3, b'a', b'b', b'c'], // no body
            &good[..38],                  // body cut off
            &bad_char,
            &alias,
            &too_long,
            &[0xA1, 2, 0xff, 0xfe, 1],
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(
                (e.status, e.type_name),
                (400, "InvalidCiphertextException"),
                "{bad:?}"
            );
        }
    }

    proptest! {
        #[test]
        fn round_trip(keyid in "[a-f0-9-]{1,64}", body in proptest::collection::vec(any::<u8>(), 1..64)) {
            let blob = frame(&keyid, &body);
            prop_assert_eq!(parse(&blob).unwrap(), Blob::Framed { keyid: &keyid, body: &body });
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = parse(&bytes);
        }
    }
}
