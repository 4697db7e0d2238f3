//! The test harness: the real `ehsm serve` binary on a fresh data directory and a free port,
//! and helpers to talk to it with the SDK or with raw, hand-signed HTTP requests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::future::Future;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_client::{Client, Credentials};
use serde_json::{Map, Value, json};
use sqlx::{AssertSqlSafe, Connection as _, PgConnection};

/// A running `ehsm serve`; stopped with SIGTERM when dropped.
pub struct Server {
    child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub log: Arc<Mutex<String>>,
}

impl Server {
    /// A server on a fresh data directory.
    pub fn start(extra: &[&str]) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_owned();
        let mut s = Self::start_in(&path, extra);
        s._dir = Some(dir);
        s
    }

    /// A server on `data_dir` (kept after the server stops, for restart tests).
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> Server {
        Self::start_in_with_env(data_dir, extra, &[])
    }

    /// [`Server::start_in`] with extra environment variables for the server process (e.g.
    /// `SOFTHSM2_CONF` for HSM custody).
    pub fn start_in_with_env(
        data_dir: &Path,
        extra: &[&str],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Server {
        let mut args: Vec<&std::ffi::OsStr> = ["serve", "--listen", "127.0.0.1:0", "--data-dir"]
            .iter()
            .map(std::ffi::OsStr::new)
            .collect();
        args.push(data_dir.as_os_str());
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        let database = e2e_database(data_dir, extra);
        if let Some(url) = &database {
            args.extend([
                std::ffi::OsStr::new("--database"),
                std::ffi::OsStr::new(url),
            ]);
        }
        let mut s = Self::start_command(&args, env);
        s.data_dir = data_dir.to_owned();
        s
    }

    /// Any role of the binary (`ehsm <args>`), once it logs where it listens: `url` is what
    /// follows "listening on " (`https://…` without `/ehsm` for `serve`, `HOST:PORT` for a key
    /// server, `unix:PATH` for a dkeycache).
    pub fn start_command(args: &[&std::ffi::OsStr], env: &[(&str, &std::ffi::OsStr)]) -> Server {
        let (mut s, rx) = Self::spawn_command(args, env);
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(url) => s.url = url,
            Err(_) => {
                let _ = s.child.kill();
                panic!("ehsm {args:?} did not start:\n{}", s.log.lock().unwrap());
            }
        }
        s
    }

    /// [`Server::start_command`] without waiting: for a process that is expected not to come
    /// up (its `url` stays empty; its log tells why).
    pub fn spawn_command(
        args: &[&std::ffi::OsStr],
        env: &[(&str, &std::ffi::OsStr)],
    ) -> (Server, std::sync::mpsc::Receiver<String>) {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ehsm"))
            .args(args)
            .envs(env.iter().copied())
            .env("EHSM_LOG", "info")
            .env_remove("EHSM_DATABASE")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                // The line goes into the log before the URL is announced, so that a test that
                // got the URL finds the start-up line in the log.
                {
                    let mut log = log2.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(at) = line.find("listening on ") {
                    let url = line[at + "listening on ".len()..]
                        .split_whitespace()
                        .next()
                        .unwrap()
                        .to_owned();
                    let _ = tx.send(url.trim_end_matches("/ehsm").to_owned());
                }
            }
        });
        let s = Server {
            child,
            url: String::new(),
            data_dir: PathBuf::new(),
            _dir: None,
            log,
        };
        (s, rx)
    }

    /// Whether the process's log holds `text` yet.
    pub fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().contains(text)
    }

    /// An SDK client (not enrolled).
    pub fn client(&self) -> Client {
        Client::builder(&self.url)
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap()
    }

    /// An SDK client of a freshly enrolled app.
    pub async fn enrolled(&self) -> (Client, Credentials) {
        let c = self.client();
        let creds = c.enroll().await.unwrap();
        (c.with_credentials(creds.clone()), creds)
    }

    /// Kills the server with SIGKILL (a crash: nothing is flushed) and waits for it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server with SIGTERM and waits for it; returns its exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        self.terminate()
    }

    fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// A raw HTTP client that accepts ehsm's self-signed certificate.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap()
}

/// A signed envelope for `payload`, as a client builds it (spec §2.3, §3).
pub fn envelope(
    creds: &Credentials,
    payload: Option<Value>,
    timestamp: &str,
    nonce: Option<&str>,
) -> Map<String, Value> {
    let mut body = Map::new();
    body.insert("appid".into(), json!(creds.appid));
    body.insert("timestamp".into(), json!(timestamp));
    if let Some(n) = nonce {
        body.insert("nonce".into(), json!(n));
    }
    if let Some(p) = payload {
        body.insert("payload".into(), p);
    }
    let sign = sign(&creds.apikey, &ehsm_proto::canon::signing_string(&body));
    body.insert("sign".into(), json!(sign));
    body
}

