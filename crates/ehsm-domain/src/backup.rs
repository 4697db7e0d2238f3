//! Backup and recovery of a standalone node's domain keys (platform custody).
//!
//! The splitting, share encryption and recovery are the core's ([`ehsm_core::backup`]); this
//! module only finds the domain to back up and installs a recovered one, with the two rules that
//! keep stored key blobs usable: backup never creates a domain, and recovery never replaces one.
//! The key server will reuse the same core functions for its root.

use std::path::{Path, PathBuf};

use ehsm_core::DomainKeySet;
use ehsm_tee::{Platform, files};

use crate::standalone::{self, SEALED_FILE};

pub use ehsm_core::backup::{CustodianKey, DecryptedShare, EncryptedShare, decrypt_share};

/// Why a backup or a recovery could not be done.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Opening the existing domain failed (platform error, or the sealed file does not unseal).
    #[error(transparent)]
    Open(#[from] standalone::Error),
    /// The platform could not give its sealing key, or a file could not be read or written.
    #[error(transparent)]
    Platform(#[from] ehsm_tee::Error),
    /// There is no sealed domain to back up.
    #[error(
        "{path} does not exist: this data directory has no domain to back up (give the data \
         directory of a node that has run 'ehsm serve')"
    )]
    NoDomain {
        /// The sealed file that is missing.
        path: PathBuf,
    },
    /// The data directory keeps its domain keys in HSM custody, which this backup does not cover.
    #[error(
        "{path}: this data directory's domain keys are in HSM custody; back them up with the HSM"
    )]
    HsmCustody {
        /// The file that shows HSM custody.
        path: PathBuf,
    },
    /// A domain is already there; recovery never replaces one.
    #[error(
        "{path} already exists: refusing to replace a domain. Recover into a new, empty data \
         directory"
    )]
    AlreadyExists {
        /// The file that is already there.
        path: PathBuf,
    },
    /// Sealing the recovered domain keys failed.
    #[error("could not seal the recovered domain keys: {0}")]
    Seal(ehsm_core::Error),
}

/// Opens the existing standalone domain of `data_dir` for a backup. Never creates one: a missing
/// sealed file is [`Error::NoDomain`].
pub fn open_existing(data_dir: &Path, platform: &dyn Platform) -> Result<DomainKeySet, Error> {
    refuse_hsm_custody(data_dir)?;
    let path = data_dir.join(SEALED_FILE);
    if !path.exists() {
        return Err(Error::NoDomain { path });
    }
    // The file exists, so `open` unseals it (or fails); it creates only when there is no file.
    let (dks, _) = standalone::open(data_dir, platform)?;
    Ok(dks)
}

/// Installs a recovered domain-key set as the sealed file of `data_dir`, sealed to `platform`,
/// so that `ehsm serve` on it serves the old keys. Never replaces a sealed file: if one exists or
/// appears meanwhile, this fails with [`Error::AlreadyExists`] and leaves it untouched
/// (`files::publish_new` links the file into place, which fails rather than overwrite).
pub fn install_recovered(
    data_dir: &Path,
    platform: &dyn Platform,
    dks: &DomainKeySet,
) -> Result<(), Error> {
    refuse_hsm_custody(data_dir)?;
    let path = data_dir.join(SEALED_FILE);
    if path.exists() {
        return Err(Error::AlreadyExists { path });
    }
    let sealed = dks.seal(&platform.sealing_key()?).map_err(Error::Seal)?;
    if files::publish_new(&path, &sealed)? {
        Ok(())
    } else {
        Err(Error::AlreadyExists { path })
    }
}

/// Rebuilds the domain keys from decrypted shares ([`DomainKeySet::recover`]), for callers
/// that see the core only through this crate.
pub fn recover(shares: &[DecryptedShare]) -> Result<DomainKeySet, ehsm_core::Error> {
    DomainKeySet::recover(shares)
}

fn refuse_hsm_custody(data_dir: &Path) -> Result<(), Error> {
    let path = data_dir.join(crate::hsm::SEED_FILE);
    if path.exists() {
        return Err(Error::HsmCustody { path });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use ehsm_tee::sim::SimPlatform;

    use super::*;

    #[test]
    fn open_existing_never_creates_a_domain() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        let Err(err) = open_existing(dir.path(), &p) else {
            panic!("opened a domain that does not exist")
        };
        assert!(matches!(err, Error::NoDomain { .. }), "{err}");
        assert!(!dir.path().join(SEALED_FILE).exists());
        let (created, _) = standalone::open(dir.path(), &p).unwrap();
        let opened = open_existing(dir.path(), &p).unwrap();
        assert_eq!(opened.fingerprint(), created.fingerprint());
    }

    #[test]
    fn install_recovered_seals_for_this_platform_and_never_replaces() {
        let old_dir = tempfile::tempdir().unwrap();
        let old = SimPlatform::open(old_dir.path()).unwrap();
        let (dks, _) = standalone::open(old_dir.path(), &old).unwrap();

        let new_dir = tempfile::tempdir().unwrap();
        let new = SimPlatform::open(new_dir.path()).unwrap();
        install_recovered(new_dir.path(), &new, &dks).unwrap();
        let (back, how) = standalone::open(new_dir.path(), &new).unwrap();
        assert_eq!(how, standalone::Opened::Unsealed);
        assert_eq!(back.fingerprint(), dks.fingerprint());

        let before = std::fs::read(new_dir.path().join(SEALED_FILE)).unwrap();
        let other = DomainKeySet::generate().unwrap();
        let Err(err) = install_recovered(new_dir.path(), &new, &other) else {
            panic!("replaced a sealed domain")
        };
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert_eq!(
            std::fs::read(new_dir.path().join(SEALED_FILE)).unwrap(),
            before
        );
    }
}
