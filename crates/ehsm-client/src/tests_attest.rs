//! Unit tests of attestation and pinning: [`check_server_evidence`] on answers made here with the
//! simulated platform (each check passing and failing), and whole attestations and pinned
//! connections against a tiny TLS server.

use std::sync::Arc;

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_tee::Platform as _;
use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{NoCollateral, PeerEvidence, RatlsError, Verifier};
use ehsm_tee::server_evidence::{Challenge, certificate_spki, server_report_data};
use ehsm_tee::sim::SimPlatform;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

use crate::client::b64;
use crate::*;

/// A server's TLS identity: a self-signed certificate and its key.
struct Identity {
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn identity() -> Identity {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    Identity {
        cert: made.cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der())),
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    digest::digest(&digest::SHA256, bytes)
        .as_ref()
        .try_into()
        .unwrap()
}

fn challenge(byte: u8) -> Challenge {
    Challenge::new(&[byte; 32]).unwrap()
}

fn verifier(policy: &str) -> Verifier {
    Verifier::new(
        Arc::new(Policy::from_toml(policy).unwrap()),
        Arc::new(NoCollateral),
    )
}

const ALLOW_SIM: &str = "allow_simulated = true";

/// The answer an ehsm server on `platform` gives to `challenge` while serving `cert`.
fn answer(platform: &SimPlatform, challenge: &Challenge, cert: &[u8]) -> Vec<u8> {
    let report_data = server_report_data(challenge, &certificate_spki(cert).unwrap());
    let evidence = platform.evidence(&report_data).unwrap();
    envelope(json!({"platform": "sim", "evidence": b64(&evidence.bytes)}))
}

fn envelope(result: Value) -> Vec<u8> {
    json!({"code": 200, "message": "success!", "result": result})
        .to_string()
        .into_bytes()
}

fn refusal(code: i64, message: &str) -> Vec<u8> {
    json!({"code": code, "message": message, "result": {}})
        .to_string()
        .into_bytes()
}

#[track_caller]
fn attest_error(result: Result<ehsm_tee::ratls::PeerIdentity>) -> AttestError {
    match result {
        Err(Error::Attestation(e)) => e,
        other => panic!("not an attestation refusal: {other:?}"),
    }
}

#[test]
fn a_bound_answer_passes_and_names_the_key_and_measurement() {
    let platform = SimPlatform::ephemeral().unwrap();
    let server = identity();
    let c = challenge(1);
    let answer = answer(&platform, &c, &server.cert);
    let identity = check_server_evidence(&answer, &c, &server.cert, &verifier(ALLOW_SIM)).unwrap();
    assert_eq!(
        identity.key_sha256,
        sha256(&certificate_spki(&server.cert).unwrap())
    );
    assert_eq!(
        identity.evidence,
        PeerEvidence::Simulated {
            measurement: *b"EHSM-SIMEHSM-SIMEHSM-SIMEHSM-SIM"
        }
    );
}

#[test]
fn an_answer_for_another_challenge_is_a_replay() {
    let platform = SimPlatform::ephemeral().unwrap();
    let server = identity();
    let earlier = answer(&platform, &challenge(1), &server.cert);
    let e = attest_error(check_server_evidence(
        &earlier,
        &challenge(2),
        &server.cert,
        &verifier(ALLOW_SIM),
    ));
    assert!(matches!(e, AttestError::Replayed), "{e:?}");
    assert!(e.to_string().starts_with("binding check failed"), "{e}");
    assert!(e.to_string().contains("replayed"), "{e}");
}

#[test]
fn an_answer_binding_another_key_is_a_session_that_ends_elsewhere() {
    let platform = SimPlatform::ephemeral().unwrap();
    let (server, proxy) = (identity(), identity());
    let c = challenge(1);
    let relayed = answer(&platform, &c, &server.cert);
    let e = attest_error(check_server_evidence(
        &relayed,
        &c,
        &proxy.cert,
        &verifier(ALLOW_SIM),
    ));
    let AttestError::AnotherKey { bound, connection } = e else {
        panic!("not AnotherKey: {e:?}");
    };
    assert_eq!(bound, sha256(&certificate_spki(&server.cert).unwrap()));
    assert_eq!(connection, sha256(&certificate_spki(&proxy.cert).unwrap()));
    let text = e.to_string();
    assert!(text.starts_with("binding check failed"), "{text}");
    assert!(text.contains("proxy"), "{text}");
}

