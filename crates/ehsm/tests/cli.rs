//! The client commands as a user runs them: the real `ehsm` binary against a real `ehsm serve`,
//! with a fresh HOME (so a fresh profile) per test and an empty environment otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::borrow::BorrowMut;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use util::Server;

/// The binary with a private HOME, pointed at a server by `EHSM_URL` and `EHSM_CA_CERT`.
struct Cli {
    home: tempfile::TempDir,
    url: String,
    ca: PathBuf,
}

impl Cli {
    fn new(server: &Server) -> Cli {
        Cli {
            home: tempfile::tempdir().unwrap(),
            url: server.url.clone(),
            ca: server_cert(server),
        }
    }

    fn profile(&self) -> PathBuf {
        self.home.path().join(".config/ehsm/profile.json")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.home.path().join(name)
    }

    /// The command with only HOME set: no server, no credentials.
    fn bare(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ehsm"));
        c.args(args).env_clear().env("HOME", self.home.path());
        c
    }

    /// The command aimed at the test server.
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = self.bare(args);
        c.env("EHSM_URL", &self.url).env("EHSM_CA_CERT", &self.ca);
        c
    }

    /// Runs `args` with `stdin`.
    fn run_with(&self, mut c: impl BorrowMut<Command>, stdin: &[u8]) -> Output {
        let mut child = c
            .borrow_mut()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        out
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(self.cmd(args), b"")
    }

    /// Runs `args`, asserts success, returns stdout.
    #[track_caller]
    fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert_success(&out, args);
        out.stdout
    }

    #[track_caller]
    fn ok_text(&self, args: &[&str]) -> String {
        String::from_utf8(self.ok(args)).unwrap()
    }

    /// Enrolls (writing the profile) and returns the appid.
    fn enroll(&self) -> String {
        let out = self.ok_text(&["enroll"]);
        line_value(&out, "appid: ")
    }

    fn create(&self, args: &[&str]) -> String {
        let mut all = vec!["key", "create"];
        all.extend_from_slice(args);
        let keyid = self.ok_text(&all).trim().to_owned();
        assert_eq!(keyid.len(), 36, "{keyid}");
        keyid
    }
}

