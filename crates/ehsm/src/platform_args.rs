//! The platform options shared by every command that opens a platform (`--tee`, and the
//! hidden `--attestation-root` of the tests), and the `--hsm` custody of the domain-key
//! commands: one definition, so that `serve`, `attest show`, `domain` and the domain roles
//! accept the same values and mean the same thing by them.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use ehsm_domain::keyfile::Custody;
use ehsm_kms::server::{self, Needs};
use ehsm_tee::Platform;

/// The trusted execution environment to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum TeeArg {
    /// Detect: sgx inside Gramine with remote attestation, tdx in a TDX guest, otherwise sim
    /// (with a warning).
    Auto,
    /// Software simulation: no hardware protection. For development and CI only.
    Sim,
    /// Intel SGX through Gramine (`gramine-sgx ehsm ...`, with sgx.remote_attestation = "dcap").
    Sgx,
    /// Intel TDX through configfs-tsm. It cannot seal: a node of a domain, a dkeycache, or a key
    /// server whose keys are in an HSM's custody.
    Tdx,
}

impl TeeArg {
    /// The platform to open; `root` is where its attestation interface is, instead of the
    /// default (tests point it at a directory that mimics it).
    pub(crate) fn with_root(self, root: Option<PathBuf>) -> server::Tee {
        match self {
            TeeArg::Auto => server::Tee::Auto,
            TeeArg::Sim => server::Tee::Sim,
            TeeArg::Sgx => server::Tee::Sgx { root },
            TeeArg::Tdx => server::Tee::Tdx { root },
        }
    }
}

/// `--tee` and `--attestation-root`, for the commands other than `serve` (whose values may
/// also come from its config file).
#[derive(clap::Args)]
pub(crate) struct PlatformArgs {
    /// The trusted execution environment, as for 'ehsm serve'.
    #[arg(long, env = "EHSM_TEE", value_enum, default_value = "auto")]
    tee: TeeArg,
    /// Where the TEE's attestation interface is (tests).
    #[arg(long, env = "EHSM_ATTESTATION_ROOT", hide = true)]
    attestation_root: Option<PathBuf>,
}

impl PlatformArgs {
    /// The platform chosen, not yet detected for `auto`.
    pub(crate) fn tee(&self) -> server::Tee {
        self.tee.with_root(self.attestation_root.clone())
    }

    /// Opens the platform as `ehsm serve` does ([`server::open_platform`]).
    pub(crate) fn open(
        &self,
        data_dir: Option<&Path>,
        needs: Needs,
    ) -> anyhow::Result<Arc<dyn Platform>> {
        Ok(server::open_platform(&self.tee(), data_dir, needs)?.into())
    }

    /// Opens the platform for a data directory whose domain keys are in `custody`: in an HSM's
    /// custody the platform seals nothing, so it may be one that cannot (TDX).
    pub(crate) fn open_for(
        &self,
        data_dir: &Path,
        custody: &Custody,
    ) -> anyhow::Result<Arc<dyn Platform>> {
        let needs = match custody {
            Custody::Platform => Needs::Sealing,
            Custody::Hsm(_) => Needs::Evidence,
        };
        self.open(Some(data_dir), needs)
    }
}

/// The custody `--hsm pkcs11:URI` names, or the platform's without it.
pub(crate) fn custody(hsm: Option<&str>) -> anyhow::Result<Custody> {
    Ok(match hsm {
        None => Custody::Platform,
        Some(uri) => Custody::Hsm(ehsm_domain::hsm::HsmConfig::from_uri(uri).context("hsm")?),
    })
}
