//! What a client connection may hold, with real TCP clients against the real binary, over
//! HTTPS and `--http`: slow and silent connections are cut off after the header timeout, idle
//! ones after the idle timeout, the connection cap keeps a flood from locking a client out, a
//! graceful shutdown finishes a request in flight and closes idle HTTP/2 connections; the TLS
//! configuration; the `--http` warning. No timing is asserted beyond "closed within ten times
//! the timeout".
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt as _, Empty};
use hyper::body::Bytes;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use util::Server;

const HEADER_MS: u64 = 300;
const IDLE_MS: u64 = 600;

/// Ten times `ms`: how long a connection may take to be closed.
fn bound(ms: u64) -> Duration {
    Duration::from_millis(10 * ms)
}

/// The two ways to serve: HTTPS (`false`) and `--http` (`true`).
const BOTH: [bool; 2] = [false, true];

/// A server with short timeouts (and `extra`), on HTTPS or plain HTTP.
fn server(http: bool, extra: &[&str]) -> Server {
    let header = HEADER_MS.to_string();
    let idle = IDLE_MS.to_string();
    let mut args = vec!["--header-timeout-ms", &header, "--idle-timeout-ms", &idle];
    if http {
        args.push("--http");
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn addr(s: &Server) -> SocketAddr {
    s.url.split("://").nth(1).unwrap().parse().unwrap()
}

/// A TLS connection to `s` offering `alpn`, trusting the server's generated certificate.
async fn tls(s: &Server, alpn: &[u8]) -> tokio_rustls::client::TlsStream<TcpStream> {
    let pem = std::fs::read(s.data_dir.join("tls-cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in certificates(&pem) {
        roots.add(cert).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let tcp = TcpStream::connect(addr(s)).await.unwrap();
    let name = rustls::pki_types::ServerName::IpAddress(addr(s).ip().into());
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .unwrap()
}

fn certificates(pem: &[u8]) -> Vec<rustls::pki_types::CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    rustls::pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .unwrap()
}

/// A connection to `s` over which `bytes` were sent: TLS (offering `alpn`) or plain TCP.
async fn sent(s: &Server, http: bool, alpn: &[u8], bytes: &[u8]) -> Box<dyn Stream> {
    let mut stream: Box<dyn Stream> = if http {
        Box::new(TcpStream::connect(addr(s)).await.unwrap())
    } else {
        Box::new(tls(s, alpn).await)
    };
    stream.write_all(bytes).await.unwrap();
    stream.flush().await.unwrap();
    stream
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Reads until the server closes the connection (whatever it answers first), within `within`.
async fn assert_closed(mut stream: impl AsyncRead + Unpin, within: Duration, what: &str) {
    let mut buf = [0; 4096];
    let closed = tokio::time::timeout(within, async {
        // An error (a reset, a TLS close without close_notify) is a close too.
        while let Ok(n) = stream.read(&mut buf).await
            && n > 0
        {}
    })
    .await;
    assert!(closed.is_ok(), "{what}: still open after {within:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_and_silent_connections_are_closed_after_the_header_timeout() {
    for http in BOTH {
        let s = server(http, &[]);
        let on = if http { "http" } else { "https" };
        // Nothing at all: no TLS handshake (HTTPS), no request (HTTP).
        let silent = TcpStream::connect(addr(&s)).await.unwrap();
        assert_closed(
            silent,
            bound(HEADER_MS),
            &format!("{on}: a silent connection"),
        )
        .await;
        // Headers begun and never finished.
        let partial = sent(
            &s,
            http,
            b"http/1.1",
            b"POST /ehsm?Action=Enroll HTTP/1.1\r\nHost: x\r\nContent-",
        )
        .await;
        assert_closed(partial, bound(HEADER_MS), &format!("{on}: partial headers")).await;
        // HTTP/2: the preface, or half of it, and nothing more.
        for preface in [&b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"[..], b"PRI * HT"] {
            let h2 = sent(&s, http, b"h2", preface).await;
            assert_closed(
                h2,
                bound(HEADER_MS),
                &format!("{on}: HTTP/2 preface {preface:?} only"),
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_idle_tls_connection_is_closed() {
    let s = server(false, &[]);
    for alpn in [&b"h2"[..], b"http/1.1"] {
        let idle = tls(&s, alpn).await;
        assert_eq!(idle.get_ref().1.alpn_protocol(), Some(alpn));
        assert_closed(
            idle,
            bound(HEADER_MS),
            &format!("TLS ({alpn:?}) idle after its handshake"),
        )
        .await;
    }
}

/// A request on `io`, over HTTP/2 or HTTP/1.1, then nothing: the connection's task ends when the
/// server closes it, within `within`; HTTP/2 without an error.
async fn request_then_idle(io: impl Stream + 'static, h2: bool, within: Duration, what: &str) {
    let request = || {
        hyper::Request::get("/healthz")
            .header("host", "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .unwrap()
    };
    let io = TokioIo::new(io);
    // The sending half is kept: a hyper client connection ends by itself once it is dropped.
    let (status, conn, _send) = if h2 {
        let (mut send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .unwrap();
        let conn = tokio::spawn(conn);
        let response = send.send_request(request()).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        (status, conn, Box::new(send) as Box<dyn Send>)
    } else {
        let (mut send, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        let conn = tokio::spawn(conn);
        let response = send.send_request(request()).await.unwrap();
        let status = response.status();
        response.into_body().collect().await.unwrap();
        (status, conn, Box::new(send) as Box<dyn Send>)
    };
    assert_eq!(status, 200, "{what}");
    let closed = tokio::time::timeout(within, conn).await;
    let ended = closed.unwrap_or_else(|_| panic!("{what}: still open after {within:?}"));
    // HTTP/2 is told first (GOAWAY), so that the client stops sending on it: a clean end.
    if h2 {
        assert!(matches!(ended, Ok(Ok(()))), "{what}: {ended:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_connection_idle_after_a_request_is_closed() {
    for http in BOTH {
        let s = server(http, &[]);
        let on = if http { "http" } else { "https" };
        let connect = |alpn: &'static [u8]| {
            let s = &s;
            async move {
                let stream: Box<dyn Stream> = if http {
                    Box::new(TcpStream::connect(addr(s)).await.unwrap())
                } else {
                    Box::new(tls(s, alpn).await)
                };
                stream
            }
        };
        // HTTP/2 between requests: the idle timeout.
        let what = format!("{on}: HTTP/2 idle after a request");
        request_then_idle(connect(b"h2").await, true, bound(IDLE_MS), &what).await;
        // HTTP/1.1 waiting for its next request's headers: the header timeout.
        let what = format!("{on}: HTTP/1.1 idle after a request");
        request_then_idle(connect(b"http/1.1").await, false, bound(HEADER_MS), &what).await;
    }
}

/// Polls `s`'s log for `text` for up to ten seconds.
async fn wait_for_log(s: &Server, text: &str) {
    for _ in 0..200 {
        if s.logged(text) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no {text:?} in the log:\n{}", s.log.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_cap_full_a_client_is_served_once_slow_ones_time_out() {
    for http in BOTH {
        let on = if http { "http" } else { "https" };
        let s = server(http, &["--max-connections", "3"]);
        let mut slow = Vec::new();
        for _ in 0..3 {
            slow.push(TcpStream::connect(addr(&s)).await.unwrap());
        }
        // The accept loop has taken all three and waits for a slot.
        wait_for_log(&s, "3 client connections open (max-connections)").await;
        let version = util::http()
            .get(format!("{}/ehsm?Action=GetVersion", s.url))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .unwrap_or_else(|e| panic!("{on}: the client over the cap was not served: {e}"));
        assert_eq!(version.status(), 200, "{on}");
        for stream in slow {
            assert_closed(
                stream,
                bound(HEADER_MS),
                &format!("{on}: a slow connection"),
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_graceful_shutdown_finishes_the_request_in_flight_and_closes_idle_http2() {
    for http in BOTH {
        let on = if http { "http" } else { "https" };
        // Timeouts long enough not to close anything themselves.
        let s = Server::start(if http { &["--http"][..] } else { &[] });
        // HTTP/2, idle after a request.
        let (mut h2, h2_conn) = {
            let stream: Box<dyn Stream> = if http {
                Box::new(TcpStream::connect(addr(&s)).await.unwrap())
            } else {
                Box::new(tls(&s, b"h2").await)
            };
            let (mut send, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                    .await
                    .unwrap();
            let conn = tokio::spawn(conn);
            let request = hyper::Request::get("/healthz")
                .header("host", "127.0.0.1")
                .body(Empty::<Bytes>::new())
                .unwrap();
            assert_eq!(send.send_request(request).await.unwrap().status(), 200);
            (send, conn)
        };
        // HTTP/1.1, a request whose body is half sent.
        let body = b"{\"appid\": \"x\"}";
        let head = format!(
            "POST /ehsm?Action=CreateKey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut in_flight = sent(&s, http, b"http/1.1", head.as_bytes()).await;
        in_flight.write_all(&body[..4]).await.unwrap();
        in_flight.flush().await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;

        let log = Arc::clone(&s.log);
        let stopping = std::thread::spawn(move || s.stop());
        for _ in 0..200 {
            if log.lock().unwrap().contains("stopping:") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(
            log.lock().unwrap().contains("stopping:"),
            "{on}: {}",
            log.lock().unwrap()
        );
        // The idle HTTP/2 connection is told to go away and closed, well before the grace
        // period ends.
        let closed = tokio::time::timeout(Duration::from_secs(10), h2_conn).await;
        assert!(
            closed.is_ok(),
            "{on}: the idle HTTP/2 connection stayed open"
        );
        assert!(
            h2.ready().await.is_err(),
            "{on}: HTTP/2 still takes requests"
        );
        // The request in flight is answered.
        in_flight.write_all(&body[4..]).await.unwrap();
        in_flight.flush().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), in_flight.read_to_end(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{on}: no answer to the request in flight"))
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 200"), "{on}: {answer}");
        assert!(
            answer.contains("sign error") || answer.contains("code"),
            "{on}: {answer}"
        );
        let status = stopping.join().unwrap();
        assert!(status.success(), "{on}: {status}\n{}", log.lock().unwrap());
    }
}

#[test]
fn tls_offers_h2_and_http1_with_tls_1_2_and_1_3_aead_suites_only() {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode, SslVersion};
    let s = Server::start(&[]);
    let connect = |configure: &dyn Fn(&mut openssl::ssl::SslConnectorBuilder)| {
        let mut b = SslConnector::builder(SslMethod::tls_client()).unwrap();
        b.set_verify(SslVerifyMode::NONE);
        configure(&mut b);
        let tcp = std::net::TcpStream::connect(addr(&s)).unwrap();
        b.build()
            .configure()
            .unwrap()
            .verify_hostname(false)
            .connect("127.0.0.1", tcp)
            .map(|tls| {
                let ssl = tls.ssl();
                (
                    ssl.version_str().to_owned(),
                    ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
                )
            })
    };
    let alpn = |protos: &'static [u8]| {
        move |b: &mut openssl::ssl::SslConnectorBuilder| {
            b.set_alpn_protos(protos).unwrap();
        }
    };
    assert_eq!(
        connect(&alpn(b"\x02h2\x08http/1.1")).unwrap(),
        ("TLSv1.3".to_owned(), Some(b"h2".to_vec()))
    );
    assert_eq!(
        connect(&alpn(b"\x08http/1.1")).unwrap().1,
        Some(b"http/1.1".to_vec())
    );
    // TLS 1.2 with each AEAD suite of an ECDSA certificate; CBC suites and TLS 1.1 refused.
    let tls12 = |suite: &'static str| {
        move |b: &mut openssl::ssl::SslConnectorBuilder| {
            b.set_max_proto_version(Some(SslVersion::TLS1_2)).unwrap();
            b.set_cipher_list(suite).unwrap();
        }
    };
    for suite in [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ] {
        assert_eq!(connect(&tls12(suite)).unwrap().0, "TLSv1.2", "{suite}");
    }
    for suite in ["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA384"] {
        assert!(connect(&tls12(suite)).is_err(), "{suite} accepted");
    }
    let tls11 = |b: &mut openssl::ssl::SslConnectorBuilder| {
        b.set_security_level(0);
        b.set_min_proto_version(Some(SslVersion::TLS1_1)).unwrap();
        b.set_max_proto_version(Some(SslVersion::TLS1_1)).unwrap();
        b.set_cipher_list("ALL:@SECLEVEL=0").unwrap();
    };
    assert!(connect(&tls11).is_err(), "TLS 1.1 accepted");
}

#[test]
fn plain_http_warns_and_more_strongly_off_loopback() {
    let s = Server::start(&["--http"]);
    wait_until_logged(&s, "plain HTTP (http)");
    assert!(
        s.logged("cross the connection unencrypted"),
        "{}",
        s.log.lock().unwrap()
    );
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", "--http", "--listen", "0.0.0.0:0", "--data-dir"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    args.push(dir.path().as_os_str());
    let s = Server::start_command(&args, &[]);
    wait_until_logged(&s, "plain HTTP (http)");
    assert!(
        s.logged("reachable from the network") && s.logged("IN THE CLEAR"),
        "{}",
        s.log.lock().unwrap()
    );
    let tls = Server::start(&[]);
    assert!(!tls.logged("plain HTTP"), "{}", tls.log.lock().unwrap());
}

/// The warning comes right after the "listening" line that `Server::start` waits for.
fn wait_until_logged(s: &Server, text: &str) {
    for _ in 0..200 {
        if s.logged(text) {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no {text:?} in the log:\n{}", s.log.lock().unwrap());
}

/// A pooled SDK client (HTTP/2 over TLS, HTTP/1.1 over `--http`) whose connection the server
/// closed while idle sends its next request on a new one, without an error.
#[tokio::test(flavor = "multi_thread")]
async fn a_pooled_client_outlives_its_closed_connections() {
    for http in BOTH {
        let s = server(http, &[]);
        let (client, _) = s.enrolled().await;
        for _ in 0..3 {
            client.list_keys().await.unwrap();
            tokio::time::sleep(Duration::from_millis(3 * IDLE_MS)).await;
        }
    }
}

/// The header timeout is for waiting for a request: a slow request body that keeps coming, or
/// the next request's headers on HTTP/1.1, are another matter.
#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_body_is_read_and_the_next_headers_are_timed_again() {
    for http in BOTH {
        let on = if http { "http" } else { "https" };
        let s = server(http, &[]);
        let body = br#"{"appid": "x", "timestamp": "1"}"#;
        let head = format!(
            "POST /ehsm?Action=ListKey HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let mut stream = sent(&s, http, b"http/1.1", head.as_bytes()).await;
        // About four header timeouts in all, a piece every half header timeout.
        for chunk in body.chunks(body.len().div_ceil(8)) {
            tokio::time::sleep(Duration::from_millis(HEADER_MS / 2)).await;
            stream.write_all(chunk).await.unwrap();
            stream.flush().await.unwrap();
        }
        let mut answer = [0; 12];
        stream.read_exact(&mut answer).await.unwrap();
        assert_eq!(&answer, b"HTTP/1.1 200", "{on}");
        // The answer is read off; then half of the next request's headers.
        let mut rest = [0; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(200), stream.read(&mut rest)).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHo")
            .await
            .unwrap();
        stream.flush().await.unwrap();
        assert_closed(
            stream,
            bound(HEADER_MS),
            &format!("{on}: partial second headers"),
        )
        .await;
    }
}
