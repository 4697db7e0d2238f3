//! A whole domain on this machine, as real processes: a root key server, a worker, two
//! dkeycaches and three `ehsm serve` nodes on one PostgreSQL database, on the simulated
//! platform with a policy that accepts exactly the default simulated measurement.
//!
//! Checked: a key created through node A works through nodes B and C (B shares A's dkeycache, C
//! takes its keys from the worker through the other cache); a node whose simulated measurement
//! is not on the allowlist gets nothing; a client without a certificate gets nothing; with both
//! key servers stopped the nodes keep serving and a restarted node gets its keys from its
//! dkeycache; a restarted root serves the same domain; a rotation under load (`ehsm bench`
//! running) completes with zero failed requests, every node learns the new version, and every
//! old ciphertext still decrypts.
//!
//! Needs `EHSM_TEST_POSTGRES`, as the other multi-node tests.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use ehsm_client::{KeySpec, KeyUsage, Origin};
use util::{Server, on_fresh_database};

/// The default simulated measurement ("EHSM-SIM" four times), the only one the policy accepts.
const POLICY: &str = r#"
allow_simulated = true
simulated_measurements = ["4548534d2d53494d4548534d2d53494d4548534d2d53494d4548534d2d53494d"]
"#;

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// A key server on `listen` (`127.0.0.1:0` for a free port; the same address to restart one
/// that caches and workers know).
fn key_server(dir: &Path, listen: &str, role: &[&str], policy: &Path) -> Server {
    let mut args = vec![os("dkeyserver"), os("--listen"), os(listen), os("--tee")];
    args.extend([
        os("sim"),
        os("--policy"),
        policy.as_os_str(),
        os("--data-dir"),
    ]);
    args.push(dir.as_os_str());
    args.extend(role.iter().map(|a| os(a)));
    Server::start_command(&args, &[])
}

fn cache(server: &str, socket: &Path, policy: &Path) -> Server {
    let args = [
        os("dkeycache"),
        os("--server"),
        os(server),
        os("--socket"),
        socket.as_os_str(),
        os("--policy"),
        policy.as_os_str(),
        os("--tee"),
        os("sim"),
    ];
    Server::start_command(&args, &[])
}

/// The `ehsm serve` arguments of a node of the domain on `socket`'s dkeycache.
fn node_args<'a>(database: &'a str, socket: &'a Path, policy: &'a Path) -> Vec<&'a str> {
    vec![
        "--tee",
        "sim",
        "--database",
        database,
        "--domain",
        // The socket path is ASCII: it is under the test's temporary directory.
        socket_arg(socket),
        "--domain-policy",
        policy.to_str().unwrap(),
    ]
}

fn socket_arg(socket: &Path) -> &'static str {
    Box::leak(format!("unix:{}", socket.display()).into_boxed_str())
}