#[test]
fn the_policy_decides_on_bound_evidence() {
    let platform = SimPlatform::ephemeral().unwrap();
    let server = identity();
    let c = challenge(1);
    let answer = answer(&platform, &c, &server.cert);
    let check = |policy| check_server_evidence(&answer, &c, &server.cert, &verifier(policy));
    let e = attest_error(check(""));
    assert!(
        matches!(e, AttestError::Evidence(RatlsError::SimulatedNotAllowed)),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("policy check failed"), "{e}");
    let other = format!(
        "allow_simulated = true\nsimulated_measurements = [\"{}\"]",
        hex::encode([7u8; 32])
    );
    let e = attest_error(check(&other));
    assert!(
        matches!(e, AttestError::Evidence(RatlsError::PolicyRefused(_))),
        "{e:?}"
    );
    assert!(e.to_string().contains("simulated measurement"), "{e}");
    let same = format!(
        "allow_simulated = true\nsimulated_measurements = [\"{}\"]",
        hex::encode(b"EHSM-SIMEHSM-SIMEHSM-SIMEHSM-SIM")
    );
    check(&same).unwrap();
}

#[test]
fn evidence_labelled_with_another_platform_is_refused_as_such() {
    let platform = SimPlatform::ephemeral().unwrap();
    let server = identity();
    let c = challenge(1);
    let report_data = server_report_data(&c, &certificate_spki(&server.cert).unwrap());
    let evidence = platform.evidence(&report_data).unwrap();
    let answer = envelope(json!({"platform": "sgx", "evidence": b64(&evidence.bytes)}));
    let e = attest_error(check_server_evidence(
        &answer,
        &c,
        &server.cert,
        &verifier(ALLOW_SIM),
    ));
    assert!(
        matches!(e, AttestError::Evidence(RatlsError::KindMismatch { .. })),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("evidence check failed"), "{e}");
}

#[test]
fn tampered_simulated_evidence_is_malformed() {
    let platform = SimPlatform::ephemeral().unwrap();
    let server = identity();
    let c = challenge(1);
    let report_data = server_report_data(&c, &certificate_spki(&server.cert).unwrap());
    let mut bytes = platform.evidence(&report_data).unwrap().bytes;
    bytes.pop();
    let answer = envelope(json!({"platform": "sim", "evidence": b64(&bytes)}));
    let e = attest_error(check_server_evidence(
        &answer,
        &c,
        &server.cert,
        &verifier(ALLOW_SIM),
    ));
    assert!(
        matches!(e, AttestError::Evidence(RatlsError::MalformedEvidence(_))),
        "{e:?}"
    );
}

#[test]
fn answers_without_evidence_say_so() {
    let server = identity();
    let c = challenge(1);
    let v = verifier(ALLOW_SIM);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (envelope(json!({"platform": "sim"})), "no evidence"),
        (envelope(json!({"evidence": "AAAA"})), "no platform"),
        (envelope(json!({})), "no platform"),
        (
            envelope(json!({"platform": "sim", "evidence": 7})),
            "no evidence",
        ),
        (
            envelope(json!({"platform": "sim", "evidence": "not base64!"})),
            "not base64",
        ),
        (
            envelope(json!({"platform": "sev", "evidence": "AAAA"})),
            "unknown platform \"sev\"",
        ),
        (
            refusal(404, "API Not Found"),
            "does not offer GetServerEvidence",
        ),
        (
            refusal(
                400,
                "Server evidence needs TLS: this server serves plain HTTP, so there is no TLS \
                 key for the evidence to bind.",
            ),
            "serves plain HTTP",
        ),
    ];
    for (answer, expected) in cases {
        let e = attest_error(check_server_evidence(&answer, &c, &server.cert, &v));
        assert!(matches!(e, AttestError::NoEvidence(_)), "{e:?}");
        let text = e.to_string();
        assert!(text.starts_with("the server gave no evidence"), "{text}");
        assert!(text.contains(expected), "{text} lacks {expected:?}");
    }
}

