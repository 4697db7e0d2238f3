//! The replay cache (spec §3.3), fixed: shared through the store and surviving restarts.
//!
//! A request is a replay when its (appid, timestamp, nonce) was seen in the last 20 minutes;
//! since timestamps outside ±10 minutes are refused anyway, that covers the whole window.
//! Checks are in memory (sharded, no database round trip); new entries are written to the store
//! in batches by a background task every few milliseconds and on shutdown, and loaded at start-up,
//! so a request accepted before a restart is refused after it. A crash (not a shutdown) can lose
//! the entries of the last flush interval; see docs/architecture.md.
//!
//! In memory, a triple is kept as a 128-bit keyed hash (two SipHash instances with random
//! per-process keys) rather than as three strings: 24 bytes an entry instead of well over a
//! hundred, and no allocation to check a request. Two different triples collide with
//! probability about n²/2¹²⁹ — for the 1.5 million entries of a 20-minute window at full load,
//! about 10⁻²⁶ — and a collision would only refuse one legitimate request as a replay; an
//! attacker cannot aim for one without the process's random keys.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

use ehsm_store::ReplayEntry;

/// How long an entry is kept: twice the timestamp window, as upstream.
pub(crate) const KEEP_MS: i64 = 20 * 60 * 1000;

const SHARDS: usize = 16;

/// The keys of the in-memory map are already keyed hashes: fold them instead of hashing again.
#[derive(Default)]
struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

/// One shard: fingerprint of (appid, timestamp, nonce) → arrival time in ms, and the entries
/// accepted since the last flush. Pending entries live in their shard so that recording one
/// takes the lock already held for the check, not a second lock shared by every request.
#[derive(Default)]
struct Shard {
    seen: HashMap<u128, i64, BuildHasherDefault<Fold>>,
    pending: Vec<ReplayEntry>,
}

pub(crate) struct ReplayCache {
    shards: [Mutex<Shard>; SHARDS],
    keys: (RandomState, RandomState),
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere mid-insert into a plain map: still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReplayCache {
    pub(crate) fn new(loaded: Vec<ReplayEntry>) -> Self {
        let cache = Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            keys: (RandomState::new(), RandomState::new()),
        };
        for e in loaded {
            let fp = cache.fingerprint(&e.appid, &e.timestamp, &e.nonce);
            lock(cache.shard(fp)).seen.insert(fp, e.seen_at);
        }
        cache
    }

    /// The 128-bit keyed hash of a triple. `str`'s `Hash` ends each string with a marker byte, so
    /// moving characters from one field to the next gives a different input.
    fn fingerprint(&self, appid: &str, timestamp: &str, nonce: &str) -> u128 {
        let half = |keys: &RandomState| {
            let mut h = keys.build_hasher();
            for part in [appid, timestamp, nonce] {
                std::hash::Hash::hash(part, &mut h);
            }
            h.finish()
        };
        (u128::from(half(&self.keys.0)) << 64) | u128::from(half(&self.keys.1))
    }

    fn shard(&self, fingerprint: u128) -> &Mutex<Shard> {
        &self.shards[(fingerprint as usize) % SHARDS]
    }

    /// Records the request and returns true if it is new; false if it is a replay.
    pub(crate) fn check_and_record(
        &self,
        appid: &str,
        timestamp: &str,
        nonce: String,
        now_ms: i64,
    ) -> bool {
        let fp = self.fingerprint(appid, timestamp, &nonce);
        let mut shard = lock(self.shard(fp));
        if let Some(&seen) = shard.seen.get(&fp)
            && now_ms - seen < KEEP_MS
        {
            return false;
        }
        shard.seen.insert(fp, now_ms);
        shard.pending.push(ReplayEntry {
            appid: appid.to_owned(),
            timestamp: timestamp.to_owned(),
            nonce,
            seen_at: now_ms,
        });
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
    fn fields_cannot_be_shifted_into_each_other() {
        let c = ReplayCache::new(Vec::new());
        assert!(c.check_and_record("ab", "c", String::new(), 0));
        assert!(c.check_and_record("a", "bc", String::new(), 0));
        assert!(c.check_and_record("a", "b", "c".into(), 0));
        assert!(!c.check_and_record("a", "bc", String::new(), 1));
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
