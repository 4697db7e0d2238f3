//! Following a key server: fetch the domain keys once (waiting as long as it takes), then ask
//! again every [`POLL_INTERVAL`] to learn rotations. Workers follow their upstream, dkeycaches
//! their key server, KMS nodes their dkeycache.

use std::time::Duration;

use ehsm_core::DomainKeySet;

use crate::channel::{Endpoint, POLL_INTERVAL, Tls, fetch};

/// The first retry after a failed first fetch; each later one waits twice as long, up to
/// [`POLL_INTERVAL`].
const FIRST_RETRY: Duration = Duration::from_millis(250);

/// Fetches the keys from `upstream`, retrying with backoff until it gets them. `who` names the
/// caller in the log line that says why it is still waiting (printed on the first failure and
/// whenever the reason changes, not on every retry).
pub async fn first_keys(upstream: &Endpoint, tls: &Tls, who: &str) -> DomainKeySet {
    let mut wait = FIRST_RETRY;
    let mut last_reason = String::new();
    loop {
        match fetch(upstream, tls).await {
            Ok(keys) => return keys,
            Err(e) => {
                let reason = format!("{e:#}");
                if reason != last_reason {
                    tracing::warn!("{who}: waiting for the domain keys from {upstream}: {reason}");
                    last_reason = reason;
                }
            }
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(POLL_INTERVAL);
    }
}

/// Asks `upstream` for the keys every [`POLL_INTERVAL`], forever, and gives each set to
/// `accept`, which returns whether it added versions (logged) or refuses the set (logged as an
/// error: a key server of another domain). An unreachable upstream is logged once per outage;
/// the caller keeps serving what it holds meanwhile.
pub async fn follow(
    upstream: Endpoint,
    tls: &Tls,
    who: &str,
    mut accept: impl FnMut(DomainKeySet) -> anyhow::Result<bool> + Send,
) {
    let mut failing = false;
    loop {
        tokio::time::sleep(POLL_INTERVAL).await;
        match fetch(&upstream, tls).await {
            Ok(keys) => {
                if failing {
                    tracing::info!("{who}: {upstream} answers again");
                    failing = false;
                }
                let versions: Vec<u32> = keys.versions().collect();
                let fingerprint = keys.fingerprint();
                match accept(keys) {
                    Ok(true) => tracing::info!(
                        ?versions,
                        %fingerprint,
                        "{who}: learned new domain-key versions from {upstream}"
                    ),
                    Ok(false) => {}
                    Err(e) => tracing::error!("{who}: {upstream}: {e:#}"),
                }
            }
            Err(e) if !failing => {
                tracing::warn!(
                    "{who}: cannot reach {upstream} (still serving the keys held): {e:#}"
                );
                failing = true;
            }
            Err(_) => {}
        }
    }
}
