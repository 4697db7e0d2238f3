//! The platforms' evidence, sealing keys and measurements: sim as it is, SGX and TDX on plain
//! directories that mimic Gramine's `/dev/attestation` and configfs-tsm, holding the real
//! quotes of tests/data (see its README). A mimic cannot echo the report data into the quote,
//! so these tests ask for the report data the recorded quotes carry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::Path;

use ehsm_tee::dcap::SgxIdentity;
use ehsm_tee::evidence;
use ehsm_tee::sgx::SgxPlatform;
use ehsm_tee::sim::{self, EVIDENCE_LEN, EVIDENCE_MAGIC, SimEvidence, SimPlatform};
use ehsm_tee::tdx::{self, TdxPlatform};
use ehsm_tee::{Error, Platform, PlatformKind};

const SGX_QUOTE: &[u8] = include_bytes!("data/sgx_quote");
const TDX_QUOTE: &[u8] = include_bytes!("data/tdx_quote");

/// The report data of the SGX sample quote: "Hello, world!" and zeros.
fn sgx_sample_report_data() -> [u8; 64] {
    let mut rd = [0; 64];
    rd[..13].copy_from_slice(b"Hello, world!");
    rd
}

/// The report data of the TDX sample quote, read with dcap-qvl's parser, not ours.
fn tdx_sample_report_data() -> [u8; 64] {
    let quote = dcap_qvl::quote::Quote::parse(TDX_QUOTE).unwrap();
    quote.report.as_td10().unwrap().report_data
}

fn reason(err: Error) -> String {
    err.to_string()
}

// --- sim -----------------------------------------------------------------------------------

#[test]
fn sim_evidence_round_trips_and_its_tag_checks() {
    let dir = tempfile::tempdir().unwrap();
    let p = SimPlatform::open(dir.path()).unwrap();
    let rd = [7; 64];
    let ev = p.evidence(&rd).unwrap();
    assert_eq!(ev.kind, PlatformKind::Sim);
    assert_eq!(ev.bytes.len(), EVIDENCE_LEN);
    assert!(ev.bytes.starts_with(EVIDENCE_MAGIC));
    let expected = SimEvidence {
        measurement: p.measurement().value.as_slice().try_into().unwrap(),
        report_data: rd,
    };
    assert_eq!(sim::parse_evidence(&ev.bytes).unwrap(), expected);
    assert_eq!(p.check_evidence(&ev.bytes).unwrap(), expected);

    // Another simulated node parses it but its tag does not check.
    let other_dir = tempfile::tempdir().unwrap();
    let other = SimPlatform::open(other_dir.path()).unwrap();
    let err = other.check_evidence(&ev.bytes).unwrap_err();
    assert!(reason(err).contains("tag does not match"));
    // Nor does a changed report data.
    let mut tampered = ev.bytes.clone();
    tampered[EVIDENCE_MAGIC.len() + 32] ^= 1;
    assert!(p.check_evidence(&tampered).is_err());
}

#[test]
fn sim_evidence_parser_refuses_wrong_magic_truncation_and_extra_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let good = SimPlatform::open(dir.path())
        .unwrap()
        .evidence(&[1; 64])
        .unwrap()
        .bytes;
    let bad = |bytes: &[u8]| reason(sim::parse_evidence(bytes).unwrap_err());

    let mut wrong_magic = good.clone();
    wrong_magic[0] = b'X';
    assert!(bad(&wrong_magic).contains("wrong magic"));
    assert!(bad(&good[..good.len() - 1]).contains("wrong length"));
    assert!(bad(&good[..EVIDENCE_MAGIC.len()]).contains("wrong length"));
    assert!(bad(&good[..5]).contains("wrong magic"));
    assert!(bad(&[]).contains("wrong magic"));
    let mut extra = good.clone();
    extra.push(0);
    assert!(bad(&extra).contains("wrong length"));
}

