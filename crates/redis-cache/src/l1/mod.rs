//! The in-process L1: a bounded moka cache in front of Redis.
//!
//! **Bounds.** At most `max_entries` entries; each lives `min(ttl_cap, its
//! remaining Redis TTL)`, so the L1 never outlives the L2.
//!
//! **Trust.** The L1 is only as fresh as the invalidation feed that keeps it
//! honest. While the feed is *live* (subscribed), reads are served from L1.
//! When the subscriber disconnects the L1 stops being trusted (`live =
//! false`): reads go to Redis, and the L1 is consulted only if Redis cannot
//! answer, which bounds staleness during an outage by `ttl_cap`. When the
//! feed is subscribed again, or lagged, the whole L1 is flushed, because
//! invalidations sent meanwhile were lost.
//!
//! **No resurrection.** A read that fetched a value from Redis before an
//! invalidation arrived must not put that old value into L1 after the
//! invalidation was applied. Every change to the L1 that removes data bumps
//! an epoch under a write lock; a fill records the epoch before its Redis
//! read and inserts, under the read lock, only if the epoch did not move. The
//! lock makes "check epoch, insert" atomic with respect to "bump epoch,
//! remove", which a bare atomic could not.
//!
//! The epoch is striped: a key's [`Epoch`] is a global counter (bumped by
//! pattern invalidations and flushes, which may cover any key) and the
//! counter of the key's stripe (bumped by changes of keys hashing to it).
//! One global counter would make every invalidation refuse every fill in
//! flight, and under steady invalidation traffic the L1 would barely fill.

use std::any::Any;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use moka::sync::Cache;
use serde::de::DeserializeOwned;
use shared_types::Scope;

use crate::codec::{self, DecodeFailure};
use crate::config::L1Config;

/// One cached value: the JSON bytes, and the decoded value of the first
/// type it was read as (so hits skip JSON decoding).
pub(crate) struct Entry {
    bytes: Bytes,
    ttl: Duration,
    typed: OnceLock<Box<dyn Any + Send + Sync>>,
}

/// Each entry expires after its own TTL.
struct PerEntryTtl;

impl moka::Expiry<String, Arc<Entry>> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(entry.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.ttl)
    }
}

/// Stripes of the per-key epoch: enough that unrelated keys rarely share one.
const STRIPES: usize = 256;

/// What a fill must find unchanged: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epoch {
    global: u64,
    stripe: u64,
}

/// The stripe of `key` (FNV-1a: cheap, and good enough to spread keys).
fn stripe(key: &str) -> usize {
    let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    // The modulus is below STRIPES, which fits usize.
    usize::try_from(hash % STRIPES as u64).unwrap_or(0)
}

pub(crate) struct L1 {
    cache: Cache<String, Arc<Entry>>,
    ttl_cap: Duration,
    global: AtomicU64,
    stripes: Box<[AtomicU64]>,
    gate: RwLock<()>,
    live: AtomicBool,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1")
            .field("entries", &self.cache.entry_count())
            .field("ttl_cap", &self.ttl_cap)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

impl L1 {
    pub(crate) fn new(config: L1Config) -> Self {
        Self {
            cache: Cache::builder()
                .max_capacity(config.max_entries)
                .expire_after(PerEntryTtl)
                .build(),
            ttl_cap: config.ttl_cap,
            global: AtomicU64::new(0),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            gate: RwLock::new(()),
            live: AtomicBool::new(false),
        }
    }

    /// Whether the invalidation feed is live, so L1 reads can be trusted.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    pub(crate) fn set_live(&self, live: bool) {
        self.live.store(live, Ordering::Release);
    }

    /// The epoch of `key` to record before a Redis read whose result may
    /// fill L1.
    pub(crate) fn epoch(&self, key: &str) -> Epoch {
        Epoch {
            global: self.global.load(Ordering::Acquire),
            stripe: self.stripes[stripe(key)].load(Ordering::Acquire),
        }
    }

