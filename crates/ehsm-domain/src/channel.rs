//! The attested channel that carries domain keys between the roles of a domain: key server to
//! key server (worker from its upstream), key server to dkeycache (over TCP), and dkeycache to a
//! KMS node (over a Unix socket).
//!
//! Every hop is mutual RA-TLS ([`ehsm_tee::ratls`]): each side presents a fresh certificate
//! carrying its platform's evidence and accepts the other only if that evidence verifies and its
//! policy accepts the measurement. A peer without a client certificate, with unverifiable
//! evidence or with a measurement not on the allowlist fails the handshake and receives nothing.
//!
//! The protocol inside the channel is one request and one answer per connection:
//!
//! ```text
//! client → server   REQUEST ("EHSM-DK-GET v1\n")
//! server → client   status (1 byte: 0 keys, 1 unavailable) ‖ length (u32 BE) ‖ body
//! ```
//!
//! where the body is the domain keys in transfer form ([`DomainKeySet::to_transfer`]) or, for
//! "unavailable" (a worker or cache that has no keys yet), a UTF-8 reason. Keys are fetched
//! rarely (at start and every [`POLL_INTERVAL`]), so a connection per fetch costs nothing that
//! matters and leaves no long-lived state to get wrong.

use core::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use ehsm_core::DomainKeySet;
use ehsm_tee::Platform;
use ehsm_tee::ratls::{self, PeerIdentity, Verifier};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ServerConfig};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use zeroize::Zeroizing;

/// The one request a client sends.
const REQUEST: &[u8] = b"EHSM-DK-GET v1\n";
/// Answer status: the body is the domain keys.
const KEYS: u8 = 0;
/// Answer status: the server has no keys to give yet; the body says why.
const UNAVAILABLE: u8 = 1;
/// The largest answer body: a set of 1,800 versions, far more than any domain will rotate to.
const MAX_BODY: u32 = 64 * 1024;
/// How long a handshake and exchange may take before the connection is dropped, so that a peer
/// that connects and stays silent cannot hold a task forever.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often holders of the keys (workers, caches, KMS nodes) ask for them again, to learn a
/// rotation: a new version reaches every node within two intervals (cache, then node).
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);
/// RA-TLS certificates are valid for a day ([`ratls::VALIDITY`]); configurations are rebuilt,
/// with fresh evidence, after half of that.
const RENEW_AFTER: Duration = Duration::from_secs(12 * 3600);
/// The name a client gives in its handshake. RA-TLS checks no names (the peer's identity is its
/// measurement), but TLS needs one.
const SERVER_NAME: &str = "ehsm-domain";

/// Where a peer listens: `HOST:PORT` over TCP, or `unix:PATH`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// A TCP address, as `HOST:PORT` (resolved at each connection).
    Tcp(String),
    /// A Unix socket.
    Unix(PathBuf),
}

impl Endpoint {
    /// Reads `unix:PATH` or `HOST:PORT`.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if let Some(path) = text.strip_prefix("unix:") {
            if path.is_empty() {
                bail!("'{text}': unix: needs a socket path, e.g. unix:/run/ehsm/dkeycache.sock");
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        match text.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                Ok(Endpoint::Tcp(text.to_owned()))
            }
            _ => bail!("'{text}' is not HOST:PORT or unix:PATH"),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => f.write_str(addr),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

/// This process's side of RA-TLS: its platform (for its own evidence) and its verifier (for its
/// peers'), with the TLS configurations built from them and renewed before their certificates
/// expire.
pub struct Tls {
    platform: Arc<dyn Platform>,
    verifier: Arc<Verifier>,
    server: Mutex<Option<(Instant, Arc<ServerConfig>)>>,
    client: Mutex<Option<(Instant, Arc<ClientConfig>)>>,
}

impl Tls {
    /// RA-TLS for `platform`, accepting the peers `verifier` accepts.
    pub fn new(platform: Arc<dyn Platform>, verifier: Arc<Verifier>) -> Self {
        Self {
            platform,
            verifier,
            server: Mutex::new(None),
            client: Mutex::new(None),
        }
    }

