//! DCAP verification on real quotes and collateral (tests/data/README.md), at fixed times
//! inside and outside the collateral's validity window (2025-06-19 to 2025-07-19).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::SystemTime;

use ehsm_tee::dcap::{Collateral, Error, Identity, Status, VerifiedQuote, parse_rfc3339, verify};

const SGX_QUOTE: &[u8] = include_bytes!("data/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("data/sgx_quote_collateral.json");
const TDX_QUOTE: &[u8] = include_bytes!("data/tdx_quote");
const TDX_COLLATERAL: &[u8] = include_bytes!("data/tdx_quote_collateral.json");

/// The sample's MRENCLAVE and MRSIGNER (also in dcap-qvl's own snapshot of this quote).
const SGX_MR_ENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
const SGX_MR_SIGNER: &str = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6";

fn at(text: &str) -> SystemTime {
    parse_rfc3339(text).unwrap()
}

fn inside() -> SystemTime {
    at("2025-06-20T00:00:00Z")
}

fn verify_sgx(quote: &[u8], collateral: &[u8], now: SystemTime) -> Result<VerifiedQuote, Error> {
    verify(quote, &Collateral::from_json(collateral)?, now)
}

#[test]
fn genuine_sgx_quote_verifies_with_its_status_and_identity() {
    let verified = verify_sgx(SGX_QUOTE, SGX_COLLATERAL, inside()).unwrap();
    assert_eq!(verified.status(), Status::ConfigAndSwHardeningNeeded);
    assert_eq!(verified.status().as_u32(), 0xA008);
    assert_eq!(verified.tcb_status(), "ConfigurationAndSWHardeningNeeded");
    assert_eq!(
        verified.advisory_ids(),
        ["INTEL-SA-00289", "INTEL-SA-00615"]
    );
    let Identity::Sgx(sgx) = verified.identity() else {
        panic!("not SGX: {verified:?}")
    };
    assert_eq!(hex::encode(sgx.mr_enclave), SGX_MR_ENCLAVE);
    assert_eq!(hex::encode(sgx.mr_signer), SGX_MR_SIGNER);
    // The identity is the quote's own report body (offsets of compatibility spec §9.3).
    assert_eq!(&SGX_QUOTE[112..144], sgx.mr_enclave);
    assert_eq!(&SGX_QUOTE[176..208], sgx.mr_signer);
    assert_eq!(&SGX_QUOTE[368..432], sgx.report_data);
    assert_eq!(verified.identity().platform(), "sgx");
}

#[test]
fn genuine_tdx_quote_verifies_with_its_identity() {
    let verified = verify(
        TDX_QUOTE,
        &Collateral::from_json(TDX_COLLATERAL).unwrap(),
        inside(),
    )
    .unwrap();
    let Identity::Tdx(tdx) = verified.identity() else {
        panic!("not TDX: {verified:?}")
    };
    // TD report 1.0 layout after the 48-byte header: MRTD at 136, RTMR0..3 at 328..520,
    // report data at 520.
    assert_eq!(&TDX_QUOTE[48 + 136..48 + 184], tdx.mr_td);
    for (i, rtmr) in tdx.rtmr.iter().enumerate() {
        let start = 48 + 328 + 48 * i;
        assert_eq!(&TDX_QUOTE[start..start + 48], rtmr, "RTMR{i}");
    }
    assert_eq!(&TDX_QUOTE[48 + 520..48 + 584], tdx.report_data);
    assert_eq!(
        Status::from_u32(verified.status().as_u32()),
        Some(verified.status())
    );
}

#[test]
fn collateral_after_next_update_is_reported_as_expired() {
    let err = verify_sgx(SGX_QUOTE, SGX_COLLATERAL, at("2025-07-20T00:00:00Z")).unwrap_err();
    assert!(matches!(err, Error::CollateralExpired { .. }), "{err:?}");
    assert!(err.is_collateral_out_of_date());
    let message = err.to_string();
    assert!(
        message.contains("expired") && message.contains("2025-07-19"),
        "{message}"
    );
    // Long after, the CRLs have expired too; still reported as expiry.
    let err = verify_sgx(SGX_QUOTE, SGX_COLLATERAL, at("2027-01-15T00:00:00Z")).unwrap_err();
    assert!(matches!(err, Error::CollateralExpired { .. }), "{err:?}");
}

#[test]
fn collateral_before_its_issue_date_is_not_yet_valid() {
    let err = verify_sgx(SGX_QUOTE, SGX_COLLATERAL, at("2025-06-01T00:00:00Z")).unwrap_err();
    assert!(
        matches!(err, Error::CollateralNotYetValid { .. }),
        "{err:?}"
    );
    let err = verify_sgx(SGX_QUOTE, SGX_COLLATERAL, SystemTime::UNIX_EPOCH).unwrap_err();
    assert!(err.is_collateral_out_of_date(), "{err:?}");
}

/// Flips one byte of the quote at `offset` and expects a refusal of the given kind.
fn assert_quote_flip_refused(offset: usize, what: &str) -> Error {
    let mut quote = SGX_QUOTE.to_vec();
    quote[offset] ^= 0x01;
    match verify_sgx(&quote, SGX_COLLATERAL, inside()) {
        Ok(v) => panic!("{what} (byte {offset}) flipped, but the quote verified: {v:?}"),
        Err(err) => err,
    }
}

#[test]
fn flipped_header_byte_is_refused() {
    // The QE vendor id (header bytes 12..28).
    let err = assert_quote_flip_refused(12, "QE vendor id");
    assert!(matches!(err, Error::QuoteUnsupported { .. }), "{err:?}");
    // The version (bytes 0..2).
    let err = assert_quote_flip_refused(0, "version");
    assert!(
        matches!(
            err,
            Error::QuoteMalformed { .. } | Error::QuoteUnsupported { .. }
        ),
        "{err:?}"
    );
    // The user data (bytes 28..48), covered by the attestation key's signature.
    let err = assert_quote_flip_refused(30, "header user data");
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[test]
fn flipped_report_body_byte_is_refused() {
    for (offset, what) in [
        (48 + 64, "MRENCLAVE"),
        (48 + 128, "MRSIGNER"),
        (48 + 256, "ISVPRODID"),
    ] {
        let err = assert_quote_flip_refused(offset, what);
        assert!(matches!(err, Error::Rejected { .. }), "{what}: {err:?}");
    }
}

#[test]
fn flipped_report_data_byte_is_refused() {
    let err = assert_quote_flip_refused(368 + 5, "report data");
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[test]
fn flipped_signature_byte_is_refused() {
    // Auth data starts at 436: the ISV report's ECDSA signature (64 bytes), then the attestation
    // key (64), the QE report (384) and the QE report's signature (64).
    for (offset, what) in [
        (436 + 10, "ISV signature"),
        (436 + 64 + 10, "attestation key"),
        (436 + 128 + 48 + 10, "QE report"),
        (436 + 512 + 10, "QE signature"),
    ] {
        let err = assert_quote_flip_refused(offset, what);
        assert!(
            matches!(err, Error::Rejected { .. } | Error::QuoteMalformed { .. }),
            "{what}: {err:?}"
        );
    }
}

#[test]
fn truncated_quotes_are_refused() {
    for len in [0, 1, 47, 48, 100, 432, 436, 1000, SGX_QUOTE.len() - 1] {
        let err = verify_sgx(&SGX_QUOTE[..len], SGX_COLLATERAL, inside()).unwrap_err();
        assert!(
            matches!(err, Error::QuoteMalformed { .. } | Error::Rejected { .. }),
            "{len}: {err:?}"
        );
    }
}

/// Rewrites one field of the collateral JSON with `edit`.
fn edited_collateral(field: &str, edit: impl FnOnce(&mut serde_json::Value)) -> Vec<u8> {
    let mut json: serde_json::Value = serde_json::from_slice(SGX_COLLATERAL).unwrap();
    edit(json.get_mut(field).unwrap());
    serde_json::to_vec(&json).unwrap()
}

/// Flips one hex digit of a hex-encoded field (signatures, CRLs).
fn flip_hex(value: &mut serde_json::Value, index: usize) {
    let text = value.as_str().unwrap();
    let mut bytes = hex::decode(text).unwrap();
    bytes[index] ^= 0x01;
    *value = serde_json::Value::String(hex::encode(bytes));
}

#[test]
fn tampered_tcb_info_is_refused() {
    // Prefix a digit to the evaluation data number: the JSON still parses, the signature breaks.
    let collateral = edited_collateral("tcb_info", |v| {
        let text = v.as_str().unwrap().replacen(
            "\"tcbEvaluationDataNumber\":",
            "\"tcbEvaluationDataNumber\":1",
            1,
        );
        *v = serde_json::Value::String(text);
    });
    let err = verify_sgx(SGX_QUOTE, &collateral, inside()).unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[test]
fn tampered_qe_identity_is_refused() {
    let collateral = edited_collateral("qe_identity", |v| {
        let text = v
            .as_str()
            .unwrap()
            .replacen("\"isvprodid\":", "\"isvprodid\":1", 1);
        *v = serde_json::Value::String(text);
    });
    let err = verify_sgx(SGX_QUOTE, &collateral, inside()).unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

#[test]
fn tampered_collateral_signatures_are_refused() {
    for field in ["tcb_info_signature", "qe_identity_signature"] {
        let collateral = edited_collateral(field, |v| flip_hex(v, 7));
        let err = verify_sgx(SGX_QUOTE, &collateral, inside()).unwrap_err();
        assert!(matches!(err, Error::Rejected { .. }), "{field}: {err:?}");
    }
}

#[test]
fn tampered_crls_are_refused() {
    for field in ["root_ca_crl", "pck_crl"] {
        // Near the end: the CRL's signature.
        let collateral = edited_collateral(field, |v| {
            let len = v.as_str().unwrap().len() / 2;
            flip_hex(v, len - 3);
        });
        let err = verify_sgx(SGX_QUOTE, &collateral, inside()).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Rejected { .. } | Error::CollateralMalformed { .. }
            ),
            "{field}: {err:?}"
        );
    }
}

#[test]
fn malformed_collateral_is_named() {
    let err = Collateral::from_json(b"{}").unwrap_err();
    assert!(matches!(err, Error::CollateralMalformed { .. }), "{err:?}");
    let collateral = edited_collateral("tcb_info", |v| {
        *v = serde_json::Value::String("not json".into())
    });
    let err = verify_sgx(SGX_QUOTE, &collateral, inside()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CollateralMalformed {
                field: "tcb_info",
                ..
            }
        ),
        "{err:?}"
    );
    let collateral = edited_collateral("pck_crl", |v| *v = serde_json::Value::String("00".into()));
    let err = verify_sgx(SGX_QUOTE, &collateral, inside()).unwrap_err();
    assert!(
        matches!(
            err,
            Error::CollateralMalformed {
                field: "pck_crl",
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn sgx_collateral_does_not_verify_a_tdx_quote() {
    let err = verify_sgx(TDX_QUOTE, SGX_COLLATERAL, inside()).unwrap_err();
    assert!(matches!(err, Error::Rejected { .. }), "{err:?}");
}

/// Every single-byte flip in every region must be refused without a panic. One byte in
/// `STRIDE` keeps the run short; the regions' first bytes are always included.
#[test]
fn no_single_byte_flip_verifies_or_panics() {
    const STRIDE: usize = 7;
    // Header 48, report 384, auth data length 4, signature 64, key 64, QE report 384, its
    // signature 64, QE auth data 2 + 32, certification data type 2 and length 4.
    const PEM_START: usize = 1052;
    let collateral = Collateral::from_json(SGX_COLLATERAL).unwrap();
    let mut quote = SGX_QUOTE.to_vec();
    for offset in (0..quote.len()).step_by(STRIDE) {
        quote[offset] ^= 0x80;
        let result = verify(&quote, &collateral, inside());
        // The PCK chain's PEM text is not signed byte for byte (e.g. its armour lines), so
        // only the bytes before it must all be refused; the rest must merely not panic.
        if offset < PEM_START {
            assert!(result.is_err(), "flipping byte {offset} still verified");
        }
        quote[offset] ^= 0x80;
    }
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Arbitrary bytes never panic the verifier.
        #[test]
        fn arbitrary_quotes_do_not_panic(quote in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let collateral = Collateral::from_json(SGX_COLLATERAL).unwrap();
            prop_assert!(verify(&quote, &collateral, inside()).is_err());
        }

        /// A genuine quote with random bytes overwritten never panics.
        #[test]
        fn corrupted_quotes_do_not_panic(edits in proptest::collection::vec((0..4600usize, any::<u8>()), 1..8)) {
            let collateral = Collateral::from_json(SGX_COLLATERAL).unwrap();
            let mut quote = SGX_QUOTE.to_vec();
            for (offset, byte) in edits {
                quote[offset] = byte;
            }
            let _ = verify(&quote, &collateral, inside());
        }

        /// Arbitrary collateral JSON never panics.
        #[test]
        fn arbitrary_collateral_does_not_panic(json in ".{0,200}") {
            let _ = Collateral::from_json(json.as_bytes());
        }
    }
}