/// The server's generated certificate. `ehsm serve` prints its address before it writes the
/// certificate (ehsm-kms `server::run` binds, logs, then calls `tls::files`), so wait for it.
fn server_cert(server: &Server) -> PathBuf {
    let path = server.data_dir.join("tls-cert.pem");
    for _ in 0..200 {
        if std::fs::read_to_string(&path).is_ok_and(|pem| pem.contains("-----END CERTIFICATE-----"))
        {
            return path;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("{} was not written", path.display());
}

#[track_caller]
fn assert_success(out: &Output, args: &[&str]) {
    assert!(
        out.status.success(),
        "ehsm {args:?} failed: {:?}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Asserts a failure with exit code 1 and one `ehsm: ` line on stderr containing every hint.
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

fn line_value(text: &str, prefix: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix:?} line in {text}"))
        .to_owned()
}

fn random(n: usize) -> Vec<u8> {
    let mut b = vec![0u8; n];
    aws_lc_rs::rand::fill(&mut b).unwrap();
    b
}

fn list_json(cli: &Cli) -> Vec<Value> {
    serde_json::from_slice::<Value>(&cli.ok(&["key", "list", "--json"]))
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn enroll_writes_a_private_profile_that_later_commands_use() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    let ca = cli.ca.to_str().unwrap().to_owned();
    // The URL and CA certificate from flags, so the profile has to remember them.
    let out = cli.run_with(
        cli.bare(&["enroll", "--url", &s.url, "--ca-cert", &ca]),
        b"",
    );
    assert_success(&out, &["enroll"]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let appid = line_value(&stdout, "appid: ");
    assert_eq!(
        line_value(&stdout, "profile: "),
        cli.profile().display().to_string()
    );

    assert_eq!(mode(&cli.profile()), 0o600, "the profile holds the apikey");
    assert_eq!(mode(cli.profile().parent().unwrap()), 0o700);
    let profile: Value = serde_json::from_slice(&std::fs::read(cli.profile()).unwrap()).unwrap();
    assert_eq!(profile["appid"], appid.as_str());
    assert_eq!(profile["url"], s.url.as_str());
    assert_eq!(profile["ca_cert"], ca.as_str());
    let apikey = profile["apikey"].as_str().unwrap().to_owned();
    assert_eq!(apikey.len(), 32);
    assert!(
        !stdout.contains(&apikey),
        "the apikey is printed only on request"
    );

    // Only HOME: URL, trust and credentials all come from the profile.
    let out = cli.run_with(cli.bare(&["key", "list", "--json"]), b"");
    assert_success(&out, &["key", "list"]);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.stdout).unwrap(),
        Value::Array(vec![])
    );

    // Enrolling again would lose the apikey: refused unless forced.
    let out = cli.run(&["enroll"]);
    assert_fails(&out, &["already exists", "--force"]);
    let forced = cli.ok_text(&["enroll", "--force", "--print-apikey"]);
    let profile: Value = serde_json::from_slice(&std::fs::read(cli.profile()).unwrap()).unwrap();
    assert_eq!(
        line_value(&forced, "apikey: "),
        profile["apikey"].as_str().unwrap()
    );
    assert_ne!(line_value(&forced, "appid: "), appid);
    assert_eq!(mode(&cli.profile()), 0o600);
}

#[test]
fn enroll_presents_the_operators_token() {
    let s = Server::start(&["--enroll", "token"]);
    let log = s.log.lock().unwrap().clone();
    let token = log
        .lines()
        .find_map(|l| l.split("Bearer <token>'): ").nth(1))
        .expect("the server prints its enrollment token")
        .trim()
        .to_owned();
    let cli = Cli::new(&s);
    assert_fails(&cli.run(&["enroll"]), &["--token", "EHSM_ENROLL_TOKEN"]);
    assert_fails(&cli.run(&["enroll", "--token", "wrong"]), &["--token"]);
    assert!(!cli.profile().exists());
    let out = cli.run_with(cli.cmd(&["enroll"]).env("EHSM_ENROLL_TOKEN", &token), b"");
    assert_success(&out, &["enroll"]);
    cli.ok(&["key", "list"]);
}

#[test]
fn keys_are_created_listed_disabled_enabled_and_deleted() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let aes = cli.create(&["--spec", "EH_AES_GCM_256"]);
    let ec = cli.create(&["--spec", "ec-p256"]);
    let rsa = cli.create(&["--spec", "rsa-2048", "--usage", "encrypt-decrypt"]);
    let sm4 = cli.create(&["--spec", "SM4-CBC", "--origin", "external"]);

    let table = cli.ok_text(&["key", "list"]);
    assert!(table.starts_with("KEYID"), "{table}");
    for (keyid, spec) in [
        (&aes, "EH_AES_GCM_256"),
        (&ec, "EH_EC_P256"),
        (&rsa, "EH_RSA_2048"),
        (&sm4, "EH_SM4_CBC"),
    ] {
        let row = table
            .lines()
            .find(|l| l.starts_with(keyid.as_str()))
            .unwrap();
        assert!(row.contains(spec) && row.contains("enabled"), "{row}");
    }
    let keys = list_json(&cli);
    assert_eq!(keys.len(), 4);
    let ec_item = keys.iter().find(|k| k["keyid"] == ec.as_str()).unwrap();
    assert_eq!(ec_item["keyspec"], "EH_EC_P256");
    assert_eq!(ec_item["keyState"], 1);
    assert!(ec_item["expireTime"].as_i64() > ec_item["creationDate"].as_i64());

    // The default usages: EC signs, so it cannot encrypt; RSA was asked to encrypt.
    assert_eq!(
        cli.ok_text(&["key", "disable", &aes]).trim(),
        format!("disabled {aes}")
    );
    let row = cli.ok_text(&["key", "list"]);
    assert!(
        row.lines()
            .any(|l| l.starts_with(aes.as_str()) && l.contains("disabled")),
        "{row}"
    );
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &aes, "--base64"]), b"x");
    assert_fails(&out, &["keyid is disabled", "ehsm key enable"]);
    cli.ok(&["key", "enable", &aes]);
    cli.ok(&["key", "enable", &aes]); // idempotent
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &aes, "--base64"]), b"x");
    assert_success(&out, &["encrypt"]);

    assert_eq!(
        cli.ok_text(&["key", "delete", &ec]).trim(),
        format!("deleted {ec}")
    );
    assert!(list_json(&cli).iter().all(|k| k["keyid"] != ec.as_str()));
    assert_fails(
        &cli.run(&["key", "delete", &ec]),
        &["no key", "ehsm key list"],
    );

    // Usage errors are clap's: exit code 2 with the valid names.
    let out = cli.run(&["key", "create", "--spec", "aes-256"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("aes-gcm-256"));
    assert_fails(
        &cli.run(&["key", "create", "--spec", "ec-p256", "--origin", "external"]),
        &["AES and SM4"],
    );
}

#[test]
fn encrypt_and_decrypt_round_trip_binary_data_through_files_and_pipes() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let key = cli.create(&["--spec", "aes-gcm-256"]);
    let mut data = random(6144);
    data[..4].copy_from_slice(b"\0\n\r\xff");

    // Files, with aad.
    let (pt, ct, back) = (cli.file("pt"), cli.file("ct"), cli.file("back"));
    std::fs::write(&pt, &data).unwrap();
    let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
    cli.ok(&[
        "encrypt",
        "--key",
        &key,
        "--aad",
        "ctx",
        "--in",
        &p(&pt),
        "--out",
        &p(&ct),
    ]);
    assert_ne!(std::fs::read(&ct).unwrap(), data);
    cli.ok(&[
        "decrypt",
        "--key",
        &key,
        "--aad",
        "ctx",
        "--in",
        &p(&ct),
        "--out",
        &p(&back),
    ]);
    assert_eq!(std::fs::read(&back).unwrap(), data);
    assert_eq!(mode(&back), 0o600, "decrypted output is private");

    // stdin to stdout, raw bytes.
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &key]), &data);
    assert_success(&out, &["encrypt"]);
    let ciphertext = out.stdout;
    let out = cli.run_with(
        cli.cmd(&["decrypt", "--key", &key, "--in", "-"]),
        &ciphertext,
    );
    assert_success(&out, &["decrypt"]);
    assert_eq!(out.stdout, data);

    // base64 text both ways.
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &key, "--base64"]), b"hello");
    assert_success(&out, &["encrypt"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.ends_with('\n'));
    STANDARD.decode(text.trim()).unwrap();
    let out = cli.run_with(
        cli.cmd(&["decrypt", "--key", &key, "--base64"]),
        text.as_bytes(),
    );
    assert_success(&out, &["decrypt"]);
    assert_eq!(out.stdout, b"hello");

    // Wrong aad, too much data, nothing at all.
    let out = cli.run_with(
        cli.cmd(&["decrypt", "--key", &key, "--aad", "other"]),
        &ciphertext,
    );
    assert_fails(&out, &["Decryption failed", "--aad"]);
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &key]), &random(6145));
    assert_fails(&out, &["6144", "ehsm datakey"]);
    assert_fails(&cli.run(&["encrypt", "--key", &key]), &["empty"]);
}

