//! `ehsm bench`: a load generator for a running server, in the manner of `vault-benchmark`.
//!
//! How it measures:
//! - **Set-up.** It enrolls an app of its own (or uses the credentials given by flags or
//!   `EHSM_*` variables, never the profile's) and creates the keys the actions need: one
//!   AES-GCM-256 key (encrypt, decrypt, generate-data-key), one EC P-256 and one RSA-3072 signing
//!   key. Keys it created are deleted at the end (for `create-key`, which makes a key per
//!   request, with DeleteAllKey: it runs only on an app of its own).
//!   The set-up goes through the SDK; the measured requests do not (next point).
//! - **Workers.** `--connections` workers each own one keep-alive HTTP/1.1 connection: hyper's
//!   bare client connection over TCP (`TCP_NODELAY`), or over rustls for `https://` with the
//!   same trust as the SDK (`--insecure`, `--ca-cert`, else the system's roots). Sent through the
//!   SDK (reqwest's pool, the payload canonicalised and the whole answer decoded on every call),
//!   each request cost the client about twice the CPU, which on a small machine was taken from
//!   the server being measured. Each action's payload is signed with an SDK [`PreparedRequest`],
//!   which renders its canonical string and JSON once; each request then gets a fresh
//!   timestamp, a nonce of its own (the worker's random prefix and a counter: the server refuses
//!   a replay, spec §3.3) and its HMAC. GetVersion is an unsigned GET, as the SDK sends it. An
//!   answer is checked with the SDK's `check_reply` (HTTP 200 and body code 200), which skips
//!   the `result` instead of decoding it. A connection that fails is replaced at the next
//!   request; one the server closed between two requests is replaced without counting an error.
//! - **Timing.** Each action runs on its own, one after another, on new connections: workers
//!   connect and send requests back-to-back (closed loop) for `--warmup` (not recorded:
//!   connections, TLS and caches warm up) and then `--duration`. A request is recorded if it
//!   *started* in the measured window; its latency is taken from just before signing to just
//!   after the checked answer, so it includes signing, the network and the server. Each worker
//!   records into its own [`hist::Histogram`] (log-linear buckets, ≤1.6% error) and error
//!   counter, merged at the end.
//! - **Bounds.** At most 1024 workers, 1 hour per action and 10 minutes of warm-up; every
//!   request times out after 10 s, so an action ends at most that long after its window.
//! - **Results.** Per action: requests, errors by code, throughput (successful requests per
//!   second of measured window), p50/p99/p99.9 and the maximum latency, and, when several actions
//!   ran, each throughput as a ratio of `get-version`'s (the server's floor: routing and JSON,
//!   no signature check, no key).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_client::{
    Action as WireAction, Client, Credentials, DigestMode, Error, KeySpec, KeyUsage, MessageType,
    Origin, PaddingMode, PreparedRequest, check_reply, timestamp_now,
};
use hyper::Uri;
use hyper::http::uri::PathAndQuery;
use serde_json::{Value, json};

use crate::cli::{CmdResult, ConnArgs, Failure, Session, output};

mod hist;
mod http;
mod tls;

use hist::Histogram;
use http::{Connection, Endpoint, SendError};

/// The per-request limit, which also bounds how long an action can overrun its window.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The data key length for generate-data-key (an AES-256 data key).
const DATA_KEY_LEN: u32 = 32;

#[derive(clap::Args)]
#[command(
    after_help = "Example: ehsm bench --url http://127.0.0.1:9000 --connections 64 \
                  --duration 10s --action get-version --action encrypt --action sign-ec-p256\n\
                  Run it on a test server: it enrolls an app (unless --appid and --apikey are \
                  given) and creates keys, deleted at the end. It does not read the profile.\n\
                  Exit codes: 0 every request succeeded; 1 some failed (the report counts them \
                  by error) or the set-up failed; 2 usage error."
)]
pub(crate) struct Args {
    #[command(flatten)]
    pub(crate) conn: ConnArgs,

    /// The operator's enrollment token, if the server requires one to enroll
    #[arg(
        long,
        env = "EHSM_ENROLL_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,

