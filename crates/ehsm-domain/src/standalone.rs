//! Standalone mode: the domain keys sealed to the platform in the data directory.
//!
//! First start: a new DK (version 1) is generated, sealed with the platform's sealing key and
//! published atomically to `domain-keys.sealed` (mode 0600). Later starts unseal that file. If it
//! does not unseal — another platform key, a damaged or tampered file — start-up fails with a
//! clear error. It never creates a new DK over an old one: that would make every stored key blob
//! undecryptable.

use std::path::{Path, PathBuf};

use ehsm_core::DomainKeySet;
use ehsm_tee::{Platform, SealingKey, files};

/// The file, inside the data directory, that holds the sealed domain keys.
pub const SEALED_FILE: &str = "domain-keys.sealed";

/// Whether [`open`] created the domain or found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Opened {
    /// First start: a new domain key was generated and sealed.
    Created,
    /// The existing sealed domain keys were unsealed.
    Unsealed,
}

/// Why the domain keys could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The platform could not give its sealing key, or a file could not be read or written.
    #[error(transparent)]
    Platform(#[from] ehsm_tee::Error),
    /// The sealed file exists but does not unseal with this platform's key.
    #[error(
        "{path}: {source}. Refusing to start: creating a new domain key would make every stored \
         key unusable. Restore the data directory (including the platform's sealing key), or \
         move this file away only if you mean to start a new, empty domain."
    )]
    Unseal {
        /// The sealed file.
        path: PathBuf,
        /// What the core said.
        source: ehsm_core::Error,
    },
    /// Generating or sealing a new domain key failed.
    #[error("could not create the domain key: {0}")]
    Create(ehsm_core::Error),
    /// The data directory was created under the other custody (platform sealing key vs HSM).
    #[error(
        "{path}: this data directory's domain keys are in {found} custody, but ehsm was started \
         with {wanted} custody. Refusing to start: start with the custody the domain was created \
         with."
    )]
    CustodyMismatch {
        /// The file that shows the data directory's custody.
        path: PathBuf,
        /// The custody the data directory was created with.
        found: &'static str,
        /// The custody ehsm was started with.
        wanted: &'static str,
    },
}

/// Opens the standalone domain in `data_dir` (which must exist), creating it on first start.
pub fn open(data_dir: &Path, platform: &dyn Platform) -> Result<(DomainKeySet, Opened), Error> {
    // A domain in HSM custody must not be opened (or, worse, re-created) with the platform key.
    let hsm_seed = data_dir.join(crate::hsm::SEED_FILE);
    if hsm_seed.exists() {
        return Err(Error::CustodyMismatch {
            path: hsm_seed,
            found: "HSM",
            wanted: "platform",
        });
    }
    open_sealed(data_dir, &platform.sealing_key()?)
}

/// Unseals `SEALED_FILE` in `data_dir` with `sealing_key`, or creates the domain if the file does
/// not exist; shared by the platform and the HSM custody, whose sealing key differs.
pub(crate) fn open_sealed(
    data_dir: &Path,
    sealing_key: &SealingKey,
) -> Result<(DomainKeySet, Opened), Error> {
    let path = data_dir.join(SEALED_FILE);
    let unseal = |bytes: &[u8]| {
        DomainKeySet::unseal(bytes, sealing_key).map_err(|source| Error::Unseal {
            path: path.clone(),
            source,
        })
    };
    if path.exists() {
        return Ok((unseal(&files::read_owner_only(&path)?)?, Opened::Unsealed));
    }
    let dks = DomainKeySet::generate().map_err(Error::Create)?;
    let sealed = dks.seal(sealing_key).map_err(Error::Create)?;
    if files::publish_new(&path, &sealed)? {
        Ok((dks, Opened::Created))
    } else {
        // Another process created the domain between our check and our publish: use theirs.
        Ok((unseal(&files::read_owner_only(&path)?)?, Opened::Unsealed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ehsm_tee::sim::{SEALING_FILE, SimPlatform};

    #[test]
    fn first_start_creates_and_restart_unseals_the_same_domain() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        let (a, how) = open(dir.path(), &p).unwrap();
        assert_eq!(how, Opened::Created);
        let (b, how) = open(dir.path(), &p).unwrap();
        assert_eq!(how, Opened::Unsealed);
        assert_eq!(
            a.versions().collect::<Vec<_>>(),
            b.versions().collect::<Vec<_>>()
        );
        assert_eq!(a.fingerprint(), b.fingerprint());
    }

    #[test]
    fn another_platform_key_is_refused_and_nothing_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        open(dir.path(), &p).unwrap();
        let sealed_before = std::fs::read(dir.path().join(SEALED_FILE)).unwrap();
        // A different sealing secret, as if the data dir were moved to another machine.
        std::fs::remove_file(dir.path().join(SEALING_FILE)).unwrap();
        let other = SimPlatform::open(dir.path()).unwrap();
        let Err(err) = open(dir.path(), &other) else {
            panic!("opened with another key")
        };
        assert!(matches!(err, Error::Unseal { .. }), "{err}");
        assert!(err.to_string().contains("Refusing to start"));
        assert_eq!(
            std::fs::read(dir.path().join(SEALED_FILE)).unwrap(),
            sealed_before
        );
    }

    #[test]
    fn tampered_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        open(dir.path(), &p).unwrap();
        let path = dir.path().join(SEALED_FILE);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(open(dir.path(), &p), Err(Error::Unseal { .. })));
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_domain() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        let key = p.sealing_key().unwrap();
        let results: Vec<_> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..8)
                .map(|_| s.spawn(|| open(dir.path(), &p).unwrap()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let on_disk = std::fs::read(dir.path().join(SEALED_FILE)).unwrap();
        let disk = DomainKeySet::unseal(&on_disk, &key).unwrap();
        // Exactly one opener created the domain, and every opener holds the key that is on disk.
        assert_eq!(
            results
                .iter()
                .filter(|(_, how)| *how == Opened::Created)
                .count(),
            1
        );
        for (dks, _) in results {
            assert_eq!(dks.fingerprint(), disk.fingerprint());
        }
    }
}
