//! `ehsm serve` as an operator runs it: the real binary on a fresh data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use util::Server;

/// Runs `ehsm serve` expecting it to fail at start-up.
fn serve_fails(data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fingerprint(log: &str) -> String {
    let at = log.find("fingerprint ").expect("no fingerprint in log") + "fingerprint ".len();
    log[at..at + 16].to_owned()
}

#[test]
fn first_start_creates_the_domain_and_restart_unseals_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let first = Server::start_in(&data, &[]);
    let log1 = first.log.lock().unwrap().clone();
    assert!(log1.contains("domain key created"), "{log1}");
    assert!(log1.contains("NO SECURITY"), "{log1}");
    let log = std::sync::Arc::clone(&first.log);
    let status = first.stop();
    assert!(
        status.success(),
        "SIGTERM must shut down cleanly: {status}\n{}",
        log.lock().unwrap()
    );
    let second = Server::start_in(&data, &[]);
    let log2 = second.log.lock().unwrap().clone();
    assert!(log2.contains("domain key unsealed"), "{log2}");
    assert_eq!(fingerprint(&log1), fingerprint(&log2));
    for f in ["domain-keys.sealed", "sim-sealing.key", "tls-key.pem"] {
        let mode = std::fs::metadata(data.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    assert_eq!(
        std::fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn a_tampered_domain_key_refuses_to_start_and_is_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    Server::start_in(dir.path(), &[]).stop();
    let sealed = dir.path().join("domain-keys.sealed");
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes[20] ^= 0x80;
    std::fs::write(&sealed, &bytes).unwrap();
    let out = serve_fails(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("Refusing to start"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(&sealed).unwrap(),
        bytes,
        "the sealed file was replaced"
    );
}

#[test]
fn a_moved_data_dir_without_its_sealing_key_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    Server::start_in(dir.path(), &[]).stop();
    std::fs::remove_file(dir.path().join("sim-sealing.key")).unwrap();
    let out = serve_fails(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another platform key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unwritable_data_dir_is_a_clear_error() {
    let out = serve_fails(Path::new("/proc/ehsm-cannot-exist"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("creating the data directory"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_taken_port_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("binding {addr}")),
        "{}",
        stderr(&out)
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    use std::io::{BufRead as _, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("EHSM_LOG_FORMAT", "json")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let line = stderr
        .lines()
        .map_while(Result::ok)
        .find(|l| l.contains("listening on"))
        .expect("no listening line");
    let _ = child.kill();
    let _ = child.wait();
    let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
    assert_eq!(v["level"], "INFO");
    assert!(
        v["fields"]["message"]
            .as_str()
            .unwrap()
            .starts_with("listening on https://127.0.0.1:")
    );
}

/// `--config FILE` is read by the real binary: the file's `http` and `enroll` apply, and the
/// flags (here `--listen` and `--data-dir`, from the harness) still win over the file.
#[tokio::test(flavor = "multi_thread")]
async fn a_config_file_sets_the_server_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ehsm.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:1\"\nhttp = true\nenroll = \"off\"\n",
    )
    .unwrap();
    let s = Server::start(&["--config", file.to_str().unwrap()]);
    assert!(s.url.starts_with("http://127.0.0.1:"), "{}", s.url);
    assert!(!s.url.ends_with(":1"), "--listen beats the file: {}", s.url);
    let refused = s.client().enroll().await.unwrap_err();
    assert!(
        matches!(&refused, ehsm_client::Error::Api { code: 400, .. }),
        "enroll = off: {refused:?}"
    );

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "lisen = \"127.0.0.1:0\"\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["serve", "--config", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("bad.toml") && err.contains("lisen"), "{err}");
}
