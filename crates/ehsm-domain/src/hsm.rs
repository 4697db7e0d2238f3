//! HSM custody of the domain keys: a non-extractable AES-256 key inside a PKCS#11 token.
//!
//! # Design
//!
//! The HSM does not hold the domain keys themselves: the core keeps the only sealing format for
//! them ([`DomainKeySet::seal`](ehsm_core::DomainKeySet::seal)). Instead the HSM guards a random
//! 32-byte *custody seed*, generated on first start, and the seed is used as the
//! [`SealingKey`] under which the core seals the DK set to `domain-keys.sealed`, exactly as a
//! platform's sealing key is. (The core already derives its AES key from a sealing key with HKDF
//! under its own label, so the seed is passed as is: a second HKDF would add nothing.)
//!
//! The seed is encrypted by the token with `CKM_AES_GCM` (SoftHSM2 and real HSMs support it;
//! it authenticates, so no separate MAC is needed) under the custody key, and stored next to
//! the sealed file as [`SEED_FILE`]:
//!
//! ```text
//! magic "ehsm-hsw" (8) ‖ format version 1 (1) ‖ key label length (1) ‖ key label
//!   ‖ IV (12, from the token's RNG) ‖ AES-256-GCM ciphertext of the seed (32) ‖ tag (16)
//! ```
//!
//! with everything before the IV as the GCM AAD, so the label and version cannot be swapped.
//! Without the token (wrong PIN, another token, the key deleted) the seed cannot be decrypted and
//! the domain keys stay sealed: start-up fails and nothing is created or replaced.
//!
//! The custody key is generated on the token (`CKA_TOKEN`, `CKA_PRIVATE`, `CKA_SENSITIVE`,
//! not `CKA_EXTRACTABLE`, encrypt/decrypt only) the first time a domain is created, and found by
//! its label afterwards; it never leaves the HSM. The PIN comes from a file or `EHSM_HSM_PIN`,
//! is held in a zeroizing secret and is never logged or put in an error.

use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as P11Error, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use ehsm_core::DomainKeySet;
use ehsm_tee::{SealingKey, files};
use zeroize::Zeroizing;

use crate::standalone::{self, Opened};

/// The file, inside the data directory, that holds the custody seed encrypted by the HSM.
pub const SEED_FILE: &str = "domain-keys.hsm-wrapped-seed";

/// The custody key's label when none is configured.
pub const DEFAULT_KEY_LABEL: &str = "ehsm-domain-custody";

/// The environment variable the PIN is read from when no PIN file is configured.
pub const PIN_ENV: &str = "EHSM_HSM_PIN";

const MAGIC: &[u8; 8] = b"ehsm-hsw";
const VERSION: u8 = 1;
const IV_LEN: usize = 12;
const SEED_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// Where the PIN comes from. Never the PIN itself, so a configuration can be logged and cloned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PinSource {
    /// A file holding the PIN (one trailing newline is ignored); it must be readable only by
    /// its owner.
    File(PathBuf),
    /// The environment variable [`PIN_ENV`].
    Env,
}

/// How to reach the custody key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HsmConfig {
    /// The PKCS#11 module (e.g. `/usr/lib/softhsm/libsofthsm2.so`).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// Where the user PIN comes from.
    pub pin: PinSource,
    /// The custody key's label on the token ([`DEFAULT_KEY_LABEL`] by default).
    pub key_label: String,
}

