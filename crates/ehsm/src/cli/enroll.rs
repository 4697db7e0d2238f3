//! `ehsm enroll`: a new app, saved in the profile; with `--policy`, only after the server's
//! attestation passed, and then pinned to the attested key.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use serde_json::Value;

use super::conn::{Profile, Trust, save_profile};
use super::{CmdResult, ConnArgs, Failure, Session, output};
use crate::attest::{self, ServerCollateralArgs};

#[derive(clap::Args)]
#[command(
    after_help = "The profile (mode 0600) remembers the URL, the appid, the apikey and \
                        the --ca-cert path; later commands use it unless flags or EHSM_* \
                        variables say otherwise. It does not remember --insecure.\n\
                        With --policy, the server is attested first (its evidence, bound to \
                        this connection's TLS key, checked against the policy); on any failure \
                        nothing is enrolled and no profile is written. The profile then pins \
                        the attested key instead of --ca-cert, and records the verified \
                        identity; later commands refuse a server whose key changed."
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// Attest the server before enrolling: the policy (TOML) its evidence must satisfy
    /// (measurements, signer, TCB statuses, allow_simulated). The profile then pins the
    /// server's attested TLS key
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,

    #[command(flatten)]
    collateral: ServerCollateralArgs,

    /// The operator's enrollment token, for a server that requires one ('ehsm serve' prints it
    /// at first start; needed by default when the server listens beyond loopback)
    #[arg(
        long,
        env = "EHSM_ENROLL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Replace an existing profile. Its app's keys stay on the server, but you lose its apikey
    /// unless you saved it elsewhere
    #[arg(long)]
    force: bool,

    /// Also print the apikey (it is always saved in the profile)
    #[arg(long)]
    print_apikey: bool,
}

pub(crate) async fn run(s: &Session, args: &Args) -> CmdResult {
    let Some(path) = s.profile_path.clone() else {
        fail!("HOME is not set, so there is no default profile: pass --profile FILE");
    };
    if !args.force && path.exists() {
        fail!(
            "the profile {} already exists; enrolling again would replace its apikey and lose \
             access to its keys: pass --force to replace it, or --profile NEWFILE",
            path.display()
        );
    }
    let attested = match &args.policy {
        Some(policy) => Some(
            attest::attest_server(&s.client, policy, &args.collateral)
                .await
                .map_err(|f| not_enrolled(s, &f))?,
        ),
        None => None,
    };
    // After attestation, only the attested key: the API key is issued on a session that ends
    // in the attested code, whatever the CA check of the first connection was.
    let client = match &attested {
        Some(identity) => s.pinned_client(identity.key_sha256)?,
        None => s.client.clone(),
    };
    let credentials = match &args.token {
        Some(token) => client.enroll_with_token(token).await?,
        None => client.enroll().await?,
    };
    let ca_cert = match (&s.trust, &attested) {
        (Trust::CaCert(p), None) => Some(absolute(p)?),
        _ => None,
    };
    let profile = Profile {
        url: s.url.clone(),
        appid: credentials.appid.clone(),
        apikey: credentials.apikey.clone(),
        ca_cert,
        server_key_sha256: attested.as_ref().map(|a| hex::encode(a.key_sha256)),
        attested: attested
            .as_ref()
            .map(|a| Value::Object(attest::describe_peer(a))),
    };
    save_profile(&path, &profile)?;
    output::line(format_args!("appid: {}", credentials.appid))?;
    if args.print_apikey {
        output::line(format_args!("apikey: {}", credentials.apikey))?;
    }
    if let Some(identity) = &attested {
        output::line(format_args!("attested: {identity}"))?;
        attest::warn_if_simulated(identity);
    }
    output::line(format_args!("profile: {}", path.display()))?;
    if let (Trust::Insecure, None) = (&s.trust, &attested) {
        eprintln!(
            "ehsm: note: the profile does not remember --insecure; pass it (or EHSM_INSECURE=1) \
             again, or better --ca-cert <data-dir>/tls-cert.pem"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// A failed attestation, saying that nothing happened because of it.
fn not_enrolled(s: &Session, failure: &Failure) -> Failure {
    Failure::Local(anyhow!(
        "{}; not enrolled: no profile was written",
        s.explain(failure)
    ))
}

/// The profile may be used from another directory.
fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve the path {}", path.display()))
}
