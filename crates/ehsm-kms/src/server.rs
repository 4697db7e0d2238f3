//! Running the service: open everything, bind, serve until told to stop, shut down cleanly.

/// The store's connection-pool settings, as [`Config::pool`] takes them.
pub use ehsm_store::PoolSettings;

/// The limits on client connections, as [`Config::connections`] takes them.
pub use crate::listen::{ConnectionLimits, MAX_CONNECTIONS, default_max_connections};
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ehsm_core::Core;
use ehsm_domain::channel::{Endpoint, Tls};
use ehsm_domain::standalone::{self, Opened};
use ehsm_store::{Invalidation, Store};
use ehsm_tee::dcap::Collateral;
use ehsm_tee::pccs::PccsCollateral;
use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{self, Verifier};
use ehsm_tee::sgx::{self, SgxPlatform};
use ehsm_tee::sim::SimPlatform;
use ehsm_tee::tdx::TdxPlatform;
use ehsm_tee::{Platform, PlatformKind, tdx};

pub use crate::enroll::DEFAULT_ENROLL_RATE;
use crate::enroll::{EnrollMode, EnrollPolicy, TOKEN_SETTING, token_hash};
use crate::replay::{BatchCursor, KEEP_MS, KEY_SETTING as REPLAY_KEY_SETTING, ReplayCache};
use crate::state::{AppState, Attestation, Inner, RecordCache, now_ms};

/// Everything `ehsm serve` can be told.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen (port 0 picks a free port; the log line says which).
    pub listen: SocketAddr,
    /// The data directory (sealed domain key, TLS key, SQLite database).
    pub data_dir: PathBuf,
    /// The operator's certificate chain (PEM); with `tls_key`. Default: generated.
    pub tls_cert: Option<PathBuf>,
    /// The operator's private key (PEM); with `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP (behind a TLS-terminating proxy).
    pub http: bool,
    /// Timeouts and the cap on client connections.
    pub connections: ConnectionLimits,
    /// Who may enroll; `None` picks `open` on a loopback address and `token` elsewhere.
    pub enroll: Option<EnrollMode>,
    /// Enrollments per second per client address (0: unlimited); `None` picks unlimited on a
    /// loopback address and [`DEFAULT_ENROLL_RATE`] elsewhere.
    pub enroll_rate: Option<u32>,
    /// The database URL; default SQLite in the data directory.
    pub database: Option<String>,
    /// Connection-pool size and how long a request waits for a connection.
    pub pool: PoolSettings,
    /// How long a new key is usable (upstream: 365 days).
    pub key_lifetime: Duration,
    /// How many keys and secrets one app may hold.
    pub quotas: Quotas,
    /// The trusted execution environment to run on.
    pub tee: Tee,
    /// How VerifyQuote verifies quotes.
    pub quotes: QuoteConfig,
    /// Keep the domain keys in the custody of a PKCS#11 HSM instead of the platform's sealing
    /// key. The platform is still opened, for evidence and measurement.
    pub hsm: Option<ehsm_domain::hsm::HsmConfig>,
    /// Run as a node of a domain, taking the domain keys from the node's dkeycache instead of
    /// sealing its own (standalone mode).
    pub domain: Option<DomainConfig>,
    /// Refuse requests without ehsm's signed `action` envelope field (which, when present, is
    /// always checked against `?Action=`).
    pub require_signed_action: bool,
    /// The region and account of the AWS KMS API (`/aws`).
    pub aws: AwsConfig,
}

/// Where the AWS KMS API (`/aws`) says its keys are: the region clients sign their requests
/// for, and the region and account of its key ARNs (`arn:aws:kms:REGION:ACCOUNT:key/ID`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsConfig {
    /// The region (`--aws-region`); SigV4 requests must be signed for it.
    pub region: String,
    /// The account id (`--aws-account-id`), twelve digits as AWS's.
    pub account_id: String,
}

impl AwsConfig {
    /// The default region: the one the AWS SDKs' and CLI's documentation use in examples.
    pub const DEFAULT_REGION: &str = "us-east-1";
    /// The default account: twelve zeros, which no AWS account has, so that an ARN of this
    /// server is never taken for one of AWS's.
    pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";
}

impl Default for AwsConfig {
    fn default() -> Self {
        Self {
            region: Self::DEFAULT_REGION.to_owned(),
            account_id: Self::DEFAULT_ACCOUNT_ID.to_owned(),
        }
    }
}

