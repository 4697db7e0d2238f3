//! Attested enrollment (issue 14) as a user meets it: `ehsm enroll --policy`, the pinned profile
//! it writes, `ehsm attest server`, against a real `ehsm serve` on the simulated platform, and
//! the ways it must refuse: another measurement, no `allow_simulated`, a server whose TLS key
//! changed, a proxy that terminates TLS, a replayed answer. Every refusal leaves no profile.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;

use ehsm_client::{AttestError, Client, Error, check_server_evidence};
use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{NoCollateral, Verifier};
use ehsm_tee::server_evidence::{Challenge, certificate_spki};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde_json::Value;
use util::Server;

/// The binary with a private HOME (so a private default profile) and nothing else.
struct Cli {
    home: tempfile::TempDir,
}

impl Cli {
    fn new() -> Cli {
        Cli {
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn profile(&self) -> PathBuf {
        self.home.path().join(".config/ehsm/profile.json")
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.home.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Output {
        ehsm(args, self.home.path())
    }

    #[track_caller]
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "ehsm {args:?}: {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn profile_json(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.profile()).unwrap()).unwrap()
    }
}

fn ehsm(args: &[&str], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(args)
        .env_clear()
        .env("HOME", home)
        .output()
        .unwrap()
}

/// Exit code 1, one `ehsm: ` line on stderr holding every hint; returns that line.
#[track_caller]
fn assert_fails(out: &Output, hints: &[&str]) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.starts_with("ehsm: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    for hint in hints {
        assert!(stderr.contains(hint), "{hint:?} not in {stderr}");
    }
    stderr
}

/// The server's certificate, once written (`ehsm serve` logs its address first).
fn server_cert(server: &Server) -> CertificateDer<'static> {
    let path = server.data_dir.join("tls-cert.pem");
    for _ in 0..200 {
        if let Ok(cert) = CertificateDer::from_pem_file(&path) {
            return cert;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{} was not written", path.display());
}

/// SHA-256 (hex) of the key of the certificate the server serves: what the profile must pin.
fn key_sha256(cert: &[u8]) -> String {
    let spki = certificate_spki(cert).unwrap();
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki))
}

/// The measurement a policy pins for this server, learnt as an operator would: `ehsm attest
/// show` on the server's platform and data directory.
fn measurement(server: &Server) -> String {
    let data_dir = server.data_dir.to_str().unwrap();
    let home = tempfile::tempdir().unwrap();
    let out = ehsm(
        &["attest", "show", "--tee", "sim", "--data-dir", data_dir],
        home.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    json["measurement"].as_str().unwrap().to_owned()
}

/// A policy that accepts exactly this simulated measurement.
fn sim_policy(measurement: &str) -> String {
    format!("allow_simulated = true\nsimulated_measurements = [\"{measurement}\"]\n")
}

fn verifier(policy: &str) -> Verifier {
    Verifier::new(
        Arc::new(Policy::from_toml(policy).unwrap()),
        Arc::new(NoCollateral),
    )
}

#[test]
fn attested_enrollment_pins_the_key_and_later_commands_use_the_pin() {
    let server = Server::start(&[]);
    let cert = server_cert(&server);
    let cli = Cli::new();
    let m = measurement(&server);
    let policy = cli.file("policy.toml", &sim_policy(&m));
    let policy = policy.to_str().unwrap();
    // --insecure for the first connection only: the binding check authenticates the key.
    let out = cli.run(&[
        "enroll",
        "--url",
        &server.url,
        "--insecure",
        "--policy",
        policy,
    ]);
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(stdout.contains("appid: "), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "attested: sim (no hardware protection) measurement={m}"
        )),
        "{stdout}"
    );
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.contains("NO SECURITY"), "{stderr}");
    assert!(!stderr.contains("does not remember --insecure"), "{stderr}");

    let profile = cli.profile_json();
    assert_eq!(profile["server_key_sha256"], key_sha256(&cert));
    assert_eq!(profile["attested"]["platform"], "sim");
    assert_eq!(profile["attested"]["measurement"], m);
    assert_eq!(profile["attested"]["key_sha256"], key_sha256(&cert));
    assert!(profile.get("ca_cert").is_none(), "{profile}");

    // No --insecure and no --ca-cert: the pin alone makes the server trusted.
    let keyid = cli
        .ok(&["key", "create", "--spec", "aes-gcm-256"])
        .trim()
        .to_owned();
    assert_eq!(keyid.len(), 36, "{keyid}");
    let list = cli.ok(&["key", "list"]);
    assert!(list.contains(&keyid), "{list}");
}

