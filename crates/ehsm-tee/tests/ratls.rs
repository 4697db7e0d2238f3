//! RA-TLS: certificates with evidence, their verification, and mutual TLS handshakes over real
//! TCP between simulated platforms, in two tasks and in two OS processes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

use std::io;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::extension::{self, DICE_TAGGED_EVIDENCE_OID, SIM_EVIDENCE_OID};
use ehsm_tee::ratls::{
    self, FileCollateral, NoCollateral, PeerEvidence, PeerIdentity, RatlsError, TlsVerifier,
    Verifier,
};
use ehsm_tee::sim::SimPlatform;
use ehsm_tee::{Error, Evidence, Measurement, Platform, PlatformKind, SealingKey};
use rcgen::{CertificateParams, CustomExtension, KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};
use x509_cert::der::Decode as _;

const SIM_MEASUREMENT: [u8; 32] = *b"EHSM-SIMEHSM-SIMEHSM-SIMEHSM-SIM";

fn sim() -> (tempfile::TempDir, SimPlatform) {
    let dir = tempfile::tempdir().unwrap();
    let platform = SimPlatform::open(dir.path()).unwrap();
    (dir, platform)
}

fn verifier(policy: &str) -> Arc<Verifier> {
    Arc::new(Verifier::new(
        Arc::new(Policy::from_toml(policy).unwrap()),
        Arc::new(NoCollateral),
    ))
}

fn allows_sim() -> Arc<Verifier> {
    verifier(&format!(
        "allow_simulated = true\nsimulated_measurements = [\"{}\"]",
        hex::encode(SIM_MEASUREMENT)
    ))
}

fn refuses_sim() -> Arc<Verifier> {
    verifier("allow_simulated = false")
}

fn allows_other_sim_measurement() -> Arc<Verifier> {
    verifier(&format!(
        "allow_simulated = true\nsimulated_measurements = [\"{}\"]",
        "00".repeat(32)
    ))
}

/// What one side of a handshake saw: the peer's identity, or why it failed.
type Side = Result<PeerIdentity, String>;

/// The peer's identity after a finished exchange, or the failure's message (the RA-TLS refusal
/// when there is one).
fn side(verifier: &Verifier, result: io::Result<Option<Vec<CertificateDer<'static>>>>) -> Side {
    match result {
        Ok(certs) => verifier
            .verify_peer(certs.as_deref())
            .map_err(|e| e.to_string()),
        Err(e) => Err(describe(&e)),
    }
}

fn describe(e: &io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(tls) => ratls::refusal(tls).map_or_else(|| tls.to_string(), ToString::to_string),
        None => e.to_string(),
    }
}

/// Serves one connection on `listener`: handshake, one byte each way, the client's certificates.
async fn serve_one(
    listener: TcpListener,
    config: ServerConfig,
) -> io::Result<Option<Vec<CertificateDer<'static>>>> {
    let (tcp, _) = listener.accept().await?;
    let mut tls = TlsAcceptor::from(Arc::new(config)).accept(tcp).await?;
    tls.write_all(b"s").await?;
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await?;
    Ok(tls.get_ref().1.peer_certificates().map(<[_]>::to_vec))
}

/// Connects to `port`: handshake, one byte each way, the server's certificates. The exchange
/// makes a refusal by the server (which in TLS 1.3 comes after the client's handshake ends)
/// reach the client.
async fn connect(
    port: u16,
    config: ClientConfig,
) -> io::Result<Option<Vec<CertificateDer<'static>>>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("ehsm").map_err(io::Error::other)?;
    let mut tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let mut byte = [0u8; 1];
    tls.read_exact(&mut byte).await?;
    tls.write_all(b"c").await?;
    tls.flush().await?;
    Ok(tls.get_ref().1.peer_certificates().map(<[_]>::to_vec))
}

/// A server task and a client on 127.0.0.1; returns what (server, client) saw of each other.
async fn handshake(
    server: ServerConfig,
    server_verifier: &Verifier,
    client: ClientConfig,
    client_verifier: &Verifier,
) -> (Side, Side) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server_task = tokio::spawn(serve_one(listener, server));
    let client_result = connect(port, client).await;
    let server_result = server_task.await.unwrap();
    (
        side(server_verifier, server_result),
        side(client_verifier, client_result),
    )
}

