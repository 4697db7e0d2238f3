//! EncryptionContext as additional authenticated data.
//!
//! AWS KMS binds a ciphertext to its EncryptionContext, a map of strings, and decrypts it only
//! with the same map, whatever the order its pairs come in. The core binds ciphertexts to
//! bytes (the eHSM `aad`), so the map is written canonically:
//!
//! ```text
//! aad  = ""                                  for an empty (or absent) map
//!      = pair ‖ pair ‖ ...                   pairs sorted by key, bytewise
//! pair = len(key) ‖ key ‖ len(value) ‖ value len: 4 bytes, big-endian; UTF-8 bytes
//! ```
//!
//! Lengths make the encoding injective (no two maps give the same bytes: `{"a":"bc"}` and
//! `{"ab":"c"}` differ), and sorting makes it order-free. An empty map is no context at all,
//! as in AWS (a ciphertext made without one decrypts with `{}`), and is the empty `aad` of the
//! eHSM API, so a ciphertext of either API without context decrypts through the other.

use std::collections::BTreeMap;

/// The additional data for `context`, whose pairs come sorted by key (a `BTreeMap`).
pub(crate) fn aad(context: &BTreeMap<&str, &str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(context.iter().map(|(k, v)| 8 + k.len() + v.len()).sum());
    for (key, value) in context {
        for part in [key, value] {
            // A part longer than 4 GiB cannot come in a request body (the body limit is far
            // smaller), so the length always fits.
            out.extend_from_slice(&u32::try_from(part.len()).unwrap_or(u32::MAX).to_be_bytes());
            out.extend_from_slice(part.as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map<'a>(pairs: &[(&'a str, &'a str)]) -> BTreeMap<&'a str, &'a str> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn empty_context_is_no_aad() {
        assert!(aad(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn the_encoding_is_the_documented_one() {
        assert_eq!(
            aad(&map(&[("purpose", "db"), ("env", "é")])),
            [
                &[0, 0, 0, 3][..],
                b"env",
                &[0, 0, 0, 2],
                "é".as_bytes(),
                &[0, 0, 0, 7],
                b"purpose",
                &[0, 0, 0, 2],
                b"db",
            ]
            .concat()
        );
        // An empty key or value still counts.
        assert_eq!(aad(&map(&[("", "")])), [0u8; 8]);
    }

    #[test]
    fn order_does_not_matter_and_different_maps_differ() {
        assert_eq!(
            aad(&map(&[("a", "1"), ("b", "2")])),
            aad(&map(&[("b", "2"), ("a", "1")]))
        );
        let distinct = [
            map(&[("a", "bc")]),
            map(&[("ab", "c")]),
            map(&[("a", "b"), ("c", "")]),
            map(&[("a", ""), ("bc", "")]),
            map(&[("", "abc")]),
            map(&[("a", "1")]),
            map(&[("a", "2")]),
        ];
        for (i, x) in distinct.iter().enumerate() {
            for y in &distinct[i + 1..] {
                assert_ne!(aad(x), aad(y), "{x:?} {y:?}");
            }
        }
    }
}
