//! `ehsm dkeyserver` and `ehsm dkeycache`: the two roles that give the nodes of a domain their
//! domain keys over RA-TLS (see `ehsm_domain` and docs/domain.md).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use ehsm_domain::channel::{Endpoint, Tls};
use ehsm_domain::keyfile::{Custody, KeyFile};
use ehsm_domain::{cache, keyserver, rotation};
use ehsm_kms::server::Needs;
use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{self, Verifier};

use crate::cli::output;
use crate::domain_cmd;
use crate::platform_args::{self, PlatformArgs};

/// `ehsm dkeyserver`: run a key server, or one of its maintenance commands.
#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct KeyServerArgs {
    #[command(subcommand)]
    command: Option<KeyServerCommand>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Subcommand)]
enum KeyServerCommand {
    /// Add a new domain-key version to the root's sealed keys. The running root serves it within
    /// seconds; each hop below it (worker, dkeycache, node) asks every 10 s, so nodes wrap new
    /// keys with it within about 22 s (32 s through a worker), and a background job of the
    /// nodes re-wraps every stored key blob and API key to it. Old versions stay, so nothing
    /// stops working. Take a new backup afterwards: an older one lacks the new version.
    Rotate(CustodyArgs),
    #[command(flatten)]
    Backup(domain_cmd::Command),
}

/// Which role a key server plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum RoleArg {
    /// Holds the domain keys in its data directory.
    Root,
    /// Takes them from --upstream and serves them too.
    Worker,
}

#[derive(clap::Args)]
struct RunArgs {
    /// root or worker.
    #[arg(long, env = "EHSM_DKEYSERVER_ROLE", value_enum, required = true)]
    role: Option<RoleArg>,
    /// The root (or another worker) a worker takes the domain keys from, as HOST:PORT.
    #[arg(long, env = "EHSM_DKEYSERVER_UPSTREAM", value_name = "HOST:PORT")]
    upstream: Option<String>,
    /// Where to listen.
    #[arg(long, env = "EHSM_DKEYSERVER_LISTEN", default_value = "0.0.0.0:8888")]
    listen: SocketAddr,
    /// The policy (TOML) that peers' RA-TLS evidence must satisfy to receive the domain keys
    /// (dkeycaches, workers) or to give them (a worker's upstream).
    #[arg(
        long,
        env = "EHSM_DKEYSERVER_POLICY",
        value_name = "FILE",
        required = true
    )]
    policy: Option<PathBuf>,
    /// Root only: create a NEW, empty domain if the data directory has no domain keys. Without
    /// it a root refuses to start without its keys, so that a lost file never silently becomes
    /// a new domain (which would orphan every key).
    #[arg(long)]
    new_domain: bool,
    #[command(flatten)]
    custody: CustodyArgs,
    #[command(flatten)]
    verify: CollateralArgs,
}

/// Where a key server's domain keys are and who seals them.
#[derive(clap::Args)]
struct CustodyArgs {
    /// The key server's data directory.
    #[arg(long, env = "EHSM_DATA_DIR", default_value = "./ehsm-dkeyserver-data")]
    data_dir: PathBuf,
    /// Keep the domain keys in the custody of a PKCS#11 HSM: a PKCS#11 URI such as
    /// 'pkcs11:token=ehsm;object=ehsm-domain-custody?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/ehsm/pin'
    /// (object defaults to ehsm-domain-custody; without pin-source the PIN comes from
    /// EHSM_HSM_PIN). Without it, the platform's sealing key.
    #[arg(long, env = "EHSM_HSM", value_name = "pkcs11:URI")]
    hsm: Option<String>,
    #[command(flatten)]
    platform: PlatformArgs,
}

impl CustodyArgs {
    fn custody(&self) -> anyhow::Result<Custody> {
        platform_args::custody(self.hsm.as_deref())
    }
}

/// Where the collateral of peers' hardware quotes comes from.
#[derive(clap::Args)]
pub(crate) struct CollateralArgs {
    /// Intel's collateral for peers' SGX and TDX quotes: a QuoteCollateralV3 JSON file, or a
    /// directory of <FMSPC>.json files, read at each handshake. Or --pccs-url.
    #[arg(long, env = "EHSM_COLLATERAL", value_name = "FILE|DIR")]
    collateral: Option<PathBuf>,
    /// A PCCS base URL to fetch peers' collateral from, instead of --collateral.
    #[arg(long, env = "EHSM_PCCS_URL", value_name = "URL")]
    pccs_url: Option<String>,
}

impl CollateralArgs {
    /// RA-TLS for `platform`, accepting the peers the policy file `policy` accepts.
    pub(crate) fn tls(
        &self,
        platform: Arc<dyn ehsm_tee::Platform>,
        policy: &Path,
    ) -> anyhow::Result<Arc<Tls>> {
        let collateral =
            ratls::configured_collateral(self.collateral.as_deref(), self.pccs_url.as_deref())
                .map_err(anyhow::Error::msg)?;
        let verifier = Arc::new(Verifier::new(read_policy(policy)?, collateral));
        Ok(Arc::new(Tls::new(platform, verifier)))
    }
}