/// How many keys and secrets one app may hold (`--max-keys-per-app`,
/// `--max-secrets-per-app`), so that one tenant cannot fill the database for all; `None`: no
/// limit. Enforced exactly, also across nodes sharing a database (`ehsm_store`'s guarded
/// writes). Keys are the ones CreateKey makes; an app's default secret key is the server's and
/// does not count. Secrets count until they are gone, also while their deletion is scheduled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quotas {
    /// At most this many keys per app.
    pub keys_per_app: Option<u64>,
    /// At most this many secrets per app.
    pub secrets_per_app: Option<u64>,
    /// At most this many aliases per app.
    pub aliases_per_app: Option<u64>,
    /// At most this many versions per key: rotation never deletes one, and the record cache
    /// holds them all.
    pub versions_per_key: Option<u64>,
}

impl Quotas {
    /// The default of each quota: upstream's ListKey limit, so that by default every key of an
    /// app is in its (unpaged) ListKey answer.
    pub const DEFAULT: u64 = 10_000;
    /// The default number of versions a key may have: about 19 years of weekly rotation, the
    /// shortest interval automatic rotation allows; each version of an RSA-4096 key costs the
    /// record cache about 2.4 KB.
    pub const DEFAULT_VERSIONS_PER_KEY: u64 = 1000;
}

impl Default for Quotas {
    fn default() -> Self {
        Self {
            keys_per_app: Some(Self::DEFAULT),
            secrets_per_app: Some(Self::DEFAULT),
            aliases_per_app: Some(Self::DEFAULT),
            versions_per_key: Some(Self::DEFAULT_VERSIONS_PER_KEY),
        }
    }
}

/// Where a node of a domain takes its domain keys from (`ehsm serve --domain`).
#[derive(Clone, Debug)]
pub struct DomainConfig {
    /// The dkeycache, normally `unix:/run/ehsm/dkeycache.sock`.
    pub endpoint: Endpoint,
    /// Which dkeycaches this node accepts (their RA-TLS evidence must satisfy it). The
    /// collateral for hardware quotes is the one VerifyQuote uses ([`QuoteConfig`]).
    pub policy: Arc<Policy>,
}

/// How VerifyQuote verifies quotes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuoteConfig {
    /// Intel's collateral for SGX and TDX quotes, as dcap-qvl's `QuoteCollateralV3` JSON (what a
    /// PCCS serves). Without it or `pccs_url`, VerifyQuote refuses hardware quotes.
    pub collateral: Option<PathBuf>,
    /// A PCCS (or Intel PCS) base URL that VerifyQuote fetches collateral from, cached until it
    /// must be refreshed. Exclusive with `collateral`. `https://` in production; `http://` is
    /// accepted (the collateral is signed by Intel) for tests.
    pub pccs_url: Option<String>,
    /// Accept simulated evidence (`--tee sim`), which proves nothing, as verified. Off by
    /// default: for development and tests only.
    pub allow_simulated: bool,
}

/// The trusted execution environment `ehsm serve` runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Tee {
    /// Detect: Gramine's `/dev/attestation` means SGX, configfs-tsm with a `tdx_guest` provider
    /// means TDX, anything else the simulated platform (with a warning).
    #[default]
    Auto,
    /// Software simulation: NO SECURITY, for development and CI.
    Sim,
    /// SGX through Gramine's attestation interface.
    Sgx {
        /// Where it is; `None` is `/dev/attestation` (tests point it at a mimicking directory).
        root: Option<PathBuf>,
    },
    /// TDX through configfs-tsm. A standalone node cannot run on it (no sealing key).
    Tdx {
        /// Where it is; `None` is `/sys/kernel/config/tsm/report`.
        root: Option<PathBuf>,
    },
}

/// How often other nodes' replay batches are read.
const REPLAY_FOLLOW: Duration = Duration::from_millis(20);