/// Server and client on two simulated platforms, each with its own verifier.
async fn sim_handshake(server_v: Arc<Verifier>, client_v: Arc<Verifier>) -> (Side, Side) {
    let (_d1, server_platform) = sim();
    let (_d2, client_platform) = sim();
    let server = ratls::server_config(&server_platform, server_v.clone()).unwrap();
    let client = ratls::client_config(&client_platform, client_v.clone()).unwrap();
    handshake(server, &server_v, client, &client_v).await
}

fn assert_simulated(side: &Side) {
    match side {
        Ok(PeerIdentity {
            evidence: PeerEvidence::Simulated { measurement },
            ..
        }) => assert_eq!(*measurement, SIM_MEASUREMENT),
        other => panic!("expected a simulated peer, got {other:?}"),
    }
}

#[tokio::test]
async fn matching_policy_connects_and_both_sides_see_the_peer() {
    let (server, client) = sim_handshake(allows_sim(), allows_sim()).await;
    assert_simulated(&server);
    assert_simulated(&client);
    // Two certificates, two keys.
    assert_ne!(server.unwrap().key_sha256, client.unwrap().key_sha256);
}

#[tokio::test]
async fn peer_identity_prints_for_logs() {
    let (server, _) = sim_handshake(allows_sim(), allows_sim()).await;
    let line = server.unwrap().to_string();
    assert!(
        line.starts_with(&format!(
            "sim (no hardware protection) measurement={} key=",
            hex::encode(SIM_MEASUREMENT)
        )),
        "{line}"
    );
}

#[tokio::test]
async fn client_refuses_a_server_when_simulation_is_not_allowed() {
    let (server, client) = sim_handshake(allows_sim(), refuses_sim()).await;
    let client = client.unwrap_err();
    assert!(
        client.contains("simulated evidence not allowed"),
        "{client}"
    );
    assert!(server.is_err());
}

#[tokio::test]
async fn server_refuses_a_client_when_simulation_is_not_allowed() {
    let (server, client) = sim_handshake(refuses_sim(), allows_sim()).await;
    let server = server.unwrap_err();
    assert!(
        server.contains("simulated evidence not allowed"),
        "{server}"
    );
    let client = client.unwrap_err();
    assert!(
        client.contains("received fatal alert: CertificateUnknown"),
        "{client}"
    );
}

#[tokio::test]
async fn another_simulated_measurement_is_refused() {
    let (server, _) = sim_handshake(allows_other_sim_measurement(), allows_sim()).await;
    let server = server.unwrap_err();
    assert!(
        server.contains("policy refused: simulated measurement"),
        "{server}"
    );
    let (_, client) = sim_handshake(allows_sim(), allows_other_sim_measurement()).await;
    let client = client.unwrap_err();
    assert!(client.contains("not on the policy's allowlist"), "{client}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let (_d1, server_platform) = sim();
    let server_v = allows_sim();
    let server = ratls::server_config(&server_platform, server_v.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_v = allows_sim();
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TlsVerifier::new(client_v.clone(), &provider)))
        .with_no_client_auth();
    let (server, client) = handshake(server, &server_v, client, &client_v).await;
    let server = server.unwrap_err();
    assert!(server.contains("peer sent no certificates"), "{server}");
    assert!(client.is_err());
}

/// A self-signed certificate from a fresh key with one extension, and that key.
fn cert_with_extension(
    oid: &[u64],
    content: Vec<u8>,
) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(oid, content));
    let cert = params.self_signed(&key).unwrap();
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (cert.der().clone(), key_der)
}

/// The content of the certificate's extension `oid`.
fn extension_content(cert: &[u8], oid: &[u64]) -> Vec<u8> {
    let cert = x509_cert::Certificate::from_der(cert).unwrap();
    let ext = cert
        .tbs_certificate()
        .extensions()
        .unwrap()
        .iter()
        .find(|e| e.extn_id.arcs().map(u64::from).eq(oid.iter().copied()))
        .unwrap();
    ext.extn_value.as_bytes().to_vec()
}

fn sim_evidence_of_a_genuine_certificate() -> Vec<u8> {
    let (_d, platform) = sim();
    let (cert, _) = ratls::certificate(&platform, SystemTime::now()).unwrap();
    extension_content(&cert, SIM_EVIDENCE_OID)
}

