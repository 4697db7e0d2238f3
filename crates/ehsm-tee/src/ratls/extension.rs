//! The X.509 extension that carries the evidence, and its two formats.
//!
//! - **DCAP quotes** (SGX, TDX): the TCG DICE tagged-evidence extension, OID
//!   [`DICE_TAGGED_EVIDENCE_OID`] (2.23.133.5.4.9), whose value is CBOR: tag
//!   [`CBOR_TAG_TEE_QUOTE`] (60000, "TEE quote") around a byte string holding the raw quote. This
//!   is the container of the interoperable RA-TLS format (Gramine and others use the same OID and
//!   tag). It is **not** claimed to interoperate with Gramine's verifier: Gramine wraps the quote
//!   with a claims map (`pubkey-hash`) and binds the hash of that map, whereas ehsm puts the bare
//!   quote and binds `SHA-256(SPKI) ‖ 0^32` (see [`super::report_data_for`]).
//! - **Simulated evidence** (`--tee sim`): OID [`SIM_EVIDENCE_OID`] (1.3.6.1.4.1.32473.1.1),
//!   whose value is the raw `EHSM-SIM-EVIDENCE-v1` bytes. 32473 is the enterprise number IANA
//!   reserves for documentation and examples (RFC 5612): it belongs to no vendor, which suits
//!   evidence that exists only for development and tests, and it is only ever accepted by a
//!   policy with `allow_simulated = true`. A separate OID (rather than another CBOR tag under the DICE OID)
//!   keeps a verifier that knows only the standard format from ever reading simulated evidence
//!   as a quote.
//!
//! Both extensions are non-critical, as in the interoperable format: a generic TLS stack that
//! does not know them can still parse the certificate.

use ciborium::Value;

use crate::{Evidence, PlatformKind};

/// `tcg-dice-tagged-evidence` (TCG DICE Attestation Architecture).
pub const DICE_TAGGED_EVIDENCE_OID: &[u64] = &[2, 23, 133, 5, 4, 9];
/// Simulated evidence, under the documentation enterprise number of RFC 5612. See the module
/// documentation.
pub const SIM_EVIDENCE_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 32473, 1, 1];
/// The CBOR tag of a TEE quote (SGX or TDX DCAP quote) in the tagged-evidence extension.
pub const CBOR_TAG_TEE_QUOTE: u64 = 60000;

/// The OID and the DER content (extnValue) of the extension carrying `evidence`.
pub fn encode(evidence: &Evidence) -> Result<(&'static [u64], Vec<u8>), String> {
    match evidence.kind {
        PlatformKind::Sim => Ok((SIM_EVIDENCE_OID, evidence.bytes.clone())),
        PlatformKind::Sgx | PlatformKind::Tdx => {
            let value = Value::Tag(
                CBOR_TAG_TEE_QUOTE,
                Box::new(Value::Bytes(evidence.bytes.clone())),
            );
            let mut out = Vec::with_capacity(evidence.bytes.len() + 8);
            ciborium::into_writer(&value, &mut out).map_err(|e| e.to_string())?;
            Ok((DICE_TAGGED_EVIDENCE_OID, out))
        }
    }
}

/// What an evidence extension holds, before any verification.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Carried {
    /// A DCAP quote (SGX or TDX; the quote's header says which).
    Quote(Vec<u8>),
    /// Simulated evidence.
    Simulated(Vec<u8>),
}

/// Reads the content of the DICE tagged-evidence extension: exactly one CBOR item, tag 60000
/// around a byte string, and nothing after it.
pub fn decode_tagged_quote(content: &[u8]) -> Result<Vec<u8>, String> {
    let mut rest = content;
    let value: Value = ciborium::from_reader(&mut rest)
        .map_err(|e| format!("the tagged-evidence extension is not CBOR: {e}"))?;
    if !rest.is_empty() {
        return Err("the tagged-evidence extension has bytes after its CBOR item".to_owned());
    }
    match value {
        Value::Tag(CBOR_TAG_TEE_QUOTE, inner) => match *inner {
            Value::Bytes(quote) => Ok(quote),
            _ => Err("CBOR tag 60000 (TEE quote) does not hold a byte string".to_owned()),
        },
        Value::Tag(tag, _) => Err(format!(
            "CBOR tag {tag} in the tagged-evidence extension; only 60000 (TEE quote) is supported"
        )),
        _ => Err("the tagged-evidence extension is not a tagged CBOR item".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quote(bytes: &[u8]) -> Evidence {
        Evidence {
            kind: PlatformKind::Sgx,
            bytes: bytes.to_vec(),
        }
    }

    #[test]
    fn tagged_quote_is_the_expected_cbor() {
        let (oid, content) = encode(&quote(b"abc")).unwrap();
        assert_eq!(oid, DICE_TAGGED_EVIDENCE_OID);
        // tag(60000) = 0xd9 0xea 0x60; bstr(3) = 0x43
        assert_eq!(content, [0xd9, 0xea, 0x60, 0x43, b'a', b'b', b'c']);
        assert_eq!(decode_tagged_quote(&content).unwrap(), b"abc");
    }

    #[test]
    fn long_quotes_round_trip() {
        let long = vec![7u8; 5000];
        let (_, content) = encode(&quote(&long)).unwrap();
        // bstr with a 2-byte length: 0x59 0x13 0x88
        assert_eq!(&content[3..6], [0x59, 0x13, 0x88]);
        assert_eq!(decode_tagged_quote(&content).unwrap(), long);
    }

    #[test]
    fn other_shapes_are_refused() {
        let (_, mut content) = encode(&quote(b"abc")).unwrap();
        content.push(0);
        assert!(decode_tagged_quote(&content).unwrap_err().contains("after"));
        // tag 60001
        assert!(
            decode_tagged_quote(&[0xd9, 0xea, 0x61, 0x41, 0])
                .unwrap_err()
                .contains("60001")
        );
        // tag 60000 around a text string
        assert!(decode_tagged_quote(&[0xd9, 0xea, 0x60, 0x61, b'a']).is_err());
        // an untagged byte string, a truncated item, nothing
        assert!(decode_tagged_quote(&[0x41, 0]).is_err());
        assert!(decode_tagged_quote(&[0xd9, 0xea, 0x60, 0x45, 1]).is_err());
        assert!(decode_tagged_quote(&[]).is_err());
    }

    #[test]
    fn simulated_evidence_uses_its_own_oid_and_raw_bytes() {
        let sim = Evidence {
            kind: PlatformKind::Sim,
            bytes: b"sim".to_vec(),
        };
        assert_eq!(encode(&sim).unwrap(), (SIM_EVIDENCE_OID, b"sim".to_vec()));
    }
}