/// Opens the data directory, domain key, core and store, then serves until `shutdown`
/// completes; in-flight requests finish, the replay cache is flushed and the store closed.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    // A node of a domain may wait long for its keys: a signal meanwhile stops it.
    let mut shutdown = Box::pin(shutdown);
    let opened = tokio::select! {
        opened = open(&config) => opened?,
        () = &mut shutdown => {
            tracing::info!("stopped before serving");
            return Ok(());
        }
    };
    let Service {
        state,
        tls,
        fingerprint,
        opened,
        enroll,
        database,
        custody,
        replay_after,
        domain,
    } = opened;
    let store = state.store.clone();
    crate::metrics::init();
    let domain_follower = domain.map(|(endpoint, tls)| {
        let core = Arc::clone(&state.core);
        tokio::spawn(async move {
            ehsm_domain::follow::follow(endpoint, &tls, "ehsm serve", |keys| {
                Ok(core.update_domain_keys(keys)? != ehsm_core::DomainUpdate::Unchanged)
            })
            .await;
        })
    });
    let flusher = tokio::spawn(replay_flusher(state.clone()));
    let follower = tokio::spawn(replay_follower(state.clone(), replay_after));
    let jobs_holder = uuid::Uuid::new_v4().to_string();
    let jobs = tokio::spawn(crate::jobs::run_forever(state.clone(), jobs_holder.clone()));
    // Subscribed before the first request is served, so no change made by another node after
    // this node started can be missed.
    let invalidations = store
        .listen_invalidations()
        .await
        .context("listening for other nodes' record changes")?
        .map(|rx| tokio::spawn(apply_invalidations(state.clone(), rx)));

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if config.http { "http" } else { "https" };
    // One line that says where and how: scripts (and the tests) read the address from it.
    tracing::info!(
        "listening on {scheme}://{addr}/ehsm (tee {}, domain key {} fingerprint {fingerprint}, custody {custody}, enroll {enroll:?}, database {}, ready in {} ms)",
        state.attestation.platform.kind(),
        opened,
        redact(&database),
        started.elapsed().as_millis()
    );
    if config.http {
        warn_plain_http(addr);
    }
    crate::listen::serve(
        listener,
        tls,
        crate::app(state.clone()),
        config.connections,
        shutdown,
    )
    .await;
    tracing::info!("shutting down: flushing the replay cache and closing the database");
    jobs.abort();
    flusher.abort();
    follower.abort();
    if let Some(task) = domain_follower {
        task.abort();
    }
    if let Some(task) = invalidations {
        // Dropping its receiver stops the store's listener too.
        task.abort();
    }
    flush_replay(&state).await;
    if let Err(e) = store.release_lease(crate::jobs::LEASE, &jobs_holder).await {
        tracing::warn!(error = %e, "releasing the jobs lease failed; it expires by itself");
    }
    store.close().await;
    Ok(())
}

/// `--http` sends API keys, signatures and plaintexts unencrypted: said at every start, more
/// strongly when the address is reachable from other machines.
fn warn_plain_http(addr: SocketAddr) {
    if addr.ip().is_loopback() {
        tracing::warn!(
            "plain HTTP (http): API keys and plaintexts cross the connection unencrypted; only \
             a TLS-terminating proxy on this host should connect to {addr}"
        );
    } else {
        tracing::warn!(
            "plain HTTP (http) on {addr}, reachable from the network: API keys and plaintexts \
             cross the network IN THE CLEAR unless a TLS-terminating proxy is in front; listen \
             on a loopback address behind a local proxy, or serve HTTPS"
        );
    }
}

/// Everything `run` serves from, opened.
pub(crate) struct Service {
    pub(crate) state: AppState,
    /// The TLS acceptor; `None` under `--http`.
    tls: Option<tokio_rustls::TlsAcceptor>,
    fingerprint: String,
    /// How this node got its domain keys: created, unsealed or received (from a dkeycache).
    opened: &'static str,
    enroll: EnrollMode,
    database: String,
    /// `platform` or `hsm (token LABEL)`, for the start-up line.
    custody: String,
    /// The last replay batch id before the cache was loaded: where following starts.
    replay_after: i64,
    /// A node of a domain: its dkeycache and the RA-TLS to reach it, to learn rotations.
    domain: Option<(Endpoint, Arc<Tls>)>,
}

