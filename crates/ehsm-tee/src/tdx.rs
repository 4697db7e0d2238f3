//! Intel TDX through Linux configfs-tsm (`/sys/kernel/config/tsm/report`, Linux 6.7+): the
//! kernel's vendor-neutral interface to a confidential VM's quote.
//!
//! A quote is made in a report entry: `mkdir <root>/<name>` makes the kernel populate it with
//! `inblob` (write the 64 bytes of report data), `outblob` (read the quote), `provider` (which
//! guest driver answers: `tdx_guest` here) and a few more; `rmdir` removes it. The root is
//! configurable so that tests can use a plain directory that mimics it.
//!
//! There is no sealing key: configfs-tsm offers none, and a TDX node gets its domain key from
//! the domain (dkeycache) instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::dcap::TdxIdentity;
use crate::evidence;
use crate::{Error, Evidence, Measurement, Platform, PlatformKind, SealingKey};

/// Where Linux mounts configfs-tsm's report entries.
pub const DEFAULT_ROOT: &str = "/sys/kernel/config/tsm/report";

/// Why a TDX platform has no sealing key, and what to do: also `ehsm serve`'s refusal to run a
/// standalone node on TDX.
pub const NO_SEALING: &str = "a TDX node has no sealing key: it gets its domain key from the \
     domain (dkeycache) rather than by sealing; run it as a domain node, or run a standalone \
     node with --tee sgx";

/// The provider configfs-tsm names for a TDX guest.
const TDX_PROVIDER: &str = "tdx_guest";

/// One report entry is used at a time by this process: writing `inblob` and reading `outblob`
/// are two steps, and all platforms of the process share the entry name.
static REPORTING: Mutex<()> = Mutex::new(());

/// The TDX platform as configfs-tsm presents it.
pub struct TdxPlatform {
    root: PathBuf,
    measurement: Measurement,
    report: TdxIdentity,
}

/// The report entry this process uses under `root`. Tests that mimic configfs-tsm with a plain
/// directory pre-create it with `provider` and `outblob` files, as the kernel would.
pub fn entry_dir(root: &Path) -> PathBuf {
    root.join(format!("ehsm-{}", std::process::id()))
}

/// Whether `root` is configfs-tsm with a TDX provider (for `--tee auto`). Making an entry needs
/// write access to configfs, so without it this says no.
pub fn detect(root: &Path) -> bool {
    root.is_dir() && with_entry(root, |_| Ok(())).is_ok()
}

impl TdxPlatform {
    /// Opens configfs-tsm at `root` (normally [`DEFAULT_ROOT`]) and reads the TD's identity
    /// from a first quote.
    pub fn open(root: &Path) -> Result<Self, Error> {
        // The identity does not depend on the report data, so zeros do; the quote is not
        // checked to carry them, which keeps a recorded quote usable in tests.
        let quote = make_quote(root, &[0; 64])?;
        let report = report_body(root, &quote)?;
        Ok(Self {
            root: root.to_owned(),
            measurement: Measurement {
                kind: PlatformKind::Tdx,
                value: report.mr_td.to_vec(),
            },
            report,
        })
    }

    /// The TD's identity as its own quote states it (MRTD and RTMR0..3).
    pub fn report(&self) -> &TdxIdentity {
        &self.report
    }
}

impl Platform for TdxPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Tdx
    }

    fn sealing_key(&self) -> Result<SealingKey, Error> {
        Err(Error::Unsupported {
            kind: PlatformKind::Tdx,
            reason: NO_SEALING,
        })
    }

    /// MRTD, the measurement of the TD's initial contents.
    fn measurement(&self) -> &Measurement {
        &self.measurement
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let quote = make_quote(&self.root, report_data)?;
        if report_body(&self.root, &quote)?.report_data != *report_data {
            return Err(Error::BadFile {
                path: entry_dir(&self.root).join("outblob"),
                reason: "the quote does not carry the report data just written to inblob; \
                         is another process using this report entry?",
            });
        }
        Ok(Evidence {
            kind: PlatformKind::Tdx,
            bytes: quote,
        })
    }
}

/// Writes the report data to a report entry's `inblob` and reads the quote from `outblob`.
fn make_quote(root: &Path, report_data: &[u8; 64]) -> Result<Vec<u8>, Error> {
    with_entry(root, |entry| {
        evidence::write_then_read(&entry.join("inblob"), report_data, &entry.join("outblob"))
    })
}

/// Runs `f` on this process's report entry, made for it and checked to be TDX's, then removed.
fn with_entry<T>(root: &Path, f: impl FnOnce(&Path) -> Result<T, Error>) -> Result<T, Error> {
    // The lock guards no data, so a panic while holding it leaves nothing inconsistent.
    let _one_at_a_time = REPORTING.lock().unwrap_or_else(PoisonError::into_inner);
    let entry = entry_dir(root);
    // An entry left by an earlier process with the same pid is reused: the quote is checked to
    // carry the report data asked for, so a stale or shared entry cannot pass unnoticed.
    match fs::create_dir(&entry) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(&entry)(e)),
    }
    let result = check_provider(&entry).and_then(|()| f(&entry));
    // Best effort: a left-over entry costs a little kernel memory and is reused next time. (A
    // plain directory mimicking configfs is not empty, so tests keep theirs.)
    let _ = fs::remove_dir(&entry);
    result
}

fn check_provider(entry: &Path) -> Result<(), Error> {
    let path = entry.join("provider");
    let provider = fs::read_to_string(&path).map_err(Error::io(&path))?;
    if provider.trim() == TDX_PROVIDER {
        Ok(())
    } else {
        Err(Error::BadFile {
            path,
            reason: "the configfs-tsm provider is not tdx_guest: this is not a TDX guest \
                     (ehsm supports only TDX through configfs-tsm)",
        })
    }
}

fn report_body(root: &Path, quote: &[u8]) -> Result<TdxIdentity, Error> {
    evidence::td_report_body(quote).map_err(|reason| Error::BadFile {
        path: entry_dir(root).join("outblob"),
        reason,
    })
}
