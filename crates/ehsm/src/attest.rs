//! `ehsm attest`: attestation tools.
//!
//! `verify` checks a DCAP quote offline against collateral the operator fetched (from a PCCS),
//! and optionally against a key-release policy: the same check the key server makes before it
//! releases a key, so a policy can be tried on a captured quote before it is deployed.
//!
//! `show` opens this machine's platform as `ehsm serve` does and prints its measurement and
//! fresh evidence over given report data: what an operator pins in a policy, and a quote to try
//! `verify` on.
//!
//! `server` attests a running KMS as `ehsm enroll --policy` does before it enrolls
//! ([`attest_server`]): its evidence over a fresh challenge, bound to the TLS key of the
//! connection, checked against a policy. For operators, scripts and health checks.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::SystemTime;

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use clap::Subcommand;
use ehsm_client::Client;
use ehsm_kms::server;
use ehsm_tee::dcap::{self, Collateral, Identity, Status, VerifiedQuote};
use ehsm_tee::pccs::PccsCollateral;
use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{self, CollateralSource, PeerEvidence, PeerIdentity, Verifier};
use ehsm_tee::{PlatformKind, evidence, sim};
use serde_json::{Map, Value, json};

use crate::cli::{Failure, Session, output};
use crate::domain_roles::read_policy;
use crate::platform_args::PlatformArgs;

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
    /// Show this machine's platform: open it as 'ehsm serve' does, and print its measurement
    /// and fresh evidence (a DCAP quote on SGX and TDX) over the given report data, as one JSON
    /// object. Run it where the node runs (inside the enclave on SGX) to learn the values to
    /// pin in a policy.
    Show(ShowArgs),
    /// Attest a running ehsm server, as 'ehsm enroll --policy' does before it enrolls: ask for
    /// its evidence over a fresh challenge, check that it binds the TLS key of this connection,
    /// verify it and apply the policy. Prints the verified identity and the key's SHA-256 as
    /// one JSON object.
    #[command(
        after_help = "Exit codes: 0 the server passed every check; 1 a check failed or the \
                      server could not be asked (stderr says which); 2 usage error."
    )]
    Server(ServerArgs),
}

#[derive(clap::Args)]
struct ServerArgs {
    /// The server's base URL, e.g. https://kms.example:9000 (https only: plain HTTP has no key
    /// for the evidence to bind).
    #[arg(long, value_name = "URL")]
    url: String,
    /// The policy (TOML) the server's evidence must satisfy: measurements, signer, TCB
    /// statuses, allow_simulated.
    #[arg(long, value_name = "FILE")]
    policy: PathBuf,
    /// Trust this certificate for the connection (as client commands take it). Not needed for
    /// the check itself: the binding authenticates the server's key.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    ca_cert: Option<PathBuf>,
    /// Skip the certificate check of the connection; the binding check still authenticates
    /// the key.
    #[arg(long)]
    insecure: bool,
    #[command(flatten)]
    collateral: ServerCollateralArgs,
}

/// Where the collateral of a server's SGX or TDX quote comes from ('ehsm attest server',
/// 'ehsm enroll --policy').
#[derive(clap::Args)]
pub(crate) struct ServerCollateralArgs {
    /// Intel's collateral for the server's SGX or TDX quote: a QuoteCollateralV3 JSON file, or
    /// a directory of <FMSPC>.json files. Or --pccs-url. Without either only simulated evidence
    /// can pass, and only under allow_simulated.
    #[arg(long, value_name = "FILE|DIR", requires = "policy")]
    collateral: Option<PathBuf>,
    /// A PCCS (or Intel PCS) base URL to fetch the quote's collateral from, instead of
    /// --collateral.
    #[arg(
        long,
        value_name = "URL",
        requires = "policy",
        conflicts_with = "collateral"
    )]
    pccs_url: Option<String>,
}