pub(crate) async fn open(config: &Config) -> anyhow::Result<Service> {
    create_data_dir(&config.data_dir)?;
    let needs = if config.domain.is_some() {
        Needs::Evidence
    } else {
        Needs::Sealing
    };
    let platform: Arc<dyn Platform> =
        open_platform(&config.tee, Some(&config.data_dir), needs)?.into();
    let mut domain = None;
    let (dks, opened, custody) = match (&config.domain, &config.hsm) {
        (Some(_), Some(_)) => anyhow::bail!(
            "a node of a domain (domain) takes its keys from the dkeycache; HSM custody \
             (hsm-module) is for the key server or a standalone node"
        ),
        (Some(d), None) => {
            let sealed = config.data_dir.join(standalone::SEALED_FILE);
            if sealed.exists() {
                tracing::warn!(
                    "{} holds standalone domain keys, which a node of a domain does not use: keys \
                     in this data directory's database will not open",
                    sealed.display()
                );
            }
            let collateral = ratls::configured_collateral(
                config.quotes.collateral.as_deref(),
                config.quotes.pccs_url.as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            let verifier = Arc::new(Verifier::new(Arc::clone(&d.policy), collateral));
            let tls = Arc::new(Tls::new(Arc::clone(&platform), verifier));
            let dks = ehsm_domain::follow::first_keys(&d.endpoint, &tls, "ehsm serve").await;
            domain = Some((d.endpoint.clone(), tls));
            (
                dks,
                "received",
                format!("domain (dkeycache {})", d.endpoint),
            )
        }
        (None, None) => {
            let (dks, opened) = standalone::open(&config.data_dir, &*platform)?;
            (dks, opened_word(opened), "platform".to_owned())
        }
        (None, Some(hsm)) => {
            // The session is only needed to unwrap the seed: it is closed (and the token logged
            // out) when `custody` drops at the end of this block.
            let mut custody = ehsm_domain::hsm::HsmCustody::open(hsm)?;
            let (dks, opened) = ehsm_domain::hsm::open_standalone(&config.data_dir, &mut custody)?;
            (
                dks,
                opened_word(opened),
                format!("hsm (token {})", hsm.token),
            )
        }
    };
    let fingerprint = dks.fingerprint();
    let attestation = open_attestation(platform, &config.quotes)?;
    let core = tokio::task::spawn_blocking(move || Core::new(dks))
        .await?
        .context("the core's start-up self-tests failed; refusing to serve keys")?;

    let database = match &config.database {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", config.data_dir.join("ehsm.db").display()),
    };
    let store = Store::open_with(&database, config.pool)
        .await
        .with_context(|| format!("opening the database {}", redact(&database)))?;

    // Loopback means every client is local: open enrollment without a rate limit by default.
    let loopback = config.listen.ip().is_loopback();
    let enroll = config.enroll.unwrap_or(if loopback {
        EnrollMode::Open
    } else {
        EnrollMode::Token
    });
    let token_sha256 = if enroll == EnrollMode::Token {
        Some(enrollment_token(&store).await?)
    } else {
        None
    };

    // Read before loading, so that a batch written in between is merged (again) rather than
    // missed.
    let replay_after = store.replay_batch_max_id().await?;
    let replay = ReplayCache::new(
        &setting_or_create(&store, REPLAY_KEY_SETTING, random_secret)
            .await?
            .0,
        store.replay_entries_since(now_ms() - KEEP_MS).await?,
    );
    // TLS is set up before the state, which holds the served certificate's key for
    // GetServerEvidence, and so before the "listening" line: a client reading that line finds
    // the certificate in place.
    let (tls, served_spki) = if config.http {
        (None, None)
    } else {
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        let (cert, key) = crate::tls::files(
            &config.data_dir,
            config.tls_cert.as_deref(),
            config.tls_key.as_deref(),
        )?;
        let (server_config, spki) = crate::tls::server_config(&cert, &key)?;
        (
            Some(tokio_rustls::TlsAcceptor::from(server_config)),
            Some(spki),
        )
    };
    let state = AppState(Arc::new(Inner {
        core: Arc::new(core),
        store: store.clone(),
        replay,
        apps: RecordCache::new(100_000),
        keys: RecordCache::new(100_000),
        aliases: RecordCache::new(100_000),
        enroll: EnrollPolicy::new(
            enroll,
            token_sha256,
            config
                .enroll_rate
                .unwrap_or(if loopback { 0 } else { DEFAULT_ENROLL_RATE }),
        ),
        key_lifetime_ms: i64::try_from(config.key_lifetime.as_millis()).unwrap_or(i64::MAX),
        quotas: config.quotas,
        heavy: tokio::sync::Semaphore::new(
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        ),
        evidence_turn: tokio::sync::Semaphore::new(1),
        attestation,
        require_signed_action: config.require_signed_action,
        served_spki,
        aws: config.aws.clone(),
    }));
    Ok(Service {
        state,
        tls,
        fingerprint,
        opened,
        enroll,
        database,
        custody,
        replay_after,
        domain,
    })
}

fn opened_word(opened: Opened) -> &'static str {
    match opened {
        Opened::Created => "created",
        Opened::Unsealed => "unsealed",
    }
}

