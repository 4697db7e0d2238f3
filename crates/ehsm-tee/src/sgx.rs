//! Intel SGX through Gramine, whose `/dev/attestation` pseudo-files give the enclave its quote
//! and sealing keys:
//!
//! - `attestation_type`: `dcap` when the manifest sets `sgx.remote_attestation = "dcap"`,
//!   `none` otherwise (and always under `gramine-direct`, which has no SGX);
//! - `user_report_data` and `quote`: write 64 bytes, then read a DCAP quote binding them;
//! - `keys/_sgx_mrenclave`: a 16-byte key that only this enclave build on this CPU can read.
//!
//! The root is configurable so that tests can use a plain directory with the same files.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use aws_lc_rs::hkdf;
use zeroize::Zeroizing;

use crate::dcap::SgxIdentity;
use crate::evidence;
use crate::{Error, Evidence, Measurement, Platform, PlatformKind, SealingKey};

/// Where Gramine mounts its attestation interface inside the enclave.
pub const DEFAULT_ROOT: &str = "/dev/attestation";

/// The HKDF salt that turns Gramine's raw sealing key into ehsm's: Gramine's documentation warns
/// against using one of its keys directly for more than one purpose, so ehsm never does.
const SEALING_KEY_SALT: &[u8] = b"ehsm-tee sgx sealing key v1";

/// The attestation type under which Gramine produces DCAP quotes.
const DCAP: &str = "dcap";

/// The SGX platform as Gramine presents it.
pub struct SgxPlatform {
    root: PathBuf,
    measurement: Measurement,
    report: SgxIdentity,
}

/// Writing `user_report_data` and reading `quote` are two steps: a second caller in between would
/// get a quote over the wrong data, so the process makes one quote at a time (the enclave has one
/// `/dev/attestation`, whichever platform value uses it).
static QUOTING: Mutex<()> = Mutex::new(());

/// Whether `root` looks like Gramine's attestation interface (for `--tee auto`).
pub fn detect(root: &Path) -> bool {
    root.join("attestation_type").is_file()
}

impl SgxPlatform {
    /// Opens Gramine's attestation interface at `root` (normally [`DEFAULT_ROOT`]). Refuses an
    /// enclave without remote attestation, reads the enclave's identity from a first quote and
    /// checks that the sealing key can be read, so that a misconfigured enclave fails at start.
    pub fn open(root: &Path) -> Result<Self, Error> {
        check_attestation_type(root)?;
        // The identity does not depend on the report data, so zeros do; the quote is not
        // checked to carry them, which keeps a recorded quote usable in tests.
        let quote = make_quote(root, &[0; 64])?;
        let report = report_body(root, &quote)?;
        let platform = Self {
            root: root.to_owned(),
            measurement: Measurement {
                kind: PlatformKind::Sgx,
                value: report.mr_enclave.to_vec(),
            },
            report,
        };
        platform.sealing_key()?;
        Ok(platform)
    }

    /// The enclave's identity as its own quote states it (MRENCLAVE, MRSIGNER, product id, SVN).
    pub fn report(&self) -> &SgxIdentity {
        &self.report
    }
}

impl Platform for SgxPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sgx
    }

    /// Gramine's MRENCLAVE-bound key (16 bytes), stretched with HKDF-SHA256 to the 32 bytes the
    /// core expects. Bound to MRENCLAVE rather than MRSIGNER, so that only this exact build
    /// unseals: a new build cannot read the old one's sealed files, and an upgrade must carry
    /// the domain key over some other way (e.g. from the domain).
    fn sealing_key(&self) -> Result<SealingKey, Error> {
        let path = self.root.join("keys").join("_sgx_mrenclave");
        let raw = Zeroizing::new(fs::read(&path).map_err(Error::io(&path))?);
        let bad = |reason| Error::BadFile {
            path: path.clone(),
            reason,
        };
        if raw.len() != 16 {
            return Err(bad(
                "Gramine's sealing key must be 16 bytes; is this Gramine's /dev/attestation?",
            ));
        }
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, SEALING_KEY_SALT).extract(&raw);
        let mut key = Zeroizing::new([0u8; 32]);
        prk.expand(&[b"sealing key"], hkdf::HKDF_SHA256)
            .and_then(|okm| okm.fill(key.as_mut_slice()))
            .map_err(|_| bad("deriving the sealing key from Gramine's key failed"))?;
        Ok(SealingKey::from_bytes(*key))
    }

    fn measurement(&self) -> &Measurement {
        &self.measurement
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let quote = make_quote(&self.root, report_data)?;
        if report_body(&self.root, &quote)?.report_data != *report_data {
            return Err(Error::BadFile {
                path: self.root.join("quote"),
                reason: "the quote does not carry the report data just written to \
                         user_report_data; is another thread of the enclave writing it?",
            });
        }
        Ok(Evidence {
            kind: PlatformKind::Sgx,
            bytes: quote,
        })
    }
}

fn check_attestation_type(root: &Path) -> Result<(), Error> {
    let path = root.join("attestation_type");
    let kind = fs::read_to_string(&path).map_err(Error::io(&path))?;
    let reason = match kind.trim() {
        DCAP => return Ok(()),
        "none" => {
            "Gramine runs without remote attestation (attestation_type = none): \
             set sgx.remote_attestation = \"dcap\" in the manifest"
        }
        _ => {
            "unsupported attestation type (ehsm needs DCAP): \
             set sgx.remote_attestation = \"dcap\" in the manifest"
        }
    };
    Err(Error::BadFile { path, reason })
}

/// Writes the report data, then reads the quote Gramine makes over it.
fn make_quote(root: &Path, report_data: &[u8; 64]) -> Result<Vec<u8>, Error> {
    // The lock guards no data, so a panic while holding it leaves nothing inconsistent.
    let _one_at_a_time = QUOTING.lock().unwrap_or_else(PoisonError::into_inner);
    evidence::write_then_read(
        &root.join("user_report_data"),
        report_data,
        &root.join("quote"),
    )
}

fn report_body(root: &Path, quote: &[u8]) -> Result<SgxIdentity, Error> {
    evidence::sgx_report_body(quote).map_err(|reason| Error::BadFile {
        path: root.join("quote"),
        reason,
    })
}