#[test]
fn sim_evidence_and_quotes_are_never_mistaken_for_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let ev = SimPlatform::open(dir.path())
        .unwrap()
        .evidence(&[0; 64])
        .unwrap();
    assert!(evidence::sgx_report_body(&ev.bytes).is_err());
    assert!(evidence::td_report_body(&ev.bytes).is_err());
    assert!(dcap_qvl::quote::Quote::parse(&ev.bytes).is_err());
    assert!(sim::parse_evidence(SGX_QUOTE).is_err());
    assert!(sim::parse_evidence(TDX_QUOTE).is_err());
}

// --- quote layouts ---------------------------------------------------------------------------

#[test]
fn quote_layouts_agree_with_dcap_qvl() {
    let theirs = dcap_qvl::quote::Quote::parse(SGX_QUOTE).unwrap();
    let theirs = theirs.report.as_sgx().unwrap();
    let ours = evidence::sgx_report_body(SGX_QUOTE).unwrap();
    assert_eq!(
        ours,
        SgxIdentity {
            mr_enclave: theirs.mr_enclave,
            mr_signer: theirs.mr_signer,
            isv_prod_id: theirs.isv_prod_id,
            isv_svn: theirs.isv_svn,
            report_data: theirs.report_data,
        }
    );
    assert_eq!(ours.report_data, sgx_sample_report_data());

    let theirs = dcap_qvl::quote::Quote::parse(TDX_QUOTE).unwrap();
    let theirs = theirs.report.as_td10().unwrap();
    let ours = evidence::td_report_body(TDX_QUOTE).unwrap();
    assert_eq!(ours.mr_td, theirs.mr_td);
    assert_eq!(
        ours.rtmr,
        [theirs.rt_mr0, theirs.rt_mr1, theirs.rt_mr2, theirs.rt_mr3]
    );
    assert_eq!(ours.report_data, theirs.report_data);
}

/// The TDX sample as a v5 quote with a TD 1.0 body: a 6-byte body descriptor after the header.
fn tdx_as_v5() -> Vec<u8> {
    let mut v5 = TDX_QUOTE[..48].to_vec();
    v5[0] = 5;
    v5.extend_from_slice(&2u16.to_le_bytes());
    v5.extend_from_slice(&584u32.to_le_bytes());
    v5.extend_from_slice(&TDX_QUOTE[48..]);
    v5
}

#[test]
fn tdx_quote_v5_is_read_at_the_shifted_offsets() {
    let v4 = evidence::td_report_body(TDX_QUOTE).unwrap();
    assert_eq!(evidence::td_report_body(&tdx_as_v5()).unwrap(), v4);
    let mut wrong_type = tdx_as_v5();
    wrong_type[48] = 1; // an SGX enclave report
    assert!(evidence::td_report_body(&wrong_type).is_err());
    let mut too_small = tdx_as_v5();
    too_small[50..54].copy_from_slice(&100u32.to_le_bytes());
    assert!(evidence::td_report_body(&too_small).is_err());
}

#[test]
fn malformed_quotes_are_errors_never_panics() {
    for quote in [SGX_QUOTE, TDX_QUOTE] {
        // Every truncation inside the header, body and signature data.
        for len in 0..quote.len().min(700) {
            assert!(evidence::sgx_report_body(&quote[..len]).is_err(), "{len}");
            assert!(evidence::td_report_body(&quote[..len]).is_err(), "{len}");
        }
        let cut = &quote[..quote.len() - 100];
        assert!(evidence::sgx_report_body(cut).is_err() && evidence::td_report_body(cut).is_err());
    }
    let mut v4_sgx = SGX_QUOTE.to_vec();
    v4_sgx[0] = 4;
    let m = reason_of(evidence::sgx_report_body(&v4_sgx));
    assert!(m.contains("version"), "{m}");
    let m = reason_of(evidence::td_report_body(SGX_QUOTE));
    assert!(m.contains("TEE type"), "{m}");
    let mut huge_signature = SGX_QUOTE.to_vec();
    huge_signature[432..436].copy_from_slice(&u32::MAX.to_le_bytes());
    let m = reason_of(evidence::sgx_report_body(&huge_signature));
    assert!(m.contains("signature data runs past"), "{m}");
}