/// What a process needs of its platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needs {
    /// A sealing key: a standalone node or a key server keeps its domain keys sealed.
    Sealing,
    /// Evidence only: a node of a domain and a dkeycache receive their keys over RA-TLS and
    /// seal nothing, so they can run where nothing can be sealed (TDX).
    Evidence,
}

/// Opens the platform `tee` names, detecting it for [`Tee::Auto`], and logs its measurement
/// (with a warning on the simulated platform). Every role of the binary opens its platform here,
/// so that all see the same platform. On sim, the sealing secret is a file in `data_dir` (created
/// on first use), or only in memory without one; the environment variable
/// `EHSM_SIM_MEASUREMENT` (64 hex digits) sets the simulated measurement, so that tests and
/// demonstrations can run simulated peers a policy refuses. [`Tee::Tdx`] is refused where
/// `needs` is [`Needs::Sealing`] ([`tdx::NO_SEALING`]).
pub fn open_platform(
    tee: &Tee,
    data_dir: Option<&Path>,
    needs: Needs,
) -> anyhow::Result<Box<dyn Platform>> {
    let tee = match tee {
        Tee::Auto => detect_tee(),
        chosen => chosen.clone(),
    };
    let platform: Box<dyn Platform> =
        match tee {
            // `detect_tee` never answers `Auto`; should it, sim is what it means.
            Tee::Auto | Tee::Sim => {
                let sim = match data_dir {
                    Some(dir) => SimPlatform::open(dir),
                    None => SimPlatform::ephemeral(),
                }
                .context("opening the simulated platform")?;
                Box::new(match sim_measurement()? {
                    Some(m) => sim.with_measurement(m),
                    None => sim,
                })
            }
            Tee::Sgx { root } => {
                let root = root.unwrap_or_else(|| PathBuf::from(sgx::DEFAULT_ROOT));
                Box::new(SgxPlatform::open(&root).with_context(|| {
                    format!(
                        "opening SGX through Gramine's attestation interface {}",
                        root.display()
                    )
                })?)
            }
            // Refused before opening anything: a TDX guest has nothing to seal domain keys with.
            Tee::Tdx { .. } if needs == Needs::Sealing => {
                anyhow::bail!("TDX: {}", tdx::NO_SEALING)
            }
            Tee::Tdx { root } => {
                let root = root.unwrap_or_else(|| PathBuf::from(tdx::DEFAULT_ROOT));
                Box::new(TdxPlatform::open(&root).with_context(|| {
                    format!("opening TDX through configfs-tsm {}", root.display())
                })?)
            }
        };
    // The value operators pin in the policies of the nodes that hand this one keys.
    let measurement = hex::encode(&platform.measurement().value);
    tracing::info!("platform {}: measurement {measurement}", platform.kind());
    if platform.kind() == PlatformKind::Sim {
        tracing::warn!(
            "platform {} provides NO SECURITY: keys are protected only by file permissions{}",
            platform.kind(),
            data_dir.map_or_else(String::new, |d| format!(" in {}", d.display()))
        );
    }
    Ok(platform)
}

/// The simulated measurement from `EHSM_SIM_MEASUREMENT`, if set.
fn sim_measurement() -> anyhow::Result<Option<[u8; 32]>> {
    const VAR: &str = "EHSM_SIM_MEASUREMENT";
    let Ok(text) = std::env::var(VAR) else {
        return Ok(None);
    };
    let bytes = hex::decode(text.trim())
        .ok()
        .and_then(|b| <[u8; 32]>::try_from(b).ok());
    bytes
        .map(Some)
        .with_context(|| format!("{VAR} must be 64 hex digits (32 bytes)"))
}

