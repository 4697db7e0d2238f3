//! Key-release policies: every rule, its refusal message, and bad policy files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ehsm_tee::dcap::{Identity, SgxIdentity, Status, TdxIdentity};
use ehsm_tee::policy::{Policy, PolicyError, PolicyLoadError};

const ENCLAVE: [u8; 32] = [0x70; 32];
const SIGNER: [u8; 32] = [0xc3; 32];
const MRTD: [u8; 48] = [0x11; 48];

fn sgx(isv_prod_id: u16, isv_svn: u16) -> Identity {
    Identity::Sgx(SgxIdentity {
        mr_enclave: ENCLAVE,
        mr_signer: SIGNER,
        isv_prod_id,
        isv_svn,
        report_data: [0; 64],
    })
}

fn tdx(rtmr2: u8) -> Identity {
    let mut rtmr = [[0u8; 48]; 4];
    rtmr[2] = [rtmr2; 48];
    Identity::Tdx(TdxIdentity {
        mr_td: MRTD,
        rtmr,
        report_data: [0; 64],
    })
}

fn policy(text: &str) -> Policy {
    Policy::from_toml(text).unwrap()
}

fn hex(byte: u8, len: usize) -> String {
    format!("{byte:02x}").repeat(len)
}

fn refusal(policy: &Policy, identity: &Identity, status: Status) -> String {
    policy.check(identity, status).unwrap_err().to_string()
}

#[test]
fn mr_enclave_allowlist() {
    let p = policy(&format!("[sgx]\nmr_enclave = [\"{}\"]", hex(0x70, 32)));
    p.check(&sgx(0, 0), Status::Ok).unwrap();
    let other = policy(&format!("[sgx]\nmr_enclave = [\"{}\"]", hex(0x71, 32)));
    let message = refusal(&other, &sgx(0, 0), Status::Ok);
    assert_eq!(
        message,
        format!(
            "MRENCLAVE {} is not on the policy's allowlist",
            hex(0x70, 32)
        )
    );
}

#[test]
fn hex_is_case_insensitive() {
    let p = policy(&format!(
        "[sgx]\nmr_signer = [\"{}\"]",
        hex(0xc3, 32).to_uppercase()
    ));
    p.check(&sgx(0, 0), Status::Ok).unwrap();
}

#[test]
fn mr_signer_allowlist() {
    let p = policy(&format!(
        "[sgx]\nmr_signer = [\"{}\", \"{}\"]",
        hex(1, 32),
        hex(2, 32)
    ));
    assert!(matches!(
        p.check(&sgx(0, 0), Status::Ok),
        Err(PolicyError::NotAllowed {
            what: "MRSIGNER",
            ..
        })
    ));
}

#[test]
fn both_pins_must_match() {
    let p = policy(&format!(
        "[sgx]\nmr_enclave = [\"{}\"]\nmr_signer = [\"{}\"]",
        hex(0x70, 32),
        hex(9, 32)
    ));
    assert!(refusal(&p, &sgx(0, 0), Status::Ok).starts_with("MRSIGNER"));
}

#[test]
fn empty_sections_accept_nothing() {
    let p = policy("");
    assert_eq!(
        refusal(&p, &sgx(0, 0), Status::Ok),
        "the policy accepts no SGX quote: it lists no MRENCLAVE or MRSIGNER"
    );
    assert!(matches!(
        p.check(&tdx(0), Status::Ok),
        Err(PolicyError::NoneAccepted {
            platform: "TDX",
            ..
        })
    ));
    // An SGX allowlist does not admit TDX quotes, and the reverse.
    let p = policy(&format!("[sgx]\nmr_enclave = [\"{}\"]", hex(0x70, 32)));
    assert!(matches!(
        p.check(&tdx(0), Status::Ok),
        Err(PolicyError::NoneAccepted { .. })
    ));
}

#[test]
fn product_ids() {
    let p = policy(&format!(
        "[sgx]\nmr_signer = [\"{}\"]\nisv_prod_id = [1, 2]",
        hex(0xc3, 32)
    ));
    p.check(&sgx(2, 0), Status::Ok).unwrap();
    assert_eq!(
        refusal(&p, &sgx(3, 0), Status::Ok),
        "ISV product id 3 is not on the policy's allowlist"
    );
}

#[test]
fn minimum_svn_global_and_per_product() {
    let p = policy(&format!(
        "[sgx]\nmr_signer = [\"{}\"]\nmin_isv_svn = 2\n[sgx.min_isv_svn_by_prod_id]\n1 = 5\n3 = 1",
        hex(0xc3, 32)
    ));
    p.check(&sgx(0, 2), Status::Ok).unwrap();
    assert!(matches!(
        p.check(&sgx(0, 1), Status::Ok),
        Err(PolicyError::SvnTooLow { min: 2, .. })
    ));
    p.check(&sgx(1, 5), Status::Ok).unwrap();
    assert_eq!(
        refusal(&p, &sgx(1, 4), Status::Ok),
        "ISV SVN 4 of product 1 is below the policy's minimum 5"
    );
    // A per-product minimum below the global one does not lower it.
    assert!(matches!(
        p.check(&sgx(3, 1), Status::Ok),
        Err(PolicyError::SvnTooLow { min: 2, .. })
    ));
}

