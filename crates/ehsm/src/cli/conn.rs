//! Where a client command connects and with which credentials: flags, then `EHSM_*` variables
//! (clap reads both), then the profile that `ehsm enroll` wrote.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use ehsm_client::{Client, ClientBuilder, Credentials};

/// Used when neither a flag, `EHSM_URL` nor the profile names a server.
pub(crate) const DEFAULT_URL: &str = "https://127.0.0.1:9000";

/// How long one request may take before the command gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The server and the credentials, shared by every client command.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct ConnArgs {
    /// Server base URL [default: the profile's, else https://127.0.0.1:9000]
    #[arg(long, env = "EHSM_URL", global = true, value_name = "URL")]
    pub(crate) url: Option<String>,

    /// App id [default: the profile's]
    #[arg(long, env = "EHSM_APPID", global = true, value_name = "APPID")]
    appid: Option<String>,

    /// API key; prefer the profile or EHSM_APIKEY, since other local users can read command
    /// lines [default: the profile's]
    #[arg(
        long,
        env = "EHSM_APIKEY",
        global = true,
        hide_env_values = true,
        value_name = "APIKEY"
    )]
    apikey: Option<String>,

    /// Profile file with the URL, credentials and CA certificate path (written by 'ehsm enroll')
    /// [default: $HOME/.config/ehsm/profile.json]
    #[arg(long, env = "EHSM_PROFILE", global = true, value_name = "FILE")]
    profile: Option<PathBuf>,

    /// Trust this server certificate (PEM), e.g. the server's <data-dir>/tls-cert.pem, instead
    /// of the system's roots
    #[arg(long, env = "EHSM_CA_CERT", global = true, value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// Accept any server certificate, without checking it. For testing only: anyone on the
    /// network path can then read and change the traffic, and steal the apikey's signatures
    #[arg(
        long,
        env = "EHSM_INSECURE",
        global = true,
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    insecure: bool,
}

/// What a command needs besides a server URL.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Need {
    /// Enroll: no credentials.
    Nothing,
    /// Credentials from flags, the environment or the profile.
    Credentials,
    /// Credentials if given by flags or the environment, else none (bench enrolls its own app);
    /// the profile is not read at all.
    FlagsOnly,
}

/// The profile file: the server, an app's credentials, and how to trust the server.
///
/// It holds the apikey, so it is written with mode 0600 and has no `Debug`.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct Profile {
    pub(crate) url: String,
    pub(crate) appid: String,
    pub(crate) apikey: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// After an attested enrollment: the SHA-256 (hex) of the server's attested TLS key, which
    /// every later connection must present instead of passing a CA check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server_key_sha256: Option<String>,
    /// After an attested enrollment: what the server's evidence measured, as 'ehsm attest
    /// server' prints it. For the user to read; nothing checks it again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) attested: Option<serde_json::Value>,
}

/// How the server's certificate is checked.
#[derive(Clone, Debug)]
pub(crate) enum Trust {
    /// The system's root certificates.
    System,
    /// Only this certificate file (its PEM is kept in [`Session`]).
    CaCert(PathBuf),
    /// Not at all (`--insecure`).
    Insecure,
}

/// A resolved connection: an SDK client and what is needed to explain its failures.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) url: String,
    pub(crate) trust: Trust,
    ca_pem: Option<Vec<u8>>,
    /// Where the profile is (or would be); `None` without `--profile` and `$HOME`.
    pub(crate) profile_path: Option<PathBuf>,
    /// Whether the credentials came from the profile (for the hints of a refused signature).
    pub(crate) credentials_from_profile: bool,
    pub(crate) credentials: Option<Credentials>,
    /// The profile's attested server key (SHA-256), which replaces `trust` when set.
    pub(crate) pin: Option<[u8; 32]>,
}

impl ConnArgs {
    /// The profile's path: `--profile`, `EHSM_PROFILE`, or `$HOME/.config/ehsm/profile.json`.
    fn profile_path(&self) -> Option<PathBuf> {
        self.profile.clone().or_else(|| {
            std::env::var_os("HOME")
                .filter(|h| !h.is_empty())
                .map(|home| Path::new(&home).join(".config/ehsm/profile.json"))
        })
    }