#[derive(clap::Args)]
struct ShowArgs {
    #[command(flatten)]
    platform: PlatformArgs,
    /// The node's data directory (used by sim only, whose simulated sealing secret lives there).
    /// It must exist; on sim, the secret file is created in it if missing, as 'ehsm serve'
    /// would on first start.
    #[arg(
        long,
        env = "EHSM_DATA_DIR",
        value_name = "DIR",
        default_value = "./ehsm-data"
    )]
    data_dir: PathBuf,
    /// The report data the evidence binds, in hex: up to 64 bytes (128 hex digits), padded with
    /// zero bytes to 64 [default: 64 zero bytes].
    #[arg(long, value_name = "HEX", value_parser = parse_report_data)]
    report_data: Option<ReportData>,
}

/// 64 bytes of report data.
#[derive(Clone, Copy)]
struct ReportData([u8; 64]);

/// Hex of at most 64 bytes, zero-padded to 64.
fn parse_report_data(text: &str) -> Result<ReportData, String> {
    let bytes = hex::decode(text.trim()).map_err(|e| {
        format!("not hex ({e}): give up to 128 hex digits, e.g. 48656c6c6f for \"Hello\"")
    })?;
    let mut data = [0u8; 64];
    match data.get_mut(..bytes.len()) {
        Some(prefix) => prefix.copy_from_slice(&bytes),
        None => {
            return Err(format!(
                "{} bytes is too long: report data is at most 64 bytes (128 hex digits)",
                bytes.len()
            ));
        }
    }
    Ok(ReportData(data))
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
        Command::Show(args) => show(&args),
        Command::Server(args) => return crate::cli::block_on(server_check(args)),
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
    let policy = args
        .policy
        .as_deref()
        .map(crate::domain_roles::read_policy)
        .transpose()?;
    let now = args.now.unwrap_or_else(SystemTime::now);
    let verified = dcap::verify(&quote, &collateral, now).context("the quote was not verified")?;
    let verdict = judge(policy.as_deref(), &verified);
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

/// What [`show`] says on the simulated platform, in its JSON and on stderr.
const SIM_WARNING: &str = "simulated platform: NO SECURITY";

fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let tee = match args.platform.tee() {
        server::Tee::Auto => server::detect_tee(),
        chosen => chosen,
    };
    if matches!(tee, server::Tee::Sim) && !args.data_dir.is_dir() {
        anyhow::bail!(
            "the data directory {} does not exist: give the node's --data-dir (the simulated \
             platform's sealing secret lives there; 'ehsm serve' creates it)",
            args.data_dir.display()
        );
    }
    // Evidence only: a TDX node's evidence is what it shows its domain, though it cannot seal.
    let platform = server::open_platform(&tee, Some(&args.data_dir), server::Needs::Evidence)?;
    let report_data = args.report_data.map_or([0; 64], |r| r.0);
    let evidence = platform
        .evidence(&report_data)
        .context("the platform did not produce evidence")?;
    let mut fields: Vec<(&str, Value)> = vec![
        ("platform", json!(platform.kind().to_string())),
        (
            "measurement",
            json!(hex::encode(&platform.measurement().value)),
        ),
        (
            "evidence",
            json!(base64::engine::general_purpose::STANDARD.encode(&evidence.bytes)),
        ),
        ("report_data", json!(hex::encode(report_data))),
    ];
    let bad = |reason| anyhow::anyhow!("the platform's own evidence is malformed: {reason}");
    match evidence.kind {
        PlatformKind::Sim => {
            sim::parse_evidence(&evidence.bytes)?;
            fields.push(("warning", json!(SIM_WARNING)));
            eprintln!("ehsm: warning: {SIM_WARNING}: its evidence proves nothing");
        }
        PlatformKind::Sgx => {
            let sgx = evidence::sgx_report_body(&evidence.bytes).map_err(bad)?;
            fields.extend([
                ("mr_enclave", json!(hex::encode(sgx.mr_enclave))),
                ("mr_signer", json!(hex::encode(sgx.mr_signer))),
                ("isv_prod_id", json!(sgx.isv_prod_id)),
                ("isv_svn", json!(sgx.isv_svn)),
            ]);
        }
        PlatformKind::Tdx => {
            let tdx = evidence::td_report_body(&evidence.bytes).map_err(bad)?;
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
    let report: Map<String, Value> = fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    output::line(Value::Object(report))?;
    Ok(ExitCode::SUCCESS)
}

async fn server_check(args: ServerArgs) -> Result<ExitCode, String> {
    let session =
        Session::anonymous(args.url, args.insecure, args.ca_cert).map_err(|e| format!("{e:#}"))?;
    let identity = attest_server(&session.client, &args.policy, &args.collateral)
        .await
        .map_err(|f| session.explain(&f))?;
    warn_if_simulated(&identity);
    output::line(Value::Object(describe_peer(&identity))).map_err(|e| format!("{e:#}"))?;
    Ok(ExitCode::SUCCESS)
}

/// Attests the server `client` talks to against the policy file `policy`: its evidence over a
/// fresh challenge, bound to this connection's TLS key, verified with the collateral that
/// `collateral` names. The refusal names the check that failed.
pub(crate) async fn attest_server(
    client: &Client,
    policy: &Path,
    collateral: &ServerCollateralArgs,
) -> Result<PeerIdentity, Failure> {
    let policy = read_policy(policy)?;
    let pccs = collateral
        .pccs_url
        .as_deref()
        .map(PccsCollateral::new)
        .transpose()
        .map_err(|e| anyhow!("--pccs-url: {e}"))?;
    let source: Arc<dyn CollateralSource> = match &pccs {
        Some(pccs) => Arc::new(pccs.clone()),
        None => ratls::configured_collateral(collateral.collateral.as_deref(), None)
            .map_err(anyhow::Error::msg)?,
    };
    let answer = client.server_evidence().await?;
    // The PCCS source answers from its cache only (a server fetches in the background); a
    // one-shot command fetches the quote's collateral first, once the answer is bound.
    let evidence = answer.evidence()?;
    if let Some(pccs) = &pccs
        && evidence.kind != PlatformKind::Sim
    {
        pccs.fetch(&evidence.bytes, SystemTime::now())
            .await
            .map_err(|e| {
                anyhow!("the server's attestation failed: collateral check failed: {e}")
            })?;
    }
    Ok(answer.check(&Verifier::new(policy, source))?)
}

/// On stderr: what a simulated server's identity is worth.
pub(crate) fn warn_if_simulated(identity: &PeerIdentity) {
    if let PeerEvidence::Simulated { .. } = identity.evidence {
        eprintln!(
            "ehsm: warning: the server runs on the {SIM_WARNING}; its evidence proves nothing \
             (the policy allows simulated evidence)"
        );
    }
}

/// A verified server as JSON: the fields of 'ehsm attest verify' for a quote (without
/// `tcb_status`, which only the collateral's own wording has), the measurement for simulated
/// evidence, and `key_sha256`, the pinned TLS key.
pub(crate) fn describe_peer(identity: &PeerIdentity) -> Map<String, Value> {
    let mut fields = match &identity.evidence {
        PeerEvidence::Quote {
            identity,
            status,
            advisory_ids,
        } => describe_identity(identity, *status, advisory_ids),
        PeerEvidence::Simulated { measurement } => [
            ("platform", json!(PlatformKind::Sim.to_string())),
            ("measurement", json!(hex::encode(measurement))),
            ("warning", json!(SIM_WARNING)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    };
    fields.insert(
        "key_sha256".to_owned(),
        json!(hex::encode(identity.key_sha256)),
    );
    fields
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    output::read_input(Some(path), MAX_INPUT, "is it really a quote or collateral?")
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
    let mut fields = describe_identity(
        verified.identity(),
        verified.status(),
        verified.advisory_ids(),
    );
    fields.insert("tcb_status".to_owned(), json!(verified.tcb_status()));
    fields
}

/// A verified quote's identity and status as JSON fields.
fn describe_identity(
    identity: &Identity,
    status: Status,
    advisory_ids: &[String],
) -> Map<String, Value> {
    let mut fields: Vec<(&str, Value)> = vec![
        ("platform", json!(identity.platform())),
        ("status", json!(status.name())),
        ("status_code", json!(status.as_u32())),
        ("advisory_ids", json!(advisory_ids)),
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
