//! `ehsm attest verify` on the real SGX sample quote (crates/ehsm-tee/tests/data/README.md).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MR_ENCLAVE: &str = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb";
/// Inside the sample collateral's validity (2025-06-19 to 2025-07-19).
const INSIDE: &str = "2025-06-20T00:00:00Z";

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../ehsm-tee/tests/data")
        .join(name)
}

fn attest_verify(quote: &Path, policy: Option<&Path>, now: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ehsm"));
    command.args(["attest", "verify", "--quote"]).arg(quote);
    command
        .arg("--collateral")
        .arg(data("sgx_quote_collateral.json"));
    command.args(["--now", now]);
    if let Some(policy) = policy {
        command.arg("--policy").arg(policy);
    }
    command.output().unwrap()
}

/// A policy pinning `mr_enclave` and accepting the sample's TCB status.
fn policy(dir: &Path, mr_enclave: &str) -> PathBuf {
    let path = dir.join("policy.toml");
    let text = format!(
        "accepted_tcb_statuses = [\"OK\", \"CONFIG_AND_SW_HARDENING_NEEDED\"]\n\
         [sgx]\nmr_enclave = [\"{mr_enclave}\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn stdout_json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn accepted_by_a_policy_pinning_its_mrenclave() {
    let dir = tempfile::tempdir().unwrap();
    // Upper case in the policy: hex is compared as bytes.
    let policy = policy(dir.path(), &MR_ENCLAVE.to_uppercase());
    let output = attest_verify(&data("sgx_quote"), Some(&policy), INSIDE);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["platform"], "sgx");
    assert_eq!(json["status"], "CONFIG_AND_SW_HARDENING_NEEDED");
    assert_eq!(json["status_code"], 0xA008);
    assert_eq!(json["tcb_status"], "ConfigurationAndSWHardeningNeeded");
    assert_eq!(json["mr_enclave"], MR_ENCLAVE);
    assert_eq!(json["report_data"].as_str().unwrap().len(), 128);
    assert_eq!(json["policy"], "ok");
}

#[test]
fn refused_with_a_wrong_mrenclave() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), &"00".repeat(32));
    let output = attest_verify(&data("sgx_quote"), Some(&policy), INSIDE);
    assert_eq!(output.status.code(), Some(1));
    let json = stdout_json(&output);
    let verdict = json["policy"].as_str().unwrap();
    assert!(
        verdict.starts_with(&format!("refused: MRENCLAVE {MR_ENCLAVE}")),
        "{verdict}"
    );
    assert!(
        stderr(&output).starts_with("ehsm: refused: MRENCLAVE"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn without_a_policy_only_ok_passes() {
    let output = attest_verify(&data("sgx_quote"), None, INSIDE);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout_json(&output)["policy"]
            .as_str()
            .unwrap()
            .starts_with("refused: TCB status")
    );
}

#[test]
fn refused_after_the_collateral_expires() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), MR_ENCLAVE);
    let output = attest_verify(&data("sgx_quote"), Some(&policy), "2025-08-01T00:00:00Z");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(
        message.starts_with("ehsm: error:") && message.contains("expired"),
        "{message}"
    );
}

#[test]
fn refused_for_a_corrupted_quote() {
    let dir = tempfile::tempdir().unwrap();
    let policy = policy(dir.path(), MR_ENCLAVE);
    let mut quote = std::fs::read(data("sgx_quote")).unwrap();
    quote[400] ^= 1; // in the report data
    let corrupted = dir.path().join("quote");
    std::fs::write(&corrupted, quote).unwrap();
    let output = attest_verify(&corrupted, Some(&policy), INSIDE);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("failed verification"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bad_usage_exits_2() {
    let output = attest_verify(&data("sgx_quote"), None, "yesterday");
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}

fn attest_show(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["attest", "show"])
        .args(args)
        // The flags, not the environment of whoever runs the tests, choose the platform.
        .env_remove("EHSM_TEE")
        .env_remove("EHSM_DATA_DIR")
        .env_remove("EHSM_ATTESTATION_ROOT")
        .output()
        .unwrap()
}

fn decode_base64(text: &serde_json::Value) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(text.as_str().unwrap())
        .unwrap()
}

/// "Hello, world!" padded with zero bytes: the report data of the sample SGX quote.
const SAMPLE_REPORT_DATA: &str = "48656c6c6f2c20776f726c6421";

