//! GetServerEvidence end to end (issue 14): the real `ehsm serve` on the simulated platform,
//! asked over a real TLS connection, its evidence verified as a client verifies it
//! (`ehsm_tee::ratls::Verifier::verify_evidence`) against the report data computed from the
//! client's challenge and the certificate of that very connection. Then what must be refused:
//! another challenge, another key, a policy that does not accept the server, malformed requests
//! (each with its message), a plain-HTTP server, too many requests from one address, and a
//! platform that fails.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use ehsm_tee::policy::Policy;
use ehsm_tee::ratls::{NoCollateral, PeerEvidence, RatlsError, Verifier};
use ehsm_tee::server_evidence::{Challenge, certificate_spki, server_report_data};
use ehsm_tee::{Evidence, PlatformKind};
use openssl::asn1::Asn1Time;
use openssl::bn::BigNum;
use openssl::ec::{EcGroup, EcKey};
use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::{PKey, Private};
use openssl::x509::extension::{BasicConstraints, SubjectAlternativeName};
use openssl::x509::{X509, X509NameBuilder, X509NameRef};
use serde_json::{Value, json};
use util::{Server, assert_code, b64, b64_decode};

const TOO_MANY: &str = "Too many evidence requests; try again in a moment.";
const NEEDS_TLS: &str = "Server evidence needs TLS: this server serves plain HTTP, so there is \
                         no TLS key for the evidence to bind.";

/// What one request got: the eHSM answer and the leaf certificate its connection received.
struct Answer {
    body: Value,
    peer_certificate: Option<Vec<u8>>,
}

/// A client that reports the certificate each connection received, from the local address
/// `from`. It accepts any certificate: the evidence, not a CA, is what the client trusts.
fn client(from: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .tls_info(true)
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap()
}

fn evidence_url(url: &str) -> String {
    format!("{url}/ehsm?Action=GetServerEvidence")
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let peer_certificate = response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(reqwest::tls::TlsInfo::peer_certificate)
        .map(<[u8]>::to_vec);
    let text = response.text().await.unwrap();
    Answer {
        body: serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
        peer_certificate,
    }
}

/// POSTs `body` as JSON from 127.0.0.1.
async fn ask(url: &str, body: &Value) -> Answer {
    send(client("127.0.0.1").post(evidence_url(url)).json(body)).await
}

/// A fresh random challenge of `len` bytes.
fn random(len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    bytes
}

/// The evidence in a successful answer, labelled with the platform the answer names.
fn evidence_of(body: &Value) -> Evidence {
    assert_code(body, 200, "success!");
    let result = body["result"].as_object().unwrap();
    assert_eq!(result.len(), 2, "{body}");
    let kind = match result["platform"].as_str().unwrap() {
        "sim" => PlatformKind::Sim,
        "sgx" => PlatformKind::Sgx,
        "tdx" => PlatformKind::Tdx,
        other => panic!("unknown platform {other}"),
    };
    Evidence {
        kind,
        bytes: b64_decode(result["evidence"].as_str().unwrap()),
    }
}

/// A client's verification: the evidence against `policy` and the report data of `challenge`
/// and the key of `certificate`.
fn verify(
    policy: &str,
    evidence: &Evidence,
    challenge: &[u8],
    certificate: &[u8],
) -> Result<PeerEvidence, RatlsError> {
    let policy = Arc::new(Policy::from_toml(policy).unwrap());
    let expected = server_report_data(
        &Challenge::new(challenge).unwrap(),
        &certificate_spki(certificate).unwrap(),
    );
    Verifier::new(policy, Arc::new(NoCollateral)).verify_evidence(evidence, &expected)
}

/// The simulated measurement of the server on `data_dir`, as an operator learns it for a
/// policy: `ehsm attest show`.
fn sim_measurement(data_dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args(["attest", "show", "--tee", "sim", "--data-dir"])
        .arg(data_dir)
        .env_remove("EHSM_TEE")
        .env_remove("EHSM_DATA_DIR")
        .env_remove("EHSM_ATTESTATION_ROOT")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let json: Value = serde_json::from_slice(&output.stdout).unwrap();
    json["measurement"].as_str().unwrap().to_owned()
}

fn sim_policy(measurement: &str) -> String {
    format!("allow_simulated = true\nsimulated_measurements = [\"{measurement}\"]\n")
}

/// The DER certificates of a PEM file.
fn certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    openssl::x509::X509::stack_from_pem(pem)
        .unwrap()
        .iter()
        .map(|c| c.to_der().unwrap())
        .collect()
}