    /// The verifier of peers' evidence.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    fn server_config(&self) -> anyhow::Result<Arc<ServerConfig>> {
        renewed(&self.server, || {
            ratls::server_config(&*self.platform, Arc::clone(&self.verifier))
        })
    }

    fn client_config(&self) -> anyhow::Result<Arc<ClientConfig>> {
        renewed(&self.client, || {
            ratls::client_config(&*self.platform, Arc::clone(&self.verifier))
        })
    }
}

/// The configuration in `slot`, built again by `build` if it is missing or older than
/// [`RENEW_AFTER`].
fn renewed<C>(
    slot: &Mutex<Option<(Instant, Arc<C>)>>,
    build: impl FnOnce() -> Result<C, ratls::RatlsError>,
) -> anyhow::Result<Arc<C>> {
    let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some((built, config)) = &*slot
        && built.elapsed() < RENEW_AFTER
    {
        return Ok(Arc::clone(config));
    }
    let config = Arc::new(build().context("issuing this process's RA-TLS certificate")?);
    *slot = Some((Instant::now(), Arc::clone(&config)));
    Ok(config)
}

/// Fetches the domain keys from the server at `endpoint` over RA-TLS.
pub async fn fetch(endpoint: &Endpoint, tls: &Tls) -> anyhow::Result<DomainKeySet> {
    let exchange = async {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let stream = TcpStream::connect(addr.as_str())
                    .await
                    .with_context(|| format!("connecting to {addr}"))?;
                fetch_over(stream, tls).await
            }
            Endpoint::Unix(path) => {
                let stream = UnixStream::connect(path)
                    .await
                    .with_context(|| format!("connecting to {}", path.display()))?;
                fetch_over(stream, tls).await
            }
        }
    };
    tokio::time::timeout(EXCHANGE_TIMEOUT, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer within {EXCHANGE_TIMEOUT:?}"))?
        .with_context(|| format!("fetching the domain keys from {endpoint}"))
}

async fn fetch_over<S>(stream: S, tls: &Tls) -> anyhow::Result<DomainKeySet>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let connector = tokio_rustls::TlsConnector::from(tls.client_config()?);
    let name = ServerName::try_from(SERVER_NAME).context("the RA-TLS server name")?;
    let mut stream = connector
        .connect(name, stream)
        .await
        .map_err(|e| handshake_error(&e, "the server"))?;
    stream.write_all(REQUEST).await?;
    stream.flush().await?;
    // In TLS 1.3 the server checks the client's certificate after the client has finished its
    // handshake, so a refusal of this process's evidence arrives as an alert on the first read.
    let status = stream.read_u8().await.map_err(|e| {
        let alert = e
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .is_some_and(|e| matches!(e, rustls::Error::AlertReceived(_)));
        if alert {
            anyhow::anyhow!(
                "the server refused this process's RA-TLS certificate ({e}): its policy does not \
                 accept this process's evidence; its log says which rule"
            )
        } else {
            anyhow::Error::new(e).context("the server closed the connection without answering")
        }
    })?;
    let len = stream.read_u32().await?;
    if len > MAX_BODY {
        bail!("the server's answer is too long ({len} bytes)");
    }
    let mut body = Zeroizing::new(vec![0u8; len as usize]);
    stream.read_exact(&mut body).await?;
    match status {
        KEYS => DomainKeySet::from_transfer(&body)
            .context("the server's answer is not a domain-key set"),
        UNAVAILABLE => bail!(
            "the server has no domain keys to give yet: {}",
            String::from_utf8_lossy(&body)
        ),
        other => bail!("the server answered with an unknown status {other}"),
    }
}

/// A failed handshake, with the RA-TLS reason when that is why (the peer's evidence or policy).
fn handshake_error(error: &std::io::Error, peer: &str) -> anyhow::Error {
    let reason = error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
        .map(|e| match ratls::refusal(e) {
            Some(refused) => format!("{peer}'s RA-TLS evidence was refused: {refused}"),
            None => format!("TLS handshake with {peer} failed: {e}"),
        });
    anyhow::anyhow!(reason.unwrap_or_else(|| format!("TLS handshake with {peer} failed: {error}")))
}

