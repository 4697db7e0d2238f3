//! `ehsm dkeycache`: one per node. Fetches the domain keys from the key server over RA-TLS, keeps
//! them only in memory, and hands them to the node's KMS processes over a Unix socket with the
//! same attested, policy-checked channel. It keeps serving while the key server is down, and
//! learns new versions every [`crate::channel::POLL_INTERVAL`].

use std::path::PathBuf;
use std::sync::Arc;

use crate::channel::{self, Endpoint, Held, Tls};
use crate::follow;

/// How a dkeycache runs.
pub struct Config {
    /// The key server (root or worker).
    pub server: Endpoint,
    /// The Unix socket local KMS processes connect to.
    pub socket: PathBuf,
    /// RA-TLS for this process and its peers (both the key server and the local KMS processes).
    pub tls: Arc<Tls>,
}

/// Runs the cache until `shutdown` completes. The socket is bound first, so that a KMS process
/// started at the same time hears "no keys yet" rather than "no such socket".
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let Config {
        server,
        socket,
        tls,
    } = config;
    let listener = channel::bind_unix(&socket)?;
    let held = Arc::new(Held::default());
    tracing::info!(
        "dkeycache listening on {} (key server {server})",
        listener.describe()
    );
    let fetcher = {
        let (tls, held) = (Arc::clone(&tls), Arc::clone(&held));
        tokio::spawn(async move {
            let keys = follow::first_keys(&server, &tls, "dkeycache").await;
            tracing::info!(
                fingerprint = %keys.fingerprint(),
                versions = ?keys.versions().collect::<Vec<_>>(),
                "dkeycache: received the domain keys from {server}"
            );
            let _ = held.offer(keys);
            follow::follow(server, &tls, "dkeycache", |keys| held.offer(keys)).await;
        })
    };
    tokio::select! {
        () = channel::serve(listener, tls, held, "dkeycache") => {}
        () = shutdown => {}
    }
    fetcher.abort();
    let _ = std::fs::remove_file(&socket);
    tracing::info!("dkeycache: shutting down");
    Ok(())
}
