//! Server evidence: a server's evidence over a client's challenge and its TLS key, verified by
//! the client with `Verifier::verify_evidence`, on simulated evidence and on Intel's real SGX
//! and TDX sample quotes (tests/data/README.md) at a pinned time inside their collateral's
//! validity.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::sync::Arc;
use std::time::SystemTime;

use ehsm_tee::dcap::{self, Collateral, Identity, Status};
use ehsm_tee::evidence;
use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{FileCollateral, NoCollateral, PeerEvidence, RatlsError, Verifier};
use ehsm_tee::server_evidence::{Challenge, server_report_data};
use ehsm_tee::sim::{self, SimPlatform};
use ehsm_tee::{Evidence, Platform, PlatformKind};

const SGX_QUOTE: &[u8] = include_bytes!("data/sgx_quote");
const TDX_QUOTE: &[u8] = include_bytes!("data/tdx_quote");
const SGX_COLLATERAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/sgx_quote_collateral.json"
);
const TDX_COLLATERAL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/tdx_quote_collateral.json"
);
const SGX_MR_ENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";

/// The server's TLS key as the verifier sees it: bytes it hashes, never parses.
const SPKI: &[u8] = b"the DER SubjectPublicKeyInfo of the server's TLS certificate";
const MEASUREMENT: [u8; 32] = [0x5a; 32];

fn challenge() -> Challenge {
    Challenge::new(&[0xc1; 32]).unwrap()
}

fn verifier(policy: &str) -> Verifier {
    Verifier::new(
        Arc::new(Policy::from_toml(policy).unwrap()),
        Arc::new(NoCollateral),
    )
}

fn allows_sim() -> Verifier {
    verifier(&format!(
        "allow_simulated = true\nsimulated_measurements = [\"{}\"]",
        hex::encode(MEASUREMENT)
    ))
}

/// What a simulated server answers to `challenge`, serving `spki`.
fn sim_evidence(challenge: &Challenge, spki: &[u8]) -> Evidence {
    SimPlatform::ephemeral()
        .unwrap()
        .with_measurement(MEASUREMENT)
        .evidence(&server_report_data(challenge, spki))
        .unwrap()
}

fn inside() -> SystemTime {
    dcap::parse_rfc3339("2025-06-20T00:00:00Z").unwrap()
}

fn after() -> SystemTime {
    dcap::parse_rfc3339("2026-01-01T00:00:00Z").unwrap()
}

/// A verifier of the SGX sample at `clock`, whose policy pins `mr_enclave`.
fn sgx_verifier(mr_enclave: &str, clock: fn() -> SystemTime) -> Verifier {
    Verifier::new(
        Arc::new(
            Policy::from_toml(&format!(
                "accepted_tcb_statuses = [\"CONFIG_AND_SW_HARDENING_NEEDED\"]\n\
                 [sgx]\nmr_enclave = [\"{mr_enclave}\"]"
            ))
            .unwrap(),
        ),
        Arc::new(FileCollateral::file(SGX_COLLATERAL)),
    )
    .with_clock(clock)
}

fn sgx_sample() -> Evidence {
    Evidence {
        kind: PlatformKind::Sgx,
        bytes: SGX_QUOTE.to_vec(),
    }
}

fn assert_not_bound(err: RatlsError) {
    assert!(matches!(err, RatlsError::NotBound), "{err}");
    assert!(err.to_string().contains("not bound to the key"), "{err}");
}

#[test]
fn simulated_evidence_for_this_challenge_and_key_is_accepted() {
    let challenge = challenge();
    let evidence = sim_evidence(&challenge, SPKI);
    let verified = allows_sim()
        .verify_evidence(&evidence, &server_report_data(&challenge, SPKI))
        .unwrap();
    assert_eq!(
        verified,
        PeerEvidence::Simulated {
            measurement: MEASUREMENT
        }
    );
}

#[test]
fn simulated_evidence_is_refused_without_allow_simulated() {
    let challenge = challenge();
    let evidence = sim_evidence(&challenge, SPKI);
    let expected = server_report_data(&challenge, SPKI);
    for policy in ["", "allow_simulated = false"] {
        let err = verifier(policy)
            .verify_evidence(&evidence, &expected)
            .unwrap_err();
        assert!(matches!(err, RatlsError::SimulatedNotAllowed), "{err}");
        assert!(err.to_string().contains("allow_simulated = true"), "{err}");
    }
}

#[test]
fn a_simulated_measurement_not_in_the_policy_is_refused() {
    let challenge = challenge();
    let evidence = sim_evidence(&challenge, SPKI);
    let v = verifier(&format!(
        "allow_simulated = true\nsimulated_measurements = [\"{}\"]",
        "00".repeat(32)
    ));
    let err = v
        .verify_evidence(&evidence, &server_report_data(&challenge, SPKI))
        .unwrap_err();
    assert!(matches!(err, RatlsError::PolicyRefused(_)), "{err}");
    assert!(err.to_string().contains(&hex::encode(MEASUREMENT)), "{err}");
}

