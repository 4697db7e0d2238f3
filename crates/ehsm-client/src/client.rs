//! The client, its builder, and the one signed call every action goes through.

use core::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ehsm_proto::Action;
use reqwest::header::CONTENT_TYPE;
use reqwest::{StatusCode, Url};
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::prepared::PreparedRequest;

/// An appid and its API key, as issued by [`Client::enroll`].
///
/// `Debug` prints the appid only: the API key signs every request, so it must not end up in logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The application id (a lower-case UUID upstream).
    pub appid: String,
    /// The API key, the HMAC-SHA256 key for request signatures (32 characters upstream).
    pub apikey: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("appid", &self.appid)
            .field("apikey", &"<redacted>")
            .finish()
    }
}

/// The server's version, from [`Client::get_version`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub struct Version {
    /// The eHSM-KMS version the server is compatible with, e.g. `"0.3.2"`.
    pub version: String,
    /// The server's short git commit.
    pub git_sha: String,
}

/// Configures a [`Client`]; made by [`Client::builder`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    url: String,
    credentials: Option<Credentials>,
    accept_invalid_certs: bool,
    ca_certificate: Option<Vec<u8>>,
    timeout: Option<Duration>,
    #[cfg(feature = "attest")]
    server_key: Option<[u8; 32]>,
}

impl ClientBuilder {
    /// The appid and API key that sign every request except [`Client::enroll`] and
    /// [`Client::get_version`].
    pub fn credentials(mut self, appid: impl Into<String>, apikey: impl Into<String>) -> Self {
        self.credentials = Some(Credentials {
            appid: appid.into(),
            apikey: apikey.into(),
        });
        self
    }

    /// Accepts any server certificate, including ehsm's generated self-signed one, and so gives
    /// up all protection against an impostor or eavesdropper on the network. Off by default.
    ///
    /// Upstream's Go and Rust SDKs always did this; here it has to be asked for, by a name a
    /// reviewer will notice.
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Trusts the server certificate(s) in `pem`, and only those: the system's root certificates
    /// are then not used. Meant for ehsm's generated self-signed certificate (the data
    /// directory's `tls-cert.pem`) or a private CA; a PEM bundle of several certificates is
    /// accepted. The server's name must still match the certificate (ehsm's is made for
    /// `localhost` and `127.0.0.1`).
    ///
    /// Unlike [`ClientBuilder::danger_accept_invalid_certs`], this keeps the connection
    /// authenticated. If both are set, `danger_accept_invalid_certs(true)` wins.
    pub fn ca_certificate(mut self, pem: &[u8]) -> Self {
        self.ca_certificate = Some(pem.to_vec());
        self
    }

    /// Accepts only a server whose TLS certificate carries the key with this SHA-256 (of its
    /// DER `SubjectPublicKeyInfo`): the `key_sha256` that [`Client::attest`] returned. Every
    /// connection is then checked against the attested key, and a server presenting another
    /// one is refused before anything is sent, with [`Error::ServerKeyChanged`].
    ///
    /// The pin **replaces** the certificate checks: the CA chain (system roots or
    /// [`ClientBuilder::ca_certificate`]), the server name and the validity dates are not
    /// checked, and [`ClientBuilder::danger_accept_invalid_certs`] has no effect. The handshake
    /// signatures still are, so the server must hold the pinned key's private key. Needs an
    /// `https://` URL.
    #[cfg(feature = "attest")]
    pub fn pin_server_key(mut self, sha256: [u8; 32]) -> Self {
        self.server_key = Some(sha256);
        self
    }

    /// A limit on each whole request, from connecting to reading the answer. None by default.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Builds the client.
    ///
    /// The URL is the server's base, e.g. `https://127.0.0.1:9000`; requests go to
    /// `<url>/ehsm?Action=<Name>`. A URL that already ends in `/ehsm` (as in upstream's docs)
    /// is used as is.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidConfig`] for a URL that does not parse, is not `http`/`https`, or carries a
    /// query or fragment, for empty credentials, for a [`ClientBuilder::ca_certificate`]
    /// without a valid PEM certificate, and for a pinned key with an `http://` URL;
    /// [`Error::Transport`] if the HTTP client cannot be set up.
    pub fn build(self) -> Result<Client> {
        let endpoint = endpoint(&self.url)?;
        if let Some(c) = &self.credentials
            && (c.appid.is_empty() || c.apikey.is_empty())
        {
            return Err(Error::InvalidConfig(
                "the appid and apikey must not be empty".into(),
            ));
        }
        // Every answer carries its connection's certificate, for Client::attest (a copy of a
        // kilobyte per answer, next to the JSON it carries).
        let mut http = reqwest::Client::builder()
            .tls_info(cfg!(feature = "attest"))
            .tls_danger_accept_invalid_certs(self.accept_invalid_certs);
        if let Some(pem) = &self.ca_certificate {
            http = http.tls_certs_only(ca_certificates(pem)?);
        }
        #[cfg(feature = "attest")]
        if let Some(key) = self.server_key {
            if endpoint.scheme() != "https" {
                return Err(Error::InvalidConfig(format!(
                    "server URL {:?}: a pinned server key needs https (plain HTTP has no key to \
                     check)",
                    self.url
                )));
            }
            http = http.tls_backend_preconfigured(crate::pin::tls_config(key)?);
        }
        if let Some(t) = self.timeout {
            http = http.timeout(t);
        }
        Ok(Client {
            http: http.build()?,
            endpoint,
            credentials: self.credentials.map(Arc::new),
        })
    }
}