impl HsmConfig {
    /// Reads a PKCS#11 URI (RFC 7512), the form `ehsm dkeyserver --hsm` takes:
    ///
    /// ```text
    /// pkcs11:token=LABEL[;object=KEY-LABEL]?module-path=PATH[&pin-source=file:PATH]
    /// ```
    ///
    /// `object` is the custody key's label ([`DEFAULT_KEY_LABEL`] if absent); without
    /// `pin-source` the PIN comes from [`PIN_ENV`]. Values may be percent-encoded. Attributes
    /// that would select something else (`pin-value`, `id`, `slot-id`, ...) are refused rather
    /// than ignored, and a PIN is never accepted inside the URI.
    pub fn from_uri(uri: &str) -> Result<Self, Error> {
        let bad = |why: String| Error::Config(format!("PKCS#11 URI: {why}"));
        let rest = uri
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("it must start with 'pkcs11:'".into()))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (mut token, mut object, mut module, mut pin) = (None, None, None, PinSource::Env);
        let attributes = path.split(';').chain(query.split('&'));
        for attribute in attributes.filter(|a| !a.is_empty()) {
            let (name, value) = attribute
                .split_once('=')
                .ok_or_else(|| bad(format!("'{attribute}' is not NAME=VALUE")))?;
            let value =
                percent_decode(value).ok_or_else(|| bad(format!("bad escape in {name}")))?;
            match name {
                "token" => token = Some(value),
                "object" => object = Some(value),
                "module-path" => module = Some(PathBuf::from(value)),
                "pin-source" => {
                    let file = value.strip_prefix("file:").unwrap_or(&value);
                    pin = PinSource::File(PathBuf::from(file));
                }
                "pin-value" => {
                    return Err(bad(
                        "pin-value is refused: give the PIN in a file (pin-source) or EHSM_HSM_PIN"
                            .into(),
                    ));
                }
                other => return Err(bad(format!("unsupported attribute '{other}'"))),
            }
        }
        Ok(HsmConfig {
            module: module.ok_or_else(|| bad("module-path is required".into()))?,
            token: token.ok_or_else(|| bad("token is required".into()))?,
            pin,
            key_label: object.unwrap_or_else(|| DEFAULT_KEY_LABEL.to_owned()),
        })
    }
}