#[test]
fn evidence_for_another_challenge_is_not_bound() {
    let evidence = sim_evidence(&challenge(), SPKI);
    let other = Challenge::new(&[0xc2; 32]).unwrap();
    let err = allows_sim()
        .verify_evidence(&evidence, &server_report_data(&other, SPKI))
        .unwrap_err();
    assert_not_bound(err);
}

/// A man in the middle relays genuine evidence but serves its own TLS key: the client, which
/// computes the report data from the certificate of its own connection, refuses it.
#[test]
fn evidence_for_another_key_is_not_bound() {
    let challenge = challenge();
    let evidence = sim_evidence(&challenge, SPKI);
    let err = allows_sim()
        .verify_evidence(
            &evidence,
            &server_report_data(&challenge, b"the proxy's key"),
        )
        .unwrap_err();
    assert_not_bound(err);
}

/// Each part of simulated evidence, altered (its tag cannot be checked by a remote verifier and
/// proves nothing, so only magic, measurement, report data and length are refusals).
#[test]
fn altered_simulated_evidence_is_refused() {
    let challenge = challenge();
    let expected = server_report_data(&challenge, SPKI);
    let genuine = sim_evidence(&challenge, SPKI);
    let v = allows_sim();
    let altered = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut evidence = genuine.clone();
        edit(&mut evidence.bytes);
        v.verify_evidence(&evidence, &expected).unwrap_err()
    };
    let magic = sim::EVIDENCE_MAGIC.len();
    // The magic: no longer simulated evidence, nor anything else.
    let err = altered(&|b| b[0] ^= 1);
    assert!(matches!(err, RatlsError::MalformedEvidence(_)), "{err}");
    assert!(err.to_string().contains("labelled sim"), "{err}");
    // The measurement: the policy pins it.
    let err = altered(&|b| b[magic] ^= 1);
    assert!(matches!(err, RatlsError::PolicyRefused(_)), "{err}");
    // The report data, in either half.
    assert_not_bound(altered(&|b| b[magic + 32] ^= 1));
    assert_not_bound(altered(&|b| b[magic + 32 + 63] ^= 1));
    // Truncated, or with a byte added.
    let err = altered(&|b| b.truncate(sim::EVIDENCE_LEN - 1));
    assert!(matches!(err, RatlsError::MalformedEvidence(_)), "{err}");
    let err = altered(&|b| b.push(0));
    assert!(matches!(err, RatlsError::MalformedEvidence(_)), "{err}");
}

/// The sample quote verifies through `verify_evidence` when the expected report data is its
/// own, so the refusal below is the binding's and nothing else's.
#[test]
fn the_sgx_sample_verifies_with_its_own_report_data() {
    let own = evidence::report_data(SGX_QUOTE).unwrap();
    let verified = sgx_verifier(SGX_MR_ENCLAVE, inside)
        .verify_evidence(&sgx_sample(), &own)
        .unwrap();
    let PeerEvidence::Quote {
        identity, status, ..
    } = verified
    else {
        panic!("not a quote: {verified:?}");
    };
    assert_eq!(status, Status::ConfigAndSwHardeningNeeded);
    let Identity::Sgx(sgx) = *identity else {
        panic!("not SGX: {identity:?}");
    };
    assert_eq!(hex::encode(sgx.mr_enclave), SGX_MR_ENCLAVE);
}

#[test]
fn a_real_sgx_quote_binding_nothing_of_ours_is_not_bound() {
    let v = sgx_verifier(SGX_MR_ENCLAVE, inside);
    let err = v
        .verify_evidence(&sgx_sample(), &server_report_data(&challenge(), SPKI))
        .unwrap_err();
    assert_not_bound(err);
}

#[test]
fn a_tampered_sgx_quote_is_invalid() {
    let own = evidence::report_data(SGX_QUOTE).unwrap();
    let v = sgx_verifier(SGX_MR_ENCLAVE, inside);
    let mut evidence = sgx_sample();
    evidence.bytes[48 + 64] ^= 1; // MRENCLAVE: the report data is still the expected one
    let err = v.verify_evidence(&evidence, &own).unwrap_err();
    assert!(matches!(err, RatlsError::QuoteInvalid(_)), "{err}");

    // Report data edited to what the verifier expects: the signature no longer covers it.
    let mut evidence = sgx_sample();
    evidence.bytes[48 + 320] ^= 1;
    let edited = evidence::report_data(&evidence.bytes).unwrap();
    let err = v.verify_evidence(&evidence, &edited).unwrap_err();
    assert!(matches!(err, RatlsError::QuoteInvalid(_)), "{err}");
    // And checked against the original report data, the edit is caught before any DCAP work.
    let err = v.verify_evidence(&evidence, &own).unwrap_err();
    assert_not_bound(err);
}

