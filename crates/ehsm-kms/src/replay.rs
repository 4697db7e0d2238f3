//! The replay cache (spec §3.3), fixed: keyed on what was signed, shared through the store, and
//! durable before a request is answered.
//!
//! **What is remembered.** A request is a replay when its signed content was accepted in the last
//! 20 minutes; since timestamps outside ±10 minutes are refused anyway, that covers the whole
//! window. Upstream keyed its cache on the raw `(appid, timestamp, nonce)`, but the MAC covers
//! the *canonical* rendering of the body (spec §3.1), which drops "empty" values and renders
//! numbers its own way: `"nonce": false`, `0`, `[]`, `[""]` all sign like no nonce, `1.0` like
//! `1`, and a nonce of `"n&payload=…"` like a nonce `n` with that payload. One signed request
//! thus had hundreds of spellings with the same valid `sign`, each new to a raw-keyed cache. So
//! the cache keys on `(appid, sign)` instead: the check in the core compares `sign` with the
//! base64 HMAC of the canonical string exactly, so for an app's key a valid `sign` stands for
//! exactly one signed content, whatever the body's spelling.
//!
//! **When.** A request is looked up before its payload is validated (so an honest client sees
//! upstream's order of answers) but recorded only after its MAC checked out
//! ([`ReplayCache::record`], which also settles two identical requests racing each other), so
//! requests that anyone can forge cannot fill the cache or lock a victim's requests out.
//!
//! **Durable before the answer.** A recorded entry is written to the store by the flusher
//! (`server::replay_flusher`) in a group commit: every entry recorded while one write is in
//! flight goes into the next. The request waits for the write that holds its entry
//! ([`ReplayCache::durable`]) before its action runs, so a request that was answered is refused
//! after a crash and a restart too, and a request whose entry could not be written is refused
//! without having done anything. Entries are loaded at start-up.
//!
//! **Shared.** Nodes sharing a store share the cache: every 20 ms each node also reads the
//! batches written since the last one it read (by id, [`BatchCursor`]) and merges them
//! ([`ReplayCache::merge`]). A request accepted by node A is refused by node B once B's next read
//! (≤ 20 ms, plus a database round trip) has seen A's write, which A made before answering. The
//! reads include the node's own batches (merging them again changes nothing), so no node id
//! needs storing.
//!
//! **Size.** An entry is a 128-bit fingerprint, HMAC-SHA256 (truncated) of the appid and the
//! `sign` under a random key that the first node creates in the store's settings and every node
//! and restart reads back, so that all of them compute the same fingerprint: 20 bytes in memory
//! and 24 in the store, and no allocation to check a request. Two different requests collide
//! with probability about n²/2¹²⁹ — for the 1.5 million entries of a 20-minute window at full
//! load, about 10⁻²⁶ — and a collision would only refuse one legitimate request as a replay;
//! aiming for one needs the key and the victim's future `sign`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_lc_rs::hmac;
use ehsm_store::ReplayEntry;
use tokio::sync::{Notify, watch};

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

/// One shard: fingerprint → arrival time in seconds, and the entries accepted since the last
/// flush. Pending entries live in their shard so that recording one takes the lock already held
/// for the check, not a second lock shared by every request.
#[derive(Default)]
struct Shard {
    seen: HashMap<[u8; 16], u32, BuildHasherDefault<Fold>>,
    pending: Vec<ReplayEntry>,
}

/// A request as the cache knows it ([`ReplayCache::fingerprint`]): computed once, looked up
/// before the MAC check and recorded after it.
pub(crate) struct Fingerprint([u8; 16]);

/// A recorded request's place in the flush order: its entry is in the store once the flush of
/// this epoch (or a later one) has committed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "a request may be answered only once its entry is durable"]
pub(crate) struct Ticket(u64);

/// Where the flusher is: every entry of an epoch up to `durable` is in the store; the write of
/// epochs up to `failed` (those above `durable`) failed.
#[derive(Clone, Copy, Debug, Default)]
struct Flushed {
    durable: u64,
    failed: u64,
}

/// Why [`ReplayCache::durable`] gave up on a ticket.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotDurable {
    #[error("the replay entry could not be written to the store")]
    WriteFailed,
    #[error("the replay entry was not written to the store within {0:?}")]
    TimedOut(Duration),
}