/// Decodes `%XX` escapes; `None` for a malformed escape or a result that is not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Why HSM custody failed. No variant carries the PIN.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable.
    #[error("HSM custody: {0}")]
    Config(String),
    /// The PKCS#11 module could not be loaded or initialized.
    #[error("HSM custody: cannot load the PKCS#11 module {module}: {source}")]
    Module {
        /// The module.
        module: PathBuf,
        /// What cryptoki said.
        source: P11Error,
    },
    /// No token with the configured label.
    #[error("HSM custody: no token labelled {0:?} in the PKCS#11 module")]
    NoToken(String),
    /// The token refused the PIN.
    #[error("HSM custody: token {token:?} refused the PIN ({source})")]
    Login {
        /// The token.
        token: String,
        /// What cryptoki said (the return value, never the PIN).
        source: P11Error,
    },
    /// The custody key is not on the token although a domain was created with it.
    #[error(
        "HSM custody: no key labelled {key:?} on token {token:?}, but this data directory's \
         domain keys are in its custody. Refusing to start: connect the token that holds the key \
         (or restore the key); a new key cannot open the existing domain."
    )]
    KeyMissing {
        /// The key label.
        key: String,
        /// The token.
        token: String,
    },
    /// More than one key carries the label: which one guards the domain is ambiguous.
    #[error("HSM custody: {count} keys are labelled {key:?} on token {token:?}; expected one")]
    KeyAmbiguous {
        /// The key label.
        key: String,
        /// The token.
        token: String,
        /// How many.
        count: usize,
    },
    /// The custody seed file is malformed, names another key, or does not decrypt.
    #[error(
        "{path}: {reason}. Refusing to start: the domain keys cannot be opened without it; \
         connect the token and key the domain was created with."
    )]
    Seed {
        /// The seed file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Another PKCS#11 operation failed.
    #[error("HSM custody: {op} failed: {source}")]
    Pkcs11 {
        /// What was attempted.
        op: &'static str,
        /// What cryptoki said.
        source: P11Error,
    },
    /// Opening the sealed domain keys failed (or the data dir is in platform custody).
    #[error(transparent)]
    Standalone(#[from] standalone::Error),
}

fn p11(op: &'static str) -> impl FnOnce(P11Error) -> Error {
    move |source| Error::Pkcs11 { op, source }
}

/// A logged-in session on the custody token.
pub struct HsmCustody {
    // The session must be closed before the context is finalized: fields drop in order.
    session: Session,
    _pkcs11: Pkcs11,
    token: String,
    key_label: String,
    key: Option<ObjectHandle>,
}

impl HsmCustody {
    /// Loads the module, finds the token, logs in and looks the custody key up (it may not exist
    /// yet: see [`open_standalone`]).
    pub fn open(config: &HsmConfig) -> Result<Self, Error> {
        if config.key_label.is_empty() || config.key_label.len() > usize::from(u8::MAX) {
            return Err(Error::Config(
                "the key label must be 1 to 255 bytes long".into(),
            ));
        }
        let pin = read_pin(&config.pin)?;
        let module_err = |source| Error::Module {
            module: config.module.clone(),
            source,
        };
        let pkcs11 = Pkcs11::new(&config.module).map_err(module_err)?;
        match pkcs11.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Another custody in this process initialized the module already: that is fine.
            Ok(()) | Err(P11Error::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(e) => return Err(module_err(e)),
        }
        let mut found = None;
        for slot in pkcs11
            .get_slots_with_token()
            .map_err(p11("listing the slots"))?
        {
            let info = pkcs11
                .get_token_info(slot)
                .map_err(p11("reading token information"))?;
            if info.label().trim_end() == config.token {
                found = Some(slot);
                break;
            }
        }
        let slot = found.ok_or_else(|| Error::NoToken(config.token.clone()))?;
        let session = pkcs11
            .open_rw_session(slot)
            .map_err(p11("opening a session"))?;
        match session.login(UserType::User, Some(&pin)) {
            Ok(()) | Err(P11Error::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
            Err(source) => {
                return Err(Error::Login {
                    token: config.token.clone(),
                    source,
                });
            }
        }
        let mut custody = Self {
            session,
            _pkcs11: pkcs11,
            token: config.token.clone(),
            key_label: config.key_label.clone(),
            key: None,
        };
        custody.key = custody.find_key()?;
        Ok(custody)
    }

    /// The token's label.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The custody key's label.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    /// The custody key, if it exists on the token.
    pub fn key(&self) -> Option<ObjectHandle> {
        self.key
    }

    fn find_key(&self) -> Result<Option<ObjectHandle>, Error> {
        let found = self
            .session
            .find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::Token(true),
                Attribute::Label(self.key_label.as_bytes().to_vec()),
            ])
            .map_err(p11("looking the custody key up"))?;
        match found.as_slice() {
            [] => Ok(None),
            [one] => Ok(Some(*one)),
            many => Err(Error::KeyAmbiguous {
                key: self.key_label.clone(),
                token: self.token.clone(),
                count: many.len(),
            }),
        }
    }

    /// Generates the custody key on the token unless it exists.
    fn ensure_key(&mut self) -> Result<ObjectHandle, Error> {
        if let Some(key) = self.key {
            return Ok(key);
        }
        let key = self
            .session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32.into()),
                    Attribute::Label(self.key_label.as_bytes().to_vec()),
                    // A persistent object, readable only after login, whose value never leaves
                    // the token, used for nothing but encrypting and decrypting the seed.
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Wrap(false),
                    Attribute::Unwrap(false),
                    Attribute::Sign(false),
                    Attribute::Verify(false),
                    Attribute::Derive(false),
                ],
            )
            .map_err(p11("generating the custody key"))?;
        self.key = Some(key);
        Ok(key)
    }

    fn header(&self) -> Vec<u8> {
        let mut h = Vec::with_capacity(MAGIC.len() + 2 + self.key_label.len());
        h.extend_from_slice(MAGIC);
        h.push(VERSION);
        // Checked in `open`: the label is 1..=255 bytes.
        h.push(self.key_label.len() as u8);
        h.extend_from_slice(self.key_label.as_bytes());
        h
    }

    /// Generates a new custody seed on the token and returns it encrypted ([`SEED_FILE`]'s
    /// contents), creating the custody key if needed.
    pub fn new_wrapped_seed(&mut self) -> Result<Vec<u8>, Error> {
        let key = self.ensure_key()?;
        let mut seed = Zeroizing::new([0u8; SEED_LEN]);
        self.session
            .generate_random_slice(seed.as_mut_slice())
            .map_err(p11("generating the custody seed"))?;
        let mut iv = [0u8; IV_LEN];
        self.session
            .generate_random_slice(&mut iv)
            .map_err(p11("generating an IV"))?;
        let header = self.header();
        let sealed = {
            let params = GcmParams::new(&mut iv, &header, ((TAG_LEN * 8) as u64).into())
                .map_err(p11("preparing AES-GCM"))?;
            self.session
                .encrypt(&Mechanism::AesGcm(params), key, seed.as_slice())
                .map_err(p11("encrypting the custody seed"))?
        };
        let mut out = header;
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a seed file's contents through the token and returns the sealing key it gives.
    pub fn unwrap_seed(&self, path: &Path, wrapped: &[u8]) -> Result<SealingKey, Error> {
        let bad = |reason: &str| Error::Seed {
            path: path.to_owned(),
            reason: reason.to_owned(),
        };
        let header = self.header();
        let Some(rest) = wrapped.strip_prefix(header.as_slice()) else {
            // Say which part differs: a version from the future and another key label are
            // operator mistakes with different fixes.
            return Err(match wrapped.get(..MAGIC.len() + 1) {
                Some(h) if h.starts_with(MAGIC) && h[MAGIC.len()] != VERSION => {
                    bad("written by an unknown version of ehsm")
                }
                Some(h) if h.starts_with(MAGIC) => Error::Seed {
                    path: path.to_owned(),
                    reason: format!(
                        "the seed is in the custody of another key label than {:?}",
                        self.key_label
                    ),
                },
                _ => bad("not an ehsm HSM custody file (bad magic)"),
            });
        };
        if rest.len() != IV_LEN + SEED_LEN + TAG_LEN {
            return Err(bad("the file is truncated or malformed"));
        }
        let key = self.key.ok_or_else(|| Error::KeyMissing {
            key: self.key_label.clone(),
            token: self.token.clone(),
        })?;
        let (iv, sealed) = rest.split_at(IV_LEN);
        let mut iv = iv.to_vec();
        let params = GcmParams::new(&mut iv, &header, ((TAG_LEN * 8) as u64).into())
            .map_err(p11("preparing AES-GCM"))?;
        // Held zeroizing from the moment the token returns it, and turned into a key at once.
        let seed = Zeroizing::new(
            self.session
                .decrypt(&Mechanism::AesGcm(params), key, sealed)
                .map_err(|_| {
                    bad(
                        "the custody seed does not decrypt with this token's key: another \
                         token or key of the same label, or the file was tampered with",
                    )
                })?,
        );
        let seed: [u8; SEED_LEN] = seed
            .as_slice()
            .try_into()
            .map_err(|_| bad("the decrypted seed has the wrong length"))?;
        Ok(SealingKey::from_bytes(seed))
    }
}