fn reason_of<T: std::fmt::Debug>(r: Result<T, &'static str>) -> &'static str {
    r.unwrap_err()
}

// --- SGX (Gramine) ---------------------------------------------------------------------------

/// A directory with the files of Gramine's `/dev/attestation`.
fn gramine(attestation_type: &str, key: &[u8], quote: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("attestation_type"), attestation_type).unwrap();
    fs::create_dir(root.join("keys")).unwrap();
    fs::write(root.join("keys/_sgx_mrenclave"), key).unwrap();
    fs::write(root.join("user_report_data"), [0; 64]).unwrap();
    fs::write(root.join("quote"), quote).unwrap();
    dir
}

#[test]
fn sgx_sealing_key_is_stable_derived_and_32_bytes() {
    let dir = gramine("dcap\n", &[9; 16], SGX_QUOTE);
    let p = SgxPlatform::open(dir.path()).unwrap();
    assert_eq!(p.kind(), PlatformKind::Sgx);
    let k1 = p.sealing_key().unwrap();
    let k2 = SgxPlatform::open(dir.path())
        .unwrap()
        .sealing_key()
        .unwrap();
    assert_eq!(k1.expose().len(), 32);
    assert_eq!(k1.expose(), k2.expose());
    assert!(!k1.expose().starts_with(&[9; 16]), "never the raw key");
    let other = gramine("dcap", &[8; 16], SGX_QUOTE);
    let k3 = SgxPlatform::open(other.path())
        .unwrap()
        .sealing_key()
        .unwrap();
    assert_ne!(k1.expose(), k3.expose());
}

#[test]
fn sgx_wrong_key_size_is_refused() {
    for key in [&[1u8; 15][..], &[1; 17], &[1; 32], &[]] {
        let dir = gramine("dcap", key, SGX_QUOTE);
        let m = reason(SgxPlatform::open(dir.path()).err().unwrap());
        assert!(
            m.contains("_sgx_mrenclave") && m.contains("16 bytes"),
            "{m}"
        );
    }
}

#[test]
fn sgx_without_remote_attestation_is_refused_with_the_fix() {
    let dir = gramine("none\n", &[9; 16], SGX_QUOTE);
    let m = reason(SgxPlatform::open(dir.path()).err().unwrap());
    assert!(
        m.contains("attestation_type = none")
            && m.contains("sgx.remote_attestation = \"dcap\" in the manifest"),
        "{m}"
    );
    let dir = gramine("epid", &[9; 16], SGX_QUOTE);
    let m = reason(SgxPlatform::open(dir.path()).err().unwrap());
    assert!(m.contains("unsupported attestation type"), "{m}");
    let missing = tempfile::tempdir().unwrap();
    let m = reason(SgxPlatform::open(missing.path()).err().unwrap());
    assert!(m.contains("attestation_type"), "{m}");
}

#[test]
fn sgx_evidence_is_the_quote_over_the_report_data_written() {
    let dir = gramine("dcap", &[9; 16], SGX_QUOTE);
    let p = SgxPlatform::open(dir.path()).unwrap();
    let sample = evidence::sgx_report_body(SGX_QUOTE).unwrap();
    assert_eq!(p.measurement().kind, PlatformKind::Sgx);
    assert_eq!(p.measurement().value, sample.mr_enclave);
    assert_eq!(p.report(), &sample);

    let rd = sgx_sample_report_data();
    let ev = p.evidence(&rd).unwrap();
    assert_eq!(ev.kind, PlatformKind::Sgx);
    assert_eq!(ev.bytes, SGX_QUOTE);
    assert_eq!(fs::read(dir.path().join("user_report_data")).unwrap(), rd);

    // A quote over other data than was written is refused.
    let m = reason(p.evidence(&[3; 64]).unwrap_err());
    assert!(m.contains("does not carry the report data"), "{m}");
    assert_eq!(
        fs::read(dir.path().join("user_report_data")).unwrap(),
        [3; 64]
    );
}

