//! The platform under the ehsm core: what the trusted execution environment gives the core.
//!
//! A [`Platform`] provides a **sealing key** (a key that only this code on this platform can
//! derive, used to store the domain keys on disk) and a **measurement** (the identity of the
//! code, e.g. SGX's MRENCLAVE) and **attestation evidence** over 64 bytes of report data (a DCAP
//! quote on hardware). The trait is kept small: each part is one method, as rustls adds provider
//! parts.
//!
//! Implementations: [`sim::SimPlatform`] (no security: development and CI),
//! [`sgx::SgxPlatform`] (Gramine's `/dev/attestation`) and [`tdx::TdxPlatform`] (Linux
//! configfs-tsm). [`evidence`] reads the quote layouts they produce.
//!
//! Verifying someone else's evidence: [`ratls`] for peers that present it in their TLS
//! certificate (ehsm processes among themselves), and [`server_evidence`] for a KMS that shows a
//! client, before it enrolls, that its TLS session ends in the attested TEE (the report data
//! binds the client's challenge and the server's TLS key; the client checks it with
//! [`ratls::Verifier::verify_evidence`]).
#![forbid(unsafe_code)]

pub mod dcap;
pub mod evidence;
pub mod files;
pub mod pccs;
pub mod policy;
pub mod ratls;
pub mod server_evidence;
pub mod sgx;
pub mod sim;
pub mod tdx;

use core::fmt;
use std::path::PathBuf;

use zeroize::Zeroizing;

pub use evidence::Evidence;

/// Which kind of platform the core runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformKind {
    /// Software simulation: no hardware protection at all.
    Sim,
    /// Intel SGX through Gramine.
    Sgx,
    /// Intel TDX confidential VM.
    Tdx,
}

impl fmt::Display for PlatformKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlatformKind::Sim => "sim",
            PlatformKind::Sgx => "sgx",
            PlatformKind::Tdx => "tdx",
        })
    }
}

/// The measured identity of the running code (SGX MRENCLAVE, TDX MRTD, or a simulated value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Measurement {
    /// The platform that measured it.
    pub kind: PlatformKind,
    /// The raw measurement bytes.
    pub value: Vec<u8>,
}

/// A platform sealing key: 32 bytes that only this code on this platform can obtain.
///
/// No `Debug`, no `Clone`; zeroized on drop. The core derives its own keys from it with HKDF and
/// never uses it directly.
pub struct SealingKey(Zeroizing<[u8; 32]>);

impl SealingKey {
    /// Wraps raw key bytes obtained from the platform.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes, for the core's key derivation. Nothing else should call this.
    pub fn expose(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// What a trusted execution environment gives the core.
pub trait Platform: Send + Sync {
    /// Which platform this is.
    fn kind(&self) -> PlatformKind;

    /// The sealing key for this code on this platform.
    fn sealing_key(&self) -> Result<SealingKey, Error>;

    /// The measurement of the running code.
    fn measurement(&self) -> &Measurement;

    /// Attestation evidence binding `report_data` (typically a hash of a public key and a
    /// nonce) to this code on this platform: a DCAP quote on SGX and TDX, a clearly marked
    /// software format on sim. A verifier decides what to trust; this only produces it.
    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error>;

    /// This platform as the simulated one, if it is: only that one can check the tag of its own
    /// simulated evidence.
    fn as_sim(&self) -> Option<&sim::SimPlatform> {
        None
    }
}

/// Errors of the platform layer.
#[derive(Debug)]
pub enum Error {
    /// A file the platform needs could not be read or written.
    Io {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// A platform file exists but is not acceptable (wrong size, unsafe permissions, ...).
    BadFile {
        /// The file.
        path: PathBuf,
        /// Why it is refused, and what to do.
        reason: &'static str,
    },
    /// Evidence bytes are not in the expected format (truncated, wrong magic or version, ...).
    BadEvidence {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// The platform cannot do what was asked (e.g. sealing on TDX).
    Unsupported {
        /// The platform.
        kind: PlatformKind,
        /// Why, and what to do instead.
        reason: &'static str,
    },
}

impl Error {
    /// A `map_err` adapter naming the file an I/O error happened on.
    pub(crate) fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Error::Io {
            path: path.to_owned(),
            source,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Error::BadFile { path, reason } => write!(f, "{}: {reason}", path.display()),
            Error::BadEvidence { reason } => write!(f, "malformed evidence: {reason}"),
            Error::Unsupported { kind, reason } => write!(f, "platform {kind}: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    // No `source()`: `Display` already includes the I/O error, and a caller printing the whole
    // chain (anyhow's `{:#}`) would otherwise say it twice.
}
