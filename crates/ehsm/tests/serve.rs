//! `ehsm serve` as a user runs it: the real binary on a fresh data directory.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::path::Path;
use std::process::{Command, Output};

fn serve(data_dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["serve", "--data-dir"])
        .arg(data_dir)
        .env_remove("EHSM_DATA_DIR")
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
    let first = serve(&data);
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(
        stderr(&first).contains("domain key v1 created"),
        "{}",
        stderr(&first)
    );
    assert!(stderr(&first).contains("NO SECURITY"));
    let second = serve(&data);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(stderr(&second).contains("domain key v1 unsealed"));
    assert_eq!(fingerprint(&stderr(&first)), fingerprint(&stderr(&second)));
    use std::os::unix::fs::PermissionsExt as _;
    for f in ["domain-keys.sealed", "sim-sealing.key"] {
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
    assert!(serve(dir.path()).status.success());
    let sealed = dir.path().join("domain-keys.sealed");
    let mut bytes = std::fs::read(&sealed).unwrap();
    bytes[20] ^= 0x80;
    std::fs::write(&sealed, &bytes).unwrap();
    let out = serve(dir.path());
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
    assert!(serve(dir.path()).status.success());
    std::fs::remove_file(dir.path().join("sim-sealing.key")).unwrap();
    let out = serve(dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("another platform key"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn an_unwritable_data_dir_is_a_clear_error() {
    let out = serve(Path::new("/proc/ehsm-cannot-exist"));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("creating the data directory"),
        "{}",
        stderr(&out)
    );
}
