//! The replay cache (spec §3.3), fixed: shared through the store and surviving restarts.
//!
//! A request is a replay when its (appid, timestamp, nonce) was seen in the last 20 minutes;
//! since timestamps outside ±10 minutes are refused anyway, that covers the whole window.
//! Checks are in memory (sharded, no database round trip); new entries are written to the store
//! in batches by a background task every few milliseconds and on shutdown, and loaded at start-up,
//! so a request accepted before a restart is refused after it. A crash (not a shutdown) can lose
//! the entries of the last flush interval; see docs/architecture.md.
//!
//! Nodes sharing a store share the cache the same way: every 20 ms each node also reads the
//! batches written since the last one it read (by id, [`BatchCursor`]) and merges them
//! ([`ReplayCache::merge`]). A request accepted by node A is therefore refused by node B once A's
//! flush (≤ 20 ms) and B's next read (≤ 20 ms, plus the two database round trips) have happened:
//! a window of about 40 ms in which a replay to another node is still accepted, and no database
//! write or read on a request's path. The reads include the node's own batches (merging them
//! again changes nothing), so no node id needs storing.
//!
//! A triple is kept as a 128-bit fingerprint, HMAC-SHA256 (truncated) of the three strings under
//! a random key that the first node creates in the store's settings and every node and restart
//! reads back, so that all of them compute the same fingerprint. 20 bytes an entry in memory and
//! 24 in the store rather than three strings, and no allocation to check a request. Two different
//! triples collide with probability about n²/2¹²⁹ — for the 1.5 million entries of a 20-minute
//! window at full load, about 10⁻²⁶ — and a collision would only refuse one legitimate request as
//! a replay; aiming for one needs the key and the victim's future nonce.