#[test]
fn sign_and_verify_exit_0_for_valid_and_1_for_invalid() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let ec = cli.create(&["--spec", "ec-p256"]);
    let rsa = cli.create(&["--spec", "rsa-3072"]);
    let msg = cli.file("msg");
    let sig = cli.file("sig");
    std::fs::write(&msg, random(1000)).unwrap();
    let (msg_s, sig_s) = (msg.to_str().unwrap(), sig.to_str().unwrap());

    cli.ok(&["sign", "--key", &ec, "--in", msg_s, "--out", sig_s]);
    let verify = cli.run(&["verify", "--key", &ec, "--in", msg_s, "--signature", sig_s]);
    assert_eq!(verify.status.code(), Some(0));
    assert_eq!(verify.stdout, b"valid\n");

    let other = cli.file("other");
    std::fs::write(&other, b"a different message").unwrap();
    let args = [
        "verify",
        "--key",
        &ec,
        "--in",
        other.to_str().unwrap(),
        "--signature",
        sig_s,
    ];
    let verify = cli.run(&args);
    assert_eq!(verify.status.code(), Some(1));
    assert_eq!(verify.stdout, b"invalid\n");
    assert!(verify.stderr.is_empty());

    // RSA-PSS over a digest, signature as base64 through stdout.
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, b"payload");
    std::fs::write(&msg, digest.as_ref()).unwrap();
    let common = [
        "--key",
        &rsa,
        "--padding",
        "pss",
        "--digest",
        "sha384",
        "--prehashed",
        "--base64",
    ];
    let mut sign_args = vec!["sign", "--in", msg_s];
    sign_args.extend_from_slice(&common);
    std::fs::write(&sig, cli.ok(&sign_args)).unwrap();
    assert_eq!(
        STANDARD
            .decode(std::fs::read_to_string(&sig).unwrap().trim())
            .unwrap()
            .len(),
        384
    );
    let mut verify_args = vec!["verify", "--in", msg_s, "--signature", sig_s];
    verify_args.extend_from_slice(&common);
    assert_eq!(cli.ok_text(&verify_args), "valid\n");
    // Same signature, PKCS#1 v1.5 instead of PSS: not a match.
    let mut wrong = verify_args.clone();
    let pss = wrong.iter().position(|a| *a == "pss").unwrap();
    wrong[pss] = "pkcs1";
    assert_eq!(cli.run(&wrong).status.code(), Some(1));

    assert_fails(
        &cli.run(&["sign", "--key", &rsa, "--padding", "none", "--in", msg_s]),
        &["the server refused"],
    );
}

#[test]
fn datakey_prints_json_whose_ciphertext_decrypts_to_the_plaintext() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let key = cli.create(&["--spec", "aes-gcm-128"]);
    let dk: Value =
        serde_json::from_slice(&cli.ok(&["datakey", "--key", &key, "--len", "32", "--aad", "ctx"]))
            .unwrap();
    assert_eq!(dk["keyid"], key.as_str());
    let plaintext = STANDARD.decode(dk["plaintext"].as_str().unwrap()).unwrap();
    assert_eq!(plaintext.len(), 32);
    let ciphertext = STANDARD.decode(dk["ciphertext"].as_str().unwrap()).unwrap();
    let out = cli.run_with(
        cli.cmd(&["decrypt", "--key", &key, "--aad", "ctx"]),
        &ciphertext,
    );
    assert_success(&out, &["decrypt"]);
    assert_eq!(out.stdout, plaintext);

    let only: Value = serde_json::from_slice(&cli.ok(&[
        "datakey",
        "--key",
        &key,
        "--len",
        "16",
        "--no-plaintext",
    ]))
    .unwrap();
    assert!(only.get("plaintext").is_none());
    let text = only["ciphertext"].as_str().unwrap().to_owned() + "\n";
    let out = cli.run_with(
        cli.cmd(&["decrypt", "--key", &key, "--base64"]),
        text.as_bytes(),
    );
    assert_success(&out, &["decrypt"]);
    assert_eq!(out.stdout.len(), 16);

    assert_eq!(
        cli.run(&["datakey", "--key", &key, "--len", "0"])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn pubkey_prints_a_pem_that_openssl_reads() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let ec = cli.create(&["--spec", "ec-p384"]);
    let rsa = cli.create(&["--spec", "rsa-2048"]);
    let pem = cli.ok(&["pubkey", &ec]);
    assert!(pem.starts_with(b"-----BEGIN PUBLIC KEY-----\n"));
    assert!(pem.ends_with(b"-----END PUBLIC KEY-----\n"));
    let key = openssl::pkey::PKey::public_key_from_pem(&pem).unwrap();
    assert_eq!(key.bits(), 384);
    let pem = cli.ok(&["pubkey", &rsa]);
    assert!(pem.starts_with(b"-----BEGIN RSA PUBLIC KEY-----\n"));
    assert_eq!(
        openssl::rsa::Rsa::public_key_from_pem_pkcs1(&pem)
            .unwrap()
            .size(),
        256
    );
}

