//! Collateral from a PCCS: a fake PCCS on 127.0.0.1 serves the sample collateral split into the
//! v4 endpoints' bodies and headers, as Intel does, and counts the requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ehsm_tee::dcap::{Collateral, parse_rfc3339, verify};
use ehsm_tee::pccs::{Error, PccsCollateral};
use ehsm_tee::ratls::CollateralSource;
use serde_json::Value;

const SGX_QUOTE: &[u8] = include_bytes!("data/sgx_quote");
const SGX_COLLATERAL: &[u8] = include_bytes!("data/sgx_quote_collateral.json");
/// The sample quote's platform.
const FMSPC: &str = "00A067110000";

fn at(text: &str) -> SystemTime {
    parse_rfc3339(text).unwrap()
}

/// What the fake PCCS gets wrong.
#[derive(Clone, Copy)]
enum Fault {
    None,
    /// The TCB info endpoint answers this status.
    TcbStatus(u16),
    /// The TCB info endpoint answers 200 with a body that is not JSON.
    TcbGarbage,
    /// The QE identity endpoint leaves out its issuer-chain header.
    QeNoHeader,
}

/// A fake PCCS on 127.0.0.1 (plain HTTP) serving `collateral` (dcap-qvl's QuoteCollateralV3
/// JSON); it records the paths requested.
struct FakePccs {
    url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakePccs {
    fn start(collateral: &[u8], fault: Fault) -> Self {
        let c: Value = serde_json::from_slice(collateral).unwrap();
        let field = move |name: &str| c[name].as_str().unwrap().to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&requests);
        let respond = move |path: &str| -> (u16, Vec<(&'static str, String)>, Vec<u8>) {
            let route = path.split('?').next().unwrap_or_default();
            match (route, fault) {
                ("/sgx/certification/v4/pckcrl", _) => (
                    200,
                    vec![(
                        "SGX-PCK-CRL-Issuer-Chain",
                        url_encode(&field("pck_crl_issuer_chain")),
                    )],
                    hex::decode(field("pck_crl")).unwrap(),
                ),
                ("/sgx/certification/v4/tcb", Fault::TcbStatus(status)) => {
                    (status, vec![], b"no".to_vec())
                }
                ("/sgx/certification/v4/tcb", _) => {
                    let body = match fault {
                        Fault::TcbGarbage => "<html>maintenance</html>".to_owned(),
                        _ => format!(
                            r#"{{"tcbInfo":{},"signature":"{}"}}"#,
                            field("tcb_info"),
                            field("tcb_info_signature")
                        ),
                    };
                    let chain = url_encode(&field("tcb_info_issuer_chain"));
                    (
                        200,
                        vec![("TCB-Info-Issuer-Chain", chain)],
                        body.into_bytes(),
                    )
                }
                ("/sgx/certification/v4/qe/identity", _) => {
                    let body = format!(
                        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
                        field("qe_identity"),
                        field("qe_identity_signature")
                    );
                    let chain = url_encode(&field("qe_identity_issuer_chain"));
                    let headers = match fault {
                        Fault::QeNoHeader => vec![],
                        _ => vec![("SGX-Enclave-Identity-Issuer-Chain", chain)],
                    };
                    (200, headers, body.into_bytes())
                }
                // PCCS serves the root CA CRL as the hex text of its DER.
                ("/sgx/certification/v4/rootcacrl", _) => {
                    (200, vec![], field("root_ca_crl").into_bytes())
                }
                _ => (404, vec![], b"not found".to_vec()),
            }
        };
        let respond = Arc::new(respond);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let seen = Arc::clone(&seen);
                let respond = Arc::clone(&respond);
                std::thread::spawn(move || {
                    let path = read_request_path(&mut stream);
                    seen.lock().unwrap().push(path.clone());
                    let (status, headers, body) = respond(&path);
                    let mut head = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (name, value) in headers {
                        head.push_str(&format!("{name}: {value}\r\n"));
                    }
                    head.push_str("\r\n");
                    let _ = stream.write_all(head.as_bytes());
                    let _ = stream.write_all(&body);
                });
            }
        });
        Self { url, requests }
    }

    fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