/// `ehsm dkeycache`.
#[derive(clap::Args)]
pub(crate) struct CacheArgs {
    /// The key server (root or worker) to take the domain keys from, as HOST:PORT.
    #[arg(long, env = "EHSM_DKEYCACHE_SERVER", value_name = "HOST:PORT")]
    server: String,
    /// The Unix socket the node's 'ehsm serve --domain unix:PATH' processes connect to.
    #[arg(
        long,
        env = "EHSM_DKEYCACHE_SOCKET",
        default_value = "/run/ehsm/dkeycache.sock"
    )]
    socket: PathBuf,
    /// The policy (TOML) that the key server's and the local KMS processes' RA-TLS evidence
    /// must satisfy.
    #[arg(long, env = "EHSM_DKEYCACHE_POLICY", value_name = "FILE")]
    policy: PathBuf,
    #[command(flatten)]
    platform: PlatformArgs,
    #[command(flatten)]
    verify: CollateralArgs,
}

/// Reads a key-release policy file.
pub(crate) fn read_policy(path: &Path) -> anyhow::Result<Arc<Policy>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the policy {}", path.display()))?;
    let policy = Policy::from_toml(&text)
        .with_context(|| format!("the policy {} is not valid", path.display()))?;
    Ok(Arc::new(policy))
}

pub(crate) fn run_keyserver(args: KeyServerArgs) -> ExitCode {
    let result = match args.command {
        Some(KeyServerCommand::Rotate(custody)) => rotate(&custody),
        Some(KeyServerCommand::Backup(command)) => domain_cmd::run_command(command),
        None => serve_keys(args.run),
    };
    exit(result)
}

pub(crate) fn run_cache(args: CacheArgs) -> ExitCode {
    exit((|| {
        let server = Endpoint::parse(&args.server).context("server")?;
        // The cache seals nothing: its simulated platform needs no file.
        let platform = args.platform.open(None, Needs::Evidence)?;
        let tls = args.verify.tls(platform, &args.policy)?;
        let config = cache::Config {
            server,
            socket: args.socket,
            tls,
        };
        until_signal(|shutdown| cache::run(config, shutdown))
    })())
}

fn serve_keys(args: RunArgs) -> anyhow::Result<()> {
    let (Some(role), Some(policy)) = (args.role, args.policy) else {
        anyhow::bail!("--role and --policy are required");
    };
    let role = match (role, args.upstream) {
        (RoleArg::Root, None) => keyserver::Role::Root {
            new_domain: args.new_domain,
        },
        (RoleArg::Worker, Some(upstream)) if !args.new_domain => keyserver::Role::Worker {
            upstream: Endpoint::parse(&upstream).context("upstream")?,
        },
        (RoleArg::Root, Some(_)) => anyhow::bail!("--upstream is for a worker"),
        (RoleArg::Worker, None) => anyhow::bail!("a worker needs --upstream HOST:PORT"),
        (RoleArg::Worker, Some(_)) => anyhow::bail!("--new-domain is for the root"),
    };
    let data_dir = &args.custody.data_dir;
    create_private_dir(data_dir)?;
    let custody = args.custody.custody()?;
    let platform = args.custody.platform.open_for(data_dir, &custody)?;
    let tls = args.verify.tls(Arc::clone(&platform), &policy)?;
    let config = keyserver::Config {
        role,
        listen: args.listen,
        data_dir: data_dir.clone(),
        custody,
        platform,
        tls,
    };
    until_signal(|shutdown| keyserver::run(config, shutdown))
}

fn rotate(args: &CustodyArgs) -> anyhow::Result<()> {
    // A running root rotates with its own custody (its sealing key may be its enclave's, its
    // HSM session its own); without one, the sealed file is rotated here.
    let outcome = if rotation::root_running(&args.data_dir) {
        rotation::request(&args.data_dir)?
    } else {
        let custody = args.custody()?;
        let platform = args.platform.open_for(&args.data_dir, &custody)?;
        let file = KeyFile::open(&args.data_dir, &custody, &*platform, false)?;
        let keys = file.rotate()?;
        format!(
            "version {} fingerprint {}",
            keys.current_version(),
            keys.fingerprint()
        )
    };
    let (version, fingerprint) = outcome
        .strip_prefix("version ")
        .and_then(|rest| rest.split_once(" fingerprint "))
        .with_context(|| format!("unexpected answer: {outcome}"))?;
    output::line(format_args!(
        "domain-key version {version} added (fingerprint {fingerprint})"
    ))?;
    output::line(format_args!(
        "the running root serves it within {} s; each hop below it (worker, dkeycache, node) \
         asks every {} s",
        keyserver::RELOAD_INTERVAL.as_secs(),
        ehsm_domain::channel::POLL_INTERVAL.as_secs()
    ))?;
    Ok(())
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))
}

/// Runs `role` on a new runtime until SIGTERM or Ctrl-C, as `ehsm serve` runs.
fn until_signal<F>(
    role: impl FnOnce(std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>>,
{
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            // The handlers exist before the role starts, as in `ehsm serve`.
            let shutdown = crate::serve::shutdown_signal()?;
            role(Box::pin(shutdown)).await
        })
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("ehsm: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
