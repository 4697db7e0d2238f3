//! One worker's keep-alive HTTP/1.1 connection: hyper's bare client connection over a TCP
//! socket, or over rustls for `https://`, with no pool, no redirects and no proxy. A load
//! generator that sends one request after another on one connection needs none of them, and
//! they were a good part of the client's CPU when bench sent through reqwest.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{CONTENT_TYPE, HOST, HeaderValue};
use hyper::http::uri::PathAndQuery;
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

type Body = Full<Bytes>;

/// Why a request got no answer. Only the kind is kept: the report counts failures by kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum SendError {
    /// No connection: TCP or TLS failed.
    Connect,
    /// The connection failed while sending or reading the answer.
    Transport,
    /// No whole answer within the request timeout.
    Timeout,
}

/// Where and how to connect: the server of a URL, with the TLS settings for `https://`.
pub(super) struct Endpoint {
    /// The host to connect to: a name or an IP address, without an IPv6 literal's brackets.
    host: String,
    port: u16,
    /// The `Host` header: the URL's host, and its port unless it is the scheme's default.
    host_header: HeaderValue,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
}

impl Endpoint {
    /// The server of `url` (an `http://` or `https://` URL), reached with `tls` for `https://`.
    /// Each request, connecting included, gets `timeout`.
    pub(super) fn new(
        url: &Uri,
        tls: impl FnOnce() -> anyhow::Result<rustls::ClientConfig>,
        timeout: Duration,
    ) -> anyhow::Result<Endpoint> {
        let Some(host) = url.host() else {
            bail!("the URL {url} has no host");
        };
        let https = match url.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => bail!("the URL {url} is neither https nor http"),
        };
        let host_header = match url.port_u16() {
            Some(port) => HeaderValue::try_from(format!("{host}:{port}")),
            None => HeaderValue::try_from(host),
        }
        .with_context(|| format!("the URL {url} has an invalid host"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tls = if https {
            let name = ServerName::try_from(host.clone())
                .with_context(|| format!("the URL {url} has an invalid host"))?;
            Some((TlsConnector::from(Arc::new(tls()?)), name))
        } else {
            None
        };
        Ok(Endpoint {
            host,
            port: url.port_u16().unwrap_or(if https { 443 } else { 80 }),
            host_header,
            tls,
            timeout,
        })
    }

    async fn connect(&self) -> Result<SendRequest<Body>, SendError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|_| SendError::Connect)?;
        // A request is written in one go and waits for its answer: Nagle's algorithm would only
        // hold the next one back.
        tcp.set_nodelay(true).map_err(|_| SendError::Connect)?;
        match &self.tls {
            None => handshake(tcp).await,
            Some((connector, name)) => {
                let tls = connector
                    .connect(name.clone(), tcp)
                    .await
                    .map_err(|_| SendError::Connect)?;
                handshake(tls).await
            }
        }
    }
}

/// Starts HTTP/1.1 on `io`. The connection's own task drives the socket and ends when the
/// connection is dropped or closed.
async fn handshake<T>(io: T) -> Result<SendRequest<Body>, SendError>
where
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| SendError::Connect)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A connection to an [`Endpoint`], opened at the first request and again after a failure.
pub(super) struct Connection {
    endpoint: Arc<Endpoint>,
    /// The open connection, ready for a request; `None` until connected, and after a failure.
    sender: Option<SendRequest<Body>>,
}

impl Connection {
    pub(super) fn new(endpoint: Arc<Endpoint>) -> Connection {
        Connection {
            endpoint,
            sender: None,
        }
    }

    /// Sends one request for `target` and reads the whole answer: a POST of the JSON `body`, or
    /// a GET without one.
    pub(super) async fn send(
        &mut self,
        target: &PathAndQuery,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes), SendError> {
        let request = self.request(target, body);
        tokio::time::timeout(self.endpoint.timeout, self.exchange(request))
            .await
            .unwrap_or(Err(SendError::Timeout))
    }

    fn request(&self, target: &PathAndQuery, body: Option<Vec<u8>>) -> Request<Body> {
        let post = body.is_some();
        let mut request = Request::new(Full::new(Bytes::from(body.unwrap_or_default())));
        // The origin form, path and query only, as a client talking to the server itself sends.
        *request.uri_mut() = Uri::from(target.clone());
        request
            .headers_mut()
            .insert(HOST, self.endpoint.host_header.clone());
        if post {
            *request.method_mut() = Method::POST;
            request
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        }
        request
    }

    /// The connection is taken out for the exchange and put back only after a whole answer, so
    /// that a failure, or a timeout that drops this future, leaves none to reuse.
    async fn exchange(&mut self, request: Request<Body>) -> Result<(StatusCode, Bytes), SendError> {
        let mut sender = self.ready().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|_| SendError::Transport)?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|_| SendError::Transport)?
            .to_bytes();
        self.sender = Some(sender);
        Ok((status, body))
    }

    /// The open connection, or a new one if there is none or the server has closed it between
    /// two requests (which HTTP/1.1 allows a server to do, and which is no failed request).
    async fn ready(&mut self) -> Result<SendRequest<Body>, SendError> {
        if let Some(mut sender) = self.sender.take()
            && sender.ready().await.is_ok()
        {
            return Ok(sender);
        }
        self.endpoint.connect().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::cli::conn::Trust;

    fn endpoint(url: &str) -> anyhow::Result<Endpoint> {
        let tls = || crate::bench::tls::client_config(&Trust::Insecure, None);
        Endpoint::new(&url.parse().unwrap(), tls, Duration::from_secs(1))
    }

    #[test]
    fn endpoints_take_host_port_and_host_header_from_the_url() {
        for (url, host, port, header, tls) in [
            (
                "http://127.0.0.1:9500/ehsm?Action=GetVersion",
                "127.0.0.1",
                9500,
                "127.0.0.1:9500",
                false,
            ),
            ("http://[::1]/ehsm", "::1", 80, "[::1]", false),
            (
                "https://localhost/kms/ehsm",
                "localhost",
                443,
                "localhost",
                true,
            ),
            ("https://[::1]:9000/ehsm", "::1", 9000, "[::1]:9000", true),
        ] {
            let e = endpoint(url).unwrap();
            assert_eq!((e.host.as_str(), e.port), (host, port), "{url}");
            assert_eq!(e.host_header, header, "{url}");
            assert_eq!(e.tls.is_some(), tls, "{url}");
        }
        assert!(endpoint("ftp://host/ehsm").is_err());
        assert!(endpoint("/ehsm?Action=GetVersion").is_err());
    }
}