#[test]
fn show_on_sim_prints_simulated_evidence_over_the_report_data() {
    let dir = tempfile::tempdir().unwrap();
    let output = attest_show(&[
        "--tee".as_ref(),
        "sim".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--report-data".as_ref(),
        "00ff01".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["platform"], "sim");
    assert_eq!(json["warning"], "simulated platform: NO SECURITY");
    assert!(stderr(&output).contains("NO SECURITY"));
    // "EHSM-SIM" four times.
    assert_eq!(json["measurement"], hex::encode(b"EHSM-SIM".repeat(4)));
    let mut expected = [0u8; 64];
    expected[..3].copy_from_slice(&[0x00, 0xff, 0x01]);
    assert_eq!(json["report_data"], hex::encode(expected));
    let evidence = ehsm_tee::sim::parse_evidence(&decode_base64(&json["evidence"])).unwrap();
    assert_eq!(evidence.report_data, expected);
    assert_eq!(&evidence.measurement, b"EHSM-SIMEHSM-SIMEHSM-SIMEHSM-SIM");
    // The sealing secret was created in the data directory, as `ehsm serve` would.
    assert!(dir.path().join(ehsm_tee::sim::SEALING_FILE).is_file());
}

#[test]
fn show_defaults_to_zero_report_data_and_needs_an_existing_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let output = attest_show(&[
        "--tee".as_ref(),
        "sim".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["report_data"], "00".repeat(64));
    let evidence = ehsm_tee::sim::parse_evidence(&decode_base64(&json["evidence"])).unwrap();
    assert_eq!(evidence.report_data, [0; 64]);

    let missing = dir.path().join("missing");
    let output = attest_show(&[
        "--tee".as_ref(),
        "sim".as_ref(),
        "--data-dir".as_ref(),
        missing.as_os_str(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(
        message.starts_with("ehsm: error:") && message.contains("does not exist"),
        "{message}"
    );
    assert!(!missing.exists(), "not created");
}

/// A directory with the files of Gramine's `/dev/attestation`, whose quote is the real sample.
fn gramine(dir: &Path) -> PathBuf {
    let root = dir.join("attestation");
    std::fs::create_dir_all(root.join("keys")).unwrap();
    std::fs::write(root.join("attestation_type"), "dcap\n").unwrap();
    std::fs::write(root.join("keys/_sgx_mrenclave"), [7; 16]).unwrap();
    std::fs::write(root.join("user_report_data"), []).unwrap();
    std::fs::copy(data("sgx_quote"), root.join("quote")).unwrap();
    root
}

fn show_sgx(root: &Path, data_dir: &Path, report_data: &str) -> Output {
    attest_show(&[
        "--tee".as_ref(),
        "sgx".as_ref(),
        "--attestation-root".as_ref(),
        root.as_os_str(),
        "--data-dir".as_ref(),
        data_dir.as_os_str(),
        "--report-data".as_ref(),
        report_data.as_ref(),
    ])
}

#[test]
fn show_on_sgx_prints_the_quote_and_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let root = gramine(dir.path());
    let output = show_sgx(&root, &dir.path().join("no-data-dir"), SAMPLE_REPORT_DATA);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let json = stdout_json(&output);
    assert_eq!(json["platform"], "sgx");
    assert_eq!(json["measurement"], MR_ENCLAVE);
    assert_eq!(json["mr_enclave"], MR_ENCLAVE);
    assert_eq!(json["mr_signer"].as_str().unwrap().len(), 64);
    assert!(json["isv_prod_id"].is_u64() && json["isv_svn"].is_u64());
    assert!(json.get("warning").is_none());
    let mut expected = [0u8; 64];
    expected[..13].copy_from_slice(b"Hello, world!");
    assert_eq!(json["report_data"], hex::encode(expected));
    // The evidence is the quote, unchanged, and the report data was written for Gramine.
    let quote = std::fs::read(data("sgx_quote")).unwrap();
    assert_eq!(decode_base64(&json["evidence"]), quote);
    assert_eq!(
        std::fs::read(root.join("user_report_data")).unwrap(),
        expected
    );
    // Nothing on SGX uses the data directory.
    assert!(!dir.path().join("no-data-dir").exists());
}

#[test]
fn show_on_sgx_refuses_a_quote_without_the_report_data() {
    let dir = tempfile::tempdir().unwrap();
    let root = gramine(dir.path());
    let output = show_sgx(&root, dir.path(), "ff");
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(
        message.contains("does not carry the report data"),
        "{message}"
    );
}

#[test]
fn show_on_sgx_without_remote_attestation_says_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = gramine(dir.path());
    std::fs::write(root.join("attestation_type"), "none").unwrap();
    let output = show_sgx(&root, dir.path(), SAMPLE_REPORT_DATA);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(
        message.contains("sgx.remote_attestation = \"dcap\""),
        "{message}"
    );
}

#[test]
fn show_refuses_report_data_longer_than_64_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let long = "00".repeat(65);
    let output = attest_show(&[
        "--tee".as_ref(),
        "sim".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--report-data".as_ref(),
        long.as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let message = stderr(&output);
    assert!(message.contains("at most 64 bytes"), "{message}");
    // Exactly 64 bytes is fine; so is upper-case hex. Odd digits are refused.
    let full = "AB".repeat(64);
    let output = attest_show(&[
        "--tee".as_ref(),
        "sim".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--report-data".as_ref(),
        full.as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert_eq!(stdout_json(&output)["report_data"], "ab".repeat(64));
    let output = attest_show(&[
        "--tee".as_ref(),
        "sim".as_ref(),
        "--data-dir".as_ref(),
        dir.path().as_os_str(),
        "--report-data".as_ref(),
        "abc".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("not hex"), "{}", stderr(&output));
}