/// The path of a GET request (it has no body), read up to the end of its head.
fn read_request_path(stream: &mut std::net::TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && stream.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    head.split(' ').nth(1).unwrap_or_default().to_owned()
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

#[tokio::test]
async fn fetched_collateral_verifies_like_the_file_and_is_cached_until_next_update() {
    let pccs = FakePccs::start(SGX_COLLATERAL, Fault::None);
    let client = PccsCollateral::new(&pccs.url).unwrap();
    let inside = at("2025-06-20T00:00:00Z");

    let fetched = client.fetch(SGX_QUOTE, inside).await.unwrap();
    assert_eq!(pccs.count(), 4, "the four pieces");
    let paths = pccs.requests.lock().unwrap().clone();
    assert!(
        paths.contains(&format!("/sgx/certification/v4/tcb?fmspc={FMSPC}")),
        "{paths:?}"
    );
    assert!(
        paths.contains(&"/sgx/certification/v4/pckcrl?ca=processor&encoding=der".to_owned()),
        "{paths:?}"
    );
    let from_pccs = verify(SGX_QUOTE, &fetched, inside).unwrap();
    let file = Collateral::from_json(SGX_COLLATERAL).unwrap();
    let from_file = verify(SGX_QUOTE, &file, inside).unwrap();
    assert_eq!(from_pccs.status(), from_file.status());
    assert_eq!(from_pccs.tcb_status(), from_file.tcb_status());
    assert_eq!(from_pccs.advisory_ids(), from_file.advisory_ids());
    assert_eq!(from_pccs.identity(), from_file.identity());
    // The earliest nextUpdate of the sample is the QE identity's.
    assert_eq!(
        fetched.next_update().unwrap(),
        Some(at("2025-07-19T10:01:18Z"))
    );

    // From the cache: no request.
    let again = client
        .fetch(SGX_QUOTE, at("2025-06-20T12:00:00Z"))
        .await
        .unwrap();
    assert!(verify(SGX_QUOTE, &again, inside).is_ok());
    assert_eq!(pccs.count(), 4);

    // More than a day after the fetch: asked again, even though nextUpdate is later.
    client
        .fetch(SGX_QUOTE, at("2025-06-21T00:00:01Z"))
        .await
        .unwrap();
    assert_eq!(pccs.count(), 8);

    // Past nextUpdate: asked again (the fake still serves the same, now expired, collateral).
    let late = at("2025-07-20T00:00:00Z");
    let stale = client.fetch(SGX_QUOTE, late).await.unwrap();
    assert_eq!(pccs.count(), 12);
    let e = verify(SGX_QUOTE, &stale, late).unwrap_err();
    assert!(e.to_string().contains("collateral has expired"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_fetches_for_one_platform_download_once() {
    let pccs = FakePccs::start(SGX_COLLATERAL, Fault::None);
    let client = PccsCollateral::new(&format!("{}/sgx/certification/v4/", pccs.url)).unwrap();
    let inside = at("2025-06-20T00:00:00Z");
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.fetch(SGX_QUOTE, inside).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(pccs.count(), 4);
}

#[tokio::test]
async fn pccs_failures_name_the_url_and_what_is_wrong() {
    let inside = at("2025-06-20T00:00:00Z");
    let tcb_url = |pccs: &FakePccs| format!("{}/sgx/certification/v4/tcb?fmspc={FMSPC}", pccs.url);
    for (fault, expected) in [
        (Fault::TcbStatus(404), "HTTP 404"),
        (Fault::TcbStatus(500), "HTTP 500"),
        (Fault::TcbGarbage, "not the endpoint's JSON"),
    ] {
        let pccs = FakePccs::start(SGX_COLLATERAL, fault);
        let client = PccsCollateral::new(&pccs.url).unwrap();
        let e = client.fetch(SGX_QUOTE, inside).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, Error::Fetch { .. }), "{e:?}");
        assert!(
            text.contains(&tcb_url(&pccs)) && text.contains(expected),
            "{text}"
        );
        // Nothing was cached: the next request asks again.
        let before = pccs.count();
        assert!(client.fetch(SGX_QUOTE, inside).await.is_err());
        assert!(pccs.count() > before);
    }

    let pccs = FakePccs::start(SGX_COLLATERAL, Fault::QeNoHeader);
    let client = PccsCollateral::new(&pccs.url).unwrap();
    let text = client
        .fetch(SGX_QUOTE, inside)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&format!("{}/sgx/certification/v4/qe/identity", pccs.url))
            && text.contains("no SGX-Enclave-Identity-Issuer-Chain header"),
        "{text}"
    );

    // Nobody listening: the transport error names the URL.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let text = PccsCollateral::new(&url)
        .unwrap()
        .fetch(SGX_QUOTE, inside)
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains(&url), "{text}");
}

#[tokio::test]
async fn bad_quotes_and_urls_are_refused_before_any_request() {
    let pccs = FakePccs::start(SGX_COLLATERAL, Fault::None);
    let client = PccsCollateral::new(&pccs.url).unwrap();
    let e = client
        .fetch(b"not a quote", SystemTime::now())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Quote(_)), "{e:?}");
    assert_eq!(pccs.count(), 0);
    for url in [
        "",
        "pccs.example",
        "ftp://pccs.example",
        "https://",
        "https:///x",
    ] {
        let e = PccsCollateral::new(url).unwrap_err();
        assert!(matches!(e, Error::Config(_)), "{url}: {e:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synchronous_lookup_misses_and_fetches_in_the_background() {
    let pccs = FakePccs::start(SGX_COLLATERAL, Fault::None);
    let client = PccsCollateral::new(&pccs.url).unwrap();
    let e = client.collateral(SGX_QUOTE).unwrap_err().to_string();
    assert!(e.contains("being fetched") && e.contains(FMSPC), "{e}");
    // The miss started a fetch on this runtime.
    for _ in 0..100 {
        if pccs.count() == 4 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(pccs.count(), 4);
    // The sample is expired at the wall clock, so it is not served from the cache: the lookup
    // still misses.
    assert!(client.collateral(SGX_QUOTE).is_err());
}