#[test]
fn import_brings_your_own_key_and_it_encrypts() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    for (spec, len, extra) in [
        ("aes-gcm-256", 32, &[][..]),
        (
            "aes-gcm-128",
            16,
            &["--padding", "pkcs1", "--wrapping-spec", "rsa-2048"][..],
        ),
        ("sm4-ctr", 16, &["--wrapping-spec", "EH_RSA_4096"][..]),
    ] {
        let key = cli.create(&["--spec", spec, "--origin", "external"]);
        // Not usable before the import.
        let out = cli.run_with(cli.cmd(&["encrypt", "--key", &key, "--base64"]), b"x");
        assert_eq!(out.status.code(), Some(1), "{spec}");

        let material = cli.file("material");
        std::fs::write(&material, random(len)).unwrap();
        let mut args = vec![
            "import",
            "--key",
            &key,
            "--material",
            material.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        assert!(cli.ok_text(&args).contains(&key));

        let data = random(100);
        let out = cli.run_with(cli.cmd(&["encrypt", "--key", &key]), &data);
        assert_success(&out, &["encrypt"]);
        let out = cli.run_with(cli.cmd(&["decrypt", "--key", &key]), &out.stdout);
        assert_success(&out, &["decrypt"]);
        assert_eq!(out.stdout, data, "{spec}");
    }

    let key = cli.create(&["--spec", "aes-gcm-256", "--origin", "external"]);
    let material = cli.file("short");
    std::fs::write(&material, random(20)).unwrap();
    assert_fails(
        &cli.run(&[
            "import",
            "--key",
            &key,
            "--material",
            material.to_str().unwrap(),
        ]),
        &["20 bytes", "32 for AES-256"],
    );
    // 16 bytes for a 32-byte key: the server refuses.
    std::fs::write(&material, random(16)).unwrap();
    assert_fails(
        &cli.run(&[
            "import",
            "--key",
            &key,
            "--material",
            material.to_str().unwrap(),
        ]),
        &[],
    );
}

#[test]
fn errors_say_what_to_do_next() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);

    // No profile and no variables.
    let stderr = assert_fails(&cli.run(&["key", "list"]), &[]);
    assert!(
        stderr.starts_with(
            "ehsm: no credentials: run 'ehsm enroll' or set EHSM_APPID and EHSM_APIKEY"
        ),
        "{stderr}"
    );
    let out = cli.run_with(cli.cmd(&["key", "list"]).env("EHSM_APPID", "x"), b"");
    assert_fails(&out, &["EHSM_APIKEY", "set both"]);

    cli.enroll();
    let stderr = assert_fails(
        &cli.run_with(
            cli.cmd(&[
                "decrypt",
                "--key",
                "0e2d6e3a-0000-4000-8000-000000000000",
                "--base64",
            ]),
            b"AAAA",
        ),
        &[],
    );
    assert_eq!(
        stderr,
        "ehsm: the server refused: keyid error (is the key id right, and is it one of this app's keys?)\n"
    );

    // Credentials the server does not know.
    let out = cli.run_with(
        cli.cmd(&["key", "list"])
            .env("EHSM_APPID", "6dfb6b98-e476-46f3-9cc0-f51d922405c0")
            .env("EHSM_APIKEY", "bRUZuPvPtwGgarBRHFk2JXc4iHi6pcFE"),
        b"",
    );
    assert_fails(&out, &["EHSM_APPID", "ehsm enroll"]);

    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let out = cli.run(&["key", "list", "--url", &format!("https://127.0.0.1:{port}")]);
    assert_fails(&out, &["could not connect", "connection refused", "--url"]);

    // The server's self-signed certificate without --ca-cert (the profile would remember it).
    let out = cli.run_with(
        cli.bare(&["enroll", "--url", &s.url])
            .env("EHSM_PROFILE", cli.file("other-profile.json")),
        b"",
    );
    assert_fails(&out, &["TLS", "--ca-cert", "tls-cert.pem"]);
    // ... which --insecure accepts.
    let out = cli.run_with(
        cli.bare(&["key", "list", "--url", &s.url, "--insecure"]),
        b"",
    );
    assert_success(&out, &["key", "list", "--insecure"]);
    // Another server's certificate.
    let other = Server::start(&[]);
    let other_ca = server_cert(&other);
    let out = cli.run(&["key", "list", "--ca-cert", other_ca.to_str().unwrap()]);
    assert_fails(&out, &["TLS", "is ", "the server's certificate"]);
    // Plain HTTP to the TLS port.
    let http = s.url.replace("https://", "http://");
    assert_fails(&cli.run(&["key", "list", "--url", &http]), &["https://"]);
}