    /// Concurrent workers, each with its own connection (1 to 1024)
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u16).range(1..=1024))]
    connections: u16,

    /// How long each action is measured, e.g. 10s, 500ms, 2m (at most 1h)
    #[arg(long, default_value = "10s", value_parser = measured_duration, value_name = "TIME")]
    duration: Duration,

    /// Load before each action's measurement, not recorded (at most 10m)
    #[arg(long, default_value = "2s", value_parser = warmup_duration, value_name = "TIME")]
    warmup: Duration,

    /// What to measure; give it several times to run several actions one after another
    #[arg(long = "action", value_enum, required = true, value_name = "ACTION")]
    actions: Vec<Action>,

    /// Plaintext bytes for encrypt and decrypt, message bytes for sign-* (1 to 6144)
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=6144))]
    size: u32,

    /// Versions of each key the actions use (1 to 100): the keys are rotated to this many
    /// versions after decrypt's ciphertext was made, so that decrypt reads version 1 of a key
    /// whose primary is the last, and the other actions use the last
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    key_versions: u32,
}

/// A benchmarked action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Action {
    /// GetVersion: no signature, no key; the server's floor
    GetVersion,
    /// Encrypt --size bytes with AES-GCM-256
    Encrypt,
    /// Decrypt a ciphertext of --size bytes (AES-GCM-256)
    Decrypt,
    /// Sign --size bytes with ECDSA P-256 and SHA-256
    #[value(name = "sign-ec-p256")]
    SignEcP256,
    /// Sign --size bytes with RSA-3072, PKCS#1 v1.5 and SHA-256
    #[value(name = "sign-rsa-3072")]
    SignRsa3072,
    /// GenerateDataKey of 32 bytes under AES-GCM-256
    GenerateDataKey,
    /// CreateKey of an AES-GCM-256 key: a database write per request. Only with an app of
    /// bench's own (no --appid/--apikey), whose keys are all deleted at the end
    CreateKey,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::GetVersion => "get-version",
            Action::Encrypt => "encrypt",
            Action::Decrypt => "decrypt",
            Action::SignEcP256 => "sign-ec-p256",
            Action::SignRsa3072 => "sign-rsa-3072",
            Action::GenerateDataKey => "generate-data-key",
            Action::CreateKey => "create-key",
        }
    }

    /// The eHSM action it sends.
    fn wire(self) -> WireAction {
        match self {
            Action::GetVersion => WireAction::GetVersion,
            Action::Encrypt => WireAction::Encrypt,
            Action::Decrypt => WireAction::Decrypt,
            Action::SignEcP256 | Action::SignRsa3072 => WireAction::Sign,
            Action::GenerateDataKey => WireAction::GenerateDataKey,
            Action::CreateKey => WireAction::CreateKey,
        }
    }
}

/// One request of an action, with everything prepared.
struct Work {
    action: WireAction,
    /// Where the SDK sends the action: `/ehsm?Action=<Name>`, after the URL's own path.
    target: PathAndQuery,
    /// The signed payload; `None` for GetVersion, an unsigned GET.
    signed: Option<PreparedRequest>,
}

impl Work {
    /// `action` with `payload` signed by `credentials`, or unsigned without a payload.
    fn new(
        c: &Client,
        credentials: &Credentials,
        action: WireAction,
        payload: Option<Value>,
    ) -> anyhow::Result<Work> {
        let url = action_uri(c, action)?;
        let target = url
            .path_and_query()
            .cloned()
            .with_context(|| format!("the URL {url} has no path"))?;
        Ok(Work {
            action,
            target,
            signed: payload.map(|p| PreparedRequest::new(credentials, action, p)),
        })
    }

    async fn once(&self, conn: &mut Connection, nonces: &mut Nonces) -> Result<(), RequestError> {
        let body = self
            .signed
            .as_ref()
            .map(|p| p.signed_body(&timestamp_now(), &nonces.fresh()));
        let (status, answer) = conn
            .send(&self.target, body)
            .await
            .map_err(RequestError::Send)?;
        check_reply(self.action, status, &answer).map_err(RequestError::Answer)
    }
}

