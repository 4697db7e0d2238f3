//! `ehsm serve`: the KMS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use ehsm_kms::EnrollMode;
use ehsm_kms::server::{self, Config};

use crate::platform_args::TeeArg;

/// Options of `ehsm serve`. Each can also come from an `EHSM_*` environment variable or from the
/// `--config` file; a flag beats the environment, which beats the file, which beats the default.
#[derive(clap::Args)]
pub(crate) struct Args {
    /// A TOML file with any of the settings below, named as the flags without `--`
    /// (`listen = "0.0.0.0:9000"`, `data-dir = "/var/lib/ehsm"`, `http = true`, ...). Relative
    /// paths in it are relative to the file's directory.
    #[arg(long, env = "EHSM_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Address to listen on [default: 127.0.0.1:9000]. Port 0 picks a free port (the start-up
    /// line says which).
    #[arg(long, env = "EHSM_LISTEN")]
    listen: Option<SocketAddr>,

    /// Where ehsm keeps its state [default: ./ehsm-data]: the sealed domain key, the TLS key,
    /// the SQLite database and (on the simulated platform) the simulated sealing secret.
    /// Created with mode 0700.
    #[arg(long, env = "EHSM_DATA_DIR")]
    data_dir: Option<PathBuf>,

    /// TLS certificate chain (PEM). Default: a self-signed certificate generated on first start.
    #[arg(long, env = "EHSM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// TLS private key (PEM), with --tls-cert.
    #[arg(long, env = "EHSM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// Serve plain HTTP, for running behind a TLS-terminating proxy.
    #[arg(long, env = "EHSM_HTTP", conflicts_with_all = ["tls_cert", "tls_key"])]
    http: bool,

    /// How long a new client connection has to send its first request, TLS handshake
    /// included, and an HTTP/1.1 connection its next request after each answer, in
    /// milliseconds [default: 10000].
    #[arg(long, env = "EHSM_HEADER_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(TIMEOUT_MS))]
    header_timeout_ms: Option<u64>,

    /// Close a client connection that sends and receives nothing for this long, in
    /// milliseconds [default: 60000].
    #[arg(long, env = "EHSM_IDLE_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(TIMEOUT_MS))]
    idle_timeout_ms: Option<u64>,

    /// At most this many client connections at once; further ones wait to be accepted until
    /// one closes [default: half the soft limit on open files, at most 4096; 512 under the
    /// usual limit of 1024].
    #[arg(long, env = "EHSM_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u64).range(MAX_CONNECTIONS))]
    max_connections: Option<u64>,

    /// Who may enroll: open (anyone, upstream's behaviour), token (clients present the operator
    /// token printed at first start) or off. Default: open on a loopback address, token elsewhere.
    #[arg(long, env = "EHSM_ENROLL", value_enum)]
    enroll: Option<EnrollMode>,

    /// Enrollments a second per client address (an IPv4 address or an IPv6 /64), with bursts
    /// of four seconds' worth, and as many GetServerEvidence requests, counted apart; 0 for no
    /// limit [default: 0 on a loopback address, 5 elsewhere].
    #[arg(long, env = "EHSM_ENROLL_RATE", value_name = "N")]
    enroll_rate: Option<u32>,

    /// Database URL. Default: SQLite in the data directory.
    #[arg(long, env = "EHSM_DATABASE")]
    database: Option<String>,

    /// At most this many database connections [default: 8 for SQLite, 10 for PostgreSQL].
    #[arg(long, env = "EHSM_DB_MAX_CONNECTIONS", value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    db_max_connections: Option<u32>,

    /// How long a request waits for a database connection before failing, in milliseconds
    /// [default: 3000]. When the database is down, requests fail after this instead of hanging.
    #[arg(long, env = "EHSM_DB_ACQUIRE_TIMEOUT_MS", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..=600_000))]
    db_acquire_timeout_ms: Option<u64>,

    /// How long a new key stays usable, in days [default: 365, as upstream].
    #[arg(long, env = "EHSM_KEY_LIFETIME_DAYS")]
    key_lifetime_days: Option<u64>,