/// What the quote actions work with. The collateral is read and parsed at start-up, so that a
/// bad file stops the server with a clear error instead of failing every VerifyQuote.
fn open_attestation(
    platform: Arc<dyn Platform>,
    config: &QuoteConfig,
) -> anyhow::Result<Attestation> {
    if config.collateral.is_some() && config.pccs_url.is_some() {
        anyhow::bail!(
            "the collateral comes from a file (collateral) or from a PCCS (pccs-url), not both"
        );
    }
    let pccs = config
        .pccs_url
        .as_deref()
        .map(PccsCollateral::new)
        .transpose()
        .context("pccs-url")?;
    let collateral = match &config.collateral {
        Some(path) => {
            let json = std::fs::read(path)
                .with_context(|| format!("reading the collateral {}", path.display()))?;
            Some(Collateral::from_json(&json).with_context(|| {
                format!(
                    "the collateral {} is not dcap-qvl QuoteCollateralV3 JSON",
                    path.display()
                )
            })?)
        }
        None => None,
    };
    if config.allow_simulated {
        tracing::warn!(
            "VerifyQuote accepts simulated evidence (--allow-simulated-quotes): it proves nothing"
        );
    }
    Ok(Attestation {
        platform,
        collateral,
        pccs,
        allow_simulated: config.allow_simulated,
    })
}

/// What `--tee auto` finds on this machine: SGX if Gramine's `/dev/attestation` is there, TDX
/// if configfs-tsm has a `tdx_guest` provider, else [`Tee::Sim`] (with a warning in the log).
/// Never answers [`Tee::Auto`].
pub fn detect_tee() -> Tee {
    if sgx::detect(Path::new(sgx::DEFAULT_ROOT)) {
        return Tee::Sgx { root: None };
    }
    if tdx::detect(Path::new(tdx::DEFAULT_ROOT)) {
        return Tee::Tdx { root: None };
    }
    tracing::warn!(
        "no trusted execution environment found (no {}/attestation_type, no tdx_guest provider \
         under {}): using the simulated platform; say --tee sim to choose it explicitly",
        sgx::DEFAULT_ROOT,
        tdx::DEFAULT_ROOT
    );
    Tee::Sim
}

/// Drops from the record caches what any node (this one included) changed in the shared
/// database, so that Disable, Delete and the like take effect everywhere within moments.
async fn apply_invalidations(
    state: AppState,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Invalidation>,
) {
    while let Some(what) = rx.recv().await {
        match what {
            // A deleted key takes its aliases with it.
            Invalidation::Key(keyid) => {
                state.keys.forget(&keyid);
                state.aliases.forget_where(|a| a.keyid == keyid);
            }
            Invalidation::App(appid) => state.apps.forget(&appid),
            // Internal keys of the app too: dropping more than was deleted only costs reloads.
            Invalidation::KeysOfApp(appid) => {
                state.keys.forget_where(|k| k.record.appid == appid);
                state.aliases.forget_where(|a| a.appid == appid);
            }
            Invalidation::Alias { appid, alias } => {
                state
                    .aliases
                    .forget(&crate::keys::alias_cache_id(&appid, &alias));
            }
            Invalidation::All => {
                tracing::warn!(
                    "the invalidation listener reconnected to the database: record caches flushed"
                );
                state.keys.clear();
                state.apps.clear();
                state.aliases.clear();
            }
        }
    }
}

/// Writes recorded replay entries to the store as soon as there are any: a group commit, since
/// every entry recorded while one write is in flight goes into the next. Requests wait for the
/// write that holds their entry (`ReplayCache::durable`).
async fn replay_flusher(state: AppState) {
    loop {
        state.replay.wait_for_pending().await;
        flush_replay(&state).await;
    }
}

/// How many batches one read of [`replay_follower`] takes at most; a full page is followed by
/// another read at once.
const REPLAY_FOLLOW_PAGE: u32 = 500;

/// Merges the replay batches written by every node (this one too: merging is idempotent) after
/// `after`, every [`REPLAY_FOLLOW`], so that a request accepted by another node (which wrote
/// its entry before answering) is refused here at most one interval later (see `replay.rs`).
async fn replay_follower(state: AppState, after: i64) {
    let mut cursor = BatchCursor::new(after);
    let mut tick = tokio::time::interval(REPLAY_FOLLOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let ok = follow_replay(&state, &mut cursor).await;
        match (ok, failing) {
            (Err(e), false) => {
                // Once per outage, not every 20 ms; this node's own replays are still refused.
                tracing::error!(error = %e, "reading other nodes' replay entries failed");
                failing = true;
            }
            (Ok(()), true) => {
                tracing::info!("reading other nodes' replay entries works again");
                failing = false;
            }
            _ => {}
        }
    }
}