    fn bump(&self, key: &str) {
        self.stripes[stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
    }

    /// The entry for `key` decoded as `T`, whether or not the L1 is trusted
    /// now (callers check [`is_live`](Self::is_live) first, except when
    /// Redis is down). `Some(Err)` when it does not decode as `T`.
    pub(crate) fn get<T>(&self, key: &str) -> Option<Result<T, DecodeFailure>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        let entry = self.cache.get(key)?;
        if let Some(value) = entry.typed.get().and_then(|any| any.downcast_ref::<T>()) {
            return Some(Ok(value.clone()));
        }
        Some(codec::decode::<T>(&entry.bytes).inspect(|value| {
            let _ = entry.typed.set(Box::new(value.clone()));
        }))
    }

    /// The TTL an entry gets: the cap, or less if Redis expires it sooner.
    pub(crate) fn ttl_for(&self, redis_ttl: Option<Duration>) -> Duration {
        redis_ttl.map_or(self.ttl_cap, |ttl| ttl.min(self.ttl_cap))
    }

    /// Inserts a value read from Redis, unless the L1 is not trusted now or
    /// anything was invalidated since `seen_epoch` was taken.
    pub(crate) fn fill<T: Send + Sync + 'static>(
        &self,
        key: &str,
        bytes: Bytes,
        redis_ttl: Option<Duration>,
        typed: Option<T>,
        seen_epoch: Epoch,
    ) -> bool {
        let _shared = self.gate.read().expect("L1 gate");
        if !self.is_live() || self.epoch(key) != seen_epoch {
            return false;
        }
        self.cache
            .insert(key.to_owned(), self.entry(bytes, redis_ttl, typed));
        true
    }

    /// After this instance wrote `key` to Redis: holds the new value if
    /// nothing was invalidated since `seen_epoch`, else drops the key. Bumps
    /// the epoch either way, so that reads which fetched the old value before
    /// our write cannot fill it back.
    pub(crate) fn after_own_write(
        &self,
        key: &str,
        bytes: Bytes,
        ttl: Duration,
        seen_epoch: Epoch,
    ) {
        let _exclusive = self.gate.write().expect("L1 gate");
        let unchanged = self.epoch(key) == seen_epoch;
        self.bump(key);
        if unchanged && self.is_live() {
            self.cache
                .insert(key.to_owned(), self.entry::<()>(bytes, Some(ttl), None));
        } else {
            self.cache.invalidate(key);
        }
    }

    /// Removes everything `scope` covers.
    pub(crate) fn invalidate(&self, scope: &Scope) {
        let _exclusive = self.gate.write().expect("L1 gate");
        match scope {
            Scope::Key(key) => {
                self.bump(key.as_str());
                self.cache.invalidate(key.as_str());
            }
            Scope::Pattern(pattern) => {
                self.bump_all();
                for (key, _) in &self.cache {
                    if pattern.matches(&key) {
                        self.cache.invalidate(key.as_str());
                    }
                }
            }
        }
    }

    /// Removes one key.
    pub(crate) fn invalidate_key(&self, key: &str) {
        let _exclusive = self.gate.write().expect("L1 gate");
        self.bump(key);
        self.cache.invalidate(key);
    }

    /// Removes everything.
    pub(crate) fn flush(&self) {
        let _exclusive = self.gate.write().expect("L1 gate");
        self.bump_all();
        self.cache.invalidate_all();
    }

    /// Entries held (approximate: moka counts lazily).
    pub(crate) fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }

    fn entry<T: Send + Sync + 'static>(
        &self,
        bytes: Bytes,
        redis_ttl: Option<Duration>,
        typed: Option<T>,
    ) -> Arc<Entry> {
        let slot = OnceLock::new();
        if let Some(value) = typed {
            let _ = slot.set(Box::new(value) as Box<dyn Any + Send + Sync>);
        }
        Arc::new(Entry {
            bytes,
            ttl: self.ttl_for(redis_ttl),
            typed: slot,
        })
    }
}

#[cfg(test)]
mod tests {
    use shared_types::{CacheKey, KeyPattern, TenantId, UserId};

    use super::*;

    fn l1() -> L1 {
        let l1 = L1::new(L1Config {
            max_entries: 100,
            ttl_cap: Duration::from_secs(30),
        });
        l1.set_live(true);
        l1
    }