    /// At most this many keys per app [default: 10000; 0: no limit]. CreateKey beyond it is
    /// refused with a 400 saying so; an app's internal keys do not count.
    #[arg(long, env = "EHSM_MAX_KEYS_PER_APP", value_name = "N")]
    max_keys_per_app: Option<u64>,

    /// At most this many secrets per app [default: 10000; 0: no limit]. CreateSecret beyond it
    /// is refused with a 400 saying so; a secret scheduled for deletion counts until it is gone.
    #[arg(long, env = "EHSM_MAX_SECRETS_PER_APP", value_name = "N")]
    max_secrets_per_app: Option<u64>,

    /// At most this many aliases per app [default: 10000; 0: no limit]. CreateAlias beyond it
    /// is refused with a 400 saying so.
    #[arg(long, env = "EHSM_MAX_ALIASES_PER_APP", value_name = "N")]
    max_aliases_per_app: Option<u64>,

    /// At most this many versions per key [default: 1000; 0: no limit]. Rotation never deletes
    /// a version; a rotation beyond the limit is refused with a 400 saying so.
    #[arg(long, env = "EHSM_MAX_VERSIONS_PER_KEY", value_name = "N")]
    max_versions_per_key: Option<u64>,

    /// The trusted execution environment [default: auto].
    #[arg(long, env = "EHSM_TEE", value_enum)]
    tee: Option<TeeArg>,

    /// Where the TEE's attestation interface is, instead of /dev/attestation (sgx) or
    /// /sys/kernel/config/tsm/report (tdx). For tests with a directory that mimics it.
    #[arg(long, env = "EHSM_ATTESTATION_ROOT", hide = true)]
    attestation_root: Option<PathBuf>,

    /// Intel's collateral that VerifyQuote checks SGX and TDX quotes against: dcap-qvl's
    /// QuoteCollateralV3 JSON, as a PCCS serves it, for the platforms whose quotes are verified.
    /// Read at start-up, so refresh the file (and restart) before it expires (about a month); or
    /// use --pccs-url instead. Without either, VerifyQuote refuses hardware quotes.
    #[arg(long, env = "EHSM_COLLATERAL", value_name = "FILE")]
    collateral: Option<PathBuf>,

    /// A PCCS (or Intel PCS) base URL, e.g. https://pccs.example:8081, that VerifyQuote fetches
    /// the collateral of each quote's platform from, cached until it must be refreshed (at most
    /// a day). Instead of --collateral. Use https:// (http:// is accepted, for tests).
    #[arg(long, env = "EHSM_PCCS_URL", value_name = "URL")]
    pccs_url: Option<String>,

    /// Let VerifyQuote accept simulated evidence (from a --tee sim node), which proves nothing.
    /// For development and tests only.
    #[arg(long, env = "EHSM_ALLOW_SIMULATED_QUOTES")]
    allow_simulated_quotes: bool,

    /// Keep the domain keys in the custody of a PKCS#11 HSM instead of the platform's sealing
    /// key: the HSM's module (e.g. /usr/lib/softhsm/libsofthsm2.so). With --hsm-token; the PIN
    /// comes from --hsm-pin-file or the environment variable EHSM_HSM_PIN. A data directory
    /// stays in the custody it was created with.
    #[arg(long, env = "EHSM_HSM_MODULE", value_name = "PATH")]
    hsm_module: Option<PathBuf>,

    /// The label of the HSM token that holds the custody key, with --hsm-module.
    #[arg(long, env = "EHSM_HSM_TOKEN", value_name = "LABEL")]
    hsm_token: Option<String>,

    /// A file (mode 0600) holding the HSM user PIN. Default: the environment variable
    /// EHSM_HSM_PIN.
    #[arg(long, env = "EHSM_HSM_PIN_FILE", value_name = "FILE")]
    hsm_pin_file: Option<PathBuf>,

    /// The label of the custody key on the token; generated there on first start
    /// [default: ehsm-domain-custody].
    #[arg(long, env = "EHSM_HSM_KEY_LABEL", value_name = "LABEL")]
    hsm_key_label: Option<String>,