#[test]
fn secrets_are_created_versioned_read_and_deleted() {
    let server = Server::start(&[]);
    let cli = Cli::new(&server);
    cli.enroll();
    // Values are read byte for byte: a trailing newline, tabs and quotes are kept.
    let value = "p@ss w0rd\t\"quoted\" & = \\ ünïcødé\n";
    let create = [
        "secret",
        "create",
        "db",
        "--description",
        "the\tdatabase",
        "--rotation-interval",
        "30d",
    ];
    let out = cli.run_with(cli.cmd(&create), value.as_bytes());
    assert_success(&out, &create);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "created secret db (version 1)\n"
    );
    assert_eq!(cli.ok_text(&["secret", "get", "db"]), value);

    let path = cli.file("v2.txt");
    std::fs::write(&path, "second").unwrap();
    let put = cli.ok_text(&["secret", "put", "db", "--in", path.to_str().unwrap()]);
    assert_eq!(put, "stored version 2 of db\n");
    cli.ok(&["secret", "put", "db", "--value", "third"]);
    assert_eq!(cli.ok_text(&["secret", "get", "db"]), "third");
    assert_eq!(
        cli.ok_text(&["secret", "get", "db", "--version", "1"]),
        value
    );
    let out_file = cli.file("out.txt");
    cli.ok(&[
        "secret",
        "get",
        "db",
        "--version",
        "2",
        "--out",
        out_file.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), "second");
    assert_eq!(
        mode(&out_file),
        0o600,
        "a secret's value is written privately"
    );
    let got: Value = serde_json::from_slice(&cli.ok(&["secret", "get", "db", "--json"])).unwrap();
    assert_eq!(
        (got["secretData"].as_str(), got["versionId"].as_i64()),
        (Some("third"), Some(3))
    );

    let versions: Value =
        serde_json::from_slice(&cli.ok(&["secret", "versions", "db", "--json"])).unwrap();
    let ids: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["versionId"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 2, 3]);
    let table = cli.ok_text(&["secret", "versions", "db"]);
    assert_eq!(table.lines().count(), 4, "{table}");
    let listed = cli.ok_text(&["secret", "list"]);
    assert!(listed.starts_with("NAME"), "{listed}");
    assert!(
        listed.contains("the\\tdatabase"),
        "control characters escaped: {listed}"
    );
    let described: Value = serde_json::from_slice(&cli.ok(&["secret", "describe", "db"])).unwrap();
    assert_eq!(described["rotationInterval"], "30d");
    assert_eq!(described["description"], "the\tdatabase");
    cli.ok(&["secret", "set-description", "db"]);
    let described: Value = serde_json::from_slice(&cli.ok(&["secret", "describe", "db"])).unwrap();
    assert!(described.get("description").is_none(), "{described}");

    // Scheduled deletion, restore, forced deletion.
    let deleted = cli.ok_text(&["secret", "delete", "db", "--recovery-days", "2"]);
    assert!(
        deleted.contains("will be deleted at") && deleted.contains("ehsm secret restore db"),
        "{deleted}"
    );
    assert_fails(
        &cli.run(&["secret", "get", "db"]),
        &["Can't find the db's value."],
    );
    cli.ok(&["secret", "restore", "db"]);
    assert_eq!(cli.ok_text(&["secret", "get", "db"]), "third");
    assert_eq!(
        cli.ok_text(&["secret", "delete", "db", "--force"]),
        "deleted secret db\n"
    );
    assert!(cli.ok_text(&["secret", "list"]).contains("no secrets"));

    // Clear errors for what the command itself can check.
    assert_fails(&cli.run(&["secret", "describe", "db"]), &["no secret db"]);
    assert_fails(&cli.run(&["secret", "versions", "db"]), &["no secret db"]);
    let binary = cli.run_with(cli.cmd(&["secret", "create", "bin"]), &[0xff, 0xfe]);
    assert_fails(&binary, &["not valid UTF-8"]);
    let usage = cli.run(&["secret", "delete", "x", "--recovery-days", "400"]);
    assert_eq!(usage.status.code(), Some(2), "a usage error");
    assert_fails(
        &cli.run(&["secret", "get", "none"]),
        &["Can't find the none's value."],
    );
}

#[test]
fn bench_runs_every_action_and_cleans_up() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    // Given credentials, so that the clean-up can be checked on this app's key list.
    let appid = cli.enroll();
    let apikey: Value = serde_json::from_slice(&std::fs::read(cli.profile()).unwrap()).unwrap();
    let apikey = apikey["apikey"].as_str().unwrap().to_owned();
    let actions = [
        "get-version",
        "encrypt",
        "decrypt",
        "sign-ec-p256",
        "sign-rsa-3072",
        "generate-data-key",
    ];
    let mut args = vec![
        "bench",
        "--connections",
        "4",
        "--duration",
        "1s",
        "--warmup",
        "200ms",
        "--size",
        "256",
        // Every key rotated once after decrypt's ciphertext was made: version 1's ciphertext
        // still decrypts, every other action uses version 2.
        "--key-versions",
        "2",
    ];
    for a in actions {
        args.extend(["--action", a]);
    }
    let out = cli.run_with(
        cli.cmd(&args)
            .env("EHSM_APPID", &appid)
            .env("EHSM_APIKEY", &apikey),
        b"",
    );
    assert_success(&out, &args);
    let report = String::from_utf8(out.stdout).unwrap();
    let header = report
        .lines()
        .find(|l| l.starts_with("action"))
        .expect(&report);
    assert!(header.ends_with("vs get-version"), "{report}");
    assert!(report.contains("--key-versions 2"), "{report}");
    for action in actions {
        let row: Vec<&str> = report
            .lines()
            .find(|l| l.split_whitespace().next() == Some(action))
            .unwrap_or_else(|| panic!("no {action} row in\n{report}"))
            .split_whitespace()
            .collect();
        let requests: u64 = row[1].parse().unwrap();
        let errors: u64 = row[2].parse().unwrap();
        assert!(requests > 0, "{report}");
        assert_eq!(errors, 0, "{report}");
    }
    assert!(!report.contains("errors in"), "{report}");
    assert!(
        list_json(&cli).is_empty(),
        "bench deletes the keys it created"
    );

    // Without credentials it enrolls its own app, and only then may it create keys.
    let own = [
        "bench",
        "--connections",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "0s",
        "--action",
        "get-version",
        "--action",
        "create-key",
    ];
    let out = cli.run_with(cli.cmd(&own), b"");
    assert_success(&out, &own);
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(
        report.lines().any(|l| l.starts_with("create-key")),
        "{report}"
    );
    let with_credentials = cli.run_with(
        cli.cmd(&["bench", "--action", "create-key"])
            .env("EHSM_APPID", &appid)
            .env("EHSM_APIKEY", &apikey),
        b"",
    );
    assert_eq!(with_credentials.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&with_credentials.stderr).contains("app of its own"));
    for bad in [
        ["--duration", "2h"],
        ["--key-versions", "0"],
        ["--key-versions", "101"],
    ] {
        let args = [&["bench", "--action", "encrypt"], &bad[..]].concat();
        assert_eq!(cli.run(&args).status.code(), Some(2), "{bad:?}");
    }
}