#[test]
fn tcb_statuses() {
    let pin = format!("[sgx]\nmr_enclave = [\"{}\"]", hex(0x70, 32));
    let strict = policy(&pin);
    assert_eq!(
        refusal(&strict, &sgx(0, 0), Status::SwHardeningNeeded),
        "TCB status SW_HARDENING_NEEDED is not among the policy's accepted_tcb_statuses"
    );
    let lenient = policy(&format!(
        "accepted_tcb_statuses = [\"OK\", \"sw_hardening_needed\"]\n{pin}"
    ));
    lenient
        .check(&sgx(0, 0), Status::SwHardeningNeeded)
        .unwrap();
    assert!(matches!(
        lenient.check(&sgx(0, 0), Status::OutOfDate),
        Err(PolicyError::TcbStatus(Status::OutOfDate))
    ));
}

#[test]
fn mr_td_and_rtmr_pins() {
    let p = policy(&format!("[tdx]\nmr_td = [\"{}\"]", hex(0x11, 48)));
    p.check(&tdx(7), Status::Ok).unwrap();
    let other = policy(&format!("[tdx]\nmr_td = [\"{}\"]", hex(0x12, 48)));
    assert!(
        refusal(&other, &tdx(7), Status::Ok).starts_with(&format!("MRTD {} is not", hex(0x11, 48)))
    );
    let pinned = policy(&format!(
        "[tdx]\nmr_td = [\"{}\"]\nrtmr2 = [\"{}\"]",
        hex(0x11, 48),
        hex(7, 48)
    ));
    pinned.check(&tdx(7), Status::Ok).unwrap();
    assert!(refusal(&pinned, &tdx(8), Status::Ok).starts_with("RTMR2 "));
}

#[test]
fn simulated_evidence() {
    let refused = policy("");
    assert_eq!(
        refused.check_simulated(b"m"),
        Err(PolicyError::SimulatedNotAllowed)
    );
    let any = policy("allow_simulated = true");
    any.check_simulated(b"anything").unwrap();
    let listed = policy("allow_simulated = true\nsimulated_measurements = [\"6d31\"]");
    listed.check_simulated(b"m1").unwrap();
    assert_eq!(
        listed.check_simulated(b"m2").unwrap_err().to_string(),
        "simulated measurement 6d32 is not on the policy's allowlist"
    );
}

fn load_error(text: &str) -> PolicyLoadError {
    Policy::from_toml(text).unwrap_err()
}

#[test]
fn bad_policy_files_are_refused() {
    assert!(matches!(load_error("not toml ["), PolicyLoadError::Toml(_)));
    // Unknown fields, at the top and in sections: a misspelt rule must not be ignored.
    assert!(
        load_error("allow_simulate = true")
            .to_string()
            .contains("allow_simulate")
    );
    assert!(
        load_error("[sgx]\nmr_enclaves = []")
            .to_string()
            .contains("mr_enclaves")
    );
    assert!(
        load_error("[tdx]\nrtmr4 = []")
            .to_string()
            .contains("rtmr4")
    );
    assert!(load_error("[sev]").to_string().contains("sev"));
    // Wrong types.
    assert!(matches!(
        load_error("[sgx]\nmin_isv_svn = -1"),
        PolicyLoadError::Toml(_)
    ));
    assert!(matches!(
        load_error("[sgx]\nmr_enclave = \"70\""),
        PolicyLoadError::Toml(_)
    ));
}

#[test]
fn bad_values_name_their_field() {
    let err = load_error("[sgx]\nmr_enclave = [\"xyz\"]");
    assert!(
        matches!(&err, PolicyLoadError::Value { field, .. } if field == "sgx.mr_enclave"),
        "{err}"
    );
    let err = load_error(&format!("[sgx]\nmr_signer = [\"{}\"]", hex(1, 31)));
    assert!(
        err.to_string().contains("has 31 bytes; expected 32"),
        "{err}"
    );
    let err = load_error(&format!("[tdx]\nmr_td = [\"{}\"]", hex(1, 32)));
    assert!(err.to_string().contains("tdx.mr_td"), "{err}");
    let err = load_error("accepted_tcb_statuses = [\"UpToDate\"]");
    assert!(err.to_string().contains("unknown TCB status"), "{err}");
    let err = load_error("accepted_tcb_statuses = [\"REVOKED\"]");
    assert!(err.to_string().contains("cannot be accepted"), "{err}");
    let err = load_error("[sgx.min_isv_svn_by_prod_id]\nx = 1");
    assert!(err.to_string().contains("not a product id"), "{err}");
}
