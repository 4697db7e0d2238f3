//! Remote attestation end to end (spec §9): GenerateQuote on the simulated platform, VerifyQuote
//! of simulated evidence (only with `--allow-simulated-quotes`) and of a real SGX quote (through
//! the DCAP path, with `--collateral`), the response MAC, the challenge binding, and quote
//! policies per app.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use ehsm_client::{Credentials, Error, quote_report_data};
use serde_json::{Value, json};
use util::{Server, assert_code, b64, call, sign};

const SIM_MAGIC: &[u8] = b"EHSM-SIM-EVIDENCE-v1\0";
const CHALLENGE: &[u8] = b"the verifier's challenge";

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../ehsm-tee/tests/data")
        .join(name)
}

fn sim_server() -> Server {
    Server::start(&["--tee", "sim", "--allow-simulated-quotes"])
}

#[track_caller]
fn refusal<T: std::fmt::Debug>(result: Result<T, Error>) -> (i64, String) {
    match result {
        Err(Error::Api { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// The simulated measurement inside simulated evidence, as hex.
fn sim_measurement_hex(quote: &[u8]) -> String {
    quote[SIM_MAGIC.len()..SIM_MAGIC.len() + 32]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn verify_raw(s: &Server, creds: &Credentials, payload: Value) -> Value {
    call(&s.url, creds, "VerifyQuote", Some(payload)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn simulated_quote_is_bound_to_app_and_challenge_and_verifies_with_the_flag() {
    let s = sim_server();
    let (c, creds) = s.enrolled().await;

    // GenerateQuote: upstream's shape, the challenge echoed, simulated evidence bound to it.
    let raw = call(
        &s.url,
        &creds,
        "GenerateQuote",
        Some(json!({"challenge": b64(CHALLENGE)})),
    )
    .await;
    assert_code(&raw, 200, "success!");
    assert_eq!(raw["result"]["challenge"], json!(b64(CHALLENGE)));
    let quote = c.generate_quote(CHALLENGE).await.unwrap();
    assert!(quote.starts_with(SIM_MAGIC));
    let report_data = &quote[SIM_MAGIC.len() + 32..SIM_MAGIC.len() + 96];
    assert_eq!(report_data, quote_report_data(&creds.appid, CHALLENGE));

    // VerifyQuote with the challenge: result 0, the nonce echoed, the MAC checks.
    let v = c
        .verify_quote(&quote, b"nonce-1", None, Some(CHALLENGE))
        .await
        .unwrap();
    assert_eq!((v.result, v.nonce.as_slice()), (0, b"nonce-1".as_slice()));
    assert_eq!(
        (v.mr_enclave.as_deref(), v.mr_signer.as_deref()),
        (None, None)
    );
    assert!(v.sign_matches(&creds.apikey));
    assert!(c.quote_verdict_is_authentic(&v));
    assert!(!v.sign_matches("not-the-apikey-not-the-apikey-xx"));

    // On the wire: `result` is an integer, and as canon skips 0, the MAC covers the nonce only.
    let nonce = b64(b"nonce-2");
    let raw = verify_raw(&s, &creds, json!({"quote": b64(&quote), "nonce": nonce})).await;
    assert_code(&raw, 200, "success!");
    assert_eq!(raw["result"]["result"], json!(0));
    assert_eq!(raw["result"]["nonce"], json!(nonce));
    assert_eq!(
        raw["result"]["sign"],
        json!(sign(&creds.apikey, &format!("nonce={nonce}")))
    );

    // Replayed for another challenge: refused.
    let (code, message) = refusal(
        c.verify_quote(&quote, b"n", None, Some(b"another challenge"))
            .await,
    );
    assert_eq!(code, 400);
    assert!(message.contains("not bound to this challenge"), "{message}");

    // Another app, even with the right challenge: the binding names the app.
    let (b, _) = s.enrolled().await;
    let (code, message) = refusal(b.verify_quote(&quote, b"n", None, Some(CHALLENGE)).await);
    assert_eq!(code, 400);
    assert!(message.contains("not bound to this challenge"), "{message}");
    // Without a challenge (as upstream clients send it) app B's check passes: nothing binds.
    assert_eq!(
        b.verify_quote(&quote, b"n", None, None)
            .await
            .unwrap()
            .result,
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn quote_policies_match_mismatch_and_belong_to_their_app() {
    let s = sim_server();
    let (c, creds) = s.enrolled().await;
    let quote = c.generate_quote(CHALLENGE).await.unwrap();
    let enclave = sim_measurement_hex(&quote);
    let signer = "0".repeat(64);

    // Stored in lower case, so an upper-case upload matches the quote too.
    let id = c
        .upload_quote_policy(&enclave.to_uppercase(), &signer)
        .await
        .unwrap();
    let raw = call(
        &s.url,
        &creds,
        "GetQuotePolicy",
        Some(json!({"policyId": id})),
    )
    .await;
    assert_code(&raw, 200, "Query quote policy success.");
    assert_eq!(raw["result"]["mr_enclave"], json!(enclave));
    assert!(raw["result"]["createTime"].as_i64().unwrap() > 0);
    let policy = c.get_quote_policy(&id).await.unwrap().unwrap();
    assert_eq!(
        (policy.policy_id.as_str(), policy.mr_signer.as_str()),
        (id.as_str(), signer.as_str())
    );

    let v = c
        .verify_quote(&quote, b"n", Some(&id), Some(CHALLENGE))
        .await
        .unwrap();
    assert_eq!(v.result, 0);
    assert_eq!(v.mr_enclave.as_deref(), Some(enclave.as_str()));
    assert_eq!(v.mr_signer.as_deref(), Some(signer.as_str()));
    assert!(v.sign_matches(&creds.apikey));
    let nonce = b64(b"n");
    let raw = verify_raw(
        &s,
        &creds,
        json!({"quote": b64(&quote), "nonce": nonce, "policyId": id}),
    )
    .await;
    let canonical = format!("mr_enclave={enclave}&mr_signer={signer}&nonce={nonce}");
    assert_eq!(
        raw["result"]["sign"],
        json!(sign(&creds.apikey, &canonical))
    );

    // Another policy: a clear 400, not upstream's 500.
    let other = c
        .upload_quote_policy(&"ab".repeat(32), &signer)
        .await
        .unwrap();
    let (code, message) = refusal(c.verify_quote(&quote, b"n", Some(&other), None).await);
    assert_eq!(code, 400);
    assert!(
        message.contains("does not match the policy") && message.contains("MRENCLAVE"),
        "{message}"
    );
    let wrong_signer = c
        .upload_quote_policy(&enclave, &"1".repeat(64))
        .await
        .unwrap();
    let (_, message) = refusal(
        c.verify_quote(&quote, b"n", Some(&wrong_signer), None)
            .await,
    );
    assert!(message.contains("MRSIGNER"), "{message}");

    // A policy that does not exist, or is another app's: upstream's message (two spaces).
    let unknown = "0b5e1f3a-0000-4000-8000-000000000000";
    assert_eq!(
        refusal(c.verify_quote(&quote, b"n", Some(unknown), None).await),
        (400, "Invalid  policyId.".to_owned())
    );
    let (b, b_creds) = s.enrolled().await;
    assert_eq!(
        refusal(b.verify_quote(&quote, b"n", Some(&id), None).await),
        (400, "Invalid  policyId.".to_owned())
    );

    // GetQuotePolicy of an unknown or foreign policy: 200 with only the id (upstream's quirk).
    for (client_creds, policy_id) in [(&creds, unknown), (&b_creds, id.as_str())] {
        let raw = call(
            &s.url,
            client_creds,
            "GetQuotePolicy",
            Some(json!({"policyId": policy_id})),
        )
        .await;
        assert_code(&raw, 200, "Query quote policy success.");
        assert_eq!(raw["result"], json!({"policyId": policy_id}));
    }
    assert_eq!(b.get_quote_policy(&id).await.unwrap(), None);

    let raw = call(
        &s.url,
        &creds,
        "UploadQuotePolicy",
        Some(json!({"mr_enclave": enclave, "mr_signer": signer})),
    )
    .await;
    assert_code(&raw, 200, "Upload quote policy success.");
    assert!(uuid_shaped(raw["result"]["policyId"].as_str().unwrap()));
}

fn uuid_shaped(s: &str) -> bool {
    s.len() == 36 && s.as_bytes()[14] == b'4'
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_quotes_are_client_errors() {
    let s = sim_server();
    let (_, creds) = s.enrolled().await;
    let nonce = b64(b"n");
    for quote in [json!(""), json!("!!!!"), json!("QUJD")] {
        let raw = verify_raw(&s, &creds, json!({"quote": quote, "nonce": nonce})).await;
        assert_eq!(raw["code"], json!(400), "{quote}: {raw}");
    }
    // 8193 bytes pass validation (10924 base64 characters) but not the length check.
    let raw = verify_raw(
        &s,
        &creds,
        json!({"quote": b64(&[7; 8193]), "nonce": nonce}),
    )
    .await;
    assert_code(&raw, 400, "The quote's length is invalid.");
    // Simulated evidence cut short or with a flipped byte.
    let c = s.client().with_credentials(creds.clone());
    let quote = c.generate_quote(CHALLENGE).await.unwrap();
    for bad in [quote[..quote.len() - 1].to_vec(), {
        let mut q = quote.clone();
        q[40] ^= 1;
        q
    }] {
        let (code, message) = refusal(c.verify_quote(&bad, b"n", None, None).await);
        assert_eq!(code, 400);
        assert!(message.starts_with("The quote is invalid"), "{message}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn without_the_flag_simulated_quotes_are_refused_and_hardware_needs_collateral() {
    let s = Server::start(&["--tee", "sim"]);
    let (c, _) = s.enrolled().await;
    let quote = c.generate_quote(CHALLENGE).await.unwrap();
    let (code, message) = refusal(c.verify_quote(&quote, b"n", None, None).await);
    assert_eq!(code, 400);
    assert!(message.contains("--allow-simulated-quotes"), "{message}");

    let sgx = std::fs::read(data("sgx_quote")).unwrap();
    let (code, message) = refusal(c.verify_quote(&sgx, b"n", None, None).await);
    assert_eq!(code, 400);
    assert!(message.contains("--collateral"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn real_sgx_quote_goes_through_dcap_and_its_expired_collateral_is_reported() {
    let collateral = data("sgx_quote_collateral.json");
    let s = Server::start(&["--tee", "sim", "--collateral", collateral.to_str().unwrap()]);
    let (c, _) = s.enrolled().await;
    let sgx = std::fs::read(data("sgx_quote")).unwrap();
    // The sample's collateral was valid until July 2025, and the wall clock is used.
    let (code, message) = refusal(c.verify_quote(&sgx, b"n", None, None).await);
    assert_eq!(code, 400);
    assert!(message.contains("collateral has expired"), "{message}");
}

#[tokio::test(flavor = "multi_thread")]
async fn real_sgx_quote_is_verified_against_collateral_fetched_from_a_pccs() {
    let (pccs, requests) = fake_pccs(&std::fs::read(data("sgx_quote_collateral.json")).unwrap());
    let s = Server::start(&["--tee", "sim", "--pccs-url", &pccs]);
    let (c, _) = s.enrolled().await;
    let sgx = std::fs::read(data("sgx_quote")).unwrap();
    // The fetch path is wired: the PCCS was asked, and its (July 2025) collateral reached the
    // verification, which uses the wall clock.
    let (code, message) = refusal(c.verify_quote(&sgx, b"n", None, None).await);
    assert_eq!(code, 400);
    assert!(message.contains("collateral has expired"), "{message}");
    let paths = requests.lock().unwrap().clone();
    assert!(
        paths.contains(&"/sgx/certification/v4/tcb?fmspc=00A067110000".to_owned()),
        "{paths:?}"
    );
}

/// A fake PCCS on 127.0.0.1 (plain HTTP) serving the v4 endpoints' bodies and headers cut from
/// `collateral` (dcap-qvl's QuoteCollateralV3 JSON); it records the paths requested. (The
/// ehsm-tee tests have a fuller one, with faults.)
fn fake_pccs(collateral: &[u8]) -> (String, Arc<Mutex<Vec<String>>>) {
    let c: Value = serde_json::from_slice(collateral).unwrap();
    let field = move |name: &str| c[name].as_str().unwrap().to_owned();
    let signed = |key: &str, name: &str| {
        let signature = field(&format!("{name}_signature"));
        format!(r#"{{"{key}":{},"signature":"{signature}"}}"#, field(name)).into_bytes()
    };
    // The issuer chain of `name`, as the header `header` carries it.
    let chain = |header: &str, name: &str| {
        let value = url_encode(&field(&format!("{name}_issuer_chain")));
        format!("{header}: {value}\r\n")
    };
    let routes = [
        (
            "/sgx/certification/v4/pckcrl",
            chain("SGX-PCK-CRL-Issuer-Chain", "pck_crl"),
            hex::decode(field("pck_crl")).unwrap(),
        ),
        (
            "/sgx/certification/v4/tcb",
            chain("TCB-Info-Issuer-Chain", "tcb_info"),
            signed("tcbInfo", "tcb_info"),
        ),
        (
            "/sgx/certification/v4/qe/identity",
            chain("SGX-Enclave-Identity-Issuer-Chain", "qe_identity"),
            signed("enclaveIdentity", "qe_identity"),
        ),
        (
            "/sgx/certification/v4/rootcacrl",
            String::new(),
            field("root_ca_crl").into_bytes(),
        ),
    ];
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&requests);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let head = String::from_utf8_lossy(&head);
            let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
            seen.lock().unwrap().push(path.clone());
            let route = path.split('?').next().unwrap_or_default();
            let (status, header, body) = match routes.iter().find(|r| r.0 == route) {
                Some((_, header, body)) => (200, header.as_str(), body.as_slice()),
                None => (404, "", b"not found".as_slice()),
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n{header}\r\n",
                body.len()
            );
            let _ = stream.write_all(body);
        }
    });
    (url, requests)
}

/// Percent-encodes everything but unreserved characters, as Intel encodes its issuer chains.
fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_bad_collateral_file_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.json");
    std::fs::write(&file, "{}").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ehsm"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--tee",
            "sim",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .arg("--collateral")
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("c.json"), "{stderr}");
}