#[tokio::test]
async fn evidence_copied_into_a_certificate_with_another_key_is_refused() {
    let evidence = sim_evidence_of_a_genuine_certificate();
    let (cert, key) = cert_with_extension(SIM_EVIDENCE_OID, evidence);
    let v = allows_sim();
    let err = v.verify_certificate(&cert).unwrap_err();
    assert!(matches!(err, RatlsError::NotBound), "{err}");
    assert!(err.to_string().contains("not bound to the key"), "{err}");

    // And over TLS: the thief holds its own key, so the handshake signature would pass.
    let (_d, server_platform) = sim();
    let server = ratls::server_config(&server_platform, v.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TlsVerifier::new(v.clone(), &provider)))
        .with_client_auth_cert(vec![cert], key)
        .unwrap();
    let (server, _) = handshake(server, &v, client, &v).await;
    let server = server.unwrap_err();
    assert!(server.contains("not bound to the key"), "{server}");
}

#[test]
fn tampered_evidence_is_refused() {
    let v = allows_sim();
    let (_d, platform) = sim();
    let (cert, _) = ratls::certificate(&platform, SystemTime::now()).unwrap();
    v.verify_certificate(&cert).unwrap();

    // A flipped byte of the evidence inside the signed certificate: the signature fails.
    let evidence = extension_content(&cert, SIM_EVIDENCE_OID);
    let at = cert
        .windows(evidence.len())
        .position(|w| w == evidence.as_slice())
        .unwrap();
    let mut tampered = cert.to_vec();
    tampered[at + 30] ^= 1;
    let err = v.verify_certificate(&tampered).unwrap_err();
    assert!(matches!(err, RatlsError::BadSignature), "{err}");

    // Re-signed by a new key (the only way past the signature): each part of the evidence.
    let resigned = |offset: usize| {
        let mut evidence = evidence.clone();
        evidence[offset] ^= 1;
        let (cert, _) = cert_with_extension(SIM_EVIDENCE_OID, evidence);
        v.verify_certificate(&cert).unwrap_err()
    };
    assert!(matches!(resigned(0), RatlsError::MalformedEvidence(_))); // magic
    assert!(matches!(resigned(21), RatlsError::NotBound)); // measurement, then report data
    assert!(matches!(resigned(21 + 32), RatlsError::NotBound));
    // Truncated.
    let (cert, _) = cert_with_extension(SIM_EVIDENCE_OID, evidence[..100].to_vec());
    assert!(matches!(
        v.verify_certificate(&cert),
        Err(RatlsError::MalformedEvidence(_))
    ));
}

#[test]
fn a_certificate_without_evidence_or_with_two_is_refused() {
    let v = allows_sim();
    let (cert, _) = cert_with_extension(&[1, 2, 3, 4], vec![5, 0]);
    let err = v.verify_certificate(&cert).unwrap_err();
    assert!(matches!(err, RatlsError::NoEvidence), "{err}");
    assert!(err.to_string().contains("no evidence extension"), "{err}");

    let evidence = sim_evidence_of_a_genuine_certificate();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    for oid in [SIM_EVIDENCE_OID, DICE_TAGGED_EVIDENCE_OID] {
        params
            .custom_extensions
            .push(CustomExtension::from_oid_content(oid, evidence.clone()));
    }
    let cert = params.self_signed(&key).unwrap();
    assert!(matches!(
        v.verify_certificate(cert.der()),
        Err(RatlsError::MalformedEvidence(_))
    ));

    // Any key but ECDSA P-256 (what ehsm issues) is refused before the evidence is looked at.
    let p384 = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let mut params = CertificateParams::default();
    params
        .custom_extensions
        .push(CustomExtension::from_oid_content(
            SIM_EVIDENCE_OID,
            evidence.clone(),
        ));
    let err = v
        .verify_certificate(params.self_signed(&p384).unwrap().der())
        .unwrap_err();
    assert!(err.to_string().contains("not ECDSA P-256"), "{err}");

    assert!(matches!(
        v.verify_certificate(b"not a certificate"),
        Err(RatlsError::MalformedCertificate(_))
    ));
    assert!(matches!(
        v.verify_peer(None),
        Err(RatlsError::NoCertificate)
    ));
}

#[test]
fn certificates_are_valid_for_a_day() {
    let (_d, platform) = sim();
    let issued = SystemTime::now() - Duration::from_secs(25 * 3600);
    let (cert, _) = ratls::certificate(&platform, issued).unwrap();
    let err = allows_sim().verify_certificate(&cert).unwrap_err();
    assert!(matches!(err, RatlsError::OutsideValidity { .. }), "{err}");
    let (cert, _) = ratls::certificate(&platform, issued + ratls::VALIDITY).unwrap();
    allows_sim().verify_certificate(&cert).unwrap();
}

