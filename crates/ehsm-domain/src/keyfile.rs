//! A key server's domain keys on disk: the sealed file of a standalone node
//! ([`standalone::SEALED_FILE`]), sealed under the platform's sealing key or under a seed that a
//! PKCS#11 HSM decrypts ([`hsm`]), and changed only by rotation.
//!
//! Unlike a standalone node, a key server never creates a domain by itself: the root creates one
//! only when told to ([`KeyFile::create`], `ehsm dkeyserver --new-domain`), since a root that
//! lost its file and silently made a new domain key would orphan every key of the domain
//! (upstream did exactly that).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, bail};
use ehsm_core::DomainKeySet;
use ehsm_tee::{Platform, SealingKey, files};

use crate::hsm::{self, HsmConfig, HsmCustody};
use crate::standalone::{self, SEALED_FILE};

/// Where the sealing key of the domain keys comes from.
#[derive(Clone, Debug)]
pub enum Custody {
    /// The platform's sealing key (SGX: bound to the enclave; sim: a file, no security).
    Platform,
    /// A seed decrypted by a non-extractable key in a PKCS#11 HSM.
    Hsm(HsmConfig),
}

/// The name of the lock file that serialises rotations of one data directory.
const LOCK_FILE: &str = "domain-keys.lock";

/// The sealed domain keys of a key server's data directory.
pub struct KeyFile {
    data_dir: PathBuf,
    sealing_key: SealingKey,
}

impl KeyFile {
    /// Opens the custody of `data_dir`. With HSM custody the seed is decrypted by the token; a
    /// missing seed is created only if `create` (a new domain), since a seed without its sealed
    /// file is harmless but a new seed next to an old sealed file would never open it.
    pub fn open(
        data_dir: &Path,
        custody: &Custody,
        platform: &dyn Platform,
        create: bool,
    ) -> anyhow::Result<Self> {
        let seed_path = data_dir.join(hsm::SEED_FILE);
        let sealing_key = match custody {
            Custody::Platform => {
                if seed_path.exists() {
                    return Err(standalone::Error::CustodyMismatch {
                        path: seed_path,
                        found: "HSM",
                        wanted: "platform",
                    }
                    .into());
                }
                platform.sealing_key()?
            }
            Custody::Hsm(config) => {
                let mut custody = HsmCustody::open(config)?;
                if !seed_path.exists() {
                    let sealed = data_dir.join(SEALED_FILE);
                    if sealed.exists() {
                        return Err(standalone::Error::CustodyMismatch {
                            path: sealed,
                            found: "platform",
                            wanted: "HSM",
                        }
                        .into());
                    }
                    if !create {
                        bail!(no_domain(data_dir));
                    }
                    let wrapped = custody.new_wrapped_seed()?;
                    files::publish_new(&seed_path, &wrapped)?;
                }
                let wrapped = files::read_owner_only(&seed_path)?;
                custody.unwrap_seed(&seed_path, &wrapped)?
            }
        };
        Ok(Self {
            data_dir: data_dir.to_owned(),
            sealing_key,
        })
    }

    fn path(&self) -> PathBuf {
        self.data_dir.join(SEALED_FILE)
    }

    /// The sealed keys, or `None` if the data directory has none yet. A file that does not
    /// unseal is an error, never "none".
    pub fn load(&self) -> anyhow::Result<Option<DomainKeySet>> {
        let path = self.path();
        if !path.exists() {
            return Ok(None);
        }
        let sealed = files::read_owner_only(&path)?;
        let keys = DomainKeySet::unseal(&sealed, &self.sealing_key).map_err(|source| {
            standalone::Error::Unseal {
                path: path.clone(),
                source,
            }
        })?;
        Ok(Some(keys))
    }

    /// The sealed keys; an error that says what to do if there are none.
    pub fn load_existing(&self) -> anyhow::Result<DomainKeySet> {
        self.load()?
            .ok_or_else(|| anyhow::anyhow!(no_domain(&self.data_dir)))
    }

    /// Creates a new domain (version 1) and seals it, or fails if the data directory has one.
    pub fn create(&self) -> anyhow::Result<DomainKeySet> {
        let keys = DomainKeySet::generate()?;
        let sealed = keys.seal(&self.sealing_key)?;
        if !files::publish_new(&self.path(), &sealed)? {
            bail!(
                "{} already exists: this data directory has a domain",
                self.path().display()
            );
        }
        Ok(keys)
    }

