//! `ehsm serve`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context as _;
use ehsm_core::Core;
use ehsm_domain::standalone::{self, Opened};
use ehsm_tee::Platform as _;
use ehsm_tee::sim::SimPlatform;

/// Options of `ehsm serve`.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// Where ehsm keeps its state: the sealed domain key and (on the simulated platform) the
    /// simulated sealing secret. Created with mode 0700 if missing.
    #[arg(long, env = "EHSM_DATA_DIR", default_value = "./ehsm-data")]
    data_dir: PathBuf,

    /// The trusted execution environment. Only `sim` (software simulation, NOT SECURE) exists
    /// so far; `sgx` and `tdx` come with the attestation work.
    #[arg(long, env = "EHSM_TEE", value_enum, default_value_t = Tee::Sim)]
    tee: Tee,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Tee {
    /// Software simulation: no hardware protection. For development and CI only.
    Sim,
}

pub(crate) fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    create_data_dir(&args.data_dir)?;
    let platform = match args.tee {
        Tee::Sim => SimPlatform::open(&args.data_dir).context("opening the simulated platform")?,
    };
    eprintln!(
        "ehsm: WARNING: platform {} provides NO SECURITY: keys are protected only by file \
         permissions in {}",
        platform.kind(),
        args.data_dir.display()
    );
    let (dks, opened) = standalone::open(&args.data_dir, &platform)?;
    let fingerprint = dks.fingerprint();
    let version = dks.current_version();
    Core::new(dks).context("the core's start-up self-tests failed; refusing to serve keys")?;
    eprintln!(
        "ehsm: data dir {}, platform {}, domain key v{version} {} (fingerprint {fingerprint}), \
         self-tests passed, ready in {} ms",
        args.data_dir.display(),
        platform.kind(),
        match opened {
            Opened::Created => "created",
            Opened::Unsealed => "unsealed",
        },
        started.elapsed().as_millis()
    );
    eprintln!("ehsm: the REST API is not built yet in this version; nothing to serve, exiting");
    Ok(ExitCode::SUCCESS)
}

fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}
