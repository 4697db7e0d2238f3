//! `ehsm serve`: the KMS.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use ehsm_kms::EnrollMode;
use ehsm_kms::server::{self, Config};

/// Options of `ehsm serve`. Each can also come from an `EHSM_*` environment variable.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Address to listen on. Port 0 picks a free port (the start-up line says which).
    #[arg(long, env = "EHSM_LISTEN", default_value = "127.0.0.1:9000")]
    listen: SocketAddr,

    /// Where ehsm keeps its state: the sealed domain key, the TLS key, the SQLite database and
    /// (on the simulated platform) the simulated sealing secret. Created with mode 0700.
    #[arg(long, env = "EHSM_DATA_DIR", default_value = "./ehsm-data")]
    data_dir: PathBuf,

    /// TLS certificate chain (PEM). Default: a self-signed certificate generated on first start.
    #[arg(long, env = "EHSM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM), with --tls-cert.
    #[arg(long, env = "EHSM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve plain HTTP, for running behind a TLS-terminating proxy.
    #[arg(long, env = "EHSM_HTTP", conflicts_with_all = ["tls_cert", "tls_key"])]
    http: bool,

    /// Who may enroll: open (anyone, upstream's behaviour), token (clients present the operator
    /// token printed at first start) or off. Default: open on a loopback address, token elsewhere.
    #[arg(long, env = "EHSM_ENROLL", value_enum)]
    enroll: Option<EnrollMode>,

    /// Database URL. Default: SQLite in the data directory.
    #[arg(long, env = "EHSM_DATABASE")]
    database: Option<String>,

    /// How long a new key stays usable, in days (upstream: 365).
    #[arg(long, env = "EHSM_KEY_LIFETIME_DAYS", default_value_t = 365)]
    key_lifetime_days: u64,

    /// The trusted execution environment. Only `sim` (software simulation, NOT SECURE) exists
    /// so far.
    #[arg(long, env = "EHSM_TEE", value_enum, default_value_t = Tee::Sim)]
    tee: Tee,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Tee {
    /// Software simulation: no hardware protection. For development and CI only.
    Sim,
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Tee::Sim = args.tee;
    let config = Config {
        listen: args.listen,
        data_dir: args.data_dir,
        tls_cert: args.tls_cert,
        tls_key: args.tls_key,
        http: args.http,
        enroll: args.enroll,
        database: args.database,
        key_lifetime: Duration::from_secs(args.key_lifetime_days.saturating_mul(86_400)),
    };
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            // Handlers are installed before anything else, so a SIGTERM that comes right after the
            // "listening" line shuts down gracefully instead of killing the process.
            let shutdown = shutdown_signal()?;
            server::run(config, shutdown).await
        })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}