/// A fresh P-256 key.
fn key() -> PKey<Private> {
    let group = EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).unwrap();
    PKey::from_ec_key(EcKey::generate(&group).unwrap()).unwrap()
}

/// A certificate for `key`: a self-signed CA without `issuer`, else a leaf for 127.0.0.1 that
/// `issuer` signs.
fn new_certificate(cn: &str, key: &PKey<Private>, issuer: Option<(&X509, &PKey<Private>)>) -> X509 {
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_nid(Nid::COMMONNAME, cn).unwrap();
    let name = name.build();
    let mut b = X509::builder().unwrap();
    b.set_version(2).unwrap();
    let serial = BigNum::from_u32(u32::try_from(util::rand_u64() >> 33).unwrap()).unwrap();
    b.set_serial_number(&serial.to_asn1_integer().unwrap())
        .unwrap();
    b.set_subject_name(&name).unwrap();
    let issuer_name: &X509NameRef = match issuer {
        Some((ca, _)) => ca.subject_name(),
        None => &name,
    };
    b.set_issuer_name(issuer_name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let signer = match issuer {
        Some((ca, ca_key)) => {
            let san = SubjectAlternativeName::new()
                .ip("127.0.0.1")
                .build(&b.x509v3_context(Some(ca), None))
                .unwrap();
            b.append_extension(san).unwrap();
            ca_key
        }
        None => {
            let ca = BasicConstraints::new().critical().ca().build().unwrap();
            b.append_extension(ca).unwrap();
            key
        }
    };
    b.sign(signer, MessageDigest::sha256()).unwrap();
    b.build()
}

#[tokio::test(flavor = "multi_thread")]
async fn evidence_binds_the_challenge_and_the_certificate_of_this_connection() {
    let s = Server::start(&["--tee", "sim"]);
    let measurement = sim_measurement(&s.data_dir);
    let policy = sim_policy(&measurement);
    let challenge = random(32);
    let answer = ask(&s.url, &json!({ "challenge": b64(&challenge) })).await;
    let evidence = evidence_of(&answer.body);
    assert_eq!(evidence.kind, PlatformKind::Sim);
    let certificate = answer.peer_certificate.expect("a TLS connection");
    // The connection's certificate is the one the server generated in its data directory.
    let on_disk = std::fs::read(s.data_dir.join("tls-cert.pem")).unwrap();
    assert_eq!(certificates(&on_disk), std::slice::from_ref(&certificate));

    let verified = verify(&policy, &evidence, &challenge, &certificate).unwrap();
    assert_eq!(
        verified,
        PeerEvidence::Simulated {
            measurement: hex::decode(&measurement).unwrap().try_into().unwrap()
        }
    );

    // Another challenge (a replayed answer) and another key (a proxy's certificate): not bound.
    let err = verify(&policy, &evidence, &random(32), &certificate).unwrap_err();
    assert!(matches!(err, RatlsError::NotBound), "{err}");
    let mut other_challenge = challenge.clone();
    other_challenge[0] ^= 1;
    let err = verify(&policy, &evidence, &other_challenge, &certificate).unwrap_err();
    assert!(matches!(err, RatlsError::NotBound), "{err}");
    let proxy_certificate = new_certificate("a proxy", &key(), None).to_der().unwrap();
    let err = verify(&policy, &evidence, &challenge, &proxy_certificate).unwrap_err();
    assert!(matches!(err, RatlsError::NotBound), "{err}");

    // A policy that does not allow simulated evidence, or pins another measurement: refused.
    let err = verify("", &evidence, &challenge, &certificate).unwrap_err();
    assert!(matches!(err, RatlsError::SimulatedNotAllowed), "{err}");
    let err = verify(
        &sim_policy(&"ab".repeat(32)),
        &evidence,
        &challenge,
        &certificate,
    )
    .unwrap_err();
    assert!(
        matches!(err, RatlsError::PolicyRefused(_)) && err.to_string().contains(&measurement),
        "{err}"
    );

    // Each request is answered over its own challenge: the smallest and the largest too.
    for len in [16, 64] {
        let challenge = random(len);
        let answer = ask(&s.url, &json!({ "challenge": b64(&challenge) })).await;
        let certificate = answer.peer_certificate.unwrap();
        verify(
            &policy,
            &evidence_of(&answer.body),
            &challenge,
            &certificate,
        )
        .unwrap();
    }
}

/// Every malformed request is an eHSM 400 with the validator's message (or 404 for GET), and
/// the server answers the next good one.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_requests_are_refused_with_their_messages() {
    let s = Server::start(&["--tee", "sim"]);
    let missing = "Missing required parameters, The challenge cannot be empty.";
    let length = "Parameter invalid, The challenge length error.";
    let not_base64 = "Parameter invalid, The challenge not a vailed base64 string.";
    let not_string = "Parameter invalid, The challenge must be of string type.";
    let ok = b64(&random(32));
    for (body, message) in [
        (json!({}), missing),
        (json!({ "challenge": "" }), missing),
        (json!({ "challenge": null }), missing),
        (json!({ "challenge": b64(&random(15)) }), length),
        // 88 characters, as for 64 bytes: the bytes are counted.
        (json!({ "challenge": b64(&random(65)) }), length),
        (json!({ "challenge": b64(&random(4096)) }), length),
        (json!({ "challenge": "!".repeat(44) }), not_base64),
        (json!({ "challenge": ok.trim_end_matches('=') }), not_base64),
        // Upstream's base64 pattern, but bits after the last byte: the decoder refuses it.
        (
            json!({ "challenge": format!("{}B=", &ok[..42]) }),
            not_base64,
        ),
        (json!({ "challenge": 1234 }), not_string),
        (json!({ "challenge": [ok.clone()] }), not_string),
        (
            json!({ "challenge": ok.clone(), "extra": 1 }),
            "Parameter invalid, The extra is not a parameter of GetServerEvidence.",
        ),
        // An eHSM envelope is not this action's body.
        (
            json!({ "appid": "a", "timestamp": "1", "sign": "s", "payload": { "challenge": ok.clone() } }),
            missing,
        ),
    ] {
        let answer = ask(&s.url, &body).await;
        assert_code(&answer.body, 400, message);
        assert_eq!(answer.body["result"], json!({}), "{body}");
    }

    let c = client("127.0.0.1");
    let url = evidence_url(&s.url);
    // No body at all, a JSON body without its content type (upstream reads no fields from it),
    // and a body that is not JSON.
    assert_code(&send(c.post(&url)).await.body, 400, missing);
    let untyped = json!({ "challenge": ok.clone() }).to_string();
    assert_code(&send(c.post(&url).body(untyped)).await.body, 400, missing);
    let broken = c
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"challenge\":");
    assert_code(&send(broken).await.body, 400, "Invalid JSON");
    // Only POST serves it, and the action's name is case-sensitive: another spelling is an
    // unknown action, which goes through the envelope checks as upstream's did.
    assert_code(&send(c.get(&url)).await.body, 404, "API Not Found");
    let lower = c
        .post(format!("{}/ehsm?Action=getserverevidence", s.url))
        .json(&json!({ "challenge": ok.clone() }));
    assert_code(&send(lower).await.body, 400, "Missing required parameters");

    // Upstream's unauthenticated actions answer as before.
    let version = send(c.get(format!("{}/ehsm?Action=GetVersion", s.url))).await;
    assert_code(&version.body, 200, "success!");
    assert_eq!(version.body["result"]["version"], "0.3.2");
    let enrolled = send(c.get(format!("{}/ehsm?Action=Enroll", s.url))).await;
    assert_code(&enrolled.body, 200, "successful");
    assert_eq!(
        enrolled.body["result"]["apikey"].as_str().unwrap().len(),
        32
    );

    let answer = ask(&s.url, &json!({ "challenge": ok })).await;
    assert_eq!(evidence_of(&answer.body).kind, PlatformKind::Sim);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_http_server_has_no_key_to_bind() {
    let s = Server::start(&["--tee", "sim", "--http"]);
    assert!(s.url.starts_with("http://"), "{}", s.url);
    let answer = ask(&s.url, &json!({ "challenge": b64(&random(32)) })).await;
    assert!(answer.peer_certificate.is_none());
    assert_code(&answer.body, 400, NEEDS_TLS);
    // Said whatever the challenge: no request can be answered.
    let answer = ask(&s.url, &json!({ "challenge": 1 })).await;
    assert_code(&answer.body, 400, NEEDS_TLS);
}