#[test]
fn a_policy_for_another_measurement_is_refused_and_nothing_is_written() {
    let server = Server::start(&[]);
    let cli = Cli::new();
    let policy = cli.file("other.toml", &sim_policy(&hex::encode([0x42u8; 32])));
    let out = cli.run(&[
        "enroll",
        "--url",
        &server.url,
        "--insecure",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        &[
            "policy check failed",
            "simulated measurement",
            "not enrolled: no profile was written",
        ],
    );
    assert!(!cli.profile().exists());
}

#[test]
fn a_policy_without_allow_simulated_is_refused_and_nothing_is_written() {
    let server = Server::start(&[]);
    let cli = Cli::new();
    // A hardware policy pinning the measurement the server shows: still no simulation.
    let policy = cli.file(
        "sgx.toml",
        &format!("[sgx]\nmr_enclave = [\"{}\"]\n", measurement(&server)),
    );
    let out = cli.run(&[
        "enroll",
        "--url",
        &server.url,
        "--insecure",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        &[
            "policy check failed",
            "simulated evidence not allowed",
            "allow_simulated",
            "no profile was written",
        ],
    );
    assert!(!cli.profile().exists());
}

/// `ehsm serve` on `data_dir` at `listen` (a fixed address, so that a restart keeps the URL
/// the profile names), on the database `Server::start_in` gave that directory (PostgreSQL
/// with `EHSM_TEST_BACKEND=postgres`), so that the restarted server knows the app.
fn serve_at(data_dir: &Path, listen: &str) -> Server {
    let database = util::e2e_database(data_dir, &[]);
    let database = database.iter().flat_map(|url| ["--database", url.as_str()]);
    let args = ["serve", "--listen", listen, "--data-dir"]
        .map(std::ffi::OsStr::new)
        .into_iter()
        .chain([data_dir.as_os_str()])
        .chain(database.map(std::ffi::OsStr::new))
        .collect::<Vec<_>>();
    let mut server = Server::start_command(&args, &[]);
    server.data_dir = data_dir.to_owned();
    server
}

#[test]
fn a_server_restarted_with_a_new_tls_key_is_refused_until_attested_again() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start_in(dir.path(), &[]);
    let listen = first.url.trim_start_matches("https://").to_owned();
    let old_cert = server_cert(&first);
    let cli = Cli::new();
    let policy = cli.file("policy.toml", &sim_policy(&measurement(&first)));
    let policy = policy.to_str().unwrap();
    cli.ok(&[
        "enroll",
        "--url",
        &first.url,
        "--insecure",
        "--policy",
        policy,
    ]);
    let keyid = cli
        .ok(&["key", "create", "--spec", "aes-gcm-256"])
        .trim()
        .to_owned();
    assert!(first.stop().success());

    // The same key after a restart: the pin holds.
    let same = serve_at(dir.path(), &listen);
    assert_eq!(server_cert(&same), old_cert);
    assert!(cli.ok(&["key", "list"]).contains(&keyid));
    assert!(same.stop().success());

    // A new key: refused before anything is sent, with what to do.
    for file in ["tls-cert.pem", "tls-key.pem"] {
        std::fs::remove_file(dir.path().join(file)).unwrap();
    }
    let renewed = serve_at(dir.path(), &listen);
    let new_cert = server_cert(&renewed);
    assert_ne!(new_cert, old_cert);
    let out = cli.run(&["key", "list"]);
    assert_fails(
        &out,
        &[
            "presents another TLS key than the one attested",
            &key_sha256(&new_cert),
            &key_sha256(&old_cert),
            "attest it again with 'ehsm enroll --policy FILE --force'",
        ],
    );
    // Trusting the new certificate does not override the pin.
    let ca = renewed.data_dir.join("tls-cert.pem");
    let out = cli.run(&["key", "list", "--ca-cert", ca.to_str().unwrap()]);
    assert_fails(&out, &["presents another TLS key"]);

    // Attesting again pins the new key.
    cli.ok(&[
        "enroll",
        "--url",
        &renewed.url,
        "--insecure",
        "--policy",
        policy,
        "--force",
    ]);
    assert_eq!(
        cli.profile_json()["server_key_sha256"],
        key_sha256(&new_cert)
    );
    cli.ok(&["key", "list"]);
}

/// A TLS-terminating proxy with its own self-signed certificate, forwarding the bytes to
/// `upstream` over a TLS connection that trusts the server's certificate. Returns its URL; it
/// runs as long as `runtime`.
fn start_proxy(runtime: &tokio::runtime::Runtime, upstream: &Server) -> String {
    let made = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
    let key = PrivateKeyDer::try_from(made.signing_key.serialize_der()).unwrap();
    let server_side = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![made.cert.der().clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(server_cert(upstream)).unwrap();
    let client_side = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_side));
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_side));
    let target = upstream.url.trim_start_matches("https://").to_owned();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    runtime.spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, connector, target) =
                (acceptor.clone(), connector.clone(), target.clone());
            tokio::spawn(async move {
                let Ok(mut client) = acceptor.accept(tcp).await else {
                    return;
                };
                let tcp = tokio::net::TcpStream::connect(&target).await.unwrap();
                let name = ServerName::try_from("127.0.0.1").unwrap();
                let mut server = connector.connect(name, tcp).await.unwrap();
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    url
}

#[test]
fn enrollment_through_a_tls_terminating_proxy_is_refused() {
    let server = Server::start(&[]);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let proxy = start_proxy(&runtime, &server);
    let cli = Cli::new();
    let policy = cli.file("policy.toml", &sim_policy(&measurement(&server)));
    let out = cli.run(&[
        "enroll",
        "--url",
        &proxy,
        "--insecure",
        "--policy",
        policy.to_str().unwrap(),
    ]);
    assert_fails(
        &out,
        &[
            "binding check failed",
            &key_sha256(&server_cert(&server)),
            "proxy",
            "no profile was written",
        ],
    );
    assert!(!cli.profile().exists());
    // The proxy does forward: without attestation the same enrollment goes through it.
    let other = cli.home.path().join("unattested.json");
    let out = cli.run(&[
        "enroll",
        "--url",
        &proxy,
        "--insecure",
        "--profile",
        other.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn evidence_replayed_from_an_earlier_challenge_is_refused() {
    let server = Server::start(&[]);
    let policy = sim_policy(&measurement(&server));
    let v = verifier(&policy);
    // Two real answers, each for its own fresh challenge. The runtime (and with it the
    // client's connection) is gone before the server stops, which then has none to wait for.
    let (earlier, later) = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let client = Client::builder(&server.url)
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let earlier = client.server_evidence().await.unwrap();
        (earlier, client.server_evidence().await.unwrap())
    });
    let identity = earlier.check(&v).unwrap();
    assert_eq!(
        hex::encode(identity.key_sha256),
        key_sha256(earlier.peer_certificate())
    );
    later.check(&v).unwrap();
    // The earlier answer offered for the later request's challenge, or for any other.
    assert_ne!(later.challenge(), earlier.challenge());
    for challenge in [later.challenge().clone(), Challenge::new(&[0; 32]).unwrap()] {
        let result =
            check_server_evidence(earlier.answer(), &challenge, earlier.peer_certificate(), &v);
        assert!(
            matches!(result, Err(Error::Attestation(AttestError::Replayed))),
            "{result:?}"
        );
    }
}

#[test]
fn attest_server_prints_the_identity_and_exits_0_only_if_every_check_passes() {
    let server = Server::start(&[]);
    let cert = server_cert(&server);
    let cli = Cli::new();
    let m = measurement(&server);
    let good = cli.file("good.toml", &sim_policy(&m));
    let good = good.to_str().unwrap();
    let ca = server.data_dir.join("tls-cert.pem");
    let ca = ca.to_str().unwrap();
    // Simulated evidence needs no collateral: the (unreachable) PCCS is not asked.
    let no_pccs = ["--insecure", "--pccs-url", "http://127.0.0.1:1"];
    for trust in [vec!["--insecure"], vec!["--ca-cert", ca], no_pccs.to_vec()] {
        let mut args = vec!["attest", "server", "--url", &server.url, "--policy", good];
        args.extend(trust);
        let out = cli.run(&args);
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        let json: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(json["platform"], "sim");
        assert_eq!(json["measurement"], m);
        assert_eq!(json["key_sha256"], key_sha256(&cert));
        assert_eq!(json["warning"], "simulated platform: NO SECURITY");
    }

    let bad = cli.file("bad.toml", &sim_policy(&hex::encode([1u8; 32])));
    let out = cli.run(&[
        "attest",
        "server",
        "--url",
        &server.url,
        "--insecure",
        "--policy",
        bad.to_str().unwrap(),
    ]);
    assert_fails(&out, &["policy check failed"]);
    assert!(out.stdout.is_empty());

    let http = server.url.replacen("https://", "http://", 1);
    let out = cli.run(&["attest", "server", "--url", &http, "--policy", good]);
    assert_fails(&out, &["attestation needs an https:// URL"]);

    // The system's roots do not trust ehsm's generated certificate: the connection fails.
    let out = cli.run(&["attest", "server", "--url", &server.url, "--policy", good]);
    assert_fails(&out, &["TLS handshake"]);

    for usage in [
        vec!["attest", "server", "--url", &server.url],
        vec!["attest", "server", "--policy", good],
        vec![
            "attest",
            "server",
            "--url",
            &server.url,
            "--policy",
            good,
            "--insecure",
            "--ca-cert",
            ca,
        ],
        vec![
            "attest",
            "server",
            "--url",
            &server.url,
            "--policy",
            good,
            "--collateral",
            "c.json",
            "--pccs-url",
            "https://pccs.example",
        ],
    ] {
        let out = cli.run(&usage);
        assert_eq!(out.status.code(), Some(2), "{usage:?}: {out:?}");
    }
    // And enroll's collateral flags need its --policy.
    let out = cli.run(&["enroll", "--url", &server.url, "--collateral", "c.json"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!cli.profile().exists());
}