/// One read of [`replay_follower`]: the open holes' range once, then new batches page by page.
async fn follow_replay(state: &AppState, cursor: &mut BatchCursor) -> ehsm_store::Result<()> {
    if let Some((after, limit)) = cursor.recheck(REPLAY_FOLLOW_PAGE) {
        let batches = state.store.replay_batches_after(after, limit).await?;
        merge_batches(state, cursor, batches);
    }
    loop {
        let batches = state
            .store
            .replay_batches_after(cursor.last(), REPLAY_FOLLOW_PAGE)
            .await?;
        let full = batches.len() >= REPLAY_FOLLOW_PAGE as usize;
        merge_batches(state, cursor, batches);
        if !full {
            return Ok(());
        }
    }
}

fn merge_batches(
    state: &AppState,
    cursor: &mut BatchCursor,
    batches: Vec<(i64, Vec<ehsm_store::ReplayEntry>)>,
) {
    let mut ids = Vec::with_capacity(batches.len());
    for (id, entries) in batches {
        state.replay.merge(entries);
        ids.push(id);
    }
    cursor.saw(ids, now_ms());
}

async fn flush_replay(state: &AppState) {
    let (epoch, batch) = state.replay.take_pending();
    if batch.is_empty() {
        state.replay.flushed(epoch, true);
        return;
    }
    match state.store.insert_replay_entries(&batch).await {
        Ok(()) => state.replay.flushed(epoch, true),
        Err(e) => {
            // The requests waiting on these entries are refused; the entries are written with
            // the next flush, so that other nodes and restarts refuse them too.
            tracing::error!(error = %e, entries = batch.len(), "writing replay entries failed; will retry");
            state.replay.return_pending(batch, now_ms());
            state.replay.flushed(epoch, false);
        }
    }
}

/// The enrollment token's hash: created (and the token printed, once) on first start in token
/// mode; read back afterwards.
async fn enrollment_token(store: &Store) -> anyhow::Result<Vec<u8>> {
    let token = format!("ehsm-enroll-{}", uuid::Uuid::new_v4().simple());
    let (hash, created) =
        setting_or_create(store, TOKEN_SETTING, || Ok(token_hash(&token))).await?;
    if created {
        // Printed once, to the operator's terminal; only its hash is stored.
        eprintln!(
            "ehsm: enrollment token (shown once; clients send it as 'Authorization: Bearer <token>'): {token}"
        );
    }
    Ok(hash)
}

/// A 256-bit random secret, for settings such as the replay fingerprint key.
fn random_secret() -> anyhow::Result<Vec<u8>> {
    let mut key = vec![0; 32];
    aws_lc_rs::rand::fill(&mut key).context("the system random generator failed")?;
    Ok(key)
}

/// The setting `name`, created from `value()` if absent, and whether this call created it. When
/// several nodes start at once, one insert wins and every node reads the winner's value back.
async fn setting_or_create(
    store: &Store,
    name: &str,
    value: impl FnOnce() -> anyhow::Result<Vec<u8>>,
) -> anyhow::Result<(Vec<u8>, bool)> {
    if let Some(existing) = store.get_setting(name).await? {
        return Ok((existing, false));
    }
    let created = store.put_setting_if_absent(name, &value()?).await?;
    let stored = store
        .get_setting(name)
        .await?
        .with_context(|| format!("the setting {name} vanished from the store"))?;
    Ok((stored, created))
}

/// Creates the data directory (0700) if it does not exist. An existing one that its group or
/// others may enter is used as it is, with a warning: its secrets files and database are
/// owner-only anyway, but its contents are listed to them, and the mode may be deliberate
/// (changing it behind the operator's back is not ehsm's call).
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, PermissionsExt as _};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))?;
    let mode = std::fs::metadata(dir)
        .with_context(|| format!("reading the data directory {}", dir.display()))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(
            "the data directory {} is accessible to its group or others (mode {:o}); \
             make it owner-only: chmod 700 {}",
            dir.display(),
            mode & 0o777,
            dir.display()
        );
    }
    Ok(())
}