/// The SDK's URL for `action`, as hyper takes it.
fn action_uri(c: &Client, action: WireAction) -> anyhow::Result<Uri> {
    let url = c.action_url(action);
    url.as_str()
        .parse()
        .with_context(|| format!("the URL {url} is not a valid URI"))
}

/// A worker's nonces: a random prefix, then a counter.
///
/// The server refuses a request whose timestamp and nonce it has seen in the last 20 minutes
/// (spec §3.3; upstream even refuses a nonce seen with any other timestamp). The counter keeps
/// a worker's nonces apart, the random prefix keeps them apart from other workers' and from
/// other runs'.
struct Nonces {
    prefix: String,
    count: u64,
}

impl Nonces {
    fn new() -> anyhow::Result<Nonces> {
        let mut seed = [0u8; 8];
        aws_lc_rs::rand::fill(&mut seed)
            .map_err(|_| anyhow!("the system's random number generator failed"))?;
        Ok(Nonces {
            prefix: format!("{:016x}", u64::from_be_bytes(seed)),
            count: 0,
        })
    }

    /// The next nonce: at most 36 characters (16 + 20), within the server's 64.
    fn fresh(&mut self) -> String {
        self.count += 1;
        format!("{}{}", self.prefix, self.count)
    }
}

/// Why a measured request failed.
enum RequestError {
    /// No answer: no connection, a broken one, or the timeout.
    Send(SendError),
    /// An answer other than success: an eHSM refusal, or not an eHSM answer at all.
    Answer(Error),
}

/// What one worker (or, merged, one action) saw in the measured window.
#[derive(Default)]
struct Stats {
    latency: Histogram,
    errors: BTreeMap<String, u64>,
}

impl Stats {
    fn merge(&mut self, other: Stats) {
        self.latency.merge(&other.latency);
        for (k, n) in other.errors {
            *self.errors.entry(k).or_default() += n;
        }
    }

    fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// An action's result.
struct Outcome {
    action: Action,
    stats: Stats,
    window: Duration,
}

impl Outcome {
    fn throughput(&self) -> f64 {
        self.stats.latency.count() as f64 / self.window.as_secs_f64()
    }
}

pub(crate) async fn run(s: &Session, args: &Args) -> CmdResult {
    let mut actions = args.actions.clone();
    actions.dedup();
    let creates_keys = actions.contains(&Action::CreateKey);
    if creates_keys && s.credentials.is_some() {
        return Err(Failure::Local(anyhow!(
            "create-key makes a key per request and deletes them at the end with DeleteAllKey, \
             which would delete every key of the app: run it without --appid and --apikey, so \
             that bench enrolls an app of its own"
        )));
    }
    let credentials = match &s.credentials {
        Some(c) => c.clone(),
        None => match &args.token {
            Some(token) => s.client.enroll_with_token(token).await?,
            None => s.client.enroll().await?,
        },
    };
    let setup = s
        .builder()
        .credentials(credentials.appid.clone(), credentials.apikey.clone())
        .timeout(REQUEST_TIMEOUT)
        .build()?;
    let mut keys = Keys::default();
    let prepared = prepare(&setup, &credentials, &actions, args, &mut keys).await;
    let result = match prepared {
        Ok(work) => measure_all(s, args, &setup, work).await,
        Err(e) => Err(e),
    };
    if creates_keys {
        // bench's own app (checked above): every key it holds is bench's.
        if let Err(e) = setup.delete_all_keys().await {
            eprintln!("ehsm: warning: could not delete the keys bench created: {e}");
        }
        return result;
    }
    for keyid in keys.created() {
        if let Err(e) = setup.delete_key(&keyid).await {
            eprintln!("ehsm: warning: could not delete the bench key {keyid}: {e}");
        }
    }
    result
}

async fn measure_all(
    s: &Session,
    args: &Args,
    setup: &Client,
    work: Vec<(Action, Arc<Work>)>,
) -> CmdResult {
    // Every action's URL names the same server.
    let endpoint = Endpoint::new(
        &action_uri(setup, WireAction::GetVersion)?,
        || tls::client_config(&s.trust, s.ca_pem()),
        REQUEST_TIMEOUT,
    )?;
    let endpoint = Arc::new(endpoint);
    let mut outcomes = Vec::new();
    for (action, work) in work {
        eprintln!(
            "ehsm bench: {}: {} warm-up, {} measured, {} connections",
            action.name(),
            human(args.warmup),
            human(args.duration),
            args.connections
        );
        let stats = measure(
            &endpoint,
            args.connections,
            &work,
            args.warmup,
            args.duration,
        )
        .await?;
        outcomes.push(Outcome {
            action,
            stats,
            window: args.duration,
        });
    }
    let header = format!(
        "ehsm bench: {} ({}), {} connections, {} per action after {} warm-up, --size {}, \
         --key-versions {}\n\n",
        s.url,
        match s.trust {
            crate::cli::conn::Trust::Insecure => "TLS unverified",
            _ if s.url.starts_with("http:") => "plain HTTP",
            _ => "TLS",
        },
        args.connections,
        human(args.duration),
        human(args.warmup),
        args.size,
        args.key_versions
    );
    output::stdout(format!("{header}{}", report(&outcomes)).as_bytes())?;
    let failed: u64 = outcomes.iter().map(|o| o.stats.error_count()).sum();
    if failed > 0 {
        return Err(Failure::Local(anyhow::anyhow!(
            "{failed} requests failed (see 'errors in' above); the server log has details"
        )));
    }
    Ok(ExitCode::SUCCESS)
}

/// The keys the actions need, created once.
#[derive(Default)]
struct Keys {
    aes: Option<String>,
    ec: Option<String>,
    rsa: Option<String>,
}

impl Keys {
    fn created(&self) -> Vec<String> {
        [&self.aes, &self.ec, &self.rsa]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }

    async fn get(
        slot: &mut Option<String>,
        c: &Client,
        spec: KeySpec,
        usage: KeyUsage,
    ) -> Result<String, Error> {
        if let Some(k) = slot {
            return Ok(k.clone());
        }
        let k = c.create_key(spec, Origin::Internal, usage).await?;
        *slot = Some(k.clone());
        Ok(k)
    }
}

/// Each action's request, with the keys it needs made (and rotated to `--key-versions`).
async fn prepare(
    c: &Client,
    credentials: &Credentials,
    actions: &[Action],
    args: &Args,
    keys: &mut Keys,
) -> Result<Vec<(Action, Arc<Work>)>, Failure> {
    let mut message = vec![0u8; args.size as usize];
    // Any bytes do; these differ per byte so that nothing compresses or caches them.
    for (i, b) in message.iter_mut().enumerate() {
        *b = (i as u8).wrapping_mul(151).wrapping_add(7);
    }
    let mut out = Vec::new();
    for &action in actions {
        let payload = payload(c, action, &message, keys).await?;
        let work = Work::new(c, credentials, action.wire(), payload)?;
        out.push((action, Arc::new(work)));
    }
    // After the payloads: decrypt's ciphertext is version 1's.
    for keyid in keys.created() {
        for _ in 1..args.key_versions {
            c.rotate_key(&keyid).await?;
        }
    }
    Ok(out)
}

/// The payload the SDK's call for `action` sends (spec §7, no aad), creating the keys it needs;
/// `None` for GetVersion, which has none.
async fn payload(
    c: &Client,
    action: Action,
    message: &[u8],
    keys: &mut Keys,
) -> Result<Option<Value>, Error> {
    let aes = KeySpec::AesGcm256;
    let ed = KeyUsage::EncryptDecrypt;
    let sign = |keyid: String, padding: PaddingMode| {
        json!({
            "keyid": keyid,
            "message": STANDARD.encode(message),
            "message_type": MessageType::Raw.as_str(),
            "digest_mode": DigestMode::Sha256.as_str(),
            "padding_mode": padding.as_str(),
        })
    };
    let payload = match action {
        Action::GetVersion => return Ok(None),
        Action::Encrypt => json!({
            "keyid": Keys::get(&mut keys.aes, c, aes, ed).await?,
            "plaintext": STANDARD.encode(message),
        }),
        Action::Decrypt => {
            let keyid = Keys::get(&mut keys.aes, c, aes, ed).await?;
            let ciphertext = c.encrypt(&keyid, message, None).await?;
            json!({"keyid": keyid, "ciphertext": STANDARD.encode(ciphertext)})
        }
        Action::SignEcP256 => sign(
            Keys::get(&mut keys.ec, c, KeySpec::EcP256, KeyUsage::SignVerify).await?,
            PaddingMode::None,
        ),
        Action::SignRsa3072 => sign(
            Keys::get(&mut keys.rsa, c, KeySpec::Rsa3072, KeyUsage::SignVerify).await?,
            PaddingMode::RsaPkcs1,
        ),
        Action::GenerateDataKey => json!({
            "keyid": Keys::get(&mut keys.aes, c, aes, ed).await?,
            "keylen": DATA_KEY_LEN,
        }),
        Action::CreateKey => json!({
            "keyspec": aes.as_str(),
            "origin": Origin::Internal.as_str(),
            "keyusage": ed.as_str(),
        }),
    };
    Ok(Some(payload))
}

/// Runs one action on `connections` workers for `warmup + duration`, recording the measured
/// window. Each worker opens its connection in the warm-up.
async fn measure(
    endpoint: &Arc<Endpoint>,
    connections: u16,
    work: &Arc<Work>,
    warmup: Duration,
    duration: Duration,
) -> anyhow::Result<Stats> {
    let nonces = (0..connections)
        .map(|_| Nonces::new())
        .collect::<anyhow::Result<Vec<_>>>()?;
    let from = Instant::now() + warmup;
    let until = from + duration;
    let tasks: Vec<_> = nonces
        .into_iter()
        .map(|nonces| {
            let conn = Connection::new(Arc::clone(endpoint));
            tokio::spawn(worker(conn, nonces, Arc::clone(work), from, until))
        })
        .collect();
    let mut total = Stats::default();
    for task in tasks {
        match task.await {
            Ok(stats) => total.merge(stats),
            Err(e) => {
                *total
                    .errors
                    .entry(format!("worker failed: {e}"))
                    .or_default() += 1;
            }
        }
    }
    Ok(total)
}

/// Sends requests back to back until `until`; records those started from `from` on.
async fn worker(
    mut conn: Connection,
    mut nonces: Nonces,
    work: Arc<Work>,
    from: Instant,
    until: Instant,
) -> Stats {
    let mut stats = Stats::default();
    loop {
        let start = Instant::now();
        if start >= until {
            break;
        }
        let result = work.once(&mut conn, &mut nonces).await;
        if start < from {
            continue;
        }
        match result {
            Ok(()) => {
                let micros = u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX);
                stats.latency.record(micros);
            }
            Err(e) => *stats.errors.entry(error_key(&e)).or_default() += 1,
        }
    }
    stats
}