pub(crate) struct ReplayCache {
    shards: [Mutex<Shard>; SHARDS],
    key: hmac::Key,
    /// The epoch that entries recorded now belong to; [`Self::take_pending`] closes it.
    epoch: AtomicU64,
    flushed: watch::Sender<Flushed>,
    /// Wakes the flusher when an entry is recorded.
    recorded: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere mid-insert into a plain map: still consistent.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a request waits for its entry to be written before it is refused. Longer than the
/// store's default connection wait (3 s), so that an outage shows as the store's error.
const DURABLE_WAIT: Duration = Duration::from_secs(10);

impl ReplayCache {
    /// A cache keyed with `key` (the [`KEY_SETTING`]) holding the `loaded` entries.
    pub(crate) fn new(key: &[u8], loaded: Vec<ReplayEntry>) -> Self {
        let cache = Self {
            shards: std::array::from_fn(|_| Mutex::default()),
            key: hmac::Key::new(hmac::HMAC_SHA256, key),
            epoch: AtomicU64::new(1),
            flushed: watch::Sender::new(Flushed::default()),
            recorded: Notify::new(),
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

    /// The fingerprint of a request: its appid and `sign`. Each string is preceded by its
    /// length, so moving characters from one to the other gives a different input.
    pub(crate) fn fingerprint(&self, appid: &str, sign: &str) -> Fingerprint {
        let mut ctx = hmac::Context::with_key(&self.key);
        for part in [appid, sign] {
            ctx.update(&(part.len() as u64).to_le_bytes());
            ctx.update(part.as_bytes());
        }
        let mut fp = [0; 16];
        fp.copy_from_slice(&ctx.sign().as_ref()[..16]);
        Fingerprint(fp)
    }

    fn shard(&self, fingerprint: &[u8; 16]) -> &Mutex<Shard> {
        // The last byte: the map hashes the first eight.
        &self.shards[usize::from(fingerprint[15]) % SHARDS]
    }

    fn seen_in(shard: &Shard, fingerprint: &[u8; 16], now: u32) -> bool {
        shard
            .seen
            .get(fingerprint)
            .is_some_and(|&seen| now.saturating_sub(seen) < KEEP_SECONDS)
    }

    /// Whether the request was accepted in the window: a look-up only, for the place in the
    /// checks where upstream answered replays (before the MAC is checked).
    pub(crate) fn is_replay(&self, fingerprint: &Fingerprint, now_ms: i64) -> bool {
        let fp = &fingerprint.0;
        Self::seen_in(&lock(self.shard(fp)), fp, seconds(now_ms))
    }

    /// Records an authenticated request; `None` if it is a replay (of a request recorded since
    /// [`Self::is_replay`] said no: the same request sent twice at once). The answer must wait
    /// for [`Self::durable`] with the ticket.
    pub(crate) fn record(&self, fingerprint: Fingerprint, now_ms: i64) -> Option<Ticket> {
        let Fingerprint(fingerprint) = fingerprint;
        let now = seconds(now_ms);
        let mut shard = lock(self.shard(&fingerprint));
        if Self::seen_in(&shard, &fingerprint, now) {
            return None;
        }
        shard.seen.insert(fingerprint, now);
        shard.pending.push(ReplayEntry {
            fingerprint,
            seen_at: now_ms,
        });
        // Read under the shard lock: `take_pending` moves to the next epoch before it takes
        // any shard's entries, so an entry is always in the batch of its ticket's epoch or an
        // earlier one.
        let ticket = Ticket(self.epoch.load(Ordering::SeqCst));
        drop(shard);
        self.recorded.notify_one();
        Some(ticket)
    }

    /// Waits until an entry has been recorded since the last [`Self::take_pending`] (at once if
    /// one has).
    pub(crate) async fn wait_for_pending(&self) {
        self.recorded.notified().await;
    }

    /// Entries recorded since the last call, for the store, with their epoch: report the
    /// write's outcome with [`Self::flushed`].
    pub(crate) fn take_pending(&self) -> (u64, Vec<ReplayEntry>) {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut out = Vec::new();
        for shard in &self.shards {
            out.append(&mut lock(shard).pending);
        }
        (epoch, out)
    }

    /// The outcome of writing the entries of `epoch` (and of every earlier one): the requests
    /// waiting on them go on, or are refused.
    pub(crate) fn flushed(&self, epoch: u64, written: bool) {
        self.flushed.send_modify(|f| {
            if written {
                f.durable = f.durable.max(epoch);
            } else {
                f.failed = f.failed.max(epoch);
            }
        });
    }

    /// Waits until the entry of `ticket` is in the store. Fails if the write that held it
    /// failed (the entry is written with a later one, but this request is refused: it may not
    /// be answered while a restart would forget it), or took longer than [`DURABLE_WAIT`].
    pub(crate) async fn durable(&self, ticket: Ticket) -> Result<(), NotDurable> {
        let mut rx = self.flushed.subscribe();
        let wait = rx.wait_for(|f| f.durable >= ticket.0 || f.failed >= ticket.0);
        match tokio::time::timeout(DURABLE_WAIT, wait).await {
            Ok(Ok(f)) if f.durable >= ticket.0 => Ok(()),
            Ok(_) => Err(NotDurable::WriteFailed),
            Err(_) => Err(NotDurable::TimedOut(DURABLE_WAIT)),
        }
    }

    /// Puts back entries that [`Self::take_pending`] gave out but the store did not take (the
    /// database was down), so that the next flush writes them: their requests were refused,
    /// but they are remembered here, and a later success covers them for other nodes and
    /// restarts too. Entries older than the window are dropped: they no longer matter.
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

    /// Records like a request that passed its MAC check: true if it was new.
    fn accept(c: &ReplayCache, appid: &str, sign: &str, now_ms: i64) -> bool {
        c.record(c.fingerprint(appid, sign), now_ms).is_some()
    }

    fn seen(c: &ReplayCache, appid: &str, sign: &str, now_ms: i64) -> bool {
        c.is_replay(&c.fingerprint(appid, sign), now_ms)
    }

    fn ticket(c: &ReplayCache, sign: &str) -> Ticket {
        c.record(c.fingerprint("a", sign), 0).unwrap()
    }

    #[test]
    fn the_same_signed_request_is_a_replay_within_the_window_only() {
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(!seen(&c, "a", "s1", 0));
        assert!(accept(&c, "a", "s1", 0));
        assert!(seen(&c, "a", "s1", 1));
        assert!(!accept(&c, "a", "s1", 1));
        assert!(accept(&c, "a", "s2", 1), "another signed content");
        assert!(accept(&c, "b", "s1", 1), "another app");
        assert!(!seen(&c, "a", "s1", KEEP_MS), "expired");
        assert!(accept(&c, "a", "s1", KEEP_MS));
        assert_eq!(c.take_pending().1.len(), 4);
        assert!(c.take_pending().1.is_empty());
        // A flush that failed gives its entries back; those past the window are dropped.
        assert!(accept(&c, "a", "late", 100 + KEEP_MS));
        let (_, mut batch) = c.take_pending();
        batch.push(ReplayEntry {
            fingerprint: [9; 16],
            seen_at: 100,
        });
        c.return_pending(batch, 100 + KEEP_MS);
        assert_eq!(c.take_pending().1.len(), 1);
    }

    #[test]
    fn a_look_up_records_nothing() {
        let c = ReplayCache::new(b"k", Vec::new());
        for _ in 0..3 {
            assert!(!seen(&c, "a", "forged", 0));
        }
        assert!(c.take_pending().1.is_empty());
        assert!(accept(&c, "a", "forged", 0));
    }

    #[test]
    fn fields_cannot_be_shifted_into_each_other() {
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(accept(&c, "ab", "c", 0));
        assert!(accept(&c, "a", "bc", 0));
        assert!(!accept(&c, "a", "bc", 1));
    }

    #[test]
    fn entries_carry_over_to_a_cache_with_the_same_key_only() {
        let first = ReplayCache::new(b"k", Vec::new());
        assert!(accept(&first, "a", "s", 100));
        let (_, stored) = first.take_pending();
        // A restart (or another node) with the same key refuses the request...
        let second = ReplayCache::new(b"k", stored.clone());
        assert!(seen(&second, "a", "s", 200));
        assert!(!accept(&second, "a", "s", 200));
        second.prune(100 + KEEP_MS);
        assert!(accept(&second, "a", "s", 100 + KEEP_MS));
        // ...while fingerprints under another key are other fingerprints.
        let other = ReplayCache::new(b"other", stored);
        assert!(accept(&other, "a", "s", 200));
    }

    #[test]
    fn merged_entries_are_refused_keep_the_earliest_arrival_and_are_not_written_back() {
        let a = ReplayCache::new(b"k", Vec::new());
        let b = ReplayCache::new(b"k", Vec::new());
        assert!(accept(&a, "a", "s", 100));
        let (_, flushed) = a.take_pending();
        b.merge(flushed.clone());
        assert!(!accept(&b, "a", "s", 150), "replayed to B");
        assert!(b.take_pending().1.is_empty(), "a merge is not B's to flush");
        // B saw it later too (a duplicate in the store): the earliest arrival still counts...
        b.merge([ReplayEntry {
            seen_at: 10_000,
            ..flushed[0]
        }]);
        b.merge(flushed);
        b.prune(100 + KEEP_MS);
        // ...so it expires 20 minutes after A accepted it.
        assert!(accept(&b, "a", "s", 100 + KEEP_MS));
        // Merging what is already there changes nothing.
        let c = ReplayCache::new(b"k", Vec::new());
        assert!(accept(&c, "x", "s", 100));
        c.merge(c.take_pending().1);
        assert!(!accept(&c, "x", "s", 200));
        assert!(c.take_pending().1.is_empty());
    }

    #[tokio::test]
    async fn a_ticket_is_durable_once_its_epoch_or_a_later_one_is_written() {
        let c = ReplayCache::new(b"k", Vec::new());
        let first = ticket(&c, "1");
        let second = ticket(&c, "2");
        let (epoch, batch) = c.take_pending();
        assert_eq!(
            batch.len(),
            2,
            "both entries are in the batch of their epoch"
        );
        let third = ticket(&c, "3");
        c.flushed(epoch, true);
        c.durable(first).await.unwrap();
        c.durable(second).await.unwrap();
        // The third entry is in the next batch; that write fails: its request is refused...
        let (next, batch) = c.take_pending();
        assert_eq!(batch.len(), 1);
        c.return_pending(batch, 0);
        c.flushed(next, false);
        assert!(matches!(
            c.durable(third).await,
            Err(NotDurable::WriteFailed)
        ));
        // ...and the entry is written with the next batch all the same.
        let (last, batch) = c.take_pending();
        assert_eq!(batch.len(), 1);
        c.flushed(last, true);
        assert!(c.durable(third).await.is_ok());
    }

    #[test]
    fn concurrent_records_each_land_in_a_batch_no_later_than_their_ticket() {
        let c = std::sync::Arc::new(ReplayCache::new(b"k", Vec::new()));
        let writers: Vec<_> = (0..4)
            .map(|w| {
                let c = std::sync::Arc::clone(&c);
                std::thread::spawn(move || {
                    (0..2000)
                        .map(|i| (ticket(&c, &format!("{w}-{i}")).0, w, i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut batches = Vec::new();
        for _ in 0..200 {
            batches.push(c.take_pending());
            std::thread::yield_now();
        }
        let tickets: Vec<_> = writers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect();
        batches.push(c.take_pending());
        let epoch_of = |fp: &[u8; 16]| {
            batches
                .iter()
                .find(|(_, b)| b.iter().any(|e| &e.fingerprint == fp))
                .map(|(epoch, _)| *epoch)
        };
        for (ticket, w, i) in tickets {
            let fp = c.fingerprint("a", &format!("{w}-{i}")).0;
            let epoch = epoch_of(&fp).expect("every entry is in a batch");
            assert!(epoch <= ticket, "entry of ticket {ticket} in batch {epoch}");
        }
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
        assert!(accept(&c, "a", "s", 100));
        let (_, mut stored) = c.take_pending();
        stored.push(ReplayEntry {
            seen_at: 5_000,
            ..stored[0]
        });
        stored.reverse();
        let c = ReplayCache::new(b"k", stored);
        c.prune(100 + KEEP_MS);
        assert!(accept(&c, "a", "s", 100 + KEEP_MS));
    }
}