#[test]
fn expired_collateral_is_reported() {
    let own = evidence::report_data(SGX_QUOTE).unwrap();
    let err = sgx_verifier(SGX_MR_ENCLAVE, after)
        .verify_evidence(&sgx_sample(), &own)
        .unwrap_err();
    assert!(matches!(err, RatlsError::CollateralOutOfDate(_)), "{err}");
    assert!(err.to_string().contains("collateral has expired"), "{err}");
}

#[test]
fn a_measurement_not_in_the_policy_is_refused() {
    let own = evidence::report_data(SGX_QUOTE).unwrap();
    let err = sgx_verifier(&"00".repeat(32), inside)
        .verify_evidence(&sgx_sample(), &own)
        .unwrap_err();
    assert!(matches!(err, RatlsError::PolicyRefused(_)), "{err}");
    assert!(err.to_string().contains("MRENCLAVE"), "{err}");
}

/// The TDX sample goes down the same path: accepted under a policy pinning its MRTD, refused
/// when bound to nothing of ours.
#[test]
fn the_tdx_sample_is_verified_as_a_quote() {
    let verified = dcap::verify(
        TDX_QUOTE,
        &Collateral::from_json(&std::fs::read(TDX_COLLATERAL).unwrap()).unwrap(),
        inside(),
    )
    .unwrap();
    let Identity::Tdx(tdx) = verified.identity() else {
        panic!("not TDX: {verified:?}");
    };
    let v = Verifier::new(
        Arc::new(
            Policy::from_toml(&format!(
                "accepted_tcb_statuses = [\"{}\"]\n[tdx]\nmr_td = [\"{}\"]",
                verified.status().name(),
                hex::encode(tdx.mr_td)
            ))
            .unwrap(),
        ),
        Arc::new(FileCollateral::file(TDX_COLLATERAL)),
    )
    .with_clock(inside);
    let evidence = Evidence {
        kind: PlatformKind::Tdx,
        bytes: TDX_QUOTE.to_vec(),
    };
    let own = evidence::report_data(TDX_QUOTE).unwrap();
    let accepted = v.verify_evidence(&evidence, &own).unwrap();
    assert!(
        matches!(&accepted, PeerEvidence::Quote { identity, .. } if **identity == *verified.identity()),
        "{accepted:?}"
    );
    let err = v
        .verify_evidence(&evidence, &server_report_data(&challenge(), SPKI))
        .unwrap_err();
    assert_not_bound(err);
}

#[test]
fn a_kind_that_does_not_match_the_bytes_is_refused() {
    let sim_bytes = sim_evidence(&challenge(), SPKI).bytes;
    let cases = [
        (PlatformKind::Sgx, sim_bytes.clone(), PlatformKind::Sim),
        (PlatformKind::Tdx, sim_bytes, PlatformKind::Sim),
        (PlatformKind::Sim, SGX_QUOTE.to_vec(), PlatformKind::Sgx),
        (PlatformKind::Tdx, SGX_QUOTE.to_vec(), PlatformKind::Sgx),
        (PlatformKind::Sgx, TDX_QUOTE.to_vec(), PlatformKind::Tdx),
        (PlatformKind::Sim, TDX_QUOTE.to_vec(), PlatformKind::Tdx),
    ];
    let v = allows_sim();
    for (kind, bytes, found) in cases {
        let err = v
            .verify_evidence(&Evidence { kind, bytes }, &[0; 64])
            .unwrap_err();
        assert!(
            matches!(err, RatlsError::KindMismatch { labelled, found: f } if labelled == kind && f == found),
            "{kind}: {err}"
        );
        assert!(
            err.to_string().contains(&format!("labelled {kind} but is")),
            "{err}"
        );
    }
}

/// Bytes of no kind at all, or a quote of the right kind cut short, are malformed, not
/// mismatched: the error then says what is wrong with them as the kind they claim.
#[test]
fn malformed_evidence_names_the_kind_it_claims() {
    let v = allows_sim();
    let cases = [
        (PlatformKind::Sgx, b"garbage".to_vec(), "labelled sgx"),
        (PlatformKind::Tdx, Vec::new(), "labelled tdx"),
        (PlatformKind::Sim, b"garbage".to_vec(), "labelled sim"),
        (PlatformKind::Sgx, SGX_QUOTE[..600].to_vec(), "truncated"),
        (PlatformKind::Tdx, TDX_QUOTE[..700].to_vec(), "truncated"),
    ];
    for (kind, bytes, says) in cases {
        let err = v
            .verify_evidence(&Evidence { kind, bytes }, &[0; 64])
            .unwrap_err();
        assert!(matches!(err, RatlsError::MalformedEvidence(_)), "{err}");
        assert!(err.to_string().contains(says), "{kind}: {err}");
    }
}