    /// Run as a node of a domain: take the domain keys from the node's dkeycache (normally
    /// unix:/run/ehsm/dkeycache.sock; HOST:PORT reaches a key server directly) over RA-TLS,
    /// waiting until it answers, instead of sealing keys of its own. With --domain-policy.
    #[arg(long, env = "EHSM_DOMAIN", value_name = "unix:PATH")]
    domain: Option<String>,

    /// The policy (TOML, see docs/domain.md) that the dkeycache's RA-TLS evidence must satisfy,
    /// with --domain.
    #[arg(long, env = "EHSM_DOMAIN_POLICY", value_name = "FILE")]
    domain_policy: Option<PathBuf>,

    /// Refuse requests that do not name their action in the signed envelope field `action`, so
    /// that a captured request cannot be sent to another action. ehsm's SDK and CLI always
    /// send it; upstream's SDKs do not: turn this on once every client is ehsm's.
    #[arg(long, env = "EHSM_REQUIRE_SIGNED_ACTION")]
    require_signed_action: bool,

    /// The region of the AWS KMS API (at /aws) [default: us-east-1]: clients sign their
    /// requests for it (boto3's region_name, the AWS CLI's --region) and key ARNs name it.
    #[arg(long, env = "EHSM_AWS_REGION", value_name = "REGION")]
    aws_region: Option<String>,

    /// The account id in the AWS KMS API's key ARNs, twelve digits [default: 000000000000,
    /// which no AWS account has].
    #[arg(long, env = "EHSM_AWS_ACCOUNT_ID", value_name = "ID")]
    aws_account_id: Option<String>,
}

/// The `--config` file: the settings of [`Args`], each optional, under the flags' names.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    http: Option<bool>,
    header_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<u64>,
    enroll: Option<String>,
    enroll_rate: Option<u32>,
    database: Option<String>,
    db_max_connections: Option<u32>,
    db_acquire_timeout_ms: Option<u64>,
    key_lifetime_days: Option<u64>,
    max_keys_per_app: Option<u64>,
    max_secrets_per_app: Option<u64>,
    max_aliases_per_app: Option<u64>,
    max_versions_per_key: Option<u64>,
    tee: Option<String>,
    collateral: Option<PathBuf>,
    pccs_url: Option<String>,
    allow_simulated_quotes: Option<bool>,
    hsm_module: Option<PathBuf>,
    hsm_token: Option<String>,
    hsm_pin_file: Option<PathBuf>,
    hsm_key_label: Option<String>,
    domain: Option<String>,
    domain_policy: Option<PathBuf>,
    require_signed_action: Option<bool>,
    aws_region: Option<String>,
    aws_account_id: Option<String>,
}

impl FileConfig {
    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let mut file: Self = toml::from_str(&text)
            .with_context(|| format!("the config file {} is not valid", path.display()))?;
        // Paths are relative to the file, so that a config works from any working directory.
        let base = path.parent().unwrap_or(Path::new("."));
        for p in [
            &mut file.data_dir,
            &mut file.tls_cert,
            &mut file.tls_key,
            &mut file.collateral,
            &mut file.hsm_module,
            &mut file.hsm_pin_file,
            &mut file.domain_policy,
        ]
        .into_iter()
        .flatten()
        {
            *p = base.join(&*p);
        }
        Ok(file)
    }
}

/// A file value of a `clap::ValueEnum` setting, read as the flag reads it.
fn file_enum<T: ValueEnum>(value: Option<String>, name: &str) -> anyhow::Result<Option<T>> {
    value
        .map(|v| {
            T::from_str(&v, true).map_err(|_| {
                let allowed: Vec<String> = T::value_variants()
                    .iter()
                    .filter_map(|x| x.to_possible_value().map(|p| p.get_name().to_owned()))
                    .collect();
                anyhow::anyhow!(
                    "the config file's {name} = {v:?} is not one of {}",
                    allowed.join(", ")
                )
            })
        })
        .transpose()
}