/// A platform that returns Intel's sample SGX quote, whatever report data it is asked for: the
/// quote of another key, as an attacker replaying it would present it.
struct ReplayedQuote;

const SGX_QUOTE: &[u8] = include_bytes!("data/sgx_quote");

impl Platform for ReplayedQuote {
    fn kind(&self) -> PlatformKind {
        PlatformKind::Sgx
    }
    fn sealing_key(&self) -> Result<SealingKey, Error> {
        Ok(SealingKey::from_bytes([0; 32]))
    }
    fn measurement(&self) -> &Measurement {
        unimplemented!("not needed")
    }
    fn evidence(&self, _report_data: &[u8; 64]) -> Result<Evidence, Error> {
        Ok(Evidence {
            kind: PlatformKind::Sgx,
            bytes: SGX_QUOTE.to_vec(),
        })
    }
}

#[test]
fn a_real_sgx_quote_for_another_key_is_not_bound() {
    let (cert, _) = ratls::certificate(&ReplayedQuote, SystemTime::now()).unwrap();
    // The quote travels in the DICE tagged-evidence extension, CBOR tag 60000.
    let content = extension_content(&cert, DICE_TAGGED_EVIDENCE_OID);
    assert_eq!(extension::decode_tagged_quote(&content).unwrap(), SGX_QUOTE);

    let collateral = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sgx_quote_collateral.json"
    );
    let v = Verifier::new(
        Arc::new(
            Policy::from_toml(
                "accepted_tcb_statuses = [\"CONFIG_AND_SW_HARDENING_NEEDED\"]\n[sgx]\n\
                 mr_enclave = [\"33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb\"]",
            )
            .unwrap(),
        ),
        Arc::new(FileCollateral::file(collateral)),
    );
    let err = v.verify_certificate(&cert).unwrap_err();
    assert!(matches!(err, RatlsError::NotBound), "{err}");
}

#[test]
fn a_quote_extension_with_garbage_is_malformed() {
    let (cert, _) = cert_with_extension(DICE_TAGGED_EVIDENCE_OID, vec![0xd9, 0xea, 0x60, 0x41, 0]);
    let err = allows_sim().verify_certificate(&cert).unwrap_err();
    assert!(matches!(err, RatlsError::MalformedEvidence(_)), "{err}");
}

/// The environment variable that turns [`peer_process`] into an RA-TLS server: the directory
/// of its simulated platform, where it also writes its port and what it saw of the client.
const PEER_DIR: &str = "EHSM_RATLS_PEER_DIR";

/// Not a test on its own: the server half of [`handshake_between_two_processes`], run in a
/// child process (this test binary, run again with [`PEER_DIR`] set). Without it, does nothing.
#[tokio::test]
async fn peer_process() {
    let Some(dir) = std::env::var_os(PEER_DIR) else {
        return;
    };
    let dir = Path::new(&dir);
    let platform = SimPlatform::open(dir).unwrap();
    let v = allows_sim();
    let server = ratls::server_config(&platform, v.clone()).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    std::fs::write(dir.join("port.tmp"), port.to_string()).unwrap();
    std::fs::rename(dir.join("port.tmp"), dir.join("port")).unwrap();
    let seen = match side(&v, serve_one(listener, server).await) {
        Ok(peer) => peer.to_string(),
        Err(e) => format!("refused: {e}"),
    };
    std::fs::write(dir.join("peer"), seen).unwrap();
}

#[tokio::test]
async fn handshake_between_two_processes() {
    let server_dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "peer_process", "--nocapture"])
        .env(PEER_DIR, server_dir.path())
        .spawn()
        .unwrap();
    let port_file = server_dir.path().join("port");
    let deadline = Instant::now() + Duration::from_secs(60);
    let port: u16 = loop {
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            break text.parse().unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "the server process did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let (_d, client_platform) = sim();
    let v = allows_sim();
    let client = ratls::client_config(&client_platform, v.clone()).unwrap();
    let client_side = side(&v, connect(port, client).await);
    assert!(child.wait().unwrap().success());

    assert_simulated(&client_side);
    let server_saw = std::fs::read_to_string(server_dir.path().join("peer")).unwrap();
    assert!(
        server_saw.starts_with("sim (no hardware protection)"),
        "{server_saw}"
    );
    // The server saw the client's key, which is not its own.
    let server_key = hex::encode(client_side.unwrap().key_sha256);
    assert!(!server_saw.ends_with(&server_key), "{server_saw}");
}