/// The domain keys a server hands out, replaced whole when a newer set arrives.
#[derive(Default)]
pub struct Held(Mutex<Option<Arc<DomainKeySet>>>);

impl Held {
    /// Holding `keys` from the start.
    pub fn new(keys: DomainKeySet) -> Self {
        Self(Mutex::new(Some(Arc::new(keys))))
    }

    /// The keys held now, if any.
    pub fn get(&self) -> Option<Arc<DomainKeySet>> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes `received` if it is the first set or a newer set of the same domain; returns
    /// whether it did. A set of another domain is an error and changes nothing.
    pub fn offer(&self, received: DomainKeySet) -> anyhow::Result<bool> {
        use ehsm_core::Succession;
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let succession = held
            .as_ref()
            .map_or(Succession::Replace, |h| h.succession(&received));
        match succession {
            Succession::Keep => Ok(false),
            Succession::Replace => {
                *held = Some(Arc::new(received));
                Ok(true)
            }
            Succession::Foreign => bail!(
                "refusing domain keys of another domain (fingerprint {}; this one's is {})",
                received.fingerprint(),
                held.as_ref().map_or_else(String::new, |h| h.fingerprint())
            ),
        }
    }
}

/// A listening socket of a server role.
pub enum Listener {
    /// TCP (the key servers).
    Tcp(TcpListener),
    /// A Unix socket (the dkeycache).
    Unix(UnixListener),
}

impl Listener {
    /// Where it listens, for logs.
    pub fn describe(&self) -> String {
        match self {
            Listener::Tcp(l) => l
                .local_addr()
                .map_or_else(|_| "tcp".to_owned(), |a| a.to_string()),
            Listener::Unix(l) => l
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| format!("unix:{}", p.display())))
                .unwrap_or_else(|| "unix".to_owned()),
        }
    }
}

/// Serves `held` to every peer that passes RA-TLS, until the task is dropped. `role` names this
/// server in its logs. Each release and each refusal is logged with the peer (its address, or
/// its process on a Unix socket) and, once verified, its measured identity; never the keys.
pub async fn serve(listener: Listener, tls: Arc<Tls>, held: Arc<Held>, role: &'static str) {
    loop {
        let accepted = match &listener {
            Listener::Tcp(l) => l.accept().await.map(|(s, addr)| {
                let _ = s.set_nodelay(true);
                (Conn::Tcp(s), addr.to_string())
            }),
            Listener::Unix(l) => l.accept().await.map(|(s, _)| {
                let peer = s.peer_cred().map_or_else(
                    |_| "local process".to_owned(),
                    |c| format!("local process pid={:?} uid={}", c.pid(), c.uid()),
                );
                (Conn::Unix(s), peer)
            }),
        };
        let (conn, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors, typically: wait instead of spinning.
                tracing::warn!(error = %e, "{role}: accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let (tls, held) = (Arc::clone(&tls), Arc::clone(&held));
        tokio::spawn(async move {
            let exchange = async {
                match conn {
                    Conn::Tcp(s) => answer(s, &tls, &held).await,
                    Conn::Unix(s) => answer(s, &tls, &held).await,
                }
            };
            match tokio::time::timeout(EXCHANGE_TIMEOUT, exchange).await {
                Ok(Ok(Answer::Released { identity, keys })) => tracing::info!(
                    %peer,
                    peer_identity = %identity,
                    versions = ?keys.versions().collect::<Vec<_>>(),
                    fingerprint = %keys.fingerprint(),
                    "{role}: released the domain keys"
                ),
                Ok(Ok(Answer::Unavailable { identity })) => tracing::warn!(
                    %peer,
                    peer_identity = %identity,
                    "{role}: no domain keys to release yet"
                ),
                Ok(Err(e)) => tracing::warn!(%peer, "{role}: refused: {e:#}"),
                Err(_) => {
                    tracing::warn!(%peer, "{role}: refused: no request within {EXCHANGE_TIMEOUT:?}")
                }
            }
        });
    }
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
}

enum Answer {
    Released {
        identity: PeerIdentity,
        keys: Arc<DomainKeySet>,
    },
    Unavailable {
        identity: PeerIdentity,
    },
}

async fn answer<S>(stream: S, tls: &Tls, held: &Held) -> anyhow::Result<Answer>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config()?);
    let mut stream = acceptor
        .accept(stream)
        .await
        .map_err(|e| handshake_error(&e, "the client"))?;
    // The handshake verified the client's certificate; verifying it again gives its identity
    // for the log line of this release.
    let identity = tls
        .verifier
        .verify_peer(stream.get_ref().1.peer_certificates())
        .context("the client's RA-TLS certificate")?;
    let mut request = [0u8; REQUEST.len()];
    stream
        .read_exact(&mut request)
        .await
        .context("reading the request")?;
    if request != REQUEST {
        bail!("unknown request from {identity}");
    }
    let answer = match held.get() {
        Some(keys) => {
            write_frame(&mut stream, KEYS, &keys.to_transfer()).await?;
            Answer::Released { identity, keys }
        }
        None => {
            let reason = b"this server has not received the domain keys from its upstream yet";
            write_frame(&mut stream, UNAVAILABLE, reason).await?;
            Answer::Unavailable { identity }
        }
    };
    stream.shutdown().await?;
    Ok(answer)
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    status: u8,
    body: &[u8],
) -> anyhow::Result<()> {
    let len = u32::try_from(body.len()).context("answer too long")?;
    let mut frame = Zeroizing::new(Vec::with_capacity(5 + body.len()));
    frame.push(status);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    stream.write_all(&frame).await?;
    stream.flush().await?;
    Ok(())
}