/// Errors are counted by eHSM code and message, or by kind of network failure.
fn error_key(e: &RequestError) -> String {
    match e {
        RequestError::Answer(Error::Api { code, message }) => format!("{code} {message}"),
        // `check_reply` fails otherwise only with `Error::Decode`.
        RequestError::Answer(_) => "undecodable answer".into(),
        RequestError::Send(SendError::Timeout) => "timeout".into(),
        RequestError::Send(SendError::Connect) => "connect failed".into(),
        RequestError::Send(SendError::Transport) => "transport".into(),
    }
}

/// The result table and the error breakdown.
fn report(outcomes: &[Outcome]) -> String {
    let baseline = outcomes
        .iter()
        .find(|o| o.action == Action::GetVersion)
        .map(Outcome::throughput)
        .filter(|t| *t > 0.0 && outcomes.len() > 1);
    let mut out = format!(
        "{:<18} {:>9} {:>7} {:>10} {:>9} {:>9} {:>9} {:>9}",
        "action", "requests", "errors", "req/s", "p50", "p99", "p99.9", "max"
    );
    if baseline.is_some() {
        out.push_str("  vs get-version");
    }
    out.push('\n');
    for o in outcomes {
        let h = &o.stats.latency;
        let _ = write!(
            out,
            "{:<18} {:>9} {:>7} {:>10.1} {:>9} {:>9} {:>9} {:>9}",
            o.action.name(),
            h.count() + o.stats.error_count(),
            o.stats.error_count(),
            o.throughput(),
            micros(h.quantile(0.50)),
            micros(h.quantile(0.99)),
            micros(h.quantile(0.999)),
            micros(h.max()),
        );
        if let Some(base) = baseline {
            let _ = write!(out, "  {:>14.2}", o.throughput() / base);
        }
        out.push('\n');
    }
    for o in outcomes.iter().filter(|o| !o.stats.errors.is_empty()) {
        let list: Vec<String> = o
            .stats
            .errors
            .iter()
            .map(|(k, n)| format!("{n} × {k}"))
            .collect();
        let _ = writeln!(out, "errors in {}: {}", o.action.name(), list.join("; "));
    }
    out
}

