//! The bounded in-core cache of loaded keys.
//!
//! Unwrapping a blob and parsing an RSA key costs far more than using it, so a hot key is loaded
//! once. The cache is indexed by the blob's GCM tag, which is unique per wrap; a hit also
//! compares the whole blob and its context, so a lookup can never return a key for a blob or
//! context it was not loaded from. Only blobs that unwrapped successfully are inserted, so every
//! index is a genuine GCM tag — uniformly random — which is why a trivial hash is safe here.
//!
//! Eviction is a clock-style second chance: a hit sets a flag; when the cache is full, a sweep
//! evicts unflagged entries and clears the others. Evicted keys are dropped (and zeroized) as
//! soon as no operation in flight still holds them.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use crate::blob::{KeyBlob, KeyContext, Purpose};
use crate::key::LoadedKey;
use crate::spec::{KeySpec, KeyUsage, Origin};

/// How many keys the cache holds by default.
pub const DEFAULT_CAPACITY: usize = 4096;

/// Cache counters, for metrics.
///
/// Hits are not counted: a shared counter incremented on every key use would be a cache line
/// that every core writes on every request. Hits are key uses minus misses, which the service
/// counts per request anyway.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups that had to unwrap and parse a blob.
    pub misses: u64,
    /// Keys held now.
    pub entries: usize,
}

struct Entry {
    purpose: Purpose,
    keyid: Box<str>,
    appid: Box<str>,
    spec: KeySpec,
    origin: Origin,
    usage: KeyUsage,
    version: u32,
    blob: Box<[u8]>,
    key: Arc<LoadedKey>,
    referenced: AtomicBool,
}

impl Entry {
    fn matches(&self, purpose: Purpose, ctx: &KeyContext<'_>, blob: &KeyBlob) -> bool {
        self.purpose == purpose
            && self.spec == ctx.spec
            && self.origin == ctx.origin
            && self.usage == ctx.usage
            && self.version == ctx.version
            && same(self.keyid.as_bytes(), ctx.keyid.as_bytes())
            && same(self.appid.as_bytes(), ctx.appid.as_bytes())
            && same(&self.blob, blob.as_bytes())
    }
}

/// Byte equality that never calls `memcmp` on empty slices. An empty `Box<str>` has a dangling
/// pointer, and glibc's AVX-512 `memcmp` does a masked load from it even for length 0; on this
/// hardware that costs a microcode assist of about 150 ns. API keys have an empty key id, so
/// every request-MAC check paid it (measured: 169 ns for comparing two empty strings).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && (a.is_empty() || a == b)
}

/// Folds the 16-byte tag into 64 bits. See the module comment for why no keyed hash is needed.
#[derive(Default)]
struct TagHasher(u64);

impl Hasher for TagHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 ^= u64::from_le_bytes(word);
        }
    }

    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64);
    }
}