use std::collections::{BTreeMap, HashMap};
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
        cache.merge(loaded);
        cache
    }

    /// Adds entries recorded elsewhere (loaded at start-up, or flushed by another node): they
    /// are refused from now on, and are not written back to the store.
    pub(crate) fn merge(&self, entries: impl IntoIterator<Item = ReplayEntry>) {
        for e in entries {
            let mut shard = lock(self.shard(&e.fingerprint));
            let at = seconds(e.seen_at);
            let seen = shard.seen.entry(e.fingerprint).or_insert(at);
            // Two nodes may have recorded the same request: the first arrival counts.
            *seen = (*seen).min(at);
        }
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

    /// Puts back entries that [`Self::take_pending`] gave out but the store did not take (the
    /// database was down), so that the next flush writes them: otherwise a request accepted
    /// during an outage could be replayed to another node, or here after a restart. Entries
    /// older than the window are dropped: they no longer matter.
    pub(crate) fn return_pending(&self, entries: Vec<ReplayEntry>, now_ms: i64) {
        let mut shard = lock(&self.shards[0]);
        shard.pending.extend(
            entries
                .into_iter()
                .filter(|e| now_ms.saturating_sub(e.seen_at) < KEEP_MS),
        );
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

/// How long a hole in the batch ids is looked at again: a batch whose insert took an id but had
/// not committed when a later one was read (two nodes flushing at once on PostgreSQL). A hole
/// that stays (a failed insert, a sequence jump) is given up after this.
const HOLE_WAIT_MS: i64 = 2_000;
/// At most this many holes are remembered per read, so that a sequence jump costs no memory.
const MAX_HOLES: i64 = 64;

/// Which replay batches (by id, increasing) this node has merged. Ids are taken at insert and
/// become visible at commit, so a lower id can appear after a higher one was read: the ids
/// skipped over are remembered for [`HOLE_WAIT_MS`] and read again until they appear.
#[derive(Debug)]
pub(crate) struct BatchCursor {
    last: i64,
    /// Ids below `last` not seen yet → when the hole was noticed (ms).
    holes: BTreeMap<i64, i64>,
}

impl BatchCursor {
    /// A cursor that has seen every batch up to `last`.
    pub(crate) fn new(last: i64) -> Self {
        Self {
            last,
            holes: BTreeMap::new(),
        }
    }

    /// The highest id seen: new batches are read after it.
    pub(crate) fn last(&self) -> i64 {
        self.last
    }

    /// If a hole is open, the id to read again after (just below the oldest hole) and how many
    /// rows that takes to reach `last`, at most `page`. Rows read again are merged again, which
    /// changes nothing.
    pub(crate) fn recheck(&self, page: u32) -> Option<(i64, u32)> {
        let &hole = self.holes.keys().next()?;
        let span = u32::try_from(self.last.saturating_sub(hole)).unwrap_or(u32::MAX);
        Some((hole - 1, span.min(page)))
    }

    /// Notes the ids of a read (in increasing order) at `now_ms`.
    pub(crate) fn saw(&mut self, ids: impl IntoIterator<Item = i64>, now_ms: i64) {
        for id in ids {
            if id > self.last {
                let from = (self.last + 1).max(id - MAX_HOLES);
                for hole in from..id {
                    self.holes.insert(hole, now_ms);
                }
                self.last = id;
            } else {
                self.holes.remove(&id);
            }
        }
        self.holes
            .retain(|_, noticed| now_ms.saturating_sub(*noticed) < HOLE_WAIT_MS);
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
        // A flush that failed gives its entries back; those past the window are dropped.
        c.check_and_record("a", "1700000000001", "late", 100 + KEEP_MS);
        let mut batch = c.take_pending();
        batch.push(ReplayEntry {
            fingerprint: [9; 16],
            seen_at: 100,
        });
        c.return_pending(batch, 100 + KEEP_MS);
        assert_eq!(c.take_pending().len(), 1);
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
    fn merged_entries_are_refused_keep_the_earliest_arrival_and_are_not_written_back() {
        let a = ReplayCache::new(b"k", Vec::new());
        let b = ReplayCache::new(b"k", Vec::new());
        assert!(a.check_and_record("a", "t", "n", 100));
        let flushed = a.take_pending();
        b.merge(flushed.clone());
        assert!(!b.check_and_record("a", "t", "n", 150), "replayed to B");
        assert!(b.take_pending().is_empty(), "a merge is not B's to flush");
        // B saw it later too (a duplicate in the store): the earliest arrival still counts...
        b.merge([ReplayEntry {
            seen_at: 10_000,
            ..flushed[0]
        }]);
        b.merge(flushed);
        b.prune(100 + KEEP_MS);
        // ...so it expires 20 minutes after A accepted it.
        assert!(b.check_and_record("a", "t", "n", 100 + KEEP_MS));
        // Merging what is already there changes nothing.
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(c.check_and_record("x", "t", "n", 100));
        c.merge(c.take_pending());
        assert!(!c.check_and_record("x", "t", "n", 200));
        assert!(c.take_pending().is_empty());
    }

    #[test]
    fn the_cursor_reads_holes_again_until_they_fill_or_expire() {
        let mut c = BatchCursor::new(10);
        assert_eq!((c.last(), c.recheck(500)), (10, None));
        c.saw([11, 12], 0);
        assert_eq!((c.last(), c.recheck(500)), (12, None));
        // 13 and 14 not committed yet when 15 was read: read again after 12, up to 14.
        c.saw([15], 0);
        assert_eq!((c.last(), c.recheck(500)), (15, Some((12, 2))));
        assert_eq!(c.recheck(1), Some((12, 1)), "at most a page");
        c.saw([14, 15, 16], 100);
        assert_eq!(c.recheck(500), Some((12, 3)), "13 still open");
        c.saw([13, 14, 15, 16], 200);
        assert_eq!((c.last(), c.recheck(500)), (16, None));
        // A hole that never fills (a failed insert) is given up.
        c.saw([18], 300);
        assert_eq!(c.recheck(500), Some((16, 1)));
        c.saw([], 300 + HOLE_WAIT_MS);
        assert_eq!((c.last(), c.recheck(500)), (18, None));
        // A sequence jump remembers a bounded number of holes.
        c.saw([1_000_000], 5_000);
        assert_eq!(c.recheck(500), Some((1_000_000 - MAX_HOLES - 1, 64)));
        assert_eq!(c.holes.len() as i64, MAX_HOLES);
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