/// A latency for the table.
fn micros(us: u64) -> String {
    match us {
        0..1_000 => format!("{us}µs"),
        1_000..1_000_000 => format!("{:.2}ms", us as f64 / 1e3),
        _ => format!("{:.2}s", us as f64 / 1e6),
    }
}

/// A duration as the user would write it.
fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// `10s`, `500ms`, `2m`, `1h` or a bare number of seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let bad = || format!("{text:?} is not a duration like 10s, 500ms or 2m");
    let n: f64 = number.parse().map_err(|_| bad())?;
    let secs = match unit {
        "" | "s" => n,
        "ms" => n / 1e3,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(bad()),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| bad())
}

fn measured_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d.is_zero() || d > Duration::from_secs(3600) {
        return Err("the duration must be more than 0 and at most 1h".into());
    }
    Ok(d)
}

fn warmup_duration(text: &str) -> Result<Duration, String> {
    let d = parse_duration(text)?;
    if d > Duration::from_secs(600) {
        return Err("the warm-up must be at most 10m".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        for bad in ["", "s", "10x", "-1s", "1e3s", "ten"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert!(measured_duration("0s").is_err());
        assert!(measured_duration("2h").is_err());
        assert_eq!(warmup_duration("0"), Ok(Duration::ZERO));
        assert!(warmup_duration("11m").is_err());
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn nonces_are_unique_and_within_the_servers_limit() {
        let mut a = Nonces::new().unwrap();
        let mut b = Nonces::new().unwrap();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1000 {
            assert!(seen.insert(a.fresh()));
            assert!(seen.insert(b.fresh()));
        }
        a.count = u64::MAX - 1;
        assert!(a.fresh().len() <= 64);
    }

    #[test]
    fn report_shows_ratios_and_errors() {
        let outcome = |action, n: u64, errors: &[(&str, u64)]| {
            let mut stats = Stats::default();
            for i in 0..n {
                stats.latency.record(1000 + i);
            }
            for (k, c) in errors {
                stats.errors.insert((*k).to_owned(), *c);
            }
            Outcome {
                action,
                stats,
                window: Duration::from_secs(1),
            }
        };
        let text = report(&[
            outcome(Action::GetVersion, 1000, &[]),
            outcome(Action::Encrypt, 500, &[("400 keyid error", 2)]),
        ]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("vs get-version"), "{text}");
        assert!(
            lines[1].starts_with("get-version") && lines[1].ends_with("1.00"),
            "{text}"
        );
        assert!(
            lines[2].contains(" 502 ") && lines[2].ends_with("0.50"),
            "{text}"
        );
        assert_eq!(lines[3], "errors in encrypt: 2 × 400 keyid error");
        // One action: no ratio column.
        let single = report(&[outcome(Action::Encrypt, 10, &[])]);
        assert!(!single.contains("vs get-version"));
        assert_eq!(micros(999), "999µs");
        assert_eq!(micros(2_500), "2.50ms");
        assert_eq!(micros(1_500_000), "1.50s");
    }
}
