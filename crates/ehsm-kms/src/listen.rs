//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util's automatic builder), over TLS (rustls) or
//! plain TCP (`--http`), with limits on what a client connection may hold.
//!
//! - **At most `max_connections` at once** (a semaphore). Over the cap the loop stops accepting:
//!   new connections wait in the kernel's listen backlog until one closes, so the process never
//!   runs out of file descriptors and no open connection is disturbed.
//! - **A connection must deliver its first request within `header_timeout`** of being accepted,
//!   the TLS handshake included; on HTTP/1.1 every later request's headers too (hyper's header
//!   read timeout, which also closes a keep-alive connection left waiting that long).
//! - **A connection that moves no byte either way for `idle_timeout` is closed** (HTTP/2 too).
//! - **Graceful shutdown**: accepting stops, connections still in their TLS handshake are
//!   dropped, every other connection is asked to finish (HTTP/1.1 closes when its response is
//!   sent, HTTP/2 sends GOAWAY and finishes its open streams), and after [`GRACE`] whatever is
//!   left is closed.
//!
//! The client's address reaches the handlers as axum's [`ConnectInfo`] request extension.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How long a graceful shutdown waits for open connections before closing them.
pub(crate) const GRACE: Duration = Duration::from_secs(30);

/// What a client connection may hold (`ehsm serve --header-timeout-ms`, `--idle-timeout-ms`,
/// `--max-connections`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// How long a new connection has to deliver its first request (TLS handshake included), and
    /// an HTTP/1.1 connection each request's headers.
    pub header_timeout: Duration,
    /// A connection that moves no byte either way for this long is closed.
    pub idle_timeout: Duration,
    /// At most this many connections at once; `None`: [`default_max_connections`].
    pub max_connections: Option<usize>,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: None,
        }
    }
}

/// The connection cap when none is configured: half the process's soft limit on open files
/// (the other half is left for the database, logs and the rest), at most 4096. Under the usual
/// soft limit of 1024 that is 512; where the limit cannot be read (no `/proc`), 1024 is
/// assumed.
pub fn default_max_connections() -> usize {
    let soft = open_files_soft_limit().unwrap_or(1024);
    usize::try_from(soft / 2)
        .unwrap_or(usize::MAX)
        .clamp(1, 4096)
}

/// The soft `RLIMIT_NOFILE`, from `/proc/self/limits` (no system call wrapper needed).
fn open_files_soft_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    // "Max open files            1024                 1048576              files"
    let soft = line["Max open files".len()..].split_whitespace().next()?;
    match soft {
        "unlimited" => Some(u64::MAX),
        n => n.parse().ok(),
    }
}

/// Where an open connection stands in the server's life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Finish what is in flight, take nothing new.
    Draining,
    /// The grace period is over: close now.
    Closing,
}

/// Serves `app` on `listener` until `shutdown` completes, then shuts down gracefully.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let max = limits
        .max_connections
        .unwrap_or_else(default_max_connections)
        .clamp(1, MAX_CONNECTIONS);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let shared = Arc::new(Shared {
        builder,
        tls,
        app,
        limits,
    });
    let slots = Arc::new(Semaphore::new(max));
    let (phase, watching) = watch::channel(Phase::Serving);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut full = Throttled::default();
    let mut failing = Throttled::default();
    loop {
        let slot = match Arc::clone(&slots).try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                full.warn(|| {
                    tracing::warn!(
                        "{max} client connections open (max-connections): new connections wait \
                         until one closes"
                    );
                });
                tokio::select! {
                    slot = Arc::clone(&slots).acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (other files than connections) or a connection reset
                    // before it was accepted: wait a little rather than spin.
                    failing.warn(|| tracing::warn!(error = %e, "accepting a connection failed"));
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            stream,
            peer,
            Arc::clone(&shared),
            watching.clone(),
            slot,
        ));
    }
    drop(listener);
    tracing::info!(
        "stopping: no new connections; open ones finish what they are doing (at most {} s)",
        GRACE.as_secs()
    );
    let _ = phase.send(Phase::Draining);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(GRACE, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            "{} client connections still open after {} s: closing them",
            max - slots.available_permits(),
            GRACE.as_secs()
        );
        let _ = phase.send(Phase::Closing);
        let _ = slots.acquire_many(all).await;
    }
}