pub(crate) struct KeyCache {
    map: RwLock<HashMap<u128, Entry, BuildHasherDefault<TagHasher>>>,
    capacity: usize,
    misses: AtomicU64,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            map: RwLock::new(HashMap::default()),
            capacity: capacity.max(1),
            misses: AtomicU64::new(0),
        }
    }

    pub(crate) fn get(
        &self,
        purpose: Purpose,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
    ) -> Option<Arc<LoadedKey>> {
        let index = u128::from_le_bytes(*blob.tag()?);
        let map = self
            .map
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match map.get(&index) {
            Some(e) if e.matches(purpose, ctx, blob) => {
                // Read before writing: a hot key's flag is already set, and a plain load keeps its
                // cache line shared between cores instead of bouncing it on every use.
                if !e.referenced.load(Ordering::Relaxed) {
                    e.referenced.store(true, Ordering::Relaxed);
                }
                Some(Arc::clone(&e.key))
            }
            _ => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    pub(crate) fn insert(
        &self,
        purpose: Purpose,
        ctx: &KeyContext<'_>,
        blob: &KeyBlob,
        key: Arc<LoadedKey>,
    ) {
        let Some(tag) = blob.tag() else { return };
        let entry = Entry {
            purpose,
            keyid: ctx.keyid.into(),
            appid: ctx.appid.into(),
            spec: ctx.spec,
            origin: ctx.origin,
            usage: ctx.usage,
            version: ctx.version,
            blob: blob.as_bytes().into(),
            key,
            referenced: AtomicBool::new(false),
        };
        // A poisoned lock only means another thread panicked mid-update of a plain map, which
        // leaves it consistent; keep serving.
        let mut map = self
            .map
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if map.len() >= self.capacity {
            Self::sweep(&mut map, self.capacity);
        }
        map.insert(u128::from_le_bytes(*tag), entry);
    }

    /// Evicts about an eighth of the entries, preferring those not used since the last sweep.
    fn sweep(map: &mut HashMap<u128, Entry, BuildHasherDefault<TagHasher>>, capacity: usize) {
        let target = map.len().saturating_sub(capacity - (capacity / 8).max(1));
        let mut evicted = 0;
        map.retain(|_, e| {
            if evicted < target && !e.referenced.swap(false, Ordering::Relaxed) {
                evicted += 1;
                false
            } else {
                true
            }
        });
        // Everything was recently used: evict arbitrary entries to make room.
        if evicted < target {
            let victims: Vec<u128> = map.keys().take(target - evicted).copied().collect();
            for v in victims {
                map.remove(&v);
            }
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            misses: self.misses.load(Ordering::Relaxed),
            entries: self.map.read().map(|m| m.len()).unwrap_or(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob;
    use crate::domain::DomainKeySet;

    fn ctx(keyid: &str) -> KeyContext<'_> {
        KeyContext {
            keyid,
            appid: "app",
            spec: KeySpec::Hmac,
            origin: Origin::Internal,
            usage: KeyUsage::SignVerify,
            version: 1,
        }
    }

    fn loaded() -> Arc<LoadedKey> {
        Arc::new(LoadedKey::NotImported)
    }

    #[test]
    fn hit_requires_same_blob_context_and_purpose() {
        let dks = DomainKeySet::generate().unwrap();
        let cache = KeyCache::new(8);
        let b = blob::wrap(&dks, Purpose::Cmk, &ctx("k1"), &[1; 32]).unwrap();
        cache.insert(Purpose::Cmk, &ctx("k1"), &b, loaded());
        assert!(cache.get(Purpose::Cmk, &ctx("k1"), &b).is_some());
        assert!(cache.get(Purpose::Cmk, &ctx("k2"), &b).is_none());
        assert!(cache.get(Purpose::ApiKey, &ctx("k1"), &b).is_none());
        let other_usage = KeyContext {
            usage: KeyUsage::EncryptDecrypt,
            ..ctx("k1")
        };
        assert!(cache.get(Purpose::Cmk, &other_usage, &b).is_none());
        // Same tag, different bytes before it: not the same blob.
        let mut forged = b.as_bytes().to_vec();
        forged[6] ^= 1;
        assert!(
            cache
                .get(Purpose::Cmk, &ctx("k1"), &KeyBlob::from_vec(forged))
                .is_none()
        );
        let s = cache.stats();
        assert_eq!((s.misses, s.entries), (4, 1));
    }

    #[test]
    fn empty_and_non_empty_ids_compare_correctly() {
        assert!(same(b"", b""));
        assert!(!same(b"", b"a"));
        assert!(!same(b"a", b""));
        assert!(same(b"ab", b"ab"));
        assert!(!same(b"ab", b"ac"));
        let empty: Box<str> = "".into();
        assert!(same(empty.as_bytes(), "".as_bytes()));
    }

    #[test]
    fn stays_bounded_and_keeps_hot_keys() {
        let dks = DomainKeySet::generate().unwrap();
        let cache = KeyCache::new(16);
        let hot = blob::wrap(&dks, Purpose::Cmk, &ctx("hot"), &[1; 32]).unwrap();
        cache.insert(Purpose::Cmk, &ctx("hot"), &hot, loaded());
        for i in 0..200 {
            let id = format!("k{i}");
            let b = blob::wrap(&dks, Purpose::Cmk, &ctx(&id), &[1; 32]).unwrap();
            cache.insert(Purpose::Cmk, &ctx(&id), &b, loaded());
            assert!(
                cache.get(Purpose::Cmk, &ctx("hot"), &hot).is_some(),
                "hot key evicted at {i}"
            );
            assert!(cache.stats().entries <= 16);
        }
    }

    #[test]
    fn evicted_keys_are_dropped() {
        let dks = DomainKeySet::generate().unwrap();
        // Capacity 1: the next insert must evict the only entry.
        let cache = KeyCache::new(1);
        let first = loaded();
        let weak = Arc::downgrade(&first);
        let b = blob::wrap(&dks, Purpose::Cmk, &ctx("a"), &[1; 32]).unwrap();
        cache.insert(Purpose::Cmk, &ctx("a"), &b, first);
        assert!(weak.upgrade().is_some());
        let b2 = blob::wrap(&dks, Purpose::Cmk, &ctx("b"), &[1; 32]).unwrap();
        cache.insert(Purpose::Cmk, &ctx("b"), &b2, loaded());
        assert!(weak.upgrade().is_none(), "evicted key still alive");
        assert_eq!(cache.stats().entries, 1);
    }
}