/// Bench's measured requests use their own connections, not the SDK's: they must reach the
/// servers the other commands reach, with the same trust. (`--ca-cert` is the test above.)
#[test]
fn bench_connects_over_insecure_tls_and_plain_http() {
    let tls = Server::start(&[]);
    let plain = Server::start(&["--http"]);
    let cli = Cli::new(&tls);
    for (url, trust) in [(&tls.url, Some("--insecure")), (&plain.url, None)] {
        let mut args = vec![
            "bench",
            "--url",
            url,
            "--connections",
            "2",
            "--duration",
            "300ms",
            "--warmup",
            "0s",
            "--action",
            "get-version",
            "--action",
            "encrypt",
        ];
        args.extend(trust);
        // Exit code 0 means every request succeeded.
        assert_success(&cli.run_with(cli.bare(&args), b""), &args);
    }
}

/// The JSON a command printed.
fn json_out(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap()
}

/// The key version in a symmetric ciphertext's header (its second byte, below 128), from the
/// base64 text `ehsm encrypt --base64` writes.
fn ciphertext_version(base64_text: &[u8]) -> u8 {
    STANDARD
        .decode(String::from_utf8_lossy(base64_text).trim())
        .unwrap()[1]
}

#[test]
fn keys_rotate_reencrypt_and_go_by_alias() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let key = cli.create(&[
        "--spec",
        "aes-gcm-256",
        "--rotation-days",
        "30",
        "--description",
        "orders",
    ]);
    assert_eq!(
        cli.ok_text(&["alias", "create", "alias/orders", "--key", &key]),
        format!("alias/orders names {key}\n")
    );
    let d = json_out(&cli.ok(&["key", "describe", "alias/orders"]));
    assert_eq!(d["keyid"], key.as_str());
    assert_eq!(d["keyspec"], "EH_AES_GCM_256");
    assert_eq!(d["description"], "orders");
    assert_eq!(d["aliases"], serde_json::json!(["alias/orders"]));
    assert_eq!(d["primaryVersion"], 1);
    assert_eq!(
        (&d["rotation"]["enable"], &d["rotation"]["rotationInterval"]),
        (&Value::Bool(true), &Value::from(30))
    );
    assert!(d["deletionDate"].is_null());

    let encrypt = [
        "encrypt",
        "--key",
        "alias/orders",
        "--aad",
        "ctx",
        "--base64",
    ];
    let out = cli.run_with(cli.cmd(&encrypt), b"order 1");
    assert_success(&out, &encrypt);
    let v1 = out.stdout;
    assert_eq!(
        cli.ok_text(&["key", "rotate", "alias/orders"]),
        format!("rotated {key}: version 2 is now the primary one\n")
    );
    let table = cli.ok_text(&["key", "versions", "alias/orders"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "{table}");
    assert!(lines[0].starts_with("VERSION") && lines[0].ends_with("PRIMARY"));
    assert!(
        lines[1].starts_with("1 ") && !lines[1].ends_with("yes"),
        "{table}"
    );
    assert!(
        lines[2].starts_with("2 ") && lines[2].ends_with("yes"),
        "{table}"
    );
    let versions = json_out(&cli.ok(&["key", "versions", &key, "--json"]));
    assert_eq!(versions["primaryVersion"], 2);
    assert_eq!(versions["versions"][1]["keyversion"], 2);

    // Moved to version 2, with the same aad unless told otherwise.
    let reencrypt = [
        "reencrypt",
        "--key",
        "alias/orders",
        "--aad",
        "ctx",
        "--base64",
    ];
    let out = cli.run_with(cli.cmd(&reencrypt), &v1);
    assert_success(&out, &reencrypt);
    let moved = out.stdout;
    assert_eq!(
        (ciphertext_version(&v1), ciphertext_version(&moved)),
        (1, 2)
    );
    let decrypt = ["decrypt", "--key", &key, "--aad", "ctx", "--base64"];
    let out = cli.run_with(cli.cmd(&decrypt), &moved);
    assert_success(&out, &decrypt);
    assert_eq!(out.stdout, b"order 1");
    // To another key, dropping the aad; raw bytes in and out.
    let other = cli.create(&["--spec", "aes-gcm-128"]);
    let raw = STANDARD
        .decode(String::from_utf8_lossy(&v1).trim())
        .unwrap();
    let to_other = [
        "reencrypt",
        "--key",
        &key,
        "--aad",
        "ctx",
        "--to-key",
        &other,
        "--to-aad",
        "",
    ];
    let out = cli.run_with(cli.cmd(&to_other), &raw);
    assert_success(&out, &to_other);
    let out = cli.run_with(cli.cmd(&["decrypt", "--key", &other]), &out.stdout);
    assert_success(&out, &["decrypt"]);
    assert_eq!(out.stdout, b"order 1");

    // Automatic rotation off and on.
    assert_eq!(
        cli.ok_text(&["key", "rotation", &key, "--disable"]),
        format!("{key} no longer rotates automatically\n")
    );
    let d = json_out(&cli.ok(&["key", "describe", &key]));
    assert_eq!(d["rotation"]["enable"], false);
    let on = cli.ok_text(&[
        "key",
        "rotation",
        "alias/orders",
        "--enable",
        "--days",
        "90",
    ]);
    assert!(
        on.starts_with("alias/orders rotates every 90 days, next at ") && on.ends_with(" UTC\n"),
        "{on}"
    );

    // Aliases: listed, repointed, and accepted by 'key delete'.
    let listed = cli.ok_text(&["alias", "list"]);
    assert_eq!(
        listed.lines().collect::<Vec<_>>(),
        [
            format!("{:<14}KEYID", "ALIAS"),
            format!("alias/orders  {key}")
        ]
    );
    assert_eq!(
        cli.ok_text(&["alias", "update", "alias/orders", "--key", &other]),
        format!("alias/orders names {other}\n")
    );
    let of_other = json_out(&cli.ok(&["alias", "list", "--key", &other, "--json"]));
    assert_eq!(
        of_other,
        serde_json::json!([{"alias": "alias/orders", "keyid": other}])
    );
    let of_key = json_out(&cli.ok(&["alias", "list", "--key", &key, "--json"]));
    assert_eq!(of_key, serde_json::json!([]));
    cli.ok(&["alias", "create", "alias/gone", "--key", &key]);
    assert_eq!(
        cli.ok_text(&["key", "delete", "alias/gone"]),
        "deleted alias/gone\n"
    );
    assert!(list_json(&cli).iter().all(|k| k["keyid"] != key.as_str()));
    assert_eq!(
        cli.ok_text(&["alias", "delete", "alias/orders"]),
        "deleted alias/orders\n"
    );
    assert!(cli.ok_text(&["alias", "list"]).contains("no aliases"));

    // Scheduled deletion, cancelled: the key comes back disabled.
    let scheduled = cli.ok_text(&["key", "schedule-deletion", &other, "--days", "7"]);
    assert!(
        scheduled.contains("will be deleted at")
            && scheduled.contains(&format!("ehsm key cancel-deletion {other}")),
        "{scheduled}"
    );
    let d = json_out(&cli.ok(&["key", "describe", &other]));
    assert!(d["deletionDate"].as_i64().is_some(), "{d}");
    assert_eq!(d["keyState"], 0);
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &other, "--base64"]), b"x");
    assert_fails(&out, &["pending deletion"]);
    assert!(
        cli.ok_text(&["key", "cancel-deletion", &other])
            .contains(&format!("ehsm key enable {other}"))
    );
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &other, "--base64"]), b"x");
    assert_fails(&out, &["keyid is disabled", "ehsm key enable"]);
    cli.ok(&["key", "enable", &other]);
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &other, "--base64"]), b"x");
    assert_success(&out, &["encrypt"]);
}