pub fn sign(apikey: &str, canonical: &str) -> String {
    STANDARD.encode(hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, apikey.as_bytes()),
        canonical.as_bytes(),
    ))
}

/// POSTs a JSON body to `?Action=`; returns (HTTP status, body).
pub async fn post(url: &str, action: &str, body: &Value) -> (u16, Value) {
    let r = http()
        .post(format!("{url}/ehsm?Action={action}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// A signed POST with a fresh timestamp and nonce; returns the body.
pub async fn call(url: &str, creds: &Credentials, action: &str, payload: Option<Value>) -> Value {
    let nonce = format!("{}", rand_u64());
    let body = envelope(creds, payload, &now_ms().to_string(), Some(&nonce));
    let (status, body) = post(url, action, &Value::Object(body)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Asserts an eHSM answer's code and message.
#[track_caller]
pub fn assert_code(body: &Value, code: i64, message: &str) {
    assert_eq!(body["code"], json!(code), "{body}");
    assert_eq!(body["message"], json!(message), "{body}");
    assert!(
        body["result"].is_object(),
        "result must be an object: {body}"
    );
}

pub fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    u64::from_le_bytes(b)
}

pub fn b64(b: &[u8]) -> String {
    STANDARD.encode(b)
}

pub fn b64_decode(s: &str) -> Vec<u8> {
    STANDARD.decode(s).unwrap()
}

/// With `EHSM_TEST_BACKEND=postgres`, the end-to-end tests run their servers on PostgreSQL
/// (`EHSM_TEST_POSTGRES`) instead of SQLite: each data directory gets its own database, named
/// after it, so that a server restarted on the same directory finds its records again. Tests that
/// choose their database themselves keep it. `scripts/test.sh` drops these databases afterwards.
pub fn e2e_database(data_dir: &Path, extra: &[&str]) -> Option<String> {
    if std::env::var("EHSM_TEST_BACKEND").ok()? != "postgres" || extra.contains(&"--database") {
        return None;
    }
    let base = postgres_url()?;
    let digest = aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        data_dir.as_os_str().as_encoded_bytes(),
    );
    let name = format!("ehsm_e2e_{}", &hex_lower(digest.as_ref())[..20]);
    // Created on first use; a restart finds it ("already exists" is fine).
    let _ = Command::new("psql")
        .args(["-q", &base, "-c", &format!("CREATE DATABASE {name}")])
        .stderr(Stdio::null())
        .status();
    Some(with_database(&base, &name))
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- PostgreSQL for the multi-node tests ----------------------------------------------------

/// The PostgreSQL URL, or `None` (after saying why) when the test is skipped locally.
pub fn postgres_url() -> Option<String> {
    if let Ok(url) = std::env::var("EHSM_TEST_POSTGRES")
        && !url.trim().is_empty()
    {
        return Some(url);
    }
    let in_ci = std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    assert!(
        !in_ci,
        "CI is set but EHSM_TEST_POSTGRES is not: the multi-node tests must not be skipped in CI"
    );
    eprintln!("SKIPPED: EHSM_TEST_POSTGRES is not set (a PostgreSQL URL)");
    None
}

/// `base` with its database replaced by `database`.
pub fn with_database(base: &str, database: &str) -> String {
    let (url, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let scheme_end = url.find("://").unwrap() + 3;
    let host_end = url[scheme_end..]
        .find('/')
        .map_or(url.len(), |i| scheme_end + i);
    let mut out = format!("{}/{database}", &url[..host_end]);
    if let Some(q) = query {
        out.push('?');
        out.push_str(q);
    }
    out
}

/// Runs `check` with the URL of a fresh database (dropped afterwards, also when the check
/// fails); skips it without `EHSM_TEST_POSTGRES`.
pub async fn on_fresh_database<F, Fut>(check: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(base) = postgres_url() else { return };
    let database = format!("ehsm_nodes_{}_{}", std::process::id(), rand_u64());
    let mut admin = PgConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("cannot connect to EHSM_TEST_POSTGRES: {e}"));
    sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {database}")))
        .execute(&mut admin)
        .await
        .unwrap();
    let url = with_database(&base, &database);

    admin.close().await.unwrap();

    // Run the nodes in a task so that the database is dropped even when the check fails. A new
    // connection drops it: the check may have restarted PostgreSQL.
    let outcome = tokio::spawn(check(url)).await;
    let mut admin = PgConnection::connect(&base).await.unwrap();
    sqlx::raw_sql(AssertSqlSafe(format!(
        "DROP DATABASE {database} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    admin.close().await.unwrap();
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}
