//! `ehsm serve --hsm-*`: the domain keys in the custody of a (SoftHSM2) PKCS#11 token. Skipped
//! with a printed reason when SoftHSM2 is not installed; with `CI` set, a failure instead.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::path::Path;
use std::process::Command;

use ehsm_client::{KeySpec, KeyUsage, Origin};
use ehsm_domain::hsm::softhsm::{self, PIN};
use util::Server;

fn hsm_args<'a>(module: &'a str, pin_file: &'a str) -> Vec<&'a str> {
    vec![
        "--tee",
        "sim",
        "--hsm-module",
        module,
        "--hsm-token",
        "T",
        "--hsm-pin-file",
        pin_file,
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn hsm_custody_serves_survives_a_restart_and_needs_the_pin() {
    let dir = tempfile::tempdir().unwrap();
    let Some(hsm) = softhsm::setup(dir.path(), &["T"]) else {
        return;
    };
    let data = dir.path().join("data");
    let module = hsm.module.to_str().unwrap().to_owned();
    let good = softhsm::pin_file(dir.path(), "pin", PIN);
    let good = good.to_str().unwrap().to_owned();
    let env = [("SOFTHSM2_CONF", hsm.conf.as_os_str())];

    let server = Server::start_in_with_env(&data, &hsm_args(&module, &good), &env);
    assert!(
        server.log.lock().unwrap().contains("custody hsm (token T)"),
        "{}",
        server.log.lock().unwrap()
    );
    let (c, creds) = server.enrolled().await;
    let k = c
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let ct = c.encrypt(&k, b"guarded by the token", None).await.unwrap();
    assert!(server.stop().success());
    assert!(data.join("domain-keys.hsm-wrapped-seed").exists());

    // A restart with the token unwraps the seed and decrypts.
    let server = Server::start_in_with_env(&data, &hsm_args(&module, &good), &env);
    let c = server.client().with_credentials(creds);
    assert_eq!(
        c.decrypt(&k, &ct, None).await.unwrap(),
        b"guarded by the token"
    );
    assert!(server.stop().success());

    // A wrong PIN: exit 1 with a clear message that does not show the PIN, files untouched.
    let before = std::fs::read(data.join("domain-keys.sealed")).unwrap();
    let bad = softhsm::pin_file(dir.path(), "bad-pin", "987654");
    let out = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .args(hsm_args(&module, bad.to_str().unwrap()))
        .envs(env)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("refused the PIN"), "{stderr}");
    assert!(!stderr.contains("987654"), "{stderr}");
    assert_eq!(
        std::fs::read(data.join("domain-keys.sealed")).unwrap(),
        before
    );

    // And without the HSM flags the platform custody is refused for this data dir.
    let out = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "serve",
            "--tee",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(&data)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("HSM custody"), "{stderr}");
    assert!(Path::new(&data).join("domain-keys.sealed").exists());
}