#[test]
fn sgx_malformed_quote_is_refused_with_a_clear_error() {
    let cases: [(&[u8], &str); 4] = [
        (&SGX_QUOTE[..300], "truncated"),
        (b"", "too short"),
        (TDX_QUOTE, "version"),
        (
            &SGX_QUOTE[..SGX_QUOTE.len() - 1],
            "signature data runs past",
        ),
    ];
    for (quote, expected) in cases {
        let dir = gramine("dcap", &[9; 16], quote);
        let m = reason(SgxPlatform::open(dir.path()).err().unwrap());
        assert!(m.contains("quote") && m.contains(expected), "{m}");
    }
}

// --- TDX (configfs-tsm) ----------------------------------------------------------------------

/// A directory mimicking configfs-tsm's report root, with this process's entry pre-made as the
/// kernel would populate it on `mkdir`.
fn configfs(provider: &str, quote: &[u8]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let entry = tdx::entry_dir(dir.path());
    fs::create_dir(&entry).unwrap();
    fs::write(entry.join("provider"), provider).unwrap();
    fs::write(entry.join("inblob"), []).unwrap();
    fs::write(entry.join("outblob"), quote).unwrap();
    dir
}

#[test]
fn tdx_evidence_is_the_outblob_over_the_inblob_written() {
    let dir = configfs("tdx_guest\n", TDX_QUOTE);
    assert!(tdx::detect(dir.path()));
    let p = TdxPlatform::open(dir.path()).unwrap();
    let sample = evidence::td_report_body(TDX_QUOTE).unwrap();
    assert_eq!(p.kind(), PlatformKind::Tdx);
    assert_eq!(p.measurement().value, sample.mr_td);
    assert_eq!(p.report(), &sample);

    let rd = tdx_sample_report_data();
    let ev = p.evidence(&rd).unwrap();
    assert_eq!(
        (ev.kind, ev.bytes.as_slice()),
        (PlatformKind::Tdx, TDX_QUOTE)
    );
    let inblob = tdx::entry_dir(dir.path()).join("inblob");
    assert_eq!(fs::read(&inblob).unwrap(), rd);

    let m = reason(p.evidence(&[3; 64]).unwrap_err());
    assert!(m.contains("outblob") && m.contains("does not carry"), "{m}");
}

#[test]
fn tdx_has_no_sealing_key_and_says_why() {
    let dir = configfs("tdx_guest", TDX_QUOTE);
    let p = TdxPlatform::open(dir.path()).unwrap();
    let m = reason(p.sealing_key().err().unwrap());
    assert!(
        m.contains("dkeycache") && m.contains("no sealing key"),
        "{m}"
    );
}

#[test]
fn tdx_refuses_other_providers_and_malformed_quotes() {
    let dir = configfs("sev_guest", TDX_QUOTE);
    assert!(!tdx::detect(dir.path()));
    let m = reason(TdxPlatform::open(dir.path()).err().unwrap());
    assert!(m.contains("provider") && m.contains("not tdx_guest"), "{m}");

    for (quote, expected) in [(&TDX_QUOTE[..600], "truncated"), (SGX_QUOTE, "TEE type")] {
        let dir = configfs("tdx_guest", quote);
        let m = reason(TdxPlatform::open(dir.path()).err().unwrap());
        assert!(m.contains("outblob") && m.contains(expected), "{m}");
    }
}

#[test]
fn tdx_without_configfs_is_a_clear_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-root");
    assert!(!tdx::detect(&missing));
    let err = TdxPlatform::open(&missing).err().unwrap();
    assert!(matches!(err, Error::Io { .. }));
    assert!(reason(err).contains("no-such-root"));
    // The root exists but the kernel populated nothing: not configfs-tsm.
    let m = reason(TdxPlatform::open(dir.path()).err().unwrap());
    assert!(m.contains("provider"), "{m}");
    assert!(
        fs::read_dir(dir.path()).unwrap().next().is_none(),
        "the entry made is removed again"
    );
}

#[test]
fn sgx_is_detected_by_its_attestation_type_file() {
    let dir = gramine("dcap", &[9; 16], SGX_QUOTE);
    assert!(ehsm_tee::sgx::detect(dir.path()));
    assert!(!ehsm_tee::sgx::detect(Path::new(
        "/nonexistent-ehsm-attestation"
    )));
}