fn read_pin(source: &PinSource) -> Result<AuthPin, Error> {
    let pin = match source {
        PinSource::File(path) => {
            let bytes = Zeroizing::new(
                files::read_owner_only(path)
                    .map_err(|e| Error::Config(format!("cannot read the PIN file: {e}")))?,
            );
            let text = std::str::from_utf8(&bytes).map_err(|_| {
                Error::Config(format!("the PIN file {} is not UTF-8", path.display()))
            })?;
            Zeroizing::new(text.strip_suffix('\n').unwrap_or(text).to_owned())
        }
        PinSource::Env => Zeroizing::new(std::env::var(PIN_ENV).map_err(|_| {
            Error::Config(format!(
                "no PIN: give a PIN file (--hsm-pin-file) or set {PIN_ENV}"
            ))
        })?),
    };
    if pin.is_empty() {
        return Err(Error::Config("the PIN is empty".into()));
    }
    Ok(AuthPin::from(pin.as_str()))
}

/// Opens the standalone domain in `data_dir` in the HSM's custody, creating it on first start.
///
/// First start (neither file exists): a seed is generated and encrypted by the token (the
/// custody key is generated if the label is new), published as [`SEED_FILE`], then the domain
/// is created and sealed under it as in [`standalone::open`]. Later starts decrypt the seed
/// through the token and unseal. A data directory in platform custody is refused, and so is
/// one whose seed does not decrypt: nothing is ever created over an existing domain.
pub fn open_standalone(
    data_dir: &Path,
    custody: &mut HsmCustody,
) -> Result<(DomainKeySet, Opened), Error> {
    let seed_path = data_dir.join(SEED_FILE);
    let sealed_path = data_dir.join(standalone::SEALED_FILE);
    if !seed_path.exists() {
        if sealed_path.exists() {
            return Err(standalone::Error::CustodyMismatch {
                path: sealed_path,
                found: "platform",
                wanted: "HSM",
            }
            .into());
        }
        let wrapped = custody.new_wrapped_seed()?;
        // If another process published its seed first, `publish_new` says so and theirs is used.
        files::publish_new(&seed_path, &wrapped).map_err(standalone::Error::from)?;
    }
    let wrapped = files::read_owner_only(&seed_path).map_err(standalone::Error::from)?;
    let sealing_key = custody.unwrap_seed(&seed_path, &wrapped)?;
    // The seed is published before the sealed file, so a start that stopped in between left no
    // domain: creating it now under the same seed is safe.
    Ok(standalone::open_sealed(data_dir, &sealing_key)?)
}