#[test]
fn other_refusals_and_non_envelopes_keep_their_kind() {
    let server = identity();
    let c = challenge(1);
    let v = verifier(ALLOW_SIM);
    let limited = refusal(400, "Too many evidence requests; try again in a moment.");
    match check_server_evidence(&limited, &c, &server.cert, &v) {
        Err(Error::Api { code: 400, message }) => assert!(message.starts_with("Too many")),
        other => panic!("{other:?}"),
    }
    match check_server_evidence(b"<html>", &c, &server.cert, &v) {
        Err(Error::Decode(what)) => assert!(what.contains("GetServerEvidence"), "{what}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_certificate_that_does_not_parse_is_refused() {
    let platform = SimPlatform::ephemeral().unwrap();
    let server = identity();
    let c = challenge(1);
    let answer = answer(&platform, &c, &server.cert);
    let e = attest_error(check_server_evidence(
        &answer,
        &c,
        b"not a certificate",
        &verifier(ALLOW_SIM),
    ));
    assert!(matches!(e, AttestError::PeerCertificate(_)), "{e:?}");
}

#[tokio::test]
async fn plain_http_is_refused_before_anything_is_sent() {
    // Nothing listens there: a request would be a transport error, not this.
    let client = Client::builder("http://127.0.0.1:9").build().unwrap();
    let e = attest_error(client.attest(&verifier(ALLOW_SIM)).await);
    assert!(matches!(e, AttestError::PlainHttp), "{e:?}");
    assert!(e.to_string().contains("https://"), "{e}");
}

// ---- over TLS ----

/// A TLS server on a free port answering every request with `respond(path and query, body)`
/// (one request per connection); its URL.
async fn tls_server<F>(config: rustls::ServerConfig, respond: F) -> String
where
    F: Fn(&str, &[u8]) -> Vec<u8> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let respond = Arc::new(respond);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, respond) = (acceptor.clone(), Arc::clone(&respond));
            tokio::spawn(async move {
                // A refused handshake is what some tests want; nothing to answer then.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let (target, body) = read_request(&mut tls).await;
                let answer = respond(&target, &body);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n",
                    answer.len()
                );
                tls.write_all(head.as_bytes()).await.unwrap();
                tls.write_all(&answer).await.unwrap();
                tls.shutdown().await.unwrap();
            });
        }
    });
    url
}

/// The request target and body of one HTTP/1.1 request.
async fn read_request<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.unwrap();
        assert!(
            n > 0,
            "the request ended early: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        if buf.len() >= end + 4 + length {
            let target = head.split_whitespace().nth(1).unwrap().to_owned();
            return (target, buf[end + 4..end + 4 + length].to_vec());
        }
    }
}

fn server_config(identity: &Identity) -> rustls::ServerConfig {
    rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![identity.cert.clone()], identity.key.clone_key())
    .unwrap()
}

const VERSION: &str =
    r#"{"code":200,"message":"success!","result":{"version":"0.3.2","git_sha":"abc1234"}}"#;

/// A TLS server of `identity` that answers GetServerEvidence as an ehsm server on `platform`
/// serving `evidence_cert` would (the server's own certificate, unless a test relays), and
/// GetVersion.
async fn evidence_server(identity: &Identity, evidence_cert: CertificateDer<'static>) -> String {
    let platform = SimPlatform::ephemeral().unwrap();
    tls_server(server_config(identity), move |target, body| {
        if target.ends_with("action=getversion") {
            return VERSION.as_bytes().to_vec();
        }
        assert!(target.ends_with("action=getserverevidence"), "{target}");
        let body: Value = serde_json::from_slice(body).unwrap();
        let bytes = STANDARD
            .decode(body["challenge"].as_str().unwrap())
            .unwrap();
        answer(&platform, &Challenge::new(&bytes).unwrap(), &evidence_cert)
    })
    .await
}

#[tokio::test]
async fn attest_checks_the_key_of_its_own_connection_and_the_pin_then_holds() {
    let server = identity();
    let url = evidence_server(&server, server.cert.clone()).await;
    let probe = Client::builder(&url)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let attested = probe.attest(&verifier(ALLOW_SIM)).await.unwrap();
    assert_eq!(
        attested.key_sha256,
        sha256(&certificate_spki(&server.cert).unwrap())
    );
    // The evidence a probe fetched names the challenge it sent and the certificate it got.
    let fetched = probe.server_evidence().await.unwrap();
    assert_eq!(fetched.peer_certificate(), server.cert.as_ref());
    assert_eq!(
        fetched.evidence().unwrap().kind,
        ehsm_tee::PlatformKind::Sim
    );
    assert_eq!(fetched.challenge().as_bytes().len(), 32);
    assert_ne!(
        fetched.challenge(),
        probe.server_evidence().await.unwrap().challenge()
    );
    let pinned = Client::builder(&url)
        .pin_server_key(attested.key_sha256)
        .build()
        .unwrap();
    assert_eq!(pinned.get_version().await.unwrap().version, "0.3.2");
}

