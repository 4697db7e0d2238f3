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