impl Args {
    /// The server's configuration: flags and environment over the file over the defaults.
    fn into_config(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => FileConfig::read(path)?,
            None => FileConfig::default(),
        };
        let root = self.attestation_root;
        let tee = (self.tee.or(file_enum(file.tee, "tee")?))
            .unwrap_or(TeeArg::Auto)
            .with_root(root);
        // The certificate and its key come from the same place, never one from each.
        let (tls_cert, tls_key) = if self.tls_cert.is_some() || self.tls_key.is_some() {
            (self.tls_cert, self.tls_key)
        } else {
            (file.tls_cert, file.tls_key)
        };
        // The collateral's source comes from one place, as the certificate does: a flag's file
        // or URL replaces the config file's, whichever of the two the file names.
        let (collateral, pccs_url) = if self.collateral.is_some() || self.pccs_url.is_some() {
            (self.collateral, self.pccs_url)
        } else {
            (file.collateral, file.pccs_url)
        };
        let hsm = hsm_config(
            self.hsm_module.or(file.hsm_module),
            self.hsm_token.or(file.hsm_token),
            self.hsm_pin_file.or(file.hsm_pin_file),
            self.hsm_key_label.or(file.hsm_key_label),
        )?;
        let config = Config {
            listen: self
                .listen
                .or(file.listen)
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 9000))),
            data_dir: self
                .data_dir
                .or(file.data_dir)
                .unwrap_or_else(|| PathBuf::from("./ehsm-data")),
            tls_cert,
            tls_key,
            http: self.http || file.http.unwrap_or(false),
            connections: connection_limits(
                in_range(
                    self.header_timeout_ms.or(file.header_timeout_ms),
                    "header-timeout-ms",
                    TIMEOUT_MS,
                )?,
                in_range(
                    self.idle_timeout_ms.or(file.idle_timeout_ms),
                    "idle-timeout-ms",
                    TIMEOUT_MS,
                )?,
                in_range(
                    self.max_connections.or(file.max_connections),
                    "max-connections",
                    MAX_CONNECTIONS,
                )?,
            ),
            enroll: self.enroll.or(file_enum(file.enroll, "enroll")?),
            enroll_rate: self.enroll_rate.or(file.enroll_rate),
            database: self.database.or(file.database),
            pool: server::PoolSettings {
                max_connections: self.db_max_connections.or(file.db_max_connections),
                acquire_timeout: self
                    .db_acquire_timeout_ms
                    .or(file.db_acquire_timeout_ms)
                    .map_or(server::PoolSettings::default().acquire_timeout, |ms| {
                        Duration::from_millis(ms)
                    }),
            },
            key_lifetime: Duration::from_secs(
                self.key_lifetime_days
                    .or(file.key_lifetime_days)
                    .unwrap_or(365)
                    .saturating_mul(86_400),
            ),
            quotas: server::Quotas {
                keys_per_app: quota(self.max_keys_per_app.or(file.max_keys_per_app)),
                secrets_per_app: quota(self.max_secrets_per_app.or(file.max_secrets_per_app)),
                aliases_per_app: quota(self.max_aliases_per_app.or(file.max_aliases_per_app)),
                versions_per_key: quota_or(
                    self.max_versions_per_key.or(file.max_versions_per_key),
                    server::Quotas::DEFAULT_VERSIONS_PER_KEY,
                ),
            },
            tee,
            quotes: server::QuoteConfig {
                collateral,
                pccs_url,
                allow_simulated: self.allow_simulated_quotes
                    || file.allow_simulated_quotes.unwrap_or(false),
            },
            hsm,
            domain: domain_config(
                self.domain.or(file.domain),
                self.domain_policy.or(file.domain_policy),
            )?,
            require_signed_action: self.require_signed_action
                || file.require_signed_action.unwrap_or(false),
            aws: aws_config(
                self.aws_region.or(file.aws_region),
                self.aws_account_id.or(file.aws_account_id),
            )?,
        };
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            anyhow::bail!("tls-cert and tls-key go together: give both or neither");
        }
        if config.quotes.collateral.is_some() && config.quotes.pccs_url.is_some() {
            anyhow::bail!(
                "collateral and pccs-url are two sources of the same collateral: give one"
            );
        }
        if config.http && config.tls_cert.is_some() {
            anyhow::bail!("http serves plain HTTP: it cannot be used with tls-cert and tls-key");
        }
        Ok(config)
    }
}