    /// Installs recovered domain keys (from backup shares) as this data directory's, or fails
    /// if it has a domain: a recovery never replaces one.
    pub fn install(&self, keys: &DomainKeySet) -> anyhow::Result<()> {
        if !files::publish_new(&self.path(), &keys.seal(&self.sealing_key)?)? {
            bail!(
                "{} already exists: refusing to replace a domain. Recover into a new, empty data \
                 directory",
                self.path().display()
            );
        }
        Ok(())
    }

    /// Seals `keys` over the file (a worker keeping what its upstream gave it), if they are the
    /// first or a newer set of the same domain; refuses another domain's keys.
    pub fn save(&self, keys: &DomainKeySet) -> anyhow::Result<()> {
        let _lock = self.lock()?;
        if let Some(old) = self.load()?
            && !keys.extends(&old)
        {
            bail!(
                "refusing to replace the domain keys in {} (fingerprint {}) with keys that do not \
                 hold them (fingerprint {})",
                self.path().display(),
                old.fingerprint(),
                keys.fingerprint()
            );
        }
        files::replace(&self.path(), &keys.seal(&self.sealing_key)?)?;
        Ok(())
    }

    /// Rotation: adds a new domain-key version and seals the set, under the data directory's
    /// lock so that two rotations cannot lose one another. Returns the new set.
    pub fn rotate(&self) -> anyhow::Result<DomainKeySet> {
        let _lock = self.lock()?;
        let mut keys = self.load_existing()?;
        keys.rotate()?;
        files::replace(&self.path(), &keys.seal(&self.sealing_key)?)?;
        Ok(keys)
    }

    /// When the sealed file last changed, for a running server to notice a rotation.
    pub fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(self.path())
            .and_then(|m| m.modified())
            .ok()
    }

    /// An exclusive lock on the data directory's lock file, released when dropped.
    fn lock(&self) -> anyhow::Result<File> {
        let path = self.data_dir.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    }
}

fn no_domain(data_dir: &Path) -> String {
    format!(
        "{} has no domain keys. Refusing to start without them: restore the data directory, \
         recover the domain ('ehsm dkeyserver recover' from backup shares or from a worker), or, \
         only to start a NEW, empty domain, pass --new-domain",
        data_dir.display()
    )
}

#[cfg(test)]
mod tests {
    use ehsm_tee::sim::SimPlatform;

    use super::*;

    #[test]
    fn a_key_file_is_created_only_when_asked_and_rotates_forward() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        let file = KeyFile::open(dir.path(), &Custody::Platform, &p, false).unwrap();
        assert!(file.load().unwrap().is_none());
        let err = file.load_existing().err().unwrap().to_string();
        assert!(err.contains("--new-domain"), "{err}");

        let created = file.create().unwrap();
        assert!(file.create().is_err(), "a second domain over the first");
        assert!(
            file.install(&DomainKeySet::generate().unwrap()).is_err(),
            "a recovery over it"
        );
        let rotated = file.rotate().unwrap();
        assert_eq!(rotated.versions().collect::<Vec<_>>(), vec![1, 2]);
        assert!(rotated.extends(&created));
        let loaded = file.load_existing().unwrap();
        assert_eq!(loaded.fingerprint(), rotated.fingerprint());

        // A worker's save: an older set or another domain never replaces the file.
        assert!(file.save(&created).is_err());
        assert!(file.save(&DomainKeySet::generate().unwrap()).is_err());
        assert_eq!(
            file.load_existing().unwrap().fingerprint(),
            rotated.fingerprint()
        );
    }

    #[test]
    fn recovered_keys_are_installed_once_and_open_after() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        let file = KeyFile::open(dir.path(), &Custody::Platform, &p, true).unwrap();
        let recovered = DomainKeySet::generate().unwrap();
        file.install(&recovered).unwrap();
        assert_eq!(
            file.load_existing().unwrap().fingerprint(),
            recovered.fingerprint()
        );
        let before = std::fs::read(dir.path().join(SEALED_FILE)).unwrap();
        assert!(file.install(&DomainKeySet::generate().unwrap()).is_err());
        assert_eq!(std::fs::read(dir.path().join(SEALED_FILE)).unwrap(), before);
    }

    #[test]
    fn concurrent_rotations_each_add_a_version() {
        let dir = tempfile::tempdir().unwrap();
        let p = SimPlatform::open(dir.path()).unwrap();
        KeyFile::open(dir.path(), &Custody::Platform, &p, true)
            .unwrap()
            .create()
            .unwrap();
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    KeyFile::open(dir.path(), &Custody::Platform, &p, false)
                        .unwrap()
                        .rotate()
                        .unwrap()
                });
            }
        });
        let file = KeyFile::open(dir.path(), &Custody::Platform, &p, false).unwrap();
        assert_eq!(
            file.load_existing().unwrap().versions().collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
    }
}
