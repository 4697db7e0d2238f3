//! `ehsm dkeyserver`: holds the domain keys and hands them over RA-TLS to the peers its policy
//! accepts (dkeycaches, and workers).
//!
//! - The **root** keeps the domain keys sealed in its data directory ([`KeyFile`]) and creates a
//!   domain only when told to. `ehsm dkeyserver rotate` asks it to rotate
//!   ([`crate::rotation`]), which it does within [`RELOAD_INTERVAL`] with its own custody; a
//!   sealed file rotated while it was stopped is reloaded too.
//! - A **worker** fetches the keys from its upstream (the root or another worker), keeps them
//!   sealed in its own data directory, and serves them too: it keeps serving while its upstream
//!   is down, and a root that lost its data can be recovered from it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use ehsm_tee::Platform;

use crate::channel::{self, Endpoint, Held, Tls};
use crate::follow;
use crate::keyfile::{Custody, KeyFile};

/// How often the root looks at its sealed file for a rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(2);

/// Root or worker.
#[derive(Clone, Debug)]
pub enum Role {
    /// Holds the domain; creates a new one on first start only if `new_domain`.
    Root {
        /// Create a new domain if the data directory has none.
        new_domain: bool,
    },
    /// Takes the domain from `upstream`.
    Worker {
        /// The root or another worker.
        upstream: Endpoint,
    },
}

/// How a key server runs.
pub struct Config {
    /// Root or worker.
    pub role: Role,
    /// Where it listens.
    pub listen: SocketAddr,
    /// Where its sealed domain keys are.
    pub data_dir: PathBuf,
    /// Who seals them.
    pub custody: Custody,
    /// This process's platform.
    pub platform: Arc<dyn Platform>,
    /// RA-TLS for this process and its peers.
    pub tls: Arc<Tls>,
}

/// Runs the key server until `shutdown` completes.
pub async fn run(config: Config, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
    let Config {
        role,
        listen,
        data_dir,
        custody,
        platform,
        tls,
    } = config;
    let create = match &role {
        Role::Root { new_domain } => *new_domain,
        // A worker's file is only its copy of the upstream's keys: it may always make one.
        Role::Worker { .. } => true,
    };
    let file = Arc::new(KeyFile::open(&data_dir, &custody, &*platform, create)?);
    // Held until this function returns: `ehsm dkeyserver rotate` asks a running root, and no
    // second key server may run on the same data directory.
    let _running = crate::rotation::mark_running(&data_dir)?;
    let held = Arc::new(match &role {
        Role::Root { new_domain } => Held::new(match file.load()? {
            Some(keys) => keys,
            None if *new_domain => {
                let keys = file.create()?;
                tracing::warn!(
                    fingerprint = %keys.fingerprint(),
                    "created a NEW domain in {} (--new-domain)",
                    data_dir.display()
                );
                keys
            }
            // Fails (unless the file just appeared), saying why and what to do.
            None => file.load_existing()?,
        }),
        Role::Worker { .. } => file.load()?.map_or_else(Held::default, Held::new),
    });
    let listener = channel::bind_tcp(listen).await?;
    let role_name = match &role {
        Role::Root { .. } => "dkeyserver (root)",
        Role::Worker { .. } => "dkeyserver (worker)",
    };
    let keys_line = held.get().map_or_else(
        || "no domain keys yet".to_owned(),
        |k| {
            format!(
                "domain fingerprint {}, versions {:?}",
                k.fingerprint(),
                k.versions().collect::<Vec<_>>()
            )
        },
    );
    tracing::info!(
        "{role_name} listening on {} ({keys_line}, custody {}, platform {})",
        listener.describe(),
        match &custody {
            Custody::Platform => "platform".to_owned(),
            Custody::Hsm(h) => format!("hsm (token {})", h.token),
        },
        platform.kind()
    );
    let background = match role {
        Role::Root { .. } => tokio::spawn(watch_rotations(
            data_dir.clone(),
            Arc::clone(&file),
            Arc::clone(&held),
        )),
        Role::Worker { upstream } => {
            let (tls, held, file) = (Arc::clone(&tls), Arc::clone(&held), Arc::clone(&file));
            tokio::spawn(async move {
                let take = |keys| {
                    let added = held.offer(keys)?;
                    if added && let Some(keys) = held.get() {
                        file.save(&keys).context("sealing the new keys")?;
                    }
                    Ok(added)
                };
                if held.get().is_none() {
                    let keys = follow::first_keys(&upstream, &tls, "worker").await;
                    match take(keys) {
                        Ok(_) => tracing::info!("worker: received the domain keys from {upstream}"),
                        Err(e) => tracing::error!("worker: {e:#}"),
                    }
                }
                follow::follow(upstream, &tls, "worker", take).await;
            })
        }
    };
    tokio::select! {
        () = channel::serve(listener, tls, held, role_name) => {}
        () = shutdown => {}
    }
    background.abort();
    tracing::info!("{role_name}: shutting down");
    Ok(())
}

/// The root's side of a rotation: rotates when `ehsm dkeyserver rotate` asks
/// ([`crate::rotation`]), and reloads the sealed file when it changes.
async fn watch_rotations(data_dir: PathBuf, file: Arc<KeyFile>, held: Arc<Held>) {
    let mut seen = file.modified();
    loop {
        tokio::time::sleep(RELOAD_INTERVAL).await;
        match crate::rotation::serve_request(&data_dir, &file) {
            Some(Ok(outcome)) => tracing::info!("root: rotated on request: {outcome}"),
            Some(Err(e)) => tracing::error!("root: a rotation request failed: {e:#}"),
            None => {}
        }
        let now = file.modified();
        if now == seen {
            continue;
        }
        seen = now;
        match file.load().and_then(|k| {
            let keys = k.context("the sealed domain keys disappeared")?;
            let line = (keys.versions().collect::<Vec<_>>(), keys.fingerprint());
            Ok((held.offer(keys)?, line))
        }) {
            Ok((true, (versions, fingerprint))) => {
                tracing::info!(?versions, %fingerprint, "root: loaded rotated domain keys");
            }
            Ok((false, _)) => {}
            Err(e) => tracing::error!("root: the sealed domain keys changed but: {e:#}"),
        }
    }
}
