//! `ehsm attest`: attestation tools that need no server.
//!
//! `verify` checks a DCAP quote offline against collateral the operator fetched (from a PCCS),
//! and optionally against a key-release policy: the same check the key server makes before it
//! releases a key, so a policy can be tried on a captured quote before it is deployed.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use clap::Subcommand;
use ehsm_tee::dcap::{self, Collateral, Identity, Status, VerifiedQuote};
use ehsm_tee::policy::Policy;
use serde_json::{Map, Value, json};

use crate::cli::output;

/// Quotes are a few kilobytes and collateral tens of kilobytes; anything far larger is not one.
const MAX_INPUT: usize = 1 << 20;

#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Verify an SGX or TDX DCAP quote offline against its collateral, and optionally a
    /// key-release policy. Prints one JSON object; exits 0 only if the quote verifies and is
    /// accepted (by the policy, or with TCB status OK when there is none).
    Verify(VerifyArgs),
}

#[derive(clap::Args)]
struct VerifyArgs {
    /// The raw quote, in binary (as read from Gramine's /dev/attestation/quote or configfs-tsm).
    #[arg(long, value_name = "FILE")]
    quote: PathBuf,
    /// The collateral: JSON in dcap-qvl's QuoteCollateralV3 layout, as a PCCS client writes it.
    #[arg(long, value_name = "FILE")]
    collateral: PathBuf,
    /// A key-release policy (TOML): allowed measurements and accepted TCB statuses.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// The time of verification, e.g. 2025-06-20T00:00:00Z (default: now). The collateral must
    /// be valid at that time.
    #[arg(long, value_name = "RFC3339", value_parser = dcap::parse_rfc3339)]
    now: Option<SystemTime>,
}

/// Runs an `ehsm attest` command and reports its failure, if any.
pub(crate) fn run(args: Args) -> ExitCode {
    let result = match args.command {
        Command::Verify(args) => verify(&args),
    };
    result.unwrap_or_else(|err| {
        eprintln!("ehsm: error: {err:#}");
        ExitCode::FAILURE
    })
}

fn verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    let quote = read(&args.quote)?;
    let collateral = Collateral::from_json(&read(&args.collateral)?)
        .with_context(|| format!("cannot use {}", args.collateral.display()))?;
    let policy = args.policy.as_deref().map(load_policy).transpose()?;
    let now = args.now.unwrap_or_else(SystemTime::now);
    let verified = dcap::verify(&quote, &collateral, now).context("the quote was not verified")?;
    let verdict = judge(policy.as_ref(), &verified);
    let mut report = describe(&verified);
    let shown = match &verdict {
        Ok(()) if policy.is_some() => "ok".to_owned(),
        Ok(()) => "none".to_owned(),
        Err(why) => format!("refused: {why}"),
    };
    report.insert("policy".to_owned(), Value::String(shown));
    output::line(Value::Object(report))?;
    Ok(match verdict {
        Ok(()) => ExitCode::SUCCESS,
        Err(why) => {
            eprintln!("ehsm: refused: {why}");
            ExitCode::FAILURE
        }
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    output::read_input(Some(path), MAX_INPUT, "is it really a quote or collateral?")
}

fn load_policy(path: &Path) -> anyhow::Result<Policy> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    Policy::from_toml(&text).with_context(|| format!("cannot use the policy {}", path.display()))
}

/// The policy's verdict; without one, only a fully up-to-date platform passes.
fn judge(policy: Option<&Policy>, verified: &VerifiedQuote) -> Result<(), String> {
    match policy {
        Some(policy) => policy
            .check(verified.identity(), verified.status())
            .map_err(|e| e.to_string()),
        None if verified.status() == Status::Ok => Ok(()),
        None => Err(format!(
            "TCB status {} is not OK; without --policy only OK is accepted (a policy's \
             accepted_tcb_statuses can accept more)",
            verified.status()
        )),
    }
}

/// The verified quote as JSON fields, measurements in lowercase hex.
fn describe(verified: &VerifiedQuote) -> Map<String, Value> {
    let identity = verified.identity();
    let mut fields: Vec<(&str, Value)> = vec![
        ("platform", json!(identity.platform())),
        ("status", json!(verified.status().name())),
        ("status_code", json!(verified.status().as_u32())),
        ("tcb_status", json!(verified.tcb_status())),
        ("advisory_ids", json!(verified.advisory_ids())),
    ];
    match identity {
        Identity::Sgx(sgx) => fields.extend([
            ("mr_enclave", json!(hex::encode(sgx.mr_enclave))),
            ("mr_signer", json!(hex::encode(sgx.mr_signer))),
            ("isv_prod_id", json!(sgx.isv_prod_id)),
            ("isv_svn", json!(sgx.isv_svn)),
        ]),
        Identity::Tdx(tdx) => {
            fields.push(("mr_td", json!(hex::encode(tdx.mr_td))));
            let names = ["rtmr0", "rtmr1", "rtmr2", "rtmr3"];
            fields.extend(
                names
                    .into_iter()
                    .zip(&tdx.rtmr)
                    .map(|(n, r)| (n, json!(hex::encode(r)))),
            );
        }
    }
    fields.push(("report_data", json!(hex::encode(identity.report_data()))));
    fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