/// Polls `done` every 200 ms for up to `limit`.
async fn eventually(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_domain_serves_one_set_of_keys_from_every_node() {
    on_fresh_database(domain).await;
}

async fn domain(database: String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let policy = d.join("policy.toml");
    std::fs::write(&policy, POLICY).unwrap();
    let (sock1, sock2) = (d.join("run1/dkeycache.sock"), d.join("run2/dkeycache.sock"));

    // A root refuses to start without its domain keys unless told to create a domain.
    let refused = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "dkeyserver",
            "--role",
            "root",
            "--tee",
            "sim",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--policy")
        .arg(&policy)
        .arg("--data-dir")
        .arg(d.join("root"))
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--new-domain"));
    assert!(!d.join("root/domain-keys.sealed").exists());

    let free = "127.0.0.1:0";
    let root = key_server(
        &d.join("root"),
        free,
        &["--role", "root", "--new-domain"],
        &policy,
    );
    let worker_role = ["--role", "worker", "--upstream", root.url.as_str()];
    let worker = key_server(&d.join("worker"), free, &worker_role, &policy);
    let cache1 = cache(&root.url, &sock1, &policy);
    let cache2 = cache(&worker.url, &sock2, &policy);
    let node = |socket: &Path, dir: &str| {
        Server::start_in(&d.join(dir), &node_args(&database, socket, &policy))
    };
    let a = node(&sock1, "a");
    let b = node(&sock1, "b");
    let c = node(&sock2, "c");
    for n in [&a, &b, &c] {
        assert!(n.logged("domain key received"), "{}", n.log.lock().unwrap());
    }

    // One domain: a key made through A works through B and C.
    let (on_a, creds) = a.enrolled().await;
    let on_b = b.client().with_credentials(creds.clone());
    let on_c = c.client().with_credentials(creds.clone());
    let keyid = on_a
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let ct = on_a.encrypt(&keyid, b"one domain", None).await.unwrap();
    for client in [&on_b, &on_c] {
        assert_eq!(
            client.decrypt(&keyid, &ct, None).await.unwrap(),
            b"one domain"
        );
    }

    // A node whose measurement is not on the allowlist gets nothing, and both sides say why.
    let measurement = "ab".repeat(32);
    let other = [("EHSM_SIM_MEASUREMENT", os(&measurement))];
    let mut args = vec![
        os("serve"),
        os("--listen"),
        os("127.0.0.1:0"),
        os("--data-dir"),
    ];
    let intruder_dir = d.join("intruder");
    args.push(intruder_dir.as_os_str());
    args.extend(node_args(&database, &sock1, &policy).into_iter().map(os));
    let (intruder, _) = Server::spawn_command(&args, &other);
    eventually("the intruder's refusal", Duration::from_secs(10), || {
        cache1.logged("is not on the policy's allowlist")
            && intruder.logged("refused this process's RA-TLS certificate")
    })
    .await;
    assert!(!intruder.logged("listening on"));
    drop(intruder);

    // A client without a certificate gets nothing either.
    let https = util::http();
    let plain = https.get(format!("https://{}/", root.url)).send().await;
    assert!(
        plain.is_err(),
        "a TLS client without a certificate was answered"
    );
    eventually("the root's refusal", Duration::from_secs(5), || {
        root.logged("peer sent no certificate")
    })
    .await;

    // With both key servers down, the nodes keep serving, and a restarted node gets the keys
    // from its dkeycache.
    let fingerprint = root_fingerprint(&root);
    let (root_addr, worker_addr) = (root.url.clone(), worker.url.clone());
    stop_cleanly(root);
    stop_cleanly(worker);
    assert_eq!(
        on_c.decrypt(&keyid, &ct, None).await.unwrap(),
        b"one domain"
    );
    // The SDK keeps an HTTP/2 connection open, and a graceful shutdown waits (up to its grace
    // period) for the client to answer the server's GOAWAY: drop the client first.
    drop(on_b);
    stop_cleanly(b);
    let b = node(&sock1, "b");
    let on_b = b.client().with_credentials(creds.clone());
    assert_eq!(
        on_b.decrypt(&keyid, &ct, None).await.unwrap(),
        b"one domain"
    );

    // The root restarts on its sealed keys (no --new-domain): the same domain.
    let root = key_server(&d.join("root"), &root_addr, &["--role", "root"], &policy);
    assert_eq!(root_fingerprint(&root), fingerprint);
    let worker_role = ["--role", "worker", "--upstream", root.url.as_str()];
    let worker = key_server(&d.join("worker"), &worker_addr, &worker_role, &policy);

    // A rotation under load: no request fails, every node learns the new version, and every
    // old ciphertext still decrypts.
    let bench = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "bench",
            "--insecure",
            "--connections",
            "4",
            "--duration",
            "40s",
        ])
        .args([
            "--warmup", "0s", "--action", "encrypt", "--action", "decrypt", "--url",
        ])
        .arg(&a.url)
        .env("EHSM_PROFILE", d.join("no-profile.json"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rotated = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["dkeyserver", "rotate", "--tee", "sim", "--data-dir"])
        .arg(d.join("root"))
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("version 2 added"));
    // The running root rotated, with its own custody, on the command's request.
    assert!(
        root.logged("rotated on request: version 2"),
        "{}",
        root.log.lock().unwrap()
    );
    // Root (2 s) → worker → cache 2 → node C: three polls of 10 s.
    eventually(
        "every node learns version 2",
        Duration::from_secs(45),
        || {
            [&a, &b, &c]
                .iter()
                .all(|n| n.logged("learned new domain-key versions"))
        },
    )
    .await;
    // Waited for off the runtime's workers: a worker blocked for the whole bench would hold
    // the SDK clients' connection tasks, which then miss the nodes closing idle connections.
    let out = tokio::task::block_in_place(|| bench.wait_with_output()).unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for action in ["encrypt", "decrypt"] {
        let row: Vec<&str> = report
            .lines()
            .find(|l| l.starts_with(action))
            .unwrap_or_else(|| panic!("no {action} row in:\n{report}"))
            .split_whitespace()
            .collect();
        assert!(row[1].parse::<u64>().unwrap() > 0, "{report}");
        assert_eq!(
            row[2], "0",
            "failed requests during the rotation:\n{report}"
        );
    }
    for client in [&on_a, &on_b, &on_c] {
        assert_eq!(
            client.decrypt(&keyid, &ct, None).await.unwrap(),
            b"one domain"
        );
    }
    // A lost root can be rebuilt from a worker: the keys come over RA-TLS, both versions.
    let rotated_fingerprint = String::from_utf8_lossy(&rotated.stdout)
        .split("fingerprint ")
        .nth(1)
        .unwrap()
        .chars()
        .take(16)
        .collect::<String>();
    let recovered = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "dkeyserver",
            "recover",
            "--tee",
            "sim",
            "--from",
            worker.url.as_str(),
        ])
        .arg("--policy")
        .arg(&policy)
        .arg("--data-dir")
        .arg(d.join("new-root"))
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&recovered.stdout);
    assert!(recovered.status.success(), "{recovered:?}");
    assert!(
        out.contains(&format!("fingerprint: {rotated_fingerprint}")),
        "{out}"
    );
    assert!(out.contains("versions [1, 2]"), "{out}");
    let new_root = key_server(&d.join("new-root"), free, &["--role", "root"], &policy);
    assert_eq!(root_fingerprint(&new_root), rotated_fingerprint);
    drop(new_root);

    let after = on_c
        .create_key(
            KeySpec::AesGcm256,
            Origin::Internal,
            KeyUsage::EncryptDecrypt,
        )
        .await
        .unwrap();
    let ct2 = on_c.encrypt(&after, b"after", None).await.unwrap();
    assert_eq!(on_a.decrypt(&after, &ct2, None).await.unwrap(), b"after");
    drop((cache1, cache2, worker, root));
}

/// Stops `server` with SIGTERM; it must exit with status 0 (a clean shutdown).
fn stop_cleanly(server: Server) {
    let log = std::sync::Arc::clone(&server.log);
    let status = server.stop();
    assert_eq!(
        status.code(),
        Some(0),
        "{status:?}\n{}",
        log.lock().unwrap()
    );
}

/// The domain fingerprint a key server logged at start.
fn root_fingerprint(server: &Server) -> String {
    let log = server.log.lock().unwrap();
    let at = log
        .find("domain fingerprint ")
        .expect("no fingerprint logged");
    log[at + "domain fingerprint ".len()..]
        .split(|c: char| !c.is_ascii_hexdigit())
        .next()
        .unwrap()
        .to_owned()
}
