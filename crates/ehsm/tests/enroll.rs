//! Enroll's rate limit as clients meet it: none on a loopback server (upstream's suites enroll
//! an app per test), per client address on a network address or when set (`--enroll-rate`).
//! Clients come from several loopback addresses (127.0.0.1, .2, .3: all of 127/8 is local).
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::net::IpAddr;

use serde_json::Value;
use util::Server;

const TOO_MANY: &str = "Too many enrollments; try again in a moment.";

/// One GET Enroll to `url` from the local address `from`, with `token` if given.
async fn enroll(url: &str, from: &str, token: Option<&str>) -> Value {
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut request = client.get(format!("{url}/ehsm?Action=Enroll"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().json().await.unwrap()
}

/// Enrolls from `from` until refused for the rate: how many succeeded first.
async fn enrolled_until_refused(url: &str, from: &str, token: Option<&str>) -> usize {
    for n in 0..500 {
        let body = enroll(url, from, token).await;
        if body["message"] == TOO_MANY {
            assert_eq!(body["code"], 400, "{body}");
            return n;
        }
        assert_eq!(body["code"], 200, "{body}");
    }
    panic!("500 enrollments from {from} and never refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_loopback_server_enrolls_without_a_limit() {
    let s = Server::start(&[]);
    for _ in 0..60 {
        let body = enroll(&s.url, "127.0.0.1", None).await;
        assert_eq!(body["code"], 200, "{body}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rate_is_per_client_address() {
    let s = Server::start(&["--enroll-rate", "1"]);
    // A burst of four seconds' worth (plus what refills meanwhile), then refused...
    let first = enrolled_until_refused(&s.url, "127.0.0.1", None).await;
    assert!(first >= 4, "{first}");
    // ... while another address still enrolls.
    let body = enroll(&s.url, "127.0.0.2", None).await;
    assert_eq!(body["code"], 200, "{body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn off_loopback_enrollment_is_limited_per_address_by_default_and_guessing_the_token_too() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["serve", "--listen", "0.0.0.0:0", "--data-dir"];
    let mut args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    args.push(dir.path().as_os_str());
    let s = Server::start_command(&args, &[]);
    let url = s.url.replace("0.0.0.0", "127.0.0.1");
    let log = s.log.lock().unwrap().clone();
    let token = log
        .lines()
        .find(|l| l.contains("enrollment token"))
        .and_then(|l| l.split_whitespace().last())
        .expect("a token server off loopback")
        .to_owned();
    // 5 a second with bursts of 20.
    let first = enrolled_until_refused(&url, "127.0.0.1", Some(&token)).await;
    assert!(first >= 20, "{first}");
    let body = enroll(&url, "127.0.0.2", Some(&token)).await;
    assert_eq!(body["code"], 200, "{body}");
    // Wrong tokens use up the guesser's budget as well.
    for _ in 0..20 {
        let body = enroll(&url, "127.0.0.3", Some("ehsm-enroll-guess")).await;
        assert_eq!(body["code"], 400, "{body}");
    }
    let mut refused = false;
    for _ in 0..100 {
        let body = enroll(&url, "127.0.0.3", Some("ehsm-enroll-guess")).await;
        if body["message"] == TOO_MANY {
            refused = true;
            break;
        }
    }
    assert!(refused, "a token guesser is never slowed down");
}