/// The certificates of a PEM text, refusing text with none (reqwest would accept it and then
/// trust nothing, so the mistake would only show as a TLS failure at the first call).
fn ca_certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>> {
    let certs = reqwest::Certificate::from_pem_bundle(pem)
        .map_err(|e| Error::InvalidConfig(format!("the CA certificate is not valid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(Error::InvalidConfig(
            "the CA certificate PEM holds no CERTIFICATE block".into(),
        ));
    }
    Ok(certs)
}

/// `<base>/ehsm`, without doubling an `/ehsm` the caller already wrote.
pub(crate) fn endpoint(base: &str) -> Result<Url> {
    let mut url =
        Url::parse(base).map_err(|e| Error::InvalidConfig(format!("server URL {base:?}: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::InvalidConfig(format!(
            "server URL {base:?}: the scheme must be https or http"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(Error::InvalidConfig(format!(
            "server URL {base:?}: give the base URL without a query or fragment"
        )));
    }
    let path = url.path().trim_end_matches('/');
    let path = if path.ends_with("/ehsm") {
        path.to_owned()
    } else {
        format!("{path}/ehsm")
    };
    url.set_path(&path);
    Ok(url)
}

/// An ehsm (or eHSM-KMS 0.3.2) client.
///
/// Cloning is cheap and the clones share one connection pool, so make one client and clone it
/// into tasks. Calls may run concurrently: each request carries a fresh random nonce, which is
/// what keeps two identical requests sent in the same millisecond from being refused as replays
/// (spec §3.3).
#[derive(Clone, Debug)]
pub struct Client {
    pub(crate) http: reqwest::Client,
    pub(crate) endpoint: Url,
    pub(crate) credentials: Option<Arc<Credentials>>,
}

impl Client {
    /// Starts configuring a client for the server at `url`; see [`ClientBuilder::build`].
    pub fn builder(url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            url: url.into(),
            credentials: None,
            accept_invalid_certs: false,
            ca_certificate: None,
            timeout: None,
            #[cfg(feature = "attest")]
            server_key: None,
        }
    }

    /// The same client (same server, settings and connection pool) signing with `credentials`;
    /// handy after [`Client::enroll`].
    pub fn with_credentials(&self, credentials: Credentials) -> Client {
        Client {
            credentials: Some(Arc::new(credentials)),
            ..self.clone()
        }
    }

    /// Registers a new application and returns its appid and API key (`GET ?Action=Enroll`, no
    /// authentication).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn enroll(&self) -> Result<Credentials> {
        enrolled(self.get(Action::Enroll, None).await?)
    }

    /// As [`Client::enroll`], presenting the operator's enrollment token as
    /// `Authorization: Bearer <token>`: an ehsm server that listens on a non-loopback address
    /// only enrolls clients that have it (`ehsm serve --enroll token`, the token is printed at
    /// the server's first start). Upstream eHSM-KMS ignores the header.
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`]. A wrong or missing token is an [`Error::Api`] with code 400.
    pub async fn enroll_with_token(&self, token: &str) -> Result<Credentials> {
        enrolled(self.get(Action::Enroll, Some(token)).await?)
    }

    /// The server's version (`GET ?Action=GetVersion`, no authentication).
    ///
    /// # Errors
    ///
    /// As every call: see [`Error`].
    pub async fn get_version(&self) -> Result<Version> {
        self.get(Action::GetVersion, None).await?.parse()
    }

    /// Where `action` is sent: `<url>/ehsm?Action=<Name>`. For callers that send
    /// [`PreparedRequest`]s with their own HTTP stack.
    pub fn action_url(&self, action: Action) -> Url {
        let mut url = self.endpoint.clone();
        url.set_query(Some(&format!("Action={}", action.as_str())));
        url
    }

    async fn get(&self, action: Action, bearer: Option<&str>) -> Result<Reply> {
        let mut request = self.http.get(self.action_url(action));
        if let Some(token) = bearer {
            request = request.bearer_auth(token);
        }
        read_reply(action, request.send().await?).await
    }

    /// Signs `payload` into an envelope, posts it, and returns the `result` of a code-200 answer.
    /// An empty payload object is left out of the envelope, as upstream's Rust SDK does.
    pub(crate) async fn call(&self, action: Action, payload: Value) -> Result<Reply> {
        let credentials = self.credentials.as_deref().ok_or_else(|| {
            Error::InvalidConfig(format!(
                "{} needs credentials: call ClientBuilder::credentials or Client::with_credentials",
                action.as_str()
            ))
        })?;
        let body = PreparedRequest::new(credentials, action, payload).signed_body_now();
        let response = self
            .http
            .post(self.action_url(action))
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await?;
        read_reply(action, response).await
    }
}

fn enrolled(reply: Reply) -> Result<Credentials> {
    Ok(Credentials {
        appid: reply.string("appid")?,
        apikey: reply.string("apikey")?,
    })
}

async fn read_reply(action: Action, response: reqwest::Response) -> Result<Reply> {
    let status = response.status();
    let body = response.bytes().await?;
    decode_envelope(action, status, &body)
}

/// Reads the answer envelope of spec §2.2, `{code, message, result}`, which ehsm always sends with
/// HTTP status 200, and returns the `result` of a code-200 answer.
pub(crate) fn decode_envelope(action: Action, status: StatusCode, body: &[u8]) -> Result<Reply> {
    let result = open_envelope(action, status, body)?;
    Ok(Reply { action, result })
}

/// Checks an answer to `action` as every call of the SDK does, without keeping its `result`:
/// `Ok` for HTTP status 200 with body code 200, [`Error::Api`] with the body's code and message
/// for a refusal, and [`Error::Decode`] for anything else. For callers that send
/// [`PreparedRequest`]s with their own HTTP stack and only need to know that a request
/// succeeded; the `result` is skipped, not parsed into values.
///
/// # Errors
///
/// [`Error::Api`] and [`Error::Decode`], as above.
pub fn check_reply(action: Action, status: StatusCode, body: &[u8]) -> Result<()> {
    open_envelope::<IgnoredAny>(action, status, body).map(drop)
}

/// The answer envelope; `R` is what `result` is read into.
#[derive(serde::Deserialize)]
struct Envelope<R> {
    code: i64,
    // Upstream leaves `message` out for an unknown appid (spec §2.4 step 9a).
    #[serde(default)]
    message: Option<Value>,
    #[serde(default)]
    result: R,
}

/// The `result` of a code-200 answer, read into `R`; the refusal of any other code.
fn open_envelope<R: DeserializeOwned + Default>(
    action: Action,
    status: StatusCode,
    body: &[u8],
) -> Result<R> {
    // Only for errors: a load generator reads many answers and must not pay for this.
    let snippet = || String::from_utf8_lossy(&body[..body.len().min(200)]);
    if status != StatusCode::OK {
        return Err(Error::Decode(format!(
            "{}: HTTP status {status} (ehsm always answers 200); body: {:?}",
            action.as_str(),
            snippet()
        )));
    }
    let not_envelope = |why: &dyn fmt::Display| {
        Error::Decode(format!(
            "{}: the body is not an ehsm {{code, message, result}} envelope ({why}); body: {:?}",
            action.as_str(),
            snippet()
        ))
    };
    // A derived struct also accepts a JSON array of its fields, which no server sends.
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(not_envelope(&"not a JSON object"));
    }
    let envelope: Envelope<R> = serde_json::from_slice(body).map_err(|e| not_envelope(&e))?;
    if envelope.code != 200 {
        let message = match envelope.message {
            Some(Value::String(message)) => message,
            None => String::new(),
            Some(other) => other.to_string(),
        };
        return Err(Error::Api {
            code: envelope.code,
            message,
        });
    }
    Ok(envelope.result)
}

/// The `result` of a successful answer, with typed accessors whose errors name the action and
/// the field.
#[derive(Debug)]
pub(crate) struct Reply {
    action: Action,
    result: Value,
}

impl Reply {
    fn field(&self, name: &str, expected: &str) -> Error {
        Error::Decode(format!(
            "{}: result.{name} missing or not {expected}",
            self.action.as_str()
        ))
    }

    /// A string field.
    pub(crate) fn string(&self, name: &str) -> Result<String> {
        self.result
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| self.field(name, "a string"))
    }

    /// A base64 field, decoded.
    pub(crate) fn bytes(&self, name: &str) -> Result<Vec<u8>> {
        let text = self
            .result
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| self.field(name, "a string"))?;
        STANDARD
            .decode(text)
            .map_err(|_| self.field(name, "valid base64"))
    }

    /// A boolean field.
    pub(crate) fn bool(&self, name: &str) -> Result<bool> {
        self.result
            .get(name)
            .and_then(Value::as_bool)
            .ok_or_else(|| self.field(name, "a boolean"))
    }

    /// An integer field that fits a `u32`, such as a key version.
    pub(crate) fn u32(&self, name: &str) -> Result<u32> {
        self.result
            .get(name)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| self.field(name, "an integer from 0 to 2^32-1"))
    }

    /// An integer field, such as a time in milliseconds since the epoch.
    pub(crate) fn i64(&self, name: &str) -> Result<i64> {
        self.result
            .get(name)
            .and_then(Value::as_i64)
            .ok_or_else(|| self.field(name, "an integer"))
    }

    /// The whole result.
    pub(crate) fn result(&self) -> &Value {
        &self.result
    }

    /// The whole result as `T`.
    pub(crate) fn parse<T: DeserializeOwned>(self) -> Result<T> {
        serde_json::from_value(self.result)
            .map_err(|e| Error::Decode(format!("{}: unexpected result: {e}", self.action.as_str())))
    }
}

/// Standard base64 with padding, as the wire carries all binary fields.
pub(crate) fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}