    /// Resolves the URL, trust and credentials, and builds the SDK client.
    pub(crate) fn open(&self, need: Need) -> anyhow::Result<Session> {
        let profile_path = self.profile_path();
        let profile = match (&profile_path, need) {
            (Some(path), Need::Credentials) => load_profile(path)?,
            // Enroll only takes the old profile's URL; a broken profile is what it replaces.
            (Some(path), Need::Nothing) => load_profile(path).ok().flatten(),
            // Bench targets only what it is told.
            (_, Need::FlagsOnly) | (None, _) => None,
        };
        let url = self
            .url
            .clone()
            .or_else(|| profile.as_ref().map(|p| p.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        // The profile's certificate and pin belong to the profile's server.
        let own_profile = profile.as_ref().filter(|p| p.url == url);
        let profile_ca = own_profile.and_then(|p| p.ca_cert.clone());
        if self.insecure && self.ca_cert.is_some() {
            bail!(
                "--insecure (or EHSM_INSECURE) and --ca-cert (or EHSM_CA_CERT) contradict each other: give one"
            );
        }
        let (trust, ca_pem) = trust(self.insecure, self.ca_cert.clone().or(profile_ca))?;
        // Enroll replaces the profile, so its old pin does not apply: an attested enrollment
        // pins what it attests, a plain one behaves as before attestation existed.
        let pin = match (
            need,
            own_profile.and_then(|p| p.server_key_sha256.as_deref()),
        ) {
            (Need::Credentials, Some(hex)) => Some(pinned_key(hex, profile_path.as_deref())?),
            _ => None,
        };
        let (credentials, credentials_from_profile) =
            self.credentials(need, profile.as_ref(), profile_path.as_deref())?;
        Session::new(url, trust, ca_pem, pin, credentials).map(|s| Session {
            profile_path,
            credentials_from_profile,
            ..s
        })
    }

    fn credentials(
        &self,
        need: Need,
        profile: Option<&Profile>,
        profile_path: Option<&Path>,
    ) -> anyhow::Result<(Option<Credentials>, bool)> {
        let given = |appid: &String, apikey: &String| Credentials {
            appid: appid.clone(),
            apikey: apikey.clone(),
        };
        match (&self.appid, &self.apikey, need) {
            (_, _, Need::Nothing) => Ok((None, false)),
            (Some(appid), Some(apikey), _) => Ok((Some(given(appid, apikey)), false)),
            (Some(_), None, _) => bail!(
                "--appid (or EHSM_APPID) is set but --apikey (or EHSM_APIKEY) is not: set both, \
                 or neither to use the profile"
            ),
            (None, Some(_), _) => bail!(
                "--apikey (or EHSM_APIKEY) is set but --appid (or EHSM_APPID) is not: set both, \
                 or neither to use the profile"
            ),
            (None, None, Need::FlagsOnly) => Ok((None, false)),
            (None, None, Need::Credentials) => match profile {
                Some(p) => Ok((Some(given(&p.appid, &p.apikey)), true)),
                None => {
                    let looked = profile_path.map_or_else(
                        || " (and HOME is not set, so there is no default profile)".to_owned(),
                        |p| format!(" (there is no profile at {})", p.display()),
                    );
                    bail!(
                        "no credentials: run 'ehsm enroll' or set EHSM_APPID and EHSM_APIKEY{looked}"
                    )
                }
            },
        }
    }
}

/// How to trust the server: `--insecure` (over a profile's CA certificate), else a CA
/// certificate file (read here), else the system's roots.
fn trust(insecure: bool, ca_cert: Option<PathBuf>) -> anyhow::Result<(Trust, Option<Vec<u8>>)> {
    let trust = match (insecure, ca_cert) {
        (true, _) => Trust::Insecure,
        (false, Some(path)) => Trust::CaCert(path),
        (false, None) => Trust::System,
    };
    let ca_pem = match &trust {
        Trust::CaCert(path) => Some(fs::read(path).with_context(|| {
            format!(
                "cannot read the CA certificate {} (give the server's certificate, e.g. its \
                 <data-dir>/tls-cert.pem, with --ca-cert)",
                path.display()
            )
        })?),
        Trust::System | Trust::Insecure => None,
    };
    Ok((trust, ca_pem))
}

/// The profile's `server_key_sha256`.
fn pinned_key(hex_text: &str, profile: Option<&Path>) -> anyhow::Result<[u8; 32]> {
    let mut key = [0u8; 32];
    hex::decode_to_slice(hex_text, &mut key).map_err(|_| {
        anyhow!(
            "the profile {}'s server_key_sha256 is not 64 hex digits (fix it, or attest the \
             server again with 'ehsm enroll --policy FILE --force')",
            profile.map_or_else(String::new, |p| p.display().to_string())
        )
    })?;
    Ok(key)
}

impl Session {
    /// A session without a profile: the server at `url`, trusted as `--insecure` and
    /// `--ca-cert` say (for 'ehsm attest server').
    pub(crate) fn anonymous(
        url: String,
        insecure: bool,
        ca_cert: Option<PathBuf>,
    ) -> anyhow::Result<Session> {
        let (trust, ca_pem) = trust(insecure, ca_cert)?;
        Session::new(url, trust, ca_pem, None, None)
    }

    fn new(
        url: String,
        trust: Trust,
        ca_pem: Option<Vec<u8>>,
        pin: Option<[u8; 32]>,
        credentials: Option<Credentials>,
    ) -> anyhow::Result<Session> {
        let mut builder = builder_for(&url, &trust, ca_pem.as_deref(), pin);
        if let Some(c) = &credentials {
            builder = builder.credentials(c.appid.clone(), c.apikey.clone());
        }
        let client = build(builder)?;
        Ok(Session {
            client,
            url,
            trust,
            ca_pem,
            profile_path: None,
            credentials_from_profile: false,
            credentials,
            pin,
        })
    }

    /// A fresh SDK client builder for the same server and trust, without credentials.
    pub(crate) fn builder(&self) -> ClientBuilder {
        builder_for(&self.url, &self.trust, self.ca_pem.as_deref(), self.pin)
    }

    /// A client of the same server that accepts only the key with this SHA-256, as every
    /// command after an attested enrollment does.
    pub(crate) fn pinned_client(&self, key_sha256: [u8; 32]) -> anyhow::Result<Client> {
        build(Client::builder(&self.url).pin_server_key(key_sha256))
    }

    /// The PEM of [`Trust::CaCert`], for a client other than the SDK's (bench's).
    pub(crate) fn ca_pem(&self) -> Option<&[u8]> {
        self.ca_pem.as_deref()
    }
}

/// The SDK builder for `url`; a pin replaces the trust settings (the SDK ignores them then).
fn builder_for(
    url: &str,
    trust: &Trust,
    ca_pem: Option<&[u8]>,
    pin: Option<[u8; 32]>,
) -> ClientBuilder {
    let builder = Client::builder(url);
    if let Some(key) = pin {
        return builder.pin_server_key(key);
    }
    match (trust, ca_pem) {
        (Trust::Insecure, _) => builder.danger_accept_invalid_certs(true),
        (Trust::CaCert(_), Some(pem)) => builder.ca_certificate(pem),
        (Trust::CaCert(_) | Trust::System, _) => builder,
    }
}

/// Builds a client with the commands' request timeout.
fn build(builder: ClientBuilder) -> anyhow::Result<Client> {
    builder
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| anyhow!("{e} (check --url, EHSM_URL or the profile's url, and --ca-cert)"))
}

/// Reads the profile at `path`; `None` if there is none.
fn load_profile(path: &Path) -> anyhow::Result<Option<Profile>> {
    let text = match fs::read(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the profile {}", path.display()));
        }
    };
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        eprintln!(
            "ehsm: warning: the profile {} holds an apikey and is readable by other users; run \
             'chmod 600 {}'",
            path.display(),
            path.display()
        );
    }
    let profile = serde_json::from_slice(&text).with_context(|| {
        format!(
            "the profile {} is not valid (fix it, or move it away and run 'ehsm enroll')",
            path.display()
        )
    })?;
    Ok(Some(profile))
}

/// Writes `profile` to `path` with mode 0600 (its directory 0700 if created), replacing the
/// file atomically so that a crash leaves either the old or the new profile.
pub(crate) fn save_profile(path: &Path, profile: &Profile) -> anyhow::Result<()> {
    let context = || format!("cannot write the profile {}", path.display());
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .with_context(context)?;
    }
    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let _ = fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        let mut json = serde_json::to_vec_pretty(profile).map_err(std::io::Error::other)?;
        json.push(b'\n');
        file.write_all(&json)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    };
    write()
        .inspect_err(|_| {
            let _ = fs::remove_file(&tmp);
        })
        .with_context(context)
}