#[test]
fn sign_verify_and_pubkey_take_a_key_version() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let ec = cli.create(&["--spec", "ec-p256"]);
    cli.ok(&["alias", "create", "alias/signer", "--key", &ec]);
    let (msg, sig) = (cli.file("msg"), cli.file("sig"));
    std::fs::write(&msg, b"release 1.0").unwrap();
    let (msg_s, sig_s) = (msg.to_str().unwrap(), sig.to_str().unwrap());
    cli.ok(&[
        "sign",
        "--key",
        "alias/signer",
        "--in",
        msg_s,
        "--out",
        sig_s,
    ]);
    let pem1 = cli.ok(&["pubkey", "alias/signer"]);
    cli.ok(&["key", "rotate", "alias/signer"]);

    let verify = |version: Option<&str>| {
        let mut args = vec![
            "verify",
            "--key",
            "alias/signer",
            "--in",
            msg_s,
            "--signature",
            sig_s,
        ];
        if let Some(v) = version {
            args.extend(["--key-version", v]);
        }
        let out = cli.run(&args);
        (out.status.code(), String::from_utf8(out.stdout).unwrap())
    };
    assert_eq!(verify(None), (Some(0), "valid\n".into()), "any version");
    assert_eq!(verify(Some("1")), (Some(0), "valid\n".into()));
    assert_eq!(verify(Some("2")), (Some(1), "invalid\n".into()));
    // Signed by version 1 after the rotation.
    cli.ok(&[
        "sign",
        "--key",
        &ec,
        "--key-version",
        "1",
        "--in",
        msg_s,
        "--out",
        sig_s,
    ]);
    assert_eq!(verify(Some("1")), (Some(0), "valid\n".into()));
    assert_eq!(verify(Some("2")), (Some(1), "invalid\n".into()));

    assert_eq!(cli.ok(&["pubkey", &ec, "--key-version", "1"]), pem1);
    let primary = cli.ok(&["pubkey", &ec]);
    assert_ne!(primary, pem1, "a new version is a new key pair");
    assert_eq!(
        cli.ok(&["pubkey", "alias/signer", "--key-version", "2"]),
        primary
    );

    assert_fails(
        &cli.run(&["pubkey", &ec, "--key-version", "9"]),
        &["keyversion 9 does not exist"],
    );
    assert_fails(
        &cli.run(&[
            "sign",
            "--key",
            &ec,
            "--key-version",
            "3",
            "--in",
            msg_s,
            "--base64",
        ]),
        &["keyversion 3 does not exist"],
    );
    assert_eq!(
        cli.run(&["pubkey", &ec, "--key-version", "0"])
            .status
            .code(),
        Some(2),
        "a usage error"
    );
}