/// `ehsm dkeyserver --hsm pkcs11:…`: a root whose domain keys are in the custody of a SoftHSM2
/// token. The same domain after a restart and after a rotation (which needs the token too); with
/// another token (no custody key, no seed it can decrypt) it does not start and nothing changes.
#[test]
fn an_hsm_backed_root_keeps_its_domain_and_needs_its_token() {
    let dir = tempfile::tempdir().unwrap();
    let Some(hsm) = softhsm::setup(dir.path(), &["T", "Other"]) else {
        return;
    };
    let data = dir.path().join("root");
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "allow_simulated = true\n").unwrap();
    let pin = softhsm::pin_file(dir.path(), "pin", PIN);
    let uri = |token: &str| {
        format!(
            "pkcs11:token={token};object=root-custody?module-path={}&pin-source=file:{}",
            hsm.module.display(),
            pin.display()
        )
    };
    let env = [("SOFTHSM2_CONF", hsm.conf.as_os_str())];
    let root = |token: &str, extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = ["dkeyserver", "--role", "root", "--tee", "sim"]
            .iter()
            .map(Into::into)
            .collect();
        for a in ["--listen", "127.0.0.1:0", "--hsm", &uri(token), "--policy"] {
            args.push(a.into());
        }
        args.push(policy.clone().into());
        args.push("--data-dir".into());
        args.push(data.clone().into());
        args.extend(extra.iter().map(Into::into));
        args
    };
    let start = |args: &[std::ffi::OsString]| {
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        Server::start_command(&args, &env)
    };
    let fingerprint = |s: &Server| {
        let log = s.log.lock().unwrap();
        let at = log.find("domain fingerprint ").unwrap() + "domain fingerprint ".len();
        log[at..at + 16].to_owned()
    };

    let first = start(&root("T", &["--new-domain"]));
    assert!(
        first.logged("custody hsm (token T)"),
        "{}",
        first.log.lock().unwrap()
    );
    let created = fingerprint(&first);
    assert!(first.stop().success());
    assert!(data.join("domain-keys.hsm-wrapped-seed").exists());

    let again = start(&root("T", &[]));
    assert_eq!(fingerprint(&again), created, "a restart is the same domain");
    assert!(again.stop().success());

    let rotate = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_ehsm"))
            .args([
                "dkeyserver",
                "rotate",
                "--tee",
                "sim",
                "--hsm",
                &uri(token),
                "--data-dir",
            ])
            .arg(&data)
            .envs(env)
            .output()
            .unwrap()
    };
    let rotated = rotate("T");
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("version 2 added"));

    // Without its token the domain is unusable: neither a start nor a rotation, and the files
    // stay as they were.
    let before = std::fs::read(data.join("domain-keys.sealed")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(root("Other", &[]))
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(!rotate("Other").status.success());
    assert_eq!(
        std::fs::read(data.join("domain-keys.sealed")).unwrap(),
        before
    );

    let last = start(&root("T", &[]));
    assert!(
        last.logged("versions [1, 2]"),
        "{}",
        last.log.lock().unwrap()
    );
    let rotated_fingerprint = fingerprint(&last);
    assert!(last.stop().success());

    // Backup of the HSM-held keys to two custodians (either recovers), and recovery into a new
    // root in the token's custody: the same domain, both versions.
    let custodians: Vec<_> = (1..=2)
        .map(|i| {
            let key =
                openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(3072).unwrap()).unwrap();
            let public = dir.path().join(format!("custodian-{i}.pub.pem"));
            let private = dir.path().join(format!("custodian-{i}.key.pem"));
            std::fs::write(&public, key.public_key_to_pem().unwrap()).unwrap();
            std::fs::write(&private, key.private_key_to_pem_pkcs8().unwrap()).unwrap();
            (public, private)
        })
        .collect();
    let shares = dir.path().join("shares");
    let backup = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "dkeyserver",
            "backup",
            "--tee",
            "sim",
            "--threshold",
            "1",
            "--hsm",
            &uri("T"),
        ])
        .arg("--data-dir")
        .arg(&data)
        .args(
            custodians
                .iter()
                .flat_map(|(public, _)| ["--custodian".as_ref(), public.as_os_str()]),
        )
        .arg("--out")
        .arg(&shares)
        .envs(env)
        .output()
        .unwrap();
    assert!(backup.status.success(), "{backup:?}");
    let recovered = dir.path().join("recovered");
    let share = format!(
        "{}:{}",
        shares.join("share-2-of-2.ehsm-share").display(),
        custodians[1].1.display()
    );
    let recover = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "dkeyserver",
            "recover",
            "--tee",
            "sim",
            "--hsm",
            &uri("T"),
            "--share",
            &share,
        ])
        .arg("--data-dir")
        .arg(&recovered)
        .envs(env)
        .output()
        .unwrap();
    assert!(recover.status.success(), "{recover:?}");
    assert!(recovered.join("domain-keys.hsm-wrapped-seed").exists());
    let mut args = root("T", &[]);
    let at = args.iter().position(|a| a == "--data-dir").unwrap();
    args[at + 1] = recovered.clone().into();
    let restored = start(&args);
    assert_eq!(fingerprint(&restored), rotated_fingerprint);
    assert!(
        restored.logged("versions [1, 2]"),
        "{}",
        restored.log.lock().unwrap()
    );
    assert!(restored.stop().success());
}
