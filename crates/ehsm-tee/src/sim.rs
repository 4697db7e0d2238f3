//! The simulated platform. **It provides no security**: the "sealing key" is a random file in
//! the data directory, readable by anyone who can read that directory (and by root), and the
//! measurement is a fixed value. It exists so that ehsm runs on any machine for development and
//! CI; every verifier refuses its evidence unless the operator explicitly allows simulation.
//!
//! Simulated evidence has its own format, which can never be mistaken for a DCAP quote:
//!
//! ```text
//! EVIDENCE_MAGIC (21 bytes) | measurement (32) | report data (64) | HMAC-SHA256 tag (32)
//! ```
//!
//! The tag is keyed by a key derived from the simulated sealing secret. It is **not security**
//! (anyone who can read the data directory can forge it); it only catches accidents, such as
//! evidence cut short or mixed up between two simulated nodes.

use std::path::{Path, PathBuf};

use aws_lc_rs::{hkdf, hmac};

use crate::{Error, Evidence, Measurement, Platform, PlatformKind, SealingKey, files};

/// The file, inside the data directory, that holds the simulated sealing secret.
pub const SEALING_FILE: &str = "sim-sealing.key";

/// A clearly marked, fixed simulated measurement ("EHSM-SIM" repeated), never a real one.
const SIM_MEASUREMENT: [u8; 32] = *b"EHSM-SIMEHSM-SIMEHSM-SIMEHSM-SIM";

/// The first bytes of simulated evidence. Read as a DCAP quote header, its first two bytes would
/// be version 0x4845 ("EH"), which no quote has (3, 4 or 5), so neither parser accepts the other.
pub const EVIDENCE_MAGIC: &[u8; 21] = b"EHSM-SIM-EVIDENCE-v1\0";

/// The size of simulated evidence: magic, measurement, report data and tag.
pub const EVIDENCE_LEN: usize = EVIDENCE_MAGIC.len() + 32 + 64 + TAG_LEN;

const TAG_LEN: usize = 32;

/// The HKDF salt that separates the evidence tag key from every other use of the sealing secret.
const EVIDENCE_KEY_SALT: &[u8] = b"ehsm-tee sim evidence key v1";

/// The content of simulated evidence. Only a verifier that explicitly allows simulation may
/// accept it, and even then it proves nothing about the code that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimEvidence {
    /// The simulated measurement.
    pub measurement: [u8; 32],
    /// The report data the evidence carries.
    pub report_data: [u8; 64],
}

/// Parses simulated evidence, checking its magic and exact length. The tag is not checked:
/// that needs the simulated sealing secret (see [`SimPlatform::check_evidence`]), and it would
/// prove nothing anyway.
pub fn parse_evidence(bytes: &[u8]) -> Result<SimEvidence, Error> {
    let bad = |reason| Error::BadEvidence { reason };
    if !bytes.starts_with(EVIDENCE_MAGIC) {
        return Err(bad("not simulated evidence (wrong magic)"));
    }
    if bytes.len() != EVIDENCE_LEN {
        return Err(bad(
            "simulated evidence has the wrong length (truncated or extra bytes)",
        ));
    }
    // The length is checked, so both fields are there; `get` keeps this free of panics anyway.
    let m = EVIDENCE_MAGIC.len();
    let measurement = bytes.get(m..m + 32).and_then(|b| b.try_into().ok());
    let report_data = bytes.get(m + 32..m + 96).and_then(|b| b.try_into().ok());
    match (measurement, report_data) {
        (Some(measurement), Some(report_data)) => Ok(SimEvidence {
            measurement,
            report_data,
        }),
        _ => Err(bad("simulated evidence is truncated")),
    }
}

/// The simulated platform: a random sealing secret in a 0600 file (or only in memory, for a
/// process that keeps nothing on disk). Not secure.
pub struct SimPlatform {
    secret: Secret,
    measurement: Measurement,
}