/// A private SoftHSM2 installation for tests: a token directory and configuration file in a
/// directory the test owns, so tests never touch the system's tokens.
#[cfg(any(test, feature = "softhsm-tests"))]
pub mod softhsm {
    use std::path::{Path, PathBuf};
    use std::process::Command;

    /// The user PIN of the test tokens.
    pub const PIN: &str = "1234";
    const SO_PIN: &str = "5678";
    const MODULES: &[&str] = &[
        "/usr/lib/softhsm/libsofthsm2.so",
        "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    ];

    /// A SoftHSM2 setup with initialized tokens.
    #[derive(Debug)]
    pub struct SoftHsm {
        /// The PKCS#11 module.
        pub module: PathBuf,
        /// The `SOFTHSM2_CONF` to give every process that uses the tokens.
        pub conf: PathBuf,
    }

    /// Sets SoftHSM2 up in `dir` with a token per label (user PIN [`PIN`]). Returns `None`,
    /// after printing why, when SoftHSM2 is not installed; panics instead when `CI` is set, since
    /// CI must run these tests.
    pub fn setup(dir: &Path, labels: &[&str]) -> Option<SoftHsm> {
        let util = Command::new("softhsm2-util").arg("--version").output();
        let module = MODULES.iter().map(PathBuf::from).find(|m| m.exists());
        let (Ok(_), Some(module)) = (util, module) else {
            let why = "softhsm2-util or libsofthsm2.so is missing (apt-get install softhsm2)";
            let in_ci =
                std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
            if in_ci {
                panic!("CI is set but the SoftHSM2 tests cannot run: {why}");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        };
        let tokens = dir.join("tokens");
        std::fs::create_dir_all(&tokens).ok()?;
        let conf = dir.join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
                tokens.display()
            ),
        )
        .ok()?;
        for label in labels {
            let out = Command::new("softhsm2-util")
                .env("SOFTHSM2_CONF", &conf)
                .args(["--init-token", "--free", "--label", label])
                .args(["--pin", PIN, "--so-pin", SO_PIN])
                .output()
                .ok()?;
            assert!(
                out.status.success(),
                "softhsm2-util --init-token failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Some(SoftHsm { module, conf })
    }

    /// Writes a PIN file (mode 0600) and returns its path.
    pub fn pin_file(dir: &Path, name: &str, pin: &str) -> PathBuf {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = dir.join(name);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&path)
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        writeln!(f, "{pin}").unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
        path
    }
}

#[cfg(test)]
mod tests {
    // PKCS#11 modules read their configuration (SOFTHSM2_CONF) once, when first initialized in a
    // process, and the environment cannot be changed safely in a multi-threaded test process. So
    // each test runs its body in a fresh child process of this test binary with its own
    // SoftHSM2 directory; the parent only prepares the tokens and checks the child's status.
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::softhsm::{self, PIN};
    use super::*;
    use cryptoki::object::AttributeType;
    use ehsm_tee::sim::SimPlatform;

