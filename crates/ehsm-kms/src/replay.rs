//! The replay cache (spec §3.3), fixed: shared through the store and surviving restarts.
//!
//! A request is a replay when its (appid, timestamp, nonce) was seen in the last 20 minutes;
//! since timestamps outside ±10 minutes are refused anyway, that covers the whole window.
//! Checks are in memory (sharded, no database round trip); new entries are written to the store
//! in batches by a background task every few milliseconds and on shutdown, and loaded at start-up,
//! so a request accepted before a restart is refused after it. A crash (not a shutdown) can lose
//! the entries of the last flush interval; see docs/architecture.md.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;

use ehsm_store::ReplayEntry;

/// How long an entry is kept: twice the timestamp window, as upstream.
pub(crate) const KEEP_MS: i64 = 20 * 60 * 1000;

const SHARDS: usize = 16;

/// One shard: (appid, timestamp, nonce) → arrival time in ms, and the entries accepted since the
/// last flush. Pending entries live in their shard so that recording one takes the lock already
/// held for the check, not a second lock shared by every request.
#[derive(Default)]
struct Shard {
    seen: HashMap<(String, String, String), i64>,
    pending: Vec<ReplayEntry>,
}

pub(crate) struct ReplayCache {
    shards: [Mutex<Shard>; SHARDS],
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere mid-insert into a plain map: still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReplayCache {
    pub(crate) fn new(loaded: Vec<ReplayEntry>) -> Self {
        let cache = Self {
            shards: std::array::from_fn(|_| Mutex::default()),
        };
        for e in loaded {
            let key = (e.appid, e.timestamp, e.nonce);
            lock(cache.shard(&key)).seen.insert(key, e.seen_at);
        }
        cache
    }

    fn shard(&self, key: &(String, String, String)) -> &Mutex<Shard> {
        let mut h = DefaultHasher::new();
        key.hash(&mut h);
        &self.shards[(h.finish() as usize) % SHARDS]
    }

    /// Records the request and returns true if it is new; false if it is a replay.
    pub(crate) fn check_and_record(
        &self,
        appid: &str,
        timestamp: &str,
        nonce: String,
        now_ms: i64,
    ) -> bool {
        let key = (appid.to_owned(), timestamp.to_owned(), nonce);
        let mut shard = lock(self.shard(&key));
        if let Some(&seen) = shard.seen.get(&key)
            && now_ms - seen < KEEP_MS
        {
            return false;
        }
        let entry = ReplayEntry {
            appid: key.0.clone(),
            timestamp: key.1.clone(),
            nonce: key.2.clone(),
            seen_at: now_ms,
        };
        shard.seen.insert(key, now_ms);
        shard.pending.push(entry);
        true
    }

    /// Entries recorded since the last call, for the store.
    pub(crate) fn take_pending(&self) -> Vec<ReplayEntry> {
        let mut out = Vec::new();
        for shard in &self.shards {
            out.append(&mut lock(shard).pending);
        }
        out
    }

    /// Forgets entries older than the window.
    pub(crate) fn prune(&self, now_ms: i64) {
        for shard in &self.shards {
            lock(shard).seen.retain(|_, seen| now_ms - *seen < KEEP_MS);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_triple_is_a_replay_within_the_window_only() {
        let c = ReplayCache::new(Vec::new());
        assert!(c.check_and_record("a", "1700000000000", String::new(), 0));
        assert!(!c.check_and_record("a", "1700000000000", String::new(), 1));
        assert!(
            c.check_and_record("a", "1700000000000", "n1".into(), 1),
            "other nonce"
        );
        assert!(
            c.check_and_record("b", "1700000000000", String::new(), 1),
            "other app"
        );
        assert!(
            c.check_and_record("a", "1700000000001", String::new(), 1),
            "other timestamp"
        );
        assert!(
            c.check_and_record("a", "1700000000000", String::new(), KEEP_MS),
            "expired"
        );
        assert_eq!(c.take_pending().len(), 5);
        assert!(c.take_pending().is_empty());
    }

    #[test]
    fn loaded_entries_are_replays() {
        let c = ReplayCache::new(vec![ReplayEntry {
            appid: "a".into(),
            timestamp: "t".into(),
            nonce: "n".into(),
            seen_at: 100,
        }]);
        assert!(!c.check_and_record("a", "t", "n".into(), 200));
        c.prune(100 + KEEP_MS);
        assert!(c.check_and_record("a", "t", "n".into(), 100 + KEEP_MS));
    }
}
