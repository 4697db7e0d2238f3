//! Where the verifier gets the collateral (Intel's TCB info, QE identity, CRLs) for a quote.
//!
//! From files here: a deployment refreshes them (collateral is valid for about a month) and the
//! verifier reads them at each handshake, so a refresh needs no restart. From a PCCS, with a
//! cache: [`crate::pccs::PccsCollateral`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::RatlsError;
use crate::dcap::{Collateral, PckPlatform};

/// A source of collateral for DCAP quotes.
pub trait CollateralSource: Send + Sync {
    /// The collateral to verify `quote` against.
    fn collateral(&self, quote: &[u8]) -> Result<Collateral, RatlsError>;
}

/// For deployments that accept only simulated peers: every quote is refused for lack of
/// collateral.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCollateral;

impl CollateralSource for NoCollateral {
    fn collateral(&self, _quote: &[u8]) -> Result<Collateral, RatlsError> {
        Err(RatlsError::Collateral(
            "this verifier has no collateral source configured".to_owned(),
        ))
    }
}

/// Collateral in dcap-qvl's `QuoteCollateralV3` JSON (as `ehsm attest verify --collateral`
/// reads), from files.
///
/// Limits: collateral depends on the platform's FMSPC and on its PCK CA (processor or
/// platform); [`FileCollateral::directory`] keys files by FMSPC only, so one directory serves
/// one PCK CA per FMSPC. Files are read at every verification, without a cache.
#[derive(Clone, Debug)]
pub struct FileCollateral(Location);

#[derive(Clone, Debug)]
enum Location {
    /// One file for every quote: a fleet of identical machines, or tests.
    File(PathBuf),
    /// `<dir>/<FMSPC in upper-case hex>.json`, the FMSPC read from the quote's PCK certificate.
    ByFmspc(PathBuf),
}

impl FileCollateral {
    /// The same collateral file for every quote.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        Self(Location::File(path.into()))
    }

    /// A directory of `<FMSPC>.json` files (FMSPC in upper-case hex, as Intel and PCCS print
    /// it, e.g. `00906ED50000.json`).
    pub fn directory(dir: impl Into<PathBuf>) -> Self {
        Self(Location::ByFmspc(dir.into()))
    }
}

impl CollateralSource for FileCollateral {
    fn collateral(&self, quote: &[u8]) -> Result<Collateral, RatlsError> {
        let path = match &self.0 {
            Location::File(path) => path.clone(),
            Location::ByFmspc(dir) => dir.join(format!("{}.json", fmspc(quote)?)),
        };
        read(&path)
    }
}

/// The collateral source an operator configured: a file (the same collateral for every quote)
/// or a directory of `<FMSPC>.json` files, or a PCCS; neither is [`NoCollateral`] (only
/// simulated peers can then pass, where a policy allows them). Both is a mistake.
pub fn configured(
    path: Option<&Path>,
    pccs_url: Option<&str>,
) -> Result<Arc<dyn CollateralSource>, String> {
    match (path, pccs_url) {
        (Some(_), Some(_)) => Err(
            "the collateral comes from a file or directory (collateral) or from a PCCS \
             (pccs-url), not both"
                .to_owned(),
        ),
        (Some(path), None) if path.is_dir() => Ok(Arc::new(FileCollateral::directory(path))),
        (Some(path), None) => Ok(Arc::new(FileCollateral::file(path))),
        (None, Some(url)) => crate::pccs::PccsCollateral::new(url)
            .map(|p| Arc::new(p) as Arc<dyn CollateralSource>)
            .map_err(|e| format!("pccs-url: {e}")),
        (None, None) => Ok(Arc::new(NoCollateral)),
    }
}

/// The FMSPC of the platform that made `quote`, from the quote's PCK leaf certificate.
fn fmspc(quote: &[u8]) -> Result<String, RatlsError> {
    PckPlatform::of(quote)
        .map(|platform| platform.fmspc)
        .map_err(|e| RatlsError::Collateral(format!("the quote's FMSPC cannot be read: {e}")))
}

fn read(path: &Path) -> Result<Collateral, RatlsError> {
    let json = std::fs::read(path)
        .map_err(|e| RatlsError::Collateral(format!("{}: {e}", path.display())))?;
    Collateral::from_json(&json)
        .map_err(|e| RatlsError::Collateral(format!("{}: {e}", path.display())))
}
