//! The SDK's connection options against the real server: trusting its generated certificate with
//! `ClientBuilder::ca_certificate`, and enrolling on a token server with
//! `Client::enroll_with_token`. (Their unit tests in `ehsm-client` use a fake plain-HTTP server.)
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failure report

mod util;

use std::time::Duration;

use ehsm_client::{Client, Error};
use util::Server;

/// The server's generated certificate, once written (`ehsm serve` logs its address first).
fn cert_pem(server: &Server) -> Vec<u8> {
    let path = server.data_dir.join("tls-cert.pem");
    for _ in 0..200 {
        if let Ok(pem) = std::fs::read(&path)
            && pem.windows(25).any(|w| w == b"-----END CERTIFICATE-----")
        {
            return pem;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("{} was not written", path.display());
}

#[tokio::test(flavor = "multi_thread")]
async fn ca_certificate_trusts_exactly_the_given_certificate() {
    let s = Server::start(&[]);
    let other = Server::start(&[]);
    let pem = cert_pem(&s);

    let trusted = Client::builder(&s.url)
        .ca_certificate(&pem)
        .build()
        .unwrap();
    assert_eq!(trusted.get_version().await.unwrap().version, "0.3.2");
    let creds = trusted.enroll().await.unwrap();
    let app = trusted.with_credentials(creds);
    assert!(
        app.list_keys().await.unwrap().is_empty(),
        "signed calls over the trusted connection"
    );

    // The certificate is issued for localhost as well as 127.0.0.1.
    let localhost = s.url.replace("127.0.0.1", "localhost");
    let by_name = Client::builder(&localhost)
        .ca_certificate(&pem)
        .build()
        .unwrap();
    by_name.get_version().await.unwrap();

    // Without it the self-signed certificate is refused; another server's does not help.
    let default = Client::builder(&s.url).build().unwrap();
    assert!(matches!(
        default.get_version().await,
        Err(Error::Transport(_))
    ));
    let wrong = Client::builder(&s.url)
        .ca_certificate(&cert_pem(&other))
        .build()
        .unwrap();
    assert!(matches!(
        wrong.get_version().await,
        Err(Error::Transport(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn enroll_with_token_is_needed_on_a_token_server() {
    let s = Server::start(&["--enroll", "token"]);
    let log = s.log.lock().unwrap().clone();
    let token = log
        .lines()
        .find_map(|l| l.split("Bearer <token>'): ").nth(1))
        .expect("the server prints its enrollment token")
        .trim()
        .to_owned();
    let c = s.client();
    let refused = |r: Result<_, Error>| matches!(r, Err(Error::Api { code: 400, .. }));
    assert!(refused(c.enroll().await), "no token");
    assert!(
        refused(c.enroll_with_token("ehsm-enroll-wrong").await),
        "wrong token"
    );
    let creds = c.enroll_with_token(&token).await.unwrap();
    assert_eq!(creds.apikey.len(), 32);
    let app = c.with_credentials(creds);
    assert!(app.list_keys().await.unwrap().is_empty());
}