/// Where the simulated sealing secret is.
enum Secret {
    /// In a file of the data directory, read on each use.
    File(PathBuf),
    /// Only in this process, gone when it exits.
    Memory(zeroize::Zeroizing<[u8; 32]>),
}

impl SimPlatform {
    /// Opens the simulated platform in `data_dir`, creating its sealing secret on first use.
    /// Once the secret exists, opening writes nothing (not even a temporary file), so a node
    /// restarts on a full or read-only disk.
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(SEALING_FILE);
        if !path.try_exists().map_err(Error::io(&path))? {
            let mut secret = zeroize::Zeroizing::new([0u8; 32]);
            aws_lc_rs::rand::fill(secret.as_mut_slice()).map_err(|_| Error::BadFile {
                path: path.clone(),
                reason: "the random number generator failed",
            })?;
            // Create once; if another process made it meanwhile, use theirs.
            files::publish_new(&path, secret.as_slice())?;
        }
        let platform = Self {
            secret: Secret::File(path),
            measurement: sim_measurement(SIM_MEASUREMENT),
        };
        platform.sealing_key()?;
        Ok(platform)
    }

    /// A simulated platform whose sealing secret exists only in this process: for a process
    /// that seals nothing and needs only evidence (the dkeycache).
    pub fn ephemeral() -> Result<Self, Error> {
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(secret.as_mut_slice()).map_err(|_| Error::BadFile {
            path: PathBuf::from("(memory)"),
            reason: "the random number generator failed",
        })?;
        Ok(Self {
            secret: Secret::Memory(secret),
            measurement: sim_measurement(SIM_MEASUREMENT),
        })
    }

    /// The same platform measuring `measurement` instead of the fixed simulated value, so that
    /// tests and demonstrations can run simulated peers that a policy's
    /// `simulated_measurements` accepts or refuses.
    pub fn with_measurement(mut self, measurement: [u8; 32]) -> Self {
        self.measurement = sim_measurement(measurement);
        self
    }

    fn secret_path(&self) -> PathBuf {
        match &self.secret {
            Secret::File(path) => path.clone(),
            Secret::Memory(_) => PathBuf::from("(memory)"),
        }
    }

    /// Parses simulated evidence and checks its tag under this platform's key: true only for
    /// evidence made by a platform with the same data directory. Integrity, not security.
    pub fn check_evidence(&self, bytes: &[u8]) -> Result<SimEvidence, Error> {
        let parsed = parse_evidence(bytes)?;
        let (signed, tag) = bytes.split_at(EVIDENCE_LEN - TAG_LEN);
        hmac::verify(&self.evidence_key()?, signed, tag).map_err(|_| Error::BadEvidence {
            reason: "the simulated evidence's tag does not match this platform's key",
        })?;
        Ok(parsed)
    }

    /// The tag key, derived from the sealing secret so that the secret itself is used for one
    /// thing only.
    fn evidence_key(&self) -> Result<hmac::Key, Error> {
        let sealing = self.sealing_key()?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, EVIDENCE_KEY_SALT).extract(sealing.expose());
        let okm = prk
            .expand(&[b"hmac-sha256"], hmac::HMAC_SHA256)
            .map_err(|_| Error::BadFile {
                path: self.secret_path(),
                reason: "deriving the simulated evidence key failed",
            })?;
        Ok(hmac::Key::from(okm))
    }
}

impl Platform for SimPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sim
    }

    fn sealing_key(&self) -> Result<SealingKey, Error> {
        let path = match &self.secret {
            Secret::File(path) => path,
            Secret::Memory(secret) => return Ok(SealingKey::from_bytes(**secret)),
        };
        let bytes = zeroize::Zeroizing::new(files::read_owner_only(path)?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::BadFile {
            path: path.clone(),
            reason: "simulated sealing key must be exactly 32 bytes; the file is damaged",
        })?;
        Ok(SealingKey::from_bytes(key))
    }

    fn measurement(&self) -> &Measurement {
        &self.measurement
    }

    fn evidence(&self, report_data: &[u8; 64]) -> Result<Evidence, Error> {
        let mut bytes = Vec::with_capacity(EVIDENCE_LEN);
        bytes.extend_from_slice(EVIDENCE_MAGIC);
        bytes.extend_from_slice(&self.measurement.value);
        bytes.extend_from_slice(report_data);
        let tag = hmac::sign(&self.evidence_key()?, &bytes);
        bytes.extend_from_slice(tag.as_ref());
        Ok(Evidence {
            kind: PlatformKind::Sim,
            bytes,
        })
    }

    fn as_sim(&self) -> Option<&SimPlatform> {
        Some(self)
    }
}