#[tokio::test]
async fn attest_through_a_server_relaying_anothers_evidence_is_refused() {
    let (proxy, real) = (identity(), identity());
    let url = evidence_server(&proxy, real.cert.clone()).await;
    let probe = Client::builder(&url)
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let e = attest_error(probe.attest(&verifier(ALLOW_SIM)).await);
    assert!(matches!(e, AttestError::AnotherKey { .. }), "{e:?}");
    // Before any verification (and any collateral fetch), the evidence is not handed out.
    let fetched = probe.server_evidence().await.unwrap();
    let e = match fetched.evidence() {
        Err(Error::Attestation(e)) => e,
        other => panic!("{other:?}"),
    };
    assert!(matches!(e, AttestError::AnotherKey { .. }), "{e:?}");
}

#[tokio::test]
async fn a_pinned_client_refuses_another_key_as_a_changed_key() {
    let (server, other) = (identity(), identity());
    let url = evidence_server(&server, server.cert.clone()).await;
    let other_key = sha256(&certificate_spki(&other.cert).unwrap());
    let pinned = Client::builder(&url)
        .pin_server_key(other_key)
        .build()
        .unwrap();
    match pinned.get_version().await {
        Err(Error::ServerKeyChanged { pinned, presented }) => {
            assert_eq!(pinned, other_key);
            assert_eq!(presented, sha256(&certificate_spki(&server.cert).unwrap()));
        }
        other => panic!("not ServerKeyChanged: {other:?}"),
    }
    let e = pinned.get_version().await.unwrap_err();
    assert!(e.to_string().contains("attest it again"), "{e}");
    // The pin replaces the other checks, so neither trusting the certificate nor accepting
    // anything lets the other key through.
    let pem = pem_of(&server.cert);
    for builder in [
        Client::builder(&url).ca_certificate(pem.as_bytes()),
        Client::builder(&url).danger_accept_invalid_certs(true),
    ] {
        let result = builder
            .pin_server_key(other_key)
            .build()
            .unwrap()
            .get_version()
            .await;
        assert!(
            matches!(result, Err(Error::ServerKeyChanged { .. })),
            "{result:?}"
        );
    }
}

fn pem_of(cert: &[u8]) -> String {
    let body = b64(cert);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|l| std::str::from_utf8(l).unwrap())
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

/// A server that shows the pinned certificate but cannot sign with its key (it signs the
/// handshake with another one): the pin is about the key, so the signature check must refuse.
#[derive(Debug)]
struct WrongSigner(Arc<rustls::sign::CertifiedKey>);

impl rustls::server::ResolvesServerCert for WrongSigner {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(&self.0))
    }
}

#[tokio::test]
async fn a_pinned_certificate_without_its_private_key_fails_the_handshake() {
    let (pinned_cert, impostor) = (identity(), identity());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signer = provider
        .key_provider
        .load_private_key(impostor.key.clone_key())
        .unwrap();
    let certified = rustls::sign::CertifiedKey::new(vec![pinned_cert.cert.clone()], signer);
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(WrongSigner(Arc::new(certified))));
    let url = tls_server(config, |_, _| VERSION.as_bytes().to_vec()).await;
    let pinned = Client::builder(&url)
        .pin_server_key(sha256(&certificate_spki(&pinned_cert.cert).unwrap()))
        .build()
        .unwrap();
    match pinned.get_version().await {
        Err(Error::Transport(e)) => {
            let chain =
                std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .map(|e| format!("{e:?}"))
                .collect::<Vec<_>>()
                .join(" / ");
            assert!(
                chain.contains("InvalidCertificate(BadSignature)"),
                "{chain}"
            );
        }
        other => panic!("the handshake was not refused for its signature: {other:?}"),
    }
}

#[test]
fn a_pin_needs_https() {
    let e = Client::builder("http://127.0.0.1:9000")
        .pin_server_key([0; 32])
        .build()
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig(m) if m.contains("pinned server key needs https")),
        "{e:?}"
    );
}

#[test]
fn the_pinned_hash_is_that_of_the_certified_key() {
    use rcgen::PublicKeyData as _;
    let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    assert_eq!(
        crate::pin::key_sha256(made.cert.der()).unwrap(),
        sha256(&made.signing_key.subject_public_key_info())
    );
}
