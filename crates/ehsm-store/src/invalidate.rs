//! Cache invalidation across KMS nodes sharing one PostgreSQL database.
//!
//! Every store method that changes a CMK or app record also runs `pg_notify` in the same
//! transaction, so the notification is delivered exactly when (and only if) the change commits.
//! [`Store::listen_invalidations`](crate::Store::listen_invalidations) turns those notifications
//! into [`Invalidation`]s for a node's record caches. SQLite serves a single node, so there is
//! nothing to notify and nobody to listen.

use std::time::Duration;

use sqlx::AnyConnection;
use sqlx::postgres::PgListener;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use crate::error::Result;

/// The notification channel. One per database: nodes of different ehsm domains that share a
/// database (in different schemas) see each other's ids, which only costs them cache misses.
pub(crate) const CHANNEL: &str = "ehsm_invalidate";

/// How long the listener waits before trying again after a failed reconnection.
const RECONNECT_DELAY: Duration = Duration::from_millis(500);

/// What a node must drop from its record caches because another node (or itself) changed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Invalidation {
    /// The CMK with this keyid.
    Key(String),
    /// The app with this appid.
    App(String),
    /// Every CMK of the app with this appid (after DeleteAllKey).
    KeysOfApp(String),
    /// The alias `alias` of the app `appid` (created, repointed or deleted).
    Alias {
        /// The app whose alias it is.
        appid: String,
        /// The alias name, `alias/...`.
        alias: String,
    },
    /// Everything: the listener reconnected, so notifications may have been missed (or one was
    /// not understood).
    All,
}

impl Invalidation {
    fn payload(&self) -> String {
        match self {
            Self::Key(id) => format!("k:{id}"),
            Self::App(id) => format!("a:{id}"),
            Self::KeysOfApp(id) => format!("ka:{id}"),
            // An appid has no space (the store refuses none, but enrollment makes UUIDs), and
            // an alias name none either: the first space separates them.
            Self::Alias { appid, alias } => format!("al:{appid} {alias}"),
            Self::All => "*".to_owned(),
        }
    }

    /// The invalidation a payload names; an unknown one means [`Invalidation::All`], the safe
    /// answer to a notification from a newer node.
    fn parse(payload: &str) -> Self {
        if let Some(id) = payload.strip_prefix("k:") {
            Self::Key(id.to_owned())
        } else if let Some(id) = payload.strip_prefix("a:") {
            Self::App(id.to_owned())
        } else if let Some(id) = payload.strip_prefix("ka:") {
            Self::KeysOfApp(id.to_owned())
        } else if let Some((appid, alias)) =
            payload.strip_prefix("al:").and_then(|p| p.split_once(' '))
        {
            Self::Alias {
                appid: appid.to_owned(),
                alias: alias.to_owned(),
            }
        } else {
            Self::All
        }
    }
}

/// Queues a notification in the caller's transaction (PostgreSQL only; the caller checks).
/// Wrapped in `count(*)` because `pg_notify` returns `void`, a type the `any` driver cannot
/// decode.
pub(crate) async fn notify(conn: &mut AnyConnection, what: &Invalidation) -> Result<()> {
    sqlx::query("SELECT count(*) FROM (SELECT pg_notify($1, $2)) AS n")
        .bind(CHANNEL)
        .bind(what.payload())
        .execute(conn)
        .await?;
    Ok(())
}

/// Connects a listener on [`CHANNEL`].
async fn connect(url: &str) -> sqlx::Result<PgListener> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Starts listening at `url`: connected (and subscribed) when this returns, so every change
/// committed afterwards is reported. The listener runs until the receiver is dropped.
pub(crate) async fn listen(url: String) -> Result<UnboundedReceiver<Invalidation>> {
    let listener = connect(&url).await?;
    let (tx, rx) = unbounded_channel();
    tokio::spawn(pump(url, listener, tx));
    Ok(rx)
}

/// Forwards notifications; after a lost connection, reconnects and sends
/// [`Invalidation::All`], since whatever was notified in between is lost.
async fn pump(url: String, mut listener: PgListener, tx: UnboundedSender<Invalidation>) {
    loop {
        let next = tokio::select! {
            () = tx.closed() => return,
            next = listener.try_recv() => next,
        };
        let what = match next {
            Ok(Some(n)) => Invalidation::parse(n.payload()),
            // The connection was lost and PgListener has already reconnected (eager
            // reconnection, its default) and subscribed again.
            Ok(None) => Invalidation::All,
            // Reconnection failed, or another error left the connection in an unknown state:
            // start over with a new listener once the database answers again.
            Err(_) => loop {
                tokio::select! {
                    () = tx.closed() => return,
                    () = tokio::time::sleep(RECONNECT_DELAY) => {}
                }
                if let Ok(fresh) = connect(&url).await {
                    listener = fresh;
                    break Invalidation::All;
                }
            },
        };
        if tx.send(what).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_round_trip_and_unknown_means_all() {
        for what in [
            Invalidation::Key("k1".into()),
            Invalidation::App("a:1".into()),
            Invalidation::KeysOfApp("app".into()),
            Invalidation::Alias {
                appid: "aac3e45a-d3dc-4791-89b6-4ada0e38e6ef".into(),
                alias: "alias/a/b_c-d".into(),
            },
            Invalidation::All,
        ] {
            assert_eq!(Invalidation::parse(&what.payload()), what);
        }
        assert_eq!(Invalidation::parse("x:1"), Invalidation::All);
        assert_eq!(Invalidation::parse("al:no-space"), Invalidation::All);
    }
}