fn sim_measurement(value: [u8; 32]) -> Measurement {
    Measurement {
        kind: PlatformKind::Sim,
        value: value.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_carries_the_chosen_measurement() {
        let p = SimPlatform::ephemeral().unwrap().with_measurement([7; 32]);
        let e = p.evidence(&[1; 64]).unwrap();
        let parsed = p.check_evidence(&e.bytes).unwrap();
        assert_eq!(parsed.measurement, [7; 32]);
        assert_eq!(parsed.report_data, [1; 64]);
        assert_eq!(p.measurement().value, vec![7; 32]);
        // Another ephemeral platform has another secret: its tag does not match.
        assert!(
            SimPlatform::ephemeral()
                .unwrap()
                .check_evidence(&e.bytes)
                .is_err()
        );
        let default = SimPlatform::ephemeral()
            .unwrap()
            .evidence(&[0; 64])
            .unwrap();
        assert_eq!(
            parse_evidence(&default.bytes).unwrap().measurement,
            SIM_MEASUREMENT
        );
    }

    #[test]
    fn sealing_key_survives_reopen_and_differs_between_dirs() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let k1 = SimPlatform::open(a.path()).unwrap().sealing_key().unwrap();
        let k2 = SimPlatform::open(a.path()).unwrap().sealing_key().unwrap();
        let k3 = SimPlatform::open(b.path()).unwrap().sealing_key().unwrap();
        assert_eq!(k1.expose(), k2.expose());
        assert_ne!(k1.expose(), k3.expose());
    }

    /// A restart writes nothing: the data directory is not modified (no temporary file made
    /// and removed, which would change its mtime) and the secret file is the same file.
    #[test]
    fn reopening_writes_nothing() {
        use std::os::unix::fs::MetadataExt as _;
        let dir = tempfile::tempdir().unwrap();
        let k1 = SimPlatform::open(dir.path())
            .unwrap()
            .sealing_key()
            .unwrap();
        // A time in the past, so that any write now would show as a different mtime.
        let past = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
        std::fs::File::open(dir.path())
            .unwrap()
            .set_modified(past)
            .unwrap();
        let file = std::fs::metadata(dir.path().join(SEALING_FILE)).unwrap();
        let k2 = SimPlatform::open(dir.path())
            .unwrap()
            .sealing_key()
            .unwrap();
        assert_eq!(k1.expose(), k2.expose());
        let dir_meta = std::fs::metadata(dir.path()).unwrap();
        assert_eq!(
            dir_meta.modified().unwrap(),
            past,
            "the data directory was written"
        );
        let after = std::fs::metadata(dir.path().join(SEALING_FILE)).unwrap();
        assert_eq!(
            (after.ino(), after.mtime(), after.mtime_nsec()),
            (file.ino(), file.mtime(), file.mtime_nsec())
        );
    }

    #[test]
    fn damaged_sealing_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        SimPlatform::open(dir.path()).unwrap();
        std::fs::write(dir.path().join(SEALING_FILE), b"short").unwrap();
        assert!(matches!(
            SimPlatform::open(dir.path()),
            Err(Error::BadFile { .. })
        ));
    }

    #[test]
    fn measurement_is_marked_simulated() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        assert_eq!(p.kind(), PlatformKind::Sim);
        assert_eq!(p.measurement().kind, PlatformKind::Sim);
    }
}
