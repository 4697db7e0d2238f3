//! `ehsm domain backup` and `ehsm domain recover` end to end: a node's domain keys split 3-of-5
//! to custodians, recovered from three shares into a new data directory, and the old keys served
//! from there; too few shares, a corrupted share and an occupied data directory refused.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use ehsm_client::{KeySpec, KeyUsage, Origin};
use openssl::pkey::PKey;
use openssl::rsa::Rsa;
use util::Server;

fn ehsm(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(args)
        .env_remove("EHSM_DATA_DIR")
        .env_remove("EHSM_TEE")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The value after `name: ` on stdout.
fn field(out: &Output, name: &str) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .unwrap_or_else(|| panic!("no {name} in\n{}", text(out)))
        .to_owned()
}

/// Five custodian key pairs, written as public.pem / private.pem in `dir`/custodian-<i>.
fn custodians(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..=5)
            .map(|i| {
                s.spawn(move || {
                    let pkey = PKey::from_rsa(Rsa::generate(3072).unwrap()).unwrap();
                    let public = dir.join(format!("custodian-{i}.pub.pem"));
                    let private = dir.join(format!("custodian-{i}.key.pem"));
                    std::fs::write(&public, pkey.public_key_to_pem().unwrap()).unwrap();
                    std::fs::write(&private, pkey.private_key_to_pem_pkcs8().unwrap()).unwrap();
                    (public, private)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

fn share_arg(shares: &Path, i: usize, keys: &[(PathBuf, PathBuf)]) -> String {
    format!(
        "{}:{}",
        shares.join(format!("share-{i}-of-5.ehsm-share")).display(),
        keys[i - 1].1.display()
    )
}

/// `ehsm domain recover --tee sim --data-dir DIR --share ...` for the given share numbers.
fn recover(dir: &Path, shares: &Path, keys: &[(PathBuf, PathBuf)], which: &[usize]) -> Output {
    let mut args = vec![
        "domain".to_owned(),
        "recover".to_owned(),
        "--tee".to_owned(),
        "sim".to_owned(),
        "--data-dir".to_owned(),
        dir.display().to_string(),
    ];
    for &i in which {
        args.push("--share".to_owned());
        args.push(share_arg(shares, i, keys));
    }
    ehsm(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// Copies the SQLite database (and any WAL files) of one data directory into another.
fn copy_database(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with("ehsm.db") {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn backup_three_of_five_and_recover_into_a_new_node() {
    let tmp = tempfile::tempdir().unwrap();
    let old_dir = tmp.path().join("old");
    let shares = tmp.path().join("shares");
    let keys = custodians(tmp.path());

    // A backup of a data directory that has no domain is refused, and creates none.
    std::fs::create_dir(tmp.path().join("empty")).unwrap();
    let empty = tmp.path().join("empty");
    let out = ehsm(&[
        "domain",
        "backup",
        "--tee",
        "sim",
        "--data-dir",
        empty.to_str().unwrap(),
        "--threshold",
        "1",
        "--custodian",
        keys[0].0.to_str().unwrap(),
        "--out",
        shares.to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("no domain to back up"),
        "{}",
        text(&out)
    );
    assert!(!empty.join("domain-keys.sealed").exists());

    // The old node: a key and a ciphertext under it.
    let server = Server::start_in(&old_dir, &["--tee", "sim"]);
    let (client, creds) = server.enrolled().await;
    let keyid = client
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let ciphertext = client
        .encrypt(&keyid, b"kept across a recovery", None)
        .await
        .unwrap();
    server.stop();

    let mut args = vec![
        "domain".to_owned(),
        "backup".to_owned(),
        "--tee".to_owned(),
        "sim".to_owned(),
        "--data-dir".to_owned(),
        old_dir.display().to_string(),
        "--threshold".to_owned(),
        "3".to_owned(),
        "--out".to_owned(),
        shares.display().to_string(),
    ];
    for (public, _) in &keys {
        args.push("--custodian".to_owned());
        args.push(public.display().to_string());
    }
    let out = ehsm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out.status.success(), "{}", text(&out));
    let fingerprint = field(&out, "fingerprint");
    assert_eq!(field(&out, "backup id").len(), 32);
    for i in 1..=5 {
        let path = shares.join(format!("share-{i}-of-5.ehsm-share"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    // A second backup into the same directory does not overwrite the first.
    let again = ehsm(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(!again.status.success(), "{}", text(&again));
    assert!(text(&again).contains("already exists"), "{}", text(&again));

    // Two shares are not enough, and nothing is written.
    let few_dir = tmp.path().join("few");
    let out = recover(&few_dir, &shares, &keys, &[2, 4]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("2 share(s) given, but this backup needs 3 of its 5 shares"),
        "{}",
        text(&out)
    );
    assert!(!few_dir.join("domain-keys.sealed").exists());

    // A corrupted share fails to open.
    let bad = tmp.path().join("bad-share");
    let mut bytes = std::fs::read(shares.join("share-3-of-5.ehsm-share")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&bad, &bytes).unwrap();
    let bad_dir = tmp.path().join("bad");
    let out = ehsm(&[
        "domain",
        "recover",
        "--tee",
        "sim",
        "--data-dir",
        bad_dir.to_str().unwrap(),
        "--share",
        &share_arg(&shares, 1, &keys),
        "--share",
        &format!("{}:{}", bad.display(), keys[2].1.display()),
        "--share",
        &share_arg(&shares, 5, &keys),
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("does not open with"), "{}", text(&out));
    assert!(!bad_dir.join("domain-keys.sealed").exists());

    // Shares 1, 3 and 5 recover the domain into a new data directory with the old database.
    let new_dir = tmp.path().join("new");
    copy_database(&old_dir, &new_dir);
    let out = recover(&new_dir, &shares, &keys, &[1, 3, 5]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(field(&out, "fingerprint"), fingerprint);

    // Recovering again into a data directory that has a domain is refused, and it is kept.
    let sealed = std::fs::read(new_dir.join("domain-keys.sealed")).unwrap();
    let out = recover(&new_dir, &shares, &keys, &[2, 3, 4]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("refusing to replace a domain"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(new_dir.join("domain-keys.sealed")).unwrap(),
        sealed
    );

    // The new node serves the old keys to the old credentials (its database is the old node's:
    // the copied SQLite file, or with EHSM_TEST_BACKEND=postgres the old node's database).
    let old_database = util::e2e_database(&old_dir, &[]);
    let mut args = vec!["--tee", "sim"];
    if let Some(url) = &old_database {
        args.extend(["--database", url.as_str()]);
    }
    let server = Server::start_in(&new_dir, &args);
    let client = server.client().with_credentials(creds);
    let plaintext = client.decrypt(&keyid, &ciphertext, None).await.unwrap();
    assert_eq!(plaintext, b"kept across a recovery");
    server.stop();
}