/// A per-app quota setting: unset is the default, 0 is no limit.
fn quota(setting: Option<u64>) -> Option<u64> {
    quota_or(setting, server::Quotas::DEFAULT)
}

/// A limit as configured: `default` when not set, none for 0.
fn quota_or(setting: Option<u64>, default: u64) -> Option<u64> {
    match setting {
        None => Some(default),
        Some(0) => None,
        Some(n) => Some(n),
    }
}

/// Connection timeouts: at least a millisecond, at most an hour.
const TIMEOUT_MS: std::ops::RangeInclusive<u64> = 1..=3_600_000;
/// `max-connections`: at least one, at most the accept loop's own bound.
const MAX_CONNECTIONS: std::ops::RangeInclusive<u64> = 1..=server::MAX_CONNECTIONS as u64;

/// A config file's number, checked as the flag's parser checks it.
fn in_range(
    value: Option<u64>,
    name: &str,
    range: std::ops::RangeInclusive<u64>,
) -> anyhow::Result<Option<u64>> {
    match value {
        Some(v) if !range.contains(&v) => {
            anyhow::bail!("{name} = {v} is not in {}..={}", range.start(), range.end())
        }
        v => Ok(v),
    }
}

/// The connection limits, each setting or its default.
fn connection_limits(
    header_timeout_ms: Option<u64>,
    idle_timeout_ms: Option<u64>,
    max_connections: Option<u64>,
) -> server::ConnectionLimits {
    let default = server::ConnectionLimits::default();
    server::ConnectionLimits {
        header_timeout: header_timeout_ms.map_or(default.header_timeout, Duration::from_millis),
        idle_timeout: idle_timeout_ms.map_or(default.idle_timeout, Duration::from_millis),
        // In range, so it fits (`MAX_CONNECTIONS` is a usize).
        max_connections: max_connections.map(|n| n as usize),
    }
}

/// The AWS KMS API's region and account, each as given or its default. A region is what AWS
/// names regions with (`eu-west-3`): lower-case letters, digits and hyphens; an account id is
/// twelve digits, as AWS's (SDKs that parse ARNs check both).
fn aws_config(
    region: Option<String>,
    account_id: Option<String>,
) -> anyhow::Result<server::AwsConfig> {
    let default = server::AwsConfig::default();
    let region = region.unwrap_or(default.region);
    let account_id = account_id.unwrap_or(default.account_id);
    if region.is_empty()
        || !region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        anyhow::bail!(
            "aws-region {region:?} is not a region name (lower-case letters, digits and \
             hyphens, e.g. eu-west-3)"
        );
    }
    if account_id.len() != 12 || !account_id.bytes().all(|b| b.is_ascii_digit()) {
        anyhow::bail!("aws-account-id {account_id:?} is not twelve digits");
    }
    Ok(server::AwsConfig { region, account_id })
}

/// A node of a domain: its dkeycache and the policy the dkeycache must satisfy, both or neither.
fn domain_config(
    endpoint: Option<String>,
    policy: Option<PathBuf>,
) -> anyhow::Result<Option<server::DomainConfig>> {
    match (endpoint, policy) {
        (None, None) => Ok(None),
        (Some(endpoint), Some(policy)) => Ok(Some(server::DomainConfig {
            endpoint: ehsm_domain::channel::Endpoint::parse(&endpoint).context("domain")?,
            policy: crate::domain_roles::read_policy(&policy)?,
        })),
        (Some(_), None) => anyhow::bail!(
            "domain needs domain-policy: the policy the dkeycache's evidence must satisfy"
        ),
        (None, Some(_)) => anyhow::bail!("domain-policy needs domain"),
    }
}

