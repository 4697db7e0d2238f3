//! The simulated platform. **It provides no security**: the "sealing key" is a random file in
//! the data directory, readable by anyone who can read that directory (and by root), and the
//! measurement is a fixed value. It exists so that ehsm runs on any machine for development and
//! CI; every verifier refuses its evidence unless the operator explicitly allows simulation.

use std::path::{Path, PathBuf};

use crate::{Error, Measurement, Platform, PlatformKind, SealingKey, files};

/// The file, inside the data directory, that holds the simulated sealing secret.
pub const SEALING_FILE: &str = "sim-sealing.key";

/// A clearly marked, fixed simulated measurement ("EHSM-SIM" repeated), never a real one.
const SIM_MEASUREMENT: [u8; 32] = *b"EHSM-SIMEHSM-SIMEHSM-SIMEHSM-SIM";

/// The simulated platform: a random sealing secret in a 0600 file. Not secure.
pub struct SimPlatform {
    path: PathBuf,
    measurement: Measurement,
}

impl SimPlatform {
    /// Opens the simulated platform in `data_dir`, creating its sealing secret on first use.
    pub fn open(data_dir: &Path) -> Result<Self, Error> {
        let path = data_dir.join(SEALING_FILE);
        let mut secret = zeroize::Zeroizing::new([0u8; 32]);
        aws_lc_rs::rand::fill(secret.as_mut_slice()).map_err(|_| Error::BadFile {
            path: path.clone(),
            reason: "the random number generator failed",
        })?;
        // Create once; if another process (or an earlier start) made it, use theirs.
        files::publish_new(&path, secret.as_slice())?;
        let platform = Self {
            path,
            measurement: Measurement {
                kind: PlatformKind::Sim,
                value: SIM_MEASUREMENT.to_vec(),
            },
        };
        platform.sealing_key()?;
        Ok(platform)
    }
}

impl Platform for SimPlatform {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sim
    }

    fn sealing_key(&self) -> Result<SealingKey, Error> {
        let bytes = zeroize::Zeroizing::new(files::read_owner_only(&self.path)?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| Error::BadFile {
            path: self.path.clone(),
            reason: "simulated sealing key must be exactly 32 bytes; the file is damaged",
        })?;
        Ok(SealingKey::from_bytes(key))
    }

    fn measurement(&self) -> &Measurement {
        &self.measurement
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