    /// `unwrap_err` for results whose value (a `DomainKeySet`) has no `Debug`, by design.
    trait Refused<E> {
        fn refused(self) -> E;
    }
    impl<T, E> Refused<E> for Result<T, E> {
        fn refused(self) -> E {
            match self {
                Err(e) => e,
                Ok(_) => panic!("opened, but a refusal was expected"),
            }
        }
    }

    const CHILD: &str = "EHSM_HSM_TEST_CHILD_DIR";

    /// Runs `body(dir, module)` in a child process with `SOFTHSM2_CONF` set; tokens `T` and `U`.
    fn in_softhsm(test: &str, body: impl FnOnce(&Path, &Path)) {
        if let Ok(dir) = std::env::var(CHILD) {
            let module = std::env::var("EHSM_HSM_TEST_MODULE").unwrap();
            body(Path::new(&dir), Path::new(&module));
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let Some(hsm) = softhsm::setup(dir.path(), &["T", "U"]) else {
            return;
        };
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([test, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD, dir.path())
            .env("EHSM_HSM_TEST_MODULE", &hsm.module)
            .env("SOFTHSM2_CONF", &hsm.conf)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "child test failed:\n{text}");
        // The child must have run the test (not filtered it out by a wrong name).
        assert!(text.contains("1 passed"), "child ran no test:\n{text}");
    }

    fn config(dir: &Path, module: &Path, token: &str, pin: &str) -> HsmConfig {
        HsmConfig {
            module: module.to_owned(),
            token: token.into(),
            pin: PinSource::File(softhsm::pin_file(dir, &format!("pin-{pin}"), pin)),
            key_label: DEFAULT_KEY_LABEL.into(),
        }
    }

    fn data_dir(dir: &Path) -> PathBuf {
        let d = dir.join("data");
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn snapshot(data: &Path) -> Vec<(String, Vec<u8>)> {
        let mut files: Vec<_> = std::fs::read_dir(data)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    }

    #[test]
    fn key_is_generated_sensitive_and_not_extractable() {
        in_softhsm(
            "hsm::tests::key_is_generated_sensitive_and_not_extractable",
            |dir, module| {
                let mut c = HsmCustody::open(&config(dir, module, "T", PIN)).unwrap();
                assert!(c.key().is_none());
                c.new_wrapped_seed().unwrap();
                let key = c.key().unwrap();
                let attrs = c
                    .session
                    .get_attributes(
                        key,
                        &[
                            AttributeType::Sensitive,
                            AttributeType::Extractable,
                            AttributeType::Token,
                            AttributeType::NeverExtractable,
                            AttributeType::AlwaysSensitive,
                            AttributeType::ValueLen,
                        ],
                    )
                    .unwrap();
                for a in &attrs {
                    match a {
                        Attribute::Sensitive(v)
                        | Attribute::Token(v)
                        | Attribute::NeverExtractable(v)
                        | Attribute::AlwaysSensitive(v) => assert!(*v, "{a:?}"),
                        Attribute::Extractable(v) => assert!(!*v),
                        Attribute::ValueLen(n) => assert_eq!(u64::from(*n), 32),
                        other => panic!("unexpected {other:?}"),
                    }
                }
                assert_eq!(attrs.len(), 6);
                // The value cannot be read: either an error or no value at all.
                match c.session.get_attributes(key, &[AttributeType::Value]) {
                    Err(_) => {}
                    Ok(v) => assert!(
                        !v.iter().any(|a| matches!(a, Attribute::Value(_))),
                        "CKA_VALUE was readable"
                    ),
                }
                // A second open finds the same key by label.
                drop(c);
                let c = HsmCustody::open(&config(dir, module, "T", PIN)).unwrap();
                assert!(c.key().is_some());
            },
        );
    }

    #[test]
    fn seed_wraps_and_unwraps() {
        in_softhsm("hsm::tests::seed_wraps_and_unwraps", |dir, module| {
            let mut c = HsmCustody::open(&config(dir, module, "T", PIN)).unwrap();
            let a = c.new_wrapped_seed().unwrap();
            let b = c.new_wrapped_seed().unwrap();
            assert_eq!(
                a.len(),
                MAGIC.len() + 2 + DEFAULT_KEY_LABEL.len() + 12 + 32 + 16
            );
            assert_ne!(a, b, "fresh seed and IV each time");
            let p = Path::new("seed");
            let ka = c.unwrap_seed(p, &a).unwrap();
            let kb = c.unwrap_seed(p, &b).unwrap();
            assert_eq!(ka.expose(), c.unwrap_seed(p, &a).unwrap().expose());
            assert_ne!(ka.expose(), kb.expose());
            // Tampering with any byte (header, IV, ciphertext, tag) is refused.
            for i in [0, 9, a.len() - 40, a.len() - 1] {
                let mut t = a.clone();
                t[i] ^= 1;
                assert!(
                    matches!(c.unwrap_seed(p, &t), Err(Error::Seed { .. })),
                    "{i}"
                );
            }
        });
    }

    #[test]
    fn domain_survives_a_restart_through_the_hsm() {
        in_softhsm(
            "hsm::tests::domain_survives_a_restart_through_the_hsm",
            |dir, module| {
                let data = data_dir(dir);
                let cfg = config(dir, module, "T", PIN);
                let (a, how) =
                    open_standalone(&data, &mut HsmCustody::open(&cfg).unwrap()).unwrap();
                assert_eq!(how, Opened::Created);
                let (b, how) =
                    open_standalone(&data, &mut HsmCustody::open(&cfg).unwrap()).unwrap();
                assert_eq!(how, Opened::Unsealed);
                assert_eq!(a.fingerprint(), b.fingerprint());
                assert!(data.join(SEED_FILE).exists());
            },
        );
    }

    #[test]
    fn losing_the_token_refuses_to_start_and_touches_nothing() {
        in_softhsm(
            "hsm::tests::losing_the_token_refuses_to_start_and_touches_nothing",
            |dir, module| {
                let data = data_dir(dir);
                let good = config(dir, module, "T", PIN);
                open_standalone(&data, &mut HsmCustody::open(&good).unwrap()).unwrap();
                let before = snapshot(&data);

                // A wrong PIN: refused at login, and the error does not carry the PIN.
                let Err(err) = HsmCustody::open(&config(dir, module, "T", "9999")) else {
                    panic!("logged in with a wrong PIN")
                };
                assert!(matches!(err, Error::Login { .. }), "{err}");
                assert!(!err.to_string().contains("9999"), "{err}");

                // Another token (same key label, generated there on open): does not decrypt.
                let mut other = HsmCustody::open(&config(dir, module, "U", PIN)).unwrap();
                other.new_wrapped_seed().unwrap();
                let err = open_standalone(&data, &mut other).refused();
                assert!(matches!(err, Error::Seed { .. }), "{err}");
                assert!(err.to_string().contains("Refusing to start"), "{err}");
                drop(other);

                // A token without the key at all.
                let Err(err) = HsmCustody::open(&config(dir, module, "missing", PIN)) else {
                    panic!("opened a missing token")
                };
                assert!(matches!(err, Error::NoToken(_)), "{err}");

                // Another key label on the right token.
                let mut other_label = good.clone();
                other_label.key_label = "something-else".into();
                let err =
                    open_standalone(&data, &mut HsmCustody::open(&other_label).unwrap()).refused();
                assert!(err.to_string().contains("another key label"), "{err}");

                // The key deleted from the token.
                let c = HsmCustody::open(&good).unwrap();
                c.session.destroy_object(c.key().unwrap()).unwrap();
                drop(c);
                let err = open_standalone(&data, &mut HsmCustody::open(&good).unwrap()).refused();
                assert!(matches!(err, Error::KeyMissing { .. }), "{err}");
                assert!(err.to_string().contains("Refusing to start"), "{err}");

                assert_eq!(
                    snapshot(&data),
                    before,
                    "a refused start changed the data dir"
                );
            },
        );
    }

    #[test]
    fn custodies_do_not_open_each_others_data_dirs() {
        in_softhsm(
            "hsm::tests::custodies_do_not_open_each_others_data_dirs",
            |dir, module| {
                let cfg = config(dir, module, "T", PIN);

                // Platform-made data dir, opened with the HSM.
                let plat_dir = dir.join("platform");
                std::fs::create_dir_all(&plat_dir).unwrap();
                let p = SimPlatform::open(&plat_dir).unwrap();
                standalone::open(&plat_dir, &p).unwrap();
                let before = snapshot(&plat_dir);
                let err =
                    open_standalone(&plat_dir, &mut HsmCustody::open(&cfg).unwrap()).refused();
                assert!(
                    matches!(
                        err,
                        Error::Standalone(standalone::Error::CustodyMismatch { .. })
                    ),
                    "{err}"
                );
                assert!(err.to_string().contains("platform custody"), "{err}");
                assert_eq!(snapshot(&plat_dir), before);

                // HSM-made data dir, opened with the platform.
                let hsm_dir = dir.join("hsm");
                std::fs::create_dir_all(&hsm_dir).unwrap();
                open_standalone(&hsm_dir, &mut HsmCustody::open(&cfg).unwrap()).unwrap();
                let p = SimPlatform::open(&hsm_dir).unwrap();
                let before = snapshot(&hsm_dir);
                let err = standalone::open(&hsm_dir, &p).refused();
                assert!(
                    matches!(err, standalone::Error::CustodyMismatch { .. }),
                    "{err}"
                );
                assert!(err.to_string().contains("HSM custody"), "{err}");
                assert_eq!(snapshot(&hsm_dir), before);
            },
        );
    }
}

#[cfg(test)]
mod uri_tests {
    use super::*;

    #[test]
    fn pkcs11_uris_are_read() {
        let c = HsmConfig::from_uri(
            "pkcs11:token=ehsm%20root;object=custody?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/etc/ehsm/pin",
        )
        .unwrap();
        assert_eq!(c.token, "ehsm root");
        assert_eq!(c.key_label, "custody");
        assert_eq!(c.module, PathBuf::from("/usr/lib/softhsm/libsofthsm2.so"));
        assert_eq!(c.pin, PinSource::File("/etc/ehsm/pin".into()));
        let c = HsmConfig::from_uri("pkcs11:token=t?module-path=/m.so").unwrap();
        assert_eq!(
            (c.key_label.as_str(), c.pin),
            (DEFAULT_KEY_LABEL, PinSource::Env)
        );
    }

    #[test]
    fn bad_pkcs11_uris_say_why() {
        for (uri, why) in [
            ("token=t?module-path=/m.so", "pkcs11:"),
            ("pkcs11:?module-path=/m.so", "token is required"),
            ("pkcs11:token=t", "module-path is required"),
            (
                "pkcs11:token=t?module-path=/m.so&pin-value=1234",
                "pin-value is refused",
            ),
            (
                "pkcs11:token=t;id=%01?module-path=/m.so",
                "unsupported attribute 'id'",
            ),
            ("pkcs11:token=%zz?module-path=/m.so", "bad escape"),
            ("pkcs11:token?module-path=/m.so", "NAME=VALUE"),
        ] {
            let err = HsmConfig::from_uri(uri).unwrap_err().to_string();
            assert!(err.contains(why), "{uri}: {err}");
            assert!(!err.contains("1234"), "the PIN is never echoed: {err}");
        }
    }
}
