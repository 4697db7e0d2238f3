//! The accept loop: HTTP/1.1 and HTTP/2 (hyper-util's automatic builder), over TLS (rustls) or
//! plain TCP (`--http`), with limits on what a client connection may hold.
//!
//! - **At most `max_connections` at once** (a semaphore). Over the cap the loop stops accepting:
//!   new connections wait in the kernel's listen backlog until one closes, so the process never
//!   runs out of file descriptors and no open connection is disturbed.
//! - **A connection must deliver its first request within `header_timeout`** of being accepted,
//!   the TLS handshake included; on HTTP/1.1 also each next one, counted from the end of the
//!   previous (so a keep-alive connection left waiting that long is closed too).
//! - **A connection that moves no byte either way for `idle_timeout` is closed** (HTTP/2 too,
//!   with a GOAWAY first if it has served a request, so that the client stops using it).
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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioExecutor, TokioIo};
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
    // The watchdog times headers: hyper's own header timer costs a timer per request.
    builder.http1().header_read_timeout(None);
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
    let counted = Arc::clone(activity);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<_>| {
        let busy = Busy::start(&counted, request.version() == hyper::Version::HTTP_2);
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = app.clone().oneshot(request.map(axum::body::Body::new));
        async move {
            let response = response.await;
            drop(busy);
            response
        }
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
                tracing::debug!(%peer, "closing a connection: too slow or idle");
                let served = activity.requests.load(Ordering::Relaxed) > 0;
                if served {
                    // A client that has been served is told (HTTP/2: GOAWAY), so that it does
                    // not send its next request into a connection being closed; it has the
                    // header timeout to let go.
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(shared.limits.header_timeout, conn.as_mut()).await;
                }
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
    /// Requests that reached the service.
    requests: AtomicU64,
    /// Of those, the ones not answered yet.
    in_flight: AtomicU64,
    /// The connection speaks HTTP/2 (known from its first request).
    h2: AtomicBool,
}

/// A request being answered: counted from the service's call until its response is ready.
struct Busy(Arc<Activity>);

impl Busy {
    fn start(activity: &Arc<Activity>, h2: bool) -> Self {
        activity.requests.fetch_add(1, Ordering::Relaxed);
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        if h2 {
            activity.h2.store(true, Ordering::Relaxed);
        }
        Self(Arc::clone(activity))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Completes when the connection should be closed: no byte moved for the idle timeout, or a
/// request awaited for the header timeout (the first one; on HTTP/1.1 also the next one while
/// none is being answered). It looks four times per shorter timeout, so a connection is
/// closed at most a quarter of that late; the I/O path only sets a flag and the service counts
/// requests (no clock read, no timer per request).
async fn watchdog(activity: &Activity, limits: ConnectionLimits) {
    const LOOKS: u32 = 4;
    let every = limits.header_timeout.min(limits.idle_timeout) / LOOKS;
    let looks_in = |timeout: Duration| timeout.as_nanos().div_ceil(every.as_nanos().max(1));
    let (idle_after, waiting_after) = (
        looks_in(limits.idle_timeout),
        looks_in(limits.header_timeout),
    );
    let mut looks = tokio::time::interval(every);
    looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    looks.tick().await;
    let (mut quiet, mut waiting, mut seen) = (0, 0, 0);
    loop {
        looks.tick().await;
        quiet = if activity.moved.swap(false, Ordering::Relaxed) {
            0
        } else {
            quiet + 1
        };
        let requests = activity.requests.load(Ordering::Relaxed);
        let awaited = requests == 0
            || (requests == seen
                && activity.in_flight.load(Ordering::Relaxed) == 0
                && !activity.h2.load(Ordering::Relaxed));
        waiting = if awaited { waiting + 1 } else { 0 };
        seen = requests;
        if quiet >= idle_after || waiting >= waiting_after {
            return;
        }
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