/// A database URL without its password, for logs.
fn redact(url: &str) -> String {
    let url = match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}://***@{}", &url[..s], &url[at + 1..]),
        _ => url.to_owned(),
    };
    // A password may also come as a query parameter (`?password=…`).
    match url.split_once('?') {
        Some((base, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{base}?{}", params.join("&"))
        }
        None => url,
    }
}

#[cfg(test)]
impl Config {
    /// A standalone sim node on `data_dir` with every default, for unit tests that need a
    /// whole service (`open(&config).await`); TLS unless `http`.
    pub(crate) fn for_tests(data_dir: &Path, http: bool) -> Self {
        Self {
            listen: "127.0.0.1:0"
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0))),
            data_dir: data_dir.to_owned(),
            tls_cert: None,
            tls_key: None,
            http,
            connections: ConnectionLimits::default(),
            enroll: None,
            enroll_rate: None,
            database: None,
            key_lifetime: Duration::from_secs(365 * 86_400),
            quotas: Quotas::default(),
            pool: PoolSettings::default(),
            tee: Tee::Sim,
            quotes: QuoteConfig::default(),
            hsm: None,
            domain: None,
            require_signed_action: false,
            aws: AwsConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn database_urls_are_logged_without_passwords() {
        for (url, shown) in [
            (
                "postgres://ehsm:s3cret@db:5432/ehsm",
                "postgres://***@db:5432/ehsm",
            ),
            (
                "postgres://db/ehsm?user=ehsm&password=s3cret&sslmode=disable",
                "postgres://db/ehsm?user=ehsm&password=***&sslmode=disable",
            ),
            (
                "sqlite:///var/lib/ehsm/ehsm.db",
                "sqlite:///var/lib/ehsm/ehsm.db",
            ),
        ] {
            assert_eq!(redact(url), shown);
        }
    }

    /// A directory with the files of Gramine's `/dev/attestation`, holding a structurally valid
    /// SGX quote v3 (header, zero report body, empty signature data): opening only reads it.
    fn gramine() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let mut quote = vec![0u8; 48 + 384 + 4];
        quote[0] = 3;
        std::fs::write(root.join("attestation_type"), "dcap").unwrap();
        std::fs::create_dir(root.join("keys")).unwrap();
        std::fs::write(root.join("keys/_sgx_mrenclave"), [5; 16]).unwrap();
        std::fs::write(root.join("user_report_data"), []).unwrap();
        std::fs::write(root.join("quote"), quote).unwrap();
        dir
    }

    #[test]
    fn sgx_seals_the_standalone_domain_key() {
        let attestation = gramine();
        let data = tempfile::tempdir().unwrap();
        let tee = Tee::Sgx {
            root: Some(attestation.path().to_owned()),
        };
        let platform = open_platform(&tee, Some(data.path()), Needs::Sealing).unwrap();
        assert_eq!(platform.kind(), PlatformKind::Sgx);
        let (created, opened) = standalone::open(data.path(), &*platform).unwrap();
        assert!(matches!(opened, Opened::Created));
        let platform = open_platform(&tee, Some(data.path()), Needs::Sealing).unwrap();
        let (unsealed, opened) = standalone::open(data.path(), &*platform).unwrap();
        assert!(matches!(opened, Opened::Unsealed));
        assert_eq!(created.fingerprint(), unsealed.fingerprint());
    }

    #[test]
    fn tdx_refuses_a_standalone_node_and_says_why() {
        let data = tempfile::tempdir().unwrap();
        let err = open_platform(&Tee::Tdx { root: None }, Some(data.path()), Needs::Sealing)
            .err()
            .unwrap();
        let m = format!("{err:#}");
        assert!(m.contains("dkeycache") && m.contains("--tee sgx"), "{m}");
    }

    #[test]
    fn sgx_without_gramine_names_the_file() {
        let data = tempfile::tempdir().unwrap();
        let tee = Tee::Sgx {
            root: Some(data.path().join("no-attestation")),
        };
        let m = format!(
            "{:#}",
            open_platform(&tee, Some(data.path()), Needs::Sealing)
                .err()
                .unwrap()
        );
        assert!(m.contains("no-attestation/attestation_type"), "{m}");
    }
}