    fn bytes(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    // A fill that raced an invalidation is refused: no resurrection.
    #[test]
    fn fill_after_invalidation_is_refused() {
        let l1 = l1();
        let seen = l1.epoch("k");
        l1.invalidate_key("k");
        assert!(!l1.fill::<u32>("k", bytes("1"), None, None, seen));
        assert!(l1.get::<u32>("k").is_none());
        assert!(l1.fill::<u32>("k", bytes("1"), None, None, l1.epoch("k")));
        assert_eq!(l1.get::<u32>("k").unwrap().unwrap(), 1);
    }

    // Nothing fills an L1 that is not live.
    #[test]
    fn no_fill_while_not_live() {
        let l1 = l1();
        l1.set_live(false);
        assert!(!l1.fill::<u32>("k", bytes("1"), None, None, l1.epoch("k")));
    }

    // The TTL is capped by both the L1 cap and Redis's remaining TTL.
    #[test]
    fn ttl_is_capped() {
        let l1 = l1();
        assert_eq!(l1.ttl_for(None), Duration::from_secs(30));
        assert_eq!(
            l1.ttl_for(Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            l1.ttl_for(Some(Duration::from_secs(500))),
            Duration::from_secs(30)
        );
    }

    // Pattern invalidation removes matching keys only, not a look-alike tenant's.
    #[test]
    fn pattern_invalidation_is_exact() {
        let l1 = l1();
        let (a, ab) = (TenantId::new("a").unwrap(), TenantId::new("ab").unwrap());
        let u = UserId::new("u").unwrap();
        let ka = CacheKey::user_profile(&a, &u);
        let kab = CacheKey::user_profile(&ab, &u);
        for key in [&ka, &kab] {
            assert!(l1.fill::<u32>(key.as_str(), bytes("1"), None, None, l1.epoch(key.as_str())));
        }
        l1.invalidate(&Scope::Pattern(KeyPattern::tenant_cache(&a)));
        assert!(l1.get::<u32>(ka.as_str()).is_none());
        assert!(l1.get::<u32>(kab.as_str()).is_some());
    }

    // A value read as another type is reported, not mis-cast.
    #[test]
    fn typed_reads() {
        let l1 = l1();
        assert!(l1.fill("k", bytes("7"), None, Some(7u32), l1.epoch("k")));
        assert_eq!(l1.get::<u32>("k").unwrap().unwrap(), 7);
        assert_eq!(l1.get::<u64>("k").unwrap().unwrap(), 7);
        assert!(l1.get::<String>("k").unwrap().is_err());
    }

    // Own writes bump the epoch, and drop the key if something raced them.
    #[test]
    fn own_writes() {
        let l1 = l1();
        let seen = l1.epoch("k");
        l1.after_own_write("k", bytes("1"), Duration::from_secs(10), seen);
        assert_eq!(l1.get::<u32>("k").unwrap().unwrap(), 1);
        assert_ne!(l1.epoch("k"), seen);
        let stale_seen = l1.epoch("k");
        l1.invalidate_key("k");
        l1.after_own_write("k", bytes("2"), Duration::from_secs(10), stale_seen);
        assert!(l1.get::<u32>("k").is_none());
        // A pattern may cover any key: it races every write.
        let stale_seen = l1.epoch("k");
        l1.invalidate(&Scope::Pattern(KeyPattern::tenant_cache(
            &TenantId::new("x").unwrap(),
        )));
        l1.after_own_write("k", bytes("3"), Duration::from_secs(10), stale_seen);
        assert!(l1.get::<u32>("k").is_none());
    }

    // Invalidating one key does not refuse fills of keys in other stripes:
    // under invalidation traffic the L1 still fills.
    #[test]
    fn unrelated_invalidations_do_not_block_fills() {
        let l1 = l1();
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|k| stripe(k) != stripe("k"))
            .unwrap();
        let seen = l1.epoch("k");
        l1.invalidate_key(&other);
        assert!(l1.fill::<u32>("k", bytes("1"), None, None, seen));
        let seen = l1.epoch("k");
        l1.flush();
        assert!(
            !l1.fill::<u32>("k", bytes("1"), None, None, seen),
            "a flush covers every key"
        );
    }
}