#[test]
fn lifecycle_commands_refuse_bad_input_clearly() {
    let s = Server::start(&[]);
    let cli = Cli::new(&s);
    cli.enroll();
    let key = cli.create(&["--spec", "aes-gcm-256"]);
    let ec = cli.create(&["--spec", "ec-p256"]);
    let external = cli.create(&["--spec", "aes-gcm-256", "--origin", "external"]);
    let unknown = "The alias alias/nope does not exist.";
    for args in [
        &["key", "describe", "alias/nope"][..],
        &["key", "versions", "alias/nope"],
        &["key", "rotate", "alias/nope"],
        &["key", "rotation", "alias/nope", "--disable"],
        &["key", "schedule-deletion", "alias/nope"],
        &["key", "cancel-deletion", "alias/nope"],
        &["alias", "update", "alias/nope", "--key", &key],
        &["alias", "delete", "alias/nope"],
        &["alias", "list", "--key", "alias/nope"],
        &["pubkey", "alias/nope"],
    ] {
        assert_fails(&cli.run(args), &[unknown]);
    }
    let out = cli.run_with(
        cli.cmd(&["reencrypt", "--key", &key, "--to-key", "alias/nope"]),
        b"x",
    );
    assert_fails(&out, &[unknown]);
    assert_fails(
        &cli.run(&["key", "delete", "alias/nope"]),
        &["no key alias/nope"],
    );
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", "orders", "--base64"]), b"x");
    assert_fails(&out, &["The keyid length error.", "alias/NAME"]);

    // The server's rules for what clap cannot check.
    assert_fails(
        &cli.run(&[
            "key",
            "create",
            "--spec",
            "ec-p256",
            "--rotation-days",
            "30",
        ]),
        &["symmetric and HMAC keys"],
    );
    assert_fails(
        &cli.run(&["key", "rotation", &ec, "--enable"]),
        &["symmetric and HMAC keys"],
    );
    assert_fails(
        &cli.run(&["key", "rotate", &external]),
        &["cannot be rotated"],
    );
    assert_fails(
        &cli.run(&["key", "cancel-deletion", &key]),
        &["not pending deletion"],
    );
    cli.ok(&["key", "schedule-deletion", &ec]);
    assert_fails(
        &cli.run(&["key", "schedule-deletion", &ec]),
        &["already pending deletion"],
    );
    // Without the prefix, or with a character outside the set: a format error and the hint.
    assert_fails(
        &cli.run(&["alias", "create", "orders", "--key", &key]),
        &["The alias format wrong.", "e.g. alias/orders"],
    );
    assert_fails(
        &cli.run(&["alias", "create", "alias/a b", "--key", &key]),
        &["The alias format wrong.", "e.g. alias/orders"],
    );
    cli.ok(&["alias", "create", "alias/a", "--key", &key]);
    assert_fails(
        &cli.run(&["alias", "create", "alias/a", "--key", &key]),
        &["already exists"],
    );
    assert_fails(
        &cli.run(&["alias", "create", "alias/b", "--key", "alias/a"]),
        &["not another alias"],
    );
    let hmac = cli.create(&["--spec", "hmac"]);
    assert_fails(
        &cli.run(&["alias", "update", "alias/a", "--key", &hmac]),
        &["same kind"],
    );
    let out = cli.run_with(cli.cmd(&["encrypt", "--key", &key]), b"data");
    let ct = out.stdout;
    let out = cli.run_with(
        cli.cmd(&["reencrypt", "--key", "alias/a", "--aad", "wrong"]),
        &ct,
    );
    assert_fails(&out, &["Decryption failed", "--aad"]);

    // Usage errors: clap's exit code 2.
    for args in [
        &[
            "key",
            "create",
            "--spec",
            "aes-gcm-256",
            "--rotation-days",
            "6",
        ][..],
        &[
            "key",
            "create",
            "--spec",
            "aes-gcm-256",
            "--rotation-days",
            "2561",
        ],
        &["key", "rotation", &key],
        &["key", "rotation", &key, "--enable", "--disable"],
        &["key", "rotation", &key, "--disable", "--days", "30"],
        &["key", "rotation", &key, "--enable", "--days", "3000"],
        &["key", "schedule-deletion", &key, "--days", "31"],
        &["sign", "--key", &key, "--key-version", "0"],
        &["alias", "create", "alias/c"],
    ] {
        assert_eq!(cli.run(args).status.code(), Some(2), "{args:?}");
    }
}