/// The HSM custody settings, all or nothing: a token or PIN without a module is a mistake that
/// would otherwise silently leave the domain in the platform's custody.
fn hsm_config(
    module: Option<PathBuf>,
    token: Option<String>,
    pin_file: Option<PathBuf>,
    key_label: Option<String>,
) -> anyhow::Result<Option<ehsm_domain::hsm::HsmConfig>> {
    use ehsm_domain::hsm::{DEFAULT_KEY_LABEL, HsmConfig, PinSource};
    match (module, token) {
        (Some(module), Some(token)) => Ok(Some(HsmConfig {
            module,
            token,
            pin: pin_file.map_or(PinSource::Env, PinSource::File),
            key_label: key_label.unwrap_or_else(|| DEFAULT_KEY_LABEL.to_owned()),
        })),
        (Some(_), None) => anyhow::bail!("hsm-module needs hsm-token: the token's label"),
        (None, token) => {
            if token.is_some() || pin_file.is_some() || key_label.is_some() {
                anyhow::bail!("hsm-token, hsm-pin-file and hsm-key-label need hsm-module");
            }
            Ok(None)
        }
    }
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = args.into_config()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            // Handlers are installed before anything else, so a SIGTERM that comes right after the
            // "listening" line shuts down gracefully instead of killing the process.
            let shutdown = shutdown_signal()?;
            server::run(config, shutdown).await
        })?;
    Ok(ExitCode::SUCCESS)
}