/// The largest `--max-connections` (the semaphore counts in `u32` when it waits for all).
pub const MAX_CONNECTIONS: usize = 1_000_000;

/// What every connection task shares.
struct Shared {
    builder: Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: ConnectionLimits,
}

/// One client connection, from the TLS handshake to its close; it holds one of the cap's slots.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut phase: watch::Receiver<Phase>,
    _slot: OwnedSemaphorePermit,
) {
    let activity = Arc::new(Activity::default());
    let io = Tracked {
        inner: stream,
        activity: Arc::clone(&activity),
    };
    let watchdog = watchdog(&activity, shared.limits);
    let mut watchdog = std::pin::pin!(watchdog);
    match &shared.tls {
        None => drive(io, peer, &shared, &activity, watchdog, phase).await,
        Some(acceptor) => {
            let tls = tokio::select! {
                tls = acceptor.accept(io) => match tls {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                },
                () = &mut watchdog => return,
                // Shutting down: a connection still shaking hands is simply dropped.
                _ = phase.changed() => return,
            };
            drive(tls, peer, &shared, &activity, watchdog, phase).await;
        }
    }
}

/// Serves HTTP on an established connection until it ends, the watchdog fires or shutdown
/// says so.
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    shared: &Shared,
    activity: &Arc<Activity>,
    mut watchdog: Pin<&mut impl Future<Output = ()>>,
    mut phase: watch::Receiver<Phase>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = shared.app.clone();
    let requested = Arc::clone(activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        requested.requested.store(true, Ordering::Relaxed);
        request.extensions_mut().insert(ConnectInfo(peer));
        app.clone().oneshot(request.map(axum::body::Body::new))
    });
    let conn = shared.builder.serve_connection(TokioIo::new(io), service);
    let mut conn = std::pin::pin!(conn);
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = &mut watchdog => {
                tracing::debug!(%peer, "connection closed: too slow or idle");
                return;
            }
            changed = phase.changed() => match (changed, *phase.borrow_and_update()) {
                (Ok(()), Phase::Draining) => conn.as_mut().graceful_shutdown(),
                (Ok(()), Phase::Serving) => {}
                (Ok(()), Phase::Closing) | (Err(_), _) => return,
            },
        }
    }
}

/// What the watchdog knows of a connection.
#[derive(Default)]
struct Activity {
    /// A byte was read or written since the watchdog last looked.
    moved: AtomicBool,
    /// A request has reached the service.
    requested: AtomicBool,
}

/// Completes when the connection should be closed: no first request within the header
/// timeout, or no byte moved for the idle timeout. The idle check looks four times per idle
/// timeout, so a connection is closed between 1 and 1.25 idle timeouts after its last byte;
/// the I/O path only sets a flag (no clock read per read or write).
async fn watchdog(activity: &Activity, limits: ConnectionLimits) {
    let first_request = async {
        tokio::time::sleep(limits.header_timeout).await;
        if activity.requested.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    let idle = async {
        const LOOKS: u32 = 4;
        let mut quiet = 0;
        let mut looks = tokio::time::interval(limits.idle_timeout / LOOKS);
        looks.tick().await;
        while quiet < LOOKS {
            looks.tick().await;
            if activity.moved.swap(false, Ordering::Relaxed) {
                quiet = 0;
            } else {
                quiet += 1;
            }
        }
    };
    tokio::select! {
        () = first_request => {}
        () = idle => {}
    }
}

/// A stream that tells its [`Activity`] when bytes move.
struct Tracked<T> {
    inner: T,
    activity: Arc<Activity>,
}

impl<T> Tracked<T> {
    fn moved(&self) {
        self.activity.moved.store(true, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.moved();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        result
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A warning logged at most once a minute, so that a flood cannot flood the log too.
#[derive(Default)]
struct Throttled(Option<Instant>);

impl Throttled {
    fn warn(&mut self, log: impl FnOnce()) {
        if self
            .0
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(60))
        {
            self.0 = Some(Instant::now());
            log();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn the_default_cap_leaves_half_the_descriptors() {
        let soft = open_files_soft_limit().unwrap();
        assert!(soft >= 1, "read {soft}");
        let max = default_max_connections();
        assert!(
            max <= 4096 && (max as u64) <= soft.div_ceil(2),
            "{max} of {soft}"
        );
    }
}
