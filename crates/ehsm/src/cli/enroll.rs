//! `ehsm enroll`: a new app, saved in the profile.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use super::conn::{Profile, Trust, save_profile};
use super::{CmdResult, ConnArgs, Session, output};

#[derive(clap::Args)]
#[command(
    after_help = "The profile (mode 0600) remembers the URL, the appid, the apikey and \
                        the --ca-cert path; later commands use it unless flags or EHSM_* \
                        variables say otherwise. It does not remember --insecure."
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

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
    let credentials = match &args.token {
        Some(token) => s.client.enroll_with_token(token).await?,
        None => s.client.enroll().await?,
    };
    let ca_cert = match &s.trust {
        Trust::CaCert(p) => Some(absolute(p)?),
        Trust::System | Trust::Insecure => None,
    };
    let profile = Profile {
        url: s.url.clone(),
        appid: credentials.appid.clone(),
        apikey: credentials.apikey.clone(),
        ca_cert,
    };
    save_profile(&path, &profile)?;
    output::line(format_args!("appid: {}", credentials.appid))?;
    if args.print_apikey {
        output::line(format_args!("apikey: {}", credentials.apikey))?;
    }
    output::line(format_args!("profile: {}", path.display()))?;
    if let Trust::Insecure = s.trust {
        eprintln!(
            "ehsm: note: the profile does not remember --insecure; pass it (or EHSM_INSECURE=1) \
             again, or better --ca-cert <data-dir>/tls-cert.pem"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The profile may be used from another directory.
fn absolute(path: &std::path::Path) -> anyhow::Result<PathBuf> {
    std::path::absolute(path).with_context(|| format!("cannot resolve the path {}", path.display()))
}