/// The certificate bound is the leaf the server serves (the first of the operator's chain), not
/// another certificate of the chain.
#[tokio::test(flavor = "multi_thread")]
async fn an_operators_chain_binds_its_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_key, leaf_key) = (key(), key());
    let ca = new_certificate("test CA", &ca_key, None);
    let leaf = new_certificate("ehsm", &leaf_key, Some((&ca, &ca_key)));
    let (cert_path, key_path) = (dir.path().join("chain.pem"), dir.path().join("key.pem"));
    let chain = [leaf.to_pem().unwrap(), ca.to_pem().unwrap()].concat();
    std::fs::write(&cert_path, chain).unwrap();
    std::fs::write(&key_path, leaf_key.private_key_to_pem_pkcs8().unwrap()).unwrap();
    let s = Server::start(&[
        "--tee",
        "sim",
        "--tls-cert",
        cert_path.to_str().unwrap(),
        "--tls-key",
        key_path.to_str().unwrap(),
    ]);
    let policy = sim_policy(&sim_measurement(&s.data_dir));

    let challenge = random(32);
    let answer = ask(&s.url, &json!({ "challenge": b64(&challenge) })).await;
    let certificate = answer.peer_certificate.unwrap();
    assert_eq!(certificate, leaf.to_der().unwrap());
    assert_eq!(
        certificate_spki(&certificate).unwrap(),
        leaf_key.public_key_to_der().unwrap()
    );
    let evidence = evidence_of(&answer.body);
    verify(&policy, &evidence, &challenge, &certificate).unwrap();
    let err = verify(&policy, &evidence, &challenge, &ca.to_der().unwrap()).unwrap_err();
    assert!(matches!(err, RatlsError::NotBound), "{err}");
}