/// Completes on SIGTERM or SIGINT (Ctrl-C).
pub(crate) fn shutdown_signal()
-> std::io::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cmd {
        #[command(flatten)]
        args: Args,
    }

    /// `ehsm serve <flags>` with a config file holding `toml`, as the server would read it.
    fn config(toml: &str, flags: &[&str]) -> (anyhow::Result<Config>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("ehsm.toml");
        std::fs::write(&file, toml).unwrap();
        let mut argv = vec!["serve", "--config", file.to_str().unwrap()];
        argv.extend_from_slice(flags);
        let args = Cmd::try_parse_from(argv).unwrap().args;
        (args.into_config(), dir)
    }

    #[test]
    fn the_file_sets_what_flags_do_and_flags_win() {
        let toml = r#"
            listen = "0.0.0.0:9443"
            data-dir = "state"
            http = true
            enroll = "TOKEN"
            database = "postgres://ehsm@db/ehsm"
            key-lifetime-days = 30
            db-max-connections = 4
            db-acquire-timeout-ms = 500
            max-keys-per-app = 0
            max-secrets-per-app = 7
            max-aliases-per-app = 3
            max-versions-per-key = 0
            tee = "sim"
            header-timeout-ms = 2000
            idle-timeout-ms = 30000
            max-connections = 100
            enroll-rate = 2
        "#;
        let (c, dir) = config(toml, &[]);
        let c = c.unwrap();
        assert_eq!(c.listen, "0.0.0.0:9443".parse().unwrap());
        assert_eq!(c.data_dir, dir.path().join("state"), "relative to the file");
        assert!(c.http);
        assert_eq!(c.enroll, Some(EnrollMode::Token));
        assert_eq!(c.database.as_deref(), Some("postgres://ehsm@db/ehsm"));
        assert_eq!(c.key_lifetime, Duration::from_secs(30 * 86_400));
        assert_eq!(c.pool.max_connections, Some(4));
        assert_eq!(c.pool.acquire_timeout, Duration::from_millis(500));
        assert_eq!(
            c.quotas,
            server::Quotas {
                keys_per_app: None,
                secrets_per_app: Some(7),
                aliases_per_app: Some(3),
                versions_per_key: None,
            },
            "0 is no limit"
        );
        assert_eq!(
            c.connections,
            server::ConnectionLimits {
                header_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(30),
                max_connections: Some(100),
            }
        );
        assert_eq!(c.enroll_rate, Some(2));

        let flags = [
            "--listen",
            "127.0.0.1:0",
            "--enroll",
            "off",
            "--data-dir",
            "/x",
            "--max-keys-per-app",
            "5",
        ];
        let c = config(toml, &flags).0.unwrap();
        assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!(c.enroll, Some(EnrollMode::Off));
        assert_eq!(c.data_dir, PathBuf::from("/x"));
        assert_eq!(c.quotas.keys_per_app, Some(5));
        assert_eq!(c.quotas.secrets_per_app, Some(7), "still the file's");
        let c2 = config(
            toml,
            &[
                "--max-connections",
                "7",
                "--enroll-rate",
                "0",
                "--idle-timeout-ms",
                "5",
            ],
        )
        .0
        .unwrap();
        assert_eq!(c2.connections.max_connections, Some(7));
        assert_eq!(c2.connections.idle_timeout, Duration::from_millis(5));
        assert_eq!(
            c2.connections.header_timeout,
            Duration::from_secs(2),
            "the file's"
        );
        assert_eq!(c2.enroll_rate, Some(0));
        assert_eq!(
            c.key_lifetime,
            Duration::from_secs(30 * 86_400),
            "still the file's"
        );
    }

    #[test]
    fn quote_settings_from_the_file_and_flags() {
        let (c, dir) = config(
            "collateral = \"c.json\"\nallow-simulated-quotes = true",
            &[],
        );
        let c = c.unwrap();
        assert_eq!(c.quotes.collateral, Some(dir.path().join("c.json")));
        assert!(c.quotes.allow_simulated);
        let c = config("", &["--collateral", "/x.json", "--allow-simulated-quotes"])
            .0
            .unwrap();
        assert_eq!(c.quotes.collateral, Some(PathBuf::from("/x.json")));
        assert!(c.quotes.allow_simulated);
        let c = config("", &[]).0.unwrap();
        assert_eq!(c.quotes, server::QuoteConfig::default(), "off by default");
    }

    #[test]
    fn the_collateral_comes_from_a_file_or_a_pccs_not_both() {
        let (c, _dir) = config("pccs-url = \"https://pccs.example:8081\"", &[]);
        let c = c.unwrap();
        assert_eq!(
            c.quotes.pccs_url.as_deref(),
            Some("https://pccs.example:8081")
        );
        assert_eq!(c.quotes.collateral, None);
        // A flag replaces the file's source, whichever it is.
        let c = config(
            "pccs-url = \"https://pccs.example\"",
            &["--collateral", "/x.json"],
        )
        .0
        .unwrap();
        assert_eq!(
            (c.quotes.collateral, c.quotes.pccs_url),
            (Some(PathBuf::from("/x.json")), None)
        );
        let c = config(
            "collateral = \"c.json\"",
            &["--pccs-url", "http://127.0.0.1:1"],
        )
        .0
        .unwrap();
        assert_eq!(
            (c.quotes.collateral, c.quotes.pccs_url.as_deref()),
            (None, Some("http://127.0.0.1:1"))
        );
        let both = |toml: &str, flags: &[&str]| {
            let m = format!("{:#}", config(toml, flags).0.err().unwrap());
            assert!(m.contains("collateral and pccs-url"), "{m}");
        };
        both("", &["--collateral", "/x.json", "--pccs-url", "https://p"]);
        both("collateral = \"c.json\"\npccs-url = \"https://p\"", &[]);
    }

    #[test]
    fn aws_region_and_account_from_the_file_and_flags() {
        let c = config("", &[]).0.unwrap();
        assert_eq!(
            (c.aws.region.as_str(), c.aws.account_id.as_str()),
            ("us-east-1", "000000000000")
        );
        let toml = "aws-region = \"eu-west-3\"\naws-account-id = \"111122223333\"";
        let c = config(toml, &[]).0.unwrap();
        assert_eq!(
            (c.aws.region.as_str(), c.aws.account_id.as_str()),
            ("eu-west-3", "111122223333")
        );
        let c = config(toml, &["--aws-region", "ap-south-1"]).0.unwrap();
        assert_eq!(
            (c.aws.region.as_str(), c.aws.account_id.as_str()),
            ("ap-south-1", "111122223333"),
            "the flag wins, the file's account stays"
        );
        let message = |flags: &[&str]| format!("{:#}", config("", flags).0.err().unwrap());
        for bad in ["", "EU-WEST-3", "eu west"] {
            let m = message(&["--aws-region", bad]);
            assert!(m.contains("is not a region name"), "{m}");
        }
        for bad in ["12345678901", "1234567890123", "12345678901a"] {
            let m = message(&["--aws-account-id", bad]);
            assert!(m.contains("is not twelve digits"), "{m}");
        }
    }

    #[test]
    fn an_empty_file_gives_the_defaults() {
        let c = config("", &[]).0.unwrap();
        assert_eq!(c.listen, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("./ehsm-data"));
        assert!(!c.http && c.enroll.is_none() && c.database.is_none() && c.tls_cert.is_none());
        assert_eq!(c.key_lifetime, Duration::from_secs(365 * 86_400));
        assert_eq!(c.pool, server::PoolSettings::default());
        assert_eq!(c.quotas, server::Quotas::default());
        assert_eq!(c.quotas.keys_per_app, Some(10_000));
        assert_eq!(c.connections, server::ConnectionLimits::default());
        assert_eq!(c.enroll_rate, None);
    }

    #[test]
    fn mistakes_in_the_file_are_named() {
        let message = |toml: &str| format!("{:#}", config(toml, &[]).0.err().unwrap());
        let m = message("listn = \"0.0.0.0:1\"");
        assert!(m.contains("is not valid") && m.contains("listn"), "{m}");
        let m = message("enroll = \"maybe\"");
        assert!(m.contains("open, token, off"), "{m}");
        let m = message("key-lifetime-days = \"ten\"");
        assert!(m.contains("key-lifetime-days"), "{m}");
        let m = message("idle-timeout-ms = 0");
        assert!(
            m.contains("idle-timeout-ms = 0 is not in 1..=3600000"),
            "{m}"
        );
        let m = message("max-connections = 2000000");
        assert!(m.contains("max-connections"), "{m}");
        let m = message("tls-cert = \"c.pem\"");
        assert!(m.contains("give both or neither"), "{m}");
        let m = message("http = true\ntls-cert = \"c.pem\"\ntls-key = \"k.pem\"");
        assert!(m.contains("cannot be used with tls-cert"), "{m}");
        let missing = Cmd::try_parse_from(["serve", "--config", "/nonexistent/ehsm.toml"])
            .unwrap()
            .args
            .into_config();
        assert!(format!("{:#}", missing.err().unwrap()).contains("cannot read the config file"));
    }

    #[test]
    fn a_certificate_comes_with_its_key_from_one_place() {
        let toml = "tls-cert = \"file.pem\"\ntls-key = \"file.key\"";
        let (c, dir) = config(toml, &[]);
        let c = c.unwrap();
        assert_eq!(c.tls_cert, Some(dir.path().join("file.pem")));
        assert_eq!(c.tls_key, Some(dir.path().join("file.key")));
        let flags = ["--tls-cert", "/flag.pem", "--tls-key", "/flag.key"];
        let c = config(toml, &flags).0.unwrap();
        assert_eq!(c.tls_cert, Some(PathBuf::from("/flag.pem")));
        assert_eq!(c.tls_key, Some(PathBuf::from("/flag.key")));
    }

    #[test]
    fn the_tee_is_detected_unless_chosen() {
        let tee = |toml: &str, flags: &[&str]| config(toml, flags).0.unwrap().tee;
        assert_eq!(tee("", &[]), server::Tee::Auto);
        assert_eq!(tee("tee = \"sim\"", &[]), server::Tee::Sim);
        assert_eq!(tee("tee = \"sgx\"", &[]), server::Tee::Sgx { root: None });
        assert_eq!(
            tee("tee = \"sim\"", &["--tee", "tdx"]),
            server::Tee::Tdx { root: None }
        );
        assert_eq!(
            tee("", &["--tee", "sgx", "--attestation-root", "/tmp/fake"]),
            server::Tee::Sgx {
                root: Some(PathBuf::from("/tmp/fake"))
            }
        );
        let m = format!("{:#}", config("tee = \"sev\"", &[]).0.err().unwrap());
        assert!(m.contains("auto, sim, sgx, tdx"), "{m}");
    }
}