/// Binds a TCP listener for a key server.
pub async fn bind_tcp(addr: SocketAddr) -> anyhow::Result<Listener> {
    Ok(Listener::Tcp(
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding {addr}"))?,
    ))
}

/// Binds the dkeycache's Unix socket at `path`: its directory is created (mode 0755) if missing,
/// and a socket file left by an earlier run is replaced, but any other file is refused.
pub fn bind_unix(path: &std::path::Path) -> anyhow::Result<Listener> {
    use std::os::unix::fs::FileTypeExt as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => std::fs::remove_file(path)
            .with_context(|| format!("removing the old socket {}", path.display()))?,
        Ok(_) => bail!(
            "{} exists and is not a socket: refusing to replace it",
            path.display()
        ),
        Err(_) => {}
    }
    Ok(Listener::Unix(
        UnixListener::bind(path).with_context(|| format!("binding {}", path.display()))?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert_eq!(
            Endpoint::parse("unix:/run/ehsm/dkeycache.sock").unwrap(),
            Endpoint::Unix("/run/ehsm/dkeycache.sock".into())
        );
        assert_eq!(
            Endpoint::parse("keys.example:8888").unwrap(),
            Endpoint::Tcp("keys.example:8888".into())
        );
        assert_eq!(
            Endpoint::parse("[::1]:8888").unwrap(),
            Endpoint::Tcp("[::1]:8888".into())
        );
        for bad in [
            "unix:",
            "keys.example",
            ":8888",
            "host:port",
            "host:70000",
            "",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn held_keys_move_forward_only_within_one_domain() {
        let first = DomainKeySet::generate().unwrap();
        let transfer = first.to_transfer();
        let held = Held::default();
        assert!(held.get().is_none());
        assert!(held.offer(first).unwrap());
        let mut rotated = DomainKeySet::from_transfer(&transfer).unwrap();
        rotated.rotate().unwrap();
        assert!(held.offer(rotated).unwrap());
        assert_eq!(held.get().unwrap().current_version(), 2);
        // An older set of the same domain: kept as is.
        assert!(
            !held
                .offer(DomainKeySet::from_transfer(&transfer).unwrap())
                .unwrap()
        );
        assert_eq!(held.get().unwrap().current_version(), 2);
        // Another domain: refused.
        let mut other = DomainKeySet::generate().unwrap();
        other.rotate().unwrap();
        other.rotate().unwrap();
        assert!(held.offer(other).is_err());
        assert_eq!(held.get().unwrap().current_version(), 2);
    }
}