/// POSTs good evidence requests from `from` until refused for the rate: how many succeeded.
async fn evidence_until_refused(url: &str, from: &str) -> usize {
    let c = client(from);
    for n in 0..500 {
        let body = json!({ "challenge": b64(&random(32)) });
        let answer = send(c.post(evidence_url(url)).json(&body)).await;
        if answer.body["message"] == TOO_MANY {
            assert_code(&answer.body, 400, TOO_MANY);
            return n;
        }
        evidence_of(&answer.body);
    }
    panic!("500 evidence requests from {from} and never refused");
}

/// `--enroll-rate` limits evidence per client address as it limits Enroll, in buckets of its
/// own: exhausting one leaves the other whole. (A loopback server has no limit unless set.)
#[tokio::test(flavor = "multi_thread")]
async fn evidence_is_rate_limited_per_address_apart_from_enrollment() {
    let s = Server::start(&["--tee", "sim", "--enroll-rate", "1"]);
    // A burst of four seconds' worth (plus what refills meanwhile), then refused...
    let first = evidence_until_refused(&s.url, "127.0.0.1").await;
    assert!(first >= 4, "{first}");
    // ... while another address still gets evidence ...
    let answer = send(
        client("127.0.0.2")
            .post(evidence_url(&s.url))
            .json(&json!({ "challenge": b64(&random(32)) })),
    )
    .await;
    evidence_of(&answer.body);
    // ... and the refused address still enrolls: a whole burst, then Enroll's own refusal.
    let c = client("127.0.0.1");
    let enroll = || send(c.get(format!("{}/ehsm?Action=Enroll", s.url)));
    for _ in 0..4 {
        assert_code(&enroll().await.body, 200, "successful");
    }
    let mut refused = None;
    for _ in 0..500 {
        let body = enroll().await.body;
        if body["code"] != 200 {
            refused = Some(body);
            break;
        }
    }
    assert_code(
        &refused.expect("enrollment never refused"),
        400,
        "Too many enrollments; try again in a moment.",
    );
}

/// A platform that cannot make evidence is a 500 that says nothing about why (the log does).
/// Here: SGX through a directory that mimics Gramine's `/dev/attestation` with a fixed quote,
/// which cannot carry the report data the server writes.
#[tokio::test(flavor = "multi_thread")]
async fn a_platform_failure_is_a_500_without_details() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("attestation");
    std::fs::create_dir_all(root.join("keys")).unwrap();
    std::fs::write(root.join("attestation_type"), "dcap\n").unwrap();
    std::fs::write(root.join("keys/_sgx_mrenclave"), [7; 16]).unwrap();
    std::fs::write(root.join("user_report_data"), []).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../ehsm-tee/tests/data/sgx_quote");
    std::fs::copy(sample, root.join("quote")).unwrap();
    let s = Server::start(&["--tee", "sgx", "--attestation-root", root.to_str().unwrap()]);
    let answer = ask(&s.url, &json!({ "challenge": b64(&random(32)) })).await;
    assert_code(&answer.body, 500, "Server exception.");
    // The cause is in the server's log, for the operator.
    for _ in 0..200 {
        if s.logged("does not carry the report data") {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(25));
    }
    panic!("no cause logged:\n{}", s.log.lock().unwrap());
}
