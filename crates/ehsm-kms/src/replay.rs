//! The replay cache (spec §3.3), fixed: shared through the store and surviving restarts.
//!
//! A request is a replay when its (appid, timestamp, nonce) was seen in the last 20 minutes;
//! since timestamps outside ±10 minutes are refused anyway, that covers the whole window.
//! Checks are in memory (sharded, no database round trip); new entries are written to the store
//! in batches by a background task every few milliseconds and on shutdown, and loaded at start-up,
//! so a request accepted before a restart is refused after it. A crash (not a shutdown) can lose
//! the entries of the last flush interval; see docs/architecture.md.
//!
//! A triple is kept as a 128-bit fingerprint, HMAC-SHA256 (truncated) of the three strings under
//! a random key that the first node creates in the store's settings and every node and restart
//! reads back, so that all of them compute the same fingerprint. 20 bytes an entry in memory and
//! 24 in the store rather than three strings, and no allocation to check a request. Two different
//! triples collide with probability about n²/2¹²⁹ — for the 1.5 million entries of a 20-minute
//! window at full load, about 10⁻²⁶ — and a collision would only refuse one legitimate request as
//! a replay; aiming for one needs the key and the victim's future nonce.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;

use aws_lc_rs::hmac;
use ehsm_store::ReplayEntry;

/// How long an entry is kept: twice the timestamp window, as upstream.
pub(crate) const KEEP_MS: i64 = 20 * 60 * 1000;
const KEEP_SECONDS: u32 = 20 * 60;

/// The setting holding the fingerprint key.
pub(crate) const KEY_SETTING: &str = "replay_fingerprint_key";

const SHARDS: usize = 16;

/// The keys of the in-memory map are already keyed hashes: fold them instead of hashing again.
#[derive(Default)]
struct Fold(u64);

impl Hasher for Fold {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // A fingerprint's first 8 bytes are already uniformly distributed.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }
}

/// An arrival time in whole seconds since the Unix epoch (fits in 32 bits until 2106). The
/// window is 20 minutes, so seconds are precise enough, and a map entry is 20 bytes (a 16-byte
/// fingerprint and this) instead of 32: at 50,000 requests a second the window holds 60 million
/// entries, so the entry size is the server's memory under sustained load.
fn seconds(ms: i64) -> u32 {
    u32::try_from(ms.div_euclid(1000)).unwrap_or(u32::MAX)
}

/// One shard: fingerprint → arrival time in ms, and the entries accepted since the last flush.
/// Pending entries live in their shard so that recording one takes the lock already held for
/// the check, not a second lock shared by every request.
#[derive(Default)]
struct Shard {
    seen: HashMap<[u8; 16], u32, BuildHasherDefault<Fold>>,
    pending: Vec<ReplayEntry>,
}

pub(crate) struct ReplayCache {
    shards: [Mutex<Shard>; SHARDS],
    key: hmac::Key,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere mid-insert into a plain map: still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ReplayCache {
    /// A cache keyed with `key` (the [`KEY_SETTING`]) holding the `loaded` entries.
    pub(crate) fn new(key: &[u8], loaded: Vec<ReplayEntry>) -> Self {
        let cache = Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
        };
        for e in loaded {
            let mut shard = lock(cache.shard(&e.fingerprint));
            let at = seconds(e.seen_at);
            let seen = shard.seen.entry(e.fingerprint).or_insert(at);
            // Two nodes may have recorded the same request: the first arrival counts.
            *seen = (*seen).min(at);
        }
        cache
    }

    /// The fingerprint of a triple. Each string is preceded by its length, so moving characters
    /// from one field to the next gives a different input.
    fn fingerprint(&self, appid: &str, timestamp: &str, nonce: &str) -> [u8; 16] {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [appid, timestamp, nonce] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut fp = [0; 16];
        fp.copy_from_slice(&ctx.sign().as_ref()[..16]);
        fp
    }

    fn shard(&self, fingerprint: &[u8; 16]) -> &Mutex<Shard> {
        // The last byte: the map hashes the first eight.
        &self.shards[usize::from(fingerprint[15]) % SHARDS]
    }

    /// Records the request and returns true if it is new; false if it is a replay.
    pub(crate) fn check_and_record(
        &self,
        appid: &str,
        timestamp: &str,
        nonce: &str,
        now_ms: i64,
    ) -> bool {
        let fingerprint = self.fingerprint(appid, timestamp, nonce);
        let now = seconds(now_ms);
        let mut shard = lock(self.shard(&fingerprint));
        if let Some(&seen) = shard.seen.get(&fingerprint)
            && now.saturating_sub(seen) < KEEP_SECONDS
        {
            return false;
        }
        shard.seen.insert(fingerprint, now);
        shard.pending.push(ReplayEntry {
            fingerprint,
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
        let now = seconds(now_ms);
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard
                .seen
                .retain(|_, seen| now.saturating_sub(*seen) < KEEP_SECONDS);
            // Give back the memory of a past burst, keeping room to grow.
            if shard.seen.len() < shard.seen.capacity() / 4 {
                let len = shard.seen.len();
                shard.seen.shrink_to(len * 2);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_triple_is_a_replay_within_the_window_only() {
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(c.check_and_record("a", "1700000000000", "", 0));
        assert!(!c.check_and_record("a", "1700000000000", "", 1));
        assert!(
            c.check_and_record("a", "1700000000000", "n1", 1),
            "other nonce"
        );
        assert!(c.check_and_record("b", "1700000000000", "", 1), "other app");
        assert!(
            c.check_and_record("a", "1700000000001", "", 1),
            "other timestamp"
        );
        assert!(
            c.check_and_record("a", "1700000000000", "", KEEP_MS),
            "expired"
        );
        assert_eq!(c.take_pending().len(), 5);
        assert!(c.take_pending().is_empty());
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(c.check_and_record("ab", "c", "", 0));
        assert!(c.check_and_record("a", "bc", "", 0));
        assert!(c.check_and_record("a", "b", "c", 0));
        assert!(!c.check_and_record("a", "bc", "", 1));
    }

    #[test]
    fn entries_carry_over_to_a_cache_with_the_same_key_only() {
        let first = ReplayCache::new(b"k", Vec::new());
        assert!(first.check_and_record("a", "t", "n", 100));
        let stored = first.take_pending();
        // A restart (or another node) with the same key refuses the request...
        let second = ReplayCache::new(b"k", stored.clone());
        assert!(!second.check_and_record("a", "t", "n", 200));
        second.prune(100 + KEEP_MS);
        assert!(second.check_and_record("a", "t", "n", 100 + KEEP_MS));
        // ...while fingerprints under another key are other fingerprints.
        let other = ReplayCache::new(b"other", stored);
        assert!(other.check_and_record("a", "t", "n", 200));
    }

    #[test]
    fn the_earliest_arrival_of_a_duplicate_counts() {
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(c.check_and_record("a", "t", "n", 100));
        let mut stored = c.take_pending();
        stored.push(ReplayEntry {
            seen_at: 5_000,
            ..stored[0]
        });
        stored.reverse();
        let c = ReplayCache::new(b"k", stored);
        c.prune(100 + KEEP_MS);
        assert!(c.check_and_record("a", "t", "n", 100 + KEEP_MS));
    }
}
