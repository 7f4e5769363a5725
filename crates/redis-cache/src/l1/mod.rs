//! The in-process L1 in front of Redis.
//!
//! **Bounds.** At most `max_bytes` (keys, JSON and decoded copies counted)
//! and `max_entries`; no value larger than `max_value_bytes`; no tenant more
//! than `tenant_share_percent` of either bound (see `entries.rs`). Each entry
//! lives `min(ttl_cap, its remaining Redis TTL)`, so the L1 never outlives
//! the L2.
//!
//! **Trust.** The L1 is only as fresh as the invalidation feed that keeps it
//! honest. While the feed is *live* (subscribed, in the session the listener
//! last caught up in: `trust.rs`), reads are served from L1.
//! When the subscriber disconnects the L1 stops being trusted at once, read
//! from the feed's state rather than from its events: reads go to Redis,
//! and the L1 is consulted only if Redis cannot answer, which bounds
//! staleness during an outage by `ttl_cap` (never for families that may
//! not serve stale data, sessions and ACL decisions: see
//! `KeyFamily::may_serve_stale`). When the feed is subscribed again, or
//! lagged, the listener replays what it missed from the invalidation
//! stream (`coherence/replay.rs`), and flushes the whole L1 only when the
//! stream no longer holds the gap.
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
//!
//! **This instance's own changes** ([`OwnChange`]). The old value leaves the
//! L1 (and the epoch moves) *before* the change is sent, and again when it
//! ends, whatever the ending: success, an error, a timeout or the caller's
//! future being dropped. Only a success may leave the new value behind.
//! Otherwise the outcome is unknown (Redis may have run the command, or may
//! run it later, after a pause), so the key's stripe is *unsettled* for
//! `ttl_cap`: fills of it are refused, and this instance applies its own
//! invalidations for it, which Redis delivers only after running the change
//! (they are sent behind it; see `write.rs`).

mod clock;
mod entries;
mod trust;

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use shared_types::{KeyPattern, RedisKey, Scope};

use crate::codec::{self, DecodeFailure};
use crate::config::L1Config;
use entries::{Cause, Entries, Limits};

/// Stripes of the per-key epoch: enough that unrelated keys rarely share one.
const STRIPES: usize = 256;

/// What a fill must find unchanged: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Epoch {
    global: u64,
    stripe: u64,
}

/// What the L1 holds and has evicted, for statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct L1Stats {
    pub(crate) bytes: u64,
    pub(crate) entries: u64,
    pub(crate) evicted_size: u64,
    pub(crate) evicted_tenant_share: u64,
    pub(crate) expired: u64,
    pub(crate) invalidated: u64,
    pub(crate) too_large: u64,
}

pub(crate) struct L1 {
    entries: Entries,
    ttl_cap: Duration,
    global: AtomicU64,
    stripes: Box<[AtomicU64]>,
    gate: RwLock<()>,
    /// Whether reads may use the L1 (see trust.rs).
    trust: trust::Trust,
    /// Per stripe, until when (milliseconds since `born`) an own change of
    /// unknown outcome keeps it unsettled; 0 when none ever did.
    unsettled: Box<[AtomicU64]>,
    /// The same for own pattern changes, which may cover any key.
    unsettled_all: AtomicU64,
    born: Instant,
}

impl std::fmt::Debug for L1 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("L1")
            .field("entries", &self.entries)
            .field("ttl_cap", &self.ttl_cap)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

impl L1 {
    pub(crate) fn new(config: L1Config) -> Self {
        let limits = Limits {
            max_bytes: usize::try_from(config.max_bytes).unwrap_or(usize::MAX),
            max_entries: usize::try_from(config.max_entries).unwrap_or(usize::MAX),
            max_value_bytes: config.max_value_bytes,
            tenant_share_percent: config.tenant_share_percent,
        };
        let counters = || (0..STRIPES).map(|_| AtomicU64::new(0)).collect();
        Self {
            entries: Entries::new(limits),
            ttl_cap: config.ttl_cap,
            global: AtomicU64::new(0),
            stripes: counters(),
            gate: RwLock::new(()),
            trust: trust::Trust::default(),
            unsettled: counters(),
            unsettled_all: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// Whether the invalidation feed is live, so L1 reads can be trusted.
    pub(crate) fn is_live(&self) -> bool {
        self.trust.is_live()
    }

    /// Checks every read against `feed`'s own state from now on.
    pub(crate) fn follow(&self, feed: redis_pubsub::SubscriptionState) {
        self.trust.follow(feed);
    }

    /// Trusts the L1 while the feed stays in `session` (read before the
    /// listener caught up), or stops trusting it (`None`).
    pub(crate) fn trust(&self, session: Option<u64>) {
        self.trust.trust(session);
    }

    /// Trusts it or not regardless of any feed (an L1 that follows none).
    #[cfg(test)]
    pub(crate) fn set_live(&self, live: bool) {
        self.trust.set(live);
    }

    /// The stripe of `key` (from the keyed hash the storage uses: a tenant
    /// cannot aim its own changes at another tenant's stripes).
    fn stripe(&self, key: &str) -> usize {
        // The modulus is below STRIPES, which fits usize.
        usize::try_from(self.entries.hash(key) % STRIPES as u64).unwrap_or(0)
    }

    /// The epoch of `key` to record before a Redis read whose result may
    /// fill L1.
    pub(crate) fn epoch(&self, key: &str) -> Epoch {
        Epoch {
            global: self.global.load(Ordering::Acquire),
            stripe: self.stripes[self.stripe(key)].load(Ordering::Acquire),
        }
    }

    fn bump(&self, key: &str) {
        self.stripes[self.stripe(key)].fetch_add(1, Ordering::AcqRel);
    }

    fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::AcqRel);
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether an own change of unknown outcome may still land on `key`.
    fn is_unsettled(&self, key: &str) -> bool {
        let until = self.unsettled[self.stripe(key)]
            .load(Ordering::Acquire)
            .max(self.unsettled_all.load(Ordering::Acquire));
        until != 0 && self.now_ms() < until
    }

    fn unsettle(&self, slot: &AtomicU64) {
        let horizon = u64::try_from(self.ttl_cap.as_millis()).unwrap_or(u64::MAX);
        slot.fetch_max(self.now_ms().saturating_add(horizon), Ordering::AcqRel);
    }

    /// Whether this instance must apply its own invalidation of `scope`:
    /// only while a change of unknown outcome may be what it announces.
    pub(crate) fn applies_own(&self, scope: &Scope) -> bool {
        match scope {
            Scope::Key(key) => self.is_unsettled(key.as_str()),
            Scope::Pattern(_) => {
                let until = self.unsettled_all.load(Ordering::Acquire);
                until != 0 && self.now_ms() < until
            }
        }
    }

    /// The entry for `key` decoded as `T`, whether or not the L1 is trusted
    /// now (callers check [`is_live`](Self::is_live) first, except when
    /// Redis is down). `Some(Err)` when it does not decode as `T`.
    pub(crate) fn get<T>(&self, key: &str) -> Option<Result<T, DecodeFailure>>
    where
        T: DeserializeOwned + Clone + Send + Sync + 'static,
    {
        // Only the clone of an already decoded value runs under the shard's
        // read lock; decoding (up to `max_value_bytes` of JSON, on every hit
        // of a key read as two types) runs after it, so that writers of the
        // shard, and everything queued behind them, never wait for it.
        let held = self.entries.read(key, |entry| {
            match entry.typed.get().and_then(|any| any.downcast_ref::<T>()) {
                Some(value) => Ok(value.clone()),
                None => Err(Arc::clone(entry)),
            }
        })?;
        Some(held.or_else(|entry| {
            codec::decode::<T>(&entry.bytes).inspect(|value| {
                let _ = entry.typed.set(Box::new(value.clone()));
            })
        }))
    }

    /// The TTL an entry gets: the cap, or less if Redis expires it sooner.
    pub(crate) fn ttl_for(&self, redis_ttl: Option<Duration>) -> Duration {
        redis_ttl.map_or(self.ttl_cap, |ttl| ttl.min(self.ttl_cap))
    }

    /// Inserts a value read from Redis, unless the L1 is not trusted now,
    /// anything was invalidated since `seen_epoch` was taken, or an own
    /// change of unknown outcome may still land on the key.
    pub(crate) fn fill<T: Send + Sync + 'static>(
        &self,
        key: &RedisKey,
        bytes: Bytes,
        redis_ttl: Option<Duration>,
        typed: Option<T>,
        seen_epoch: Epoch,
    ) -> bool {
        let _shared = self.gate.read().expect("L1 gate");
        if !self.is_live()
            || self.epoch(key.as_str()) != seen_epoch
            || self.is_unsettled(key.as_str())
        {
            return false;
        }
        let typed = typed.map(|value| Box::new(value) as Box<dyn Any + Send + Sync>);
        self.entries.insert(
            key.as_str(),
            key.tenant_str(),
            bytes,
            typed,
            self.ttl_for(redis_ttl),
        )
    }

    /// Starts a change of `key` by this instance: see [`OwnChange`].
    pub(crate) fn begin<'a>(&'a self, key: &'a RedisKey) -> OwnChange<'a> {
        let _exclusive = self.gate.write().expect("L1 gate");
        self.bump(key.as_str());
        self.entries.remove(key.as_str(), Cause::Invalidation);
        OwnChange {
            l1: self,
            target: Target::Key(key),
            epoch: self.epoch(key.as_str()),
            settled: false,
        }
    }

    /// Starts a change of every key matching `pattern` by this instance.
    pub(crate) fn begin_pattern<'a>(&'a self, pattern: &'a KeyPattern) -> OwnChange<'a> {
        let _exclusive = self.gate.write().expect("L1 gate");
        self.bump_all();
        self.entries.remove_matching(|key| pattern.matches(key));
        OwnChange {
            l1: self,
            target: Target::Pattern(pattern),
            epoch: Epoch {
                global: self.global.load(Ordering::Acquire),
                stripe: 0,
            },
            settled: false,
        }
    }

    /// Removes everything `scope` covers.
    pub(crate) fn invalidate(&self, scope: &Scope) {
        match scope {
            Scope::Key(key) => self.invalidate_key(key.as_str()),
            Scope::Pattern(pattern) => {
                let _exclusive = self.gate.write().expect("L1 gate");
                self.bump_all();
                self.entries.remove_matching(|key| pattern.matches(key));
            }
        }
    }

    /// Removes one key.
    pub(crate) fn invalidate_key(&self, key: &str) {
        let _exclusive = self.gate.write().expect("L1 gate");
        self.bump(key);
        self.entries.remove(key, Cause::Invalidation);
    }

    /// Removes everything.
    pub(crate) fn flush(&self) {
        let _exclusive = self.gate.write().expect("L1 gate");
        self.bump_all();
        self.entries.clear();
    }

    /// Reclaims expired entries (called about once a second).
    pub(crate) fn sweep(&self) {
        self.entries.sweep();
    }

    /// Entries held.
    pub(crate) fn len(&self) -> u64 {
        self.entries.counts.entries.load(Ordering::Relaxed)
    }

    pub(crate) fn stats(&self) -> L1Stats {
        let c = &self.entries.counts;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        L1Stats {
            bytes: get(&c.bytes),
            entries: get(&c.entries),
            evicted_size: get(&c.evicted_size),
            evicted_tenant_share: get(&c.evicted_tenant_share),
            expired: get(&c.expired),
            invalidated: get(&c.invalidated),
            too_large: get(&c.too_large),
        }
    }
}

/// What an [`OwnChange`] changes.
#[derive(Debug, Clone, Copy)]
enum Target<'a> {
    Key(&'a RedisKey),
    Pattern(&'a KeyPattern),
}

/// A change by this instance in progress (a write, a delete, an expiry, a
/// pattern deletion), from before it is sent until its outcome is known.
/// The old value left the L1 when it began. End it with
/// [`succeeded_with`](Self::succeeded_with) (the new value may stay) or
/// [`succeeded`](Self::succeeded); dropping it any other way (an error, a
/// timeout, a cancelled future) leaves the outcome unknown: see the module
/// docs.
#[must_use = "dropping the change leaves its outcome unknown"]
pub(crate) struct OwnChange<'a> {
    l1: &'a L1,
    target: Target<'a>,
    /// The epoch right after the change began: anything else moving it
    /// (another change, a remote invalidation) means the new value may not
    /// be the latest.
    epoch: Epoch,
    settled: bool,
}

impl std::fmt::Debug for OwnChange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnChange")
            .field("target", &self.target)
            .field("settled", &self.settled)
            .finish_non_exhaustive()
    }
}

impl OwnChange<'_> {
    /// Redis took the write of `bytes` (expiring after `ttl`): the L1 holds
    /// it, unless anything else changed the key since the change began.
    pub(crate) fn succeeded_with(mut self, bytes: Bytes, ttl: Duration) {
        self.settled = true;
        let l1 = self.l1;
        let Target::Key(key) = self.target else {
            return self.end();
        };
        let _exclusive = l1.gate.write().expect("L1 gate");
        let unchanged = l1.epoch(key.as_str()) == self.epoch;
        // Reads that fetched the old value while the write was on its way
        // recorded the current epoch: moving it refuses their fills.
        l1.bump(key.as_str());
        if unchanged && l1.is_live() {
            l1.entries.insert(
                key.as_str(),
                key.tenant_str(),
                bytes,
                None,
                l1.ttl_for(Some(ttl)),
            );
        } else {
            l1.entries.remove(key.as_str(), Cause::Invalidation);
        }
    }

    /// Redis took the change (a delete, an expiry): nothing stays in L1.
    pub(crate) fn succeeded(mut self) {
        self.settled = true;
        self.end();
    }

    /// Removes what the change covers once more, bumping the epoch, so that
    /// nothing read while it was on its way stays.
    fn end(&self) {
        let l1 = self.l1;
        let _exclusive = l1.gate.write().expect("L1 gate");
        match self.target {
            Target::Key(key) => {
                l1.bump(key.as_str());
                l1.entries.remove(key.as_str(), Cause::Invalidation);
                if !self.settled {
                    l1.unsettle(&l1.unsettled[l1.stripe(key.as_str())]);
                }
            }
            Target::Pattern(pattern) => {
                l1.bump_all();
                l1.entries.remove_matching(|key| pattern.matches(key));
                if !self.settled {
                    l1.unsettle(&l1.unsettled_all);
                }
            }
        }
    }
}

impl Drop for OwnChange<'_> {
    fn drop(&mut self) {
        if !self.settled {
            self.end();
        }
    }
}

#[cfg(test)]
mod tests {
    use shared_types::{TenantId, UserId};

    use super::*;

    fn l1() -> L1 {
        let l1 = L1::new(L1Config {
            max_entries: 100,
            ttl_cap: Duration::from_secs(30),
            ..L1Config::default()
        });
        l1.set_live(true);
        l1
    }

    fn bytes(s: &str) -> Bytes {
        Bytes::from(s.to_owned())
    }

    fn key(user: &str) -> RedisKey {
        RedisKey::user_profile(&TenantId::new("t").unwrap(), &UserId::new(user).unwrap())
    }

    fn fill(l1: &L1, key: &RedisKey, value: &str, seen: Epoch) -> bool {
        l1.fill::<u32>(key, bytes(value), None, None, seen)
    }

    fn held(l1: &L1, key: &RedisKey) -> Option<u32> {
        l1.get::<u32>(key.as_str()).map(Result::unwrap)
    }

    // A key read as two types: the first type's decoded copy is kept, the
    // second is decoded from the JSON on each read (outside the shard's
    // lock), and a type the JSON does not fit is a decode failure.
    #[test]
    fn a_key_read_as_two_types_serves_both() {
        let (l1, k) = (l1(), key("k"));
        assert!(fill(&l1, &k, "7", l1.epoch(k.as_str())));
        assert_eq!(held(&l1, &k), Some(7));
        for _ in 0..2 {
            let other = l1.get::<f64>(k.as_str()).map(Result::unwrap);
            assert_eq!(other, Some(7.0));
        }
        assert_eq!(held(&l1, &k), Some(7));
        assert!(matches!(l1.get::<String>(k.as_str()), Some(Err(_))));
    }

    // A fill that raced an invalidation is refused: no resurrection.
    #[test]
    fn fill_after_invalidation_is_refused() {
        let (l1, k) = (l1(), key("k"));
        let seen = l1.epoch(k.as_str());
        l1.invalidate_key(k.as_str());
        assert!(!fill(&l1, &k, "1", seen));
        assert!(held(&l1, &k).is_none());
        assert!(fill(&l1, &k, "1", l1.epoch(k.as_str())));
        assert_eq!(held(&l1, &k), Some(1));
    }

    // Nothing fills an L1 that is not live.
    #[test]
    fn no_fill_while_not_live() {
        let (l1, k) = (l1(), key("k"));
        l1.set_live(false);
        assert!(!fill(&l1, &k, "1", l1.epoch(k.as_str())));
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
        let ka = RedisKey::user_profile(&a, &u);
        let kab = RedisKey::user_profile(&ab, &u);
        for key in [&ka, &kab] {
            assert!(fill(&l1, key, "1", l1.epoch(key.as_str())));
        }
        l1.invalidate(&Scope::Pattern(KeyPattern::tenant_cache(&a)));
        assert!(held(&l1, &ka).is_none());
        assert!(held(&l1, &kab).is_some());
    }

    // A value read as another type is reported, not mis-cast.
    #[test]
    fn a_value_read_as_another_type_is_reported_not_miscast() {
        let (l1, k) = (l1(), key("k"));
        assert!(l1.fill(&k, bytes("7"), None, Some(7u32), l1.epoch(k.as_str())));
        assert_eq!(l1.get::<u32>(k.as_str()).unwrap().unwrap(), 7);
        assert_eq!(l1.get::<u64>(k.as_str()).unwrap().unwrap(), 7);
        assert!(l1.get::<String>(k.as_str()).unwrap().is_err());
    }

    // An own change removes the old value before it is sent; a success
    // leaves the new one, unless something else changed the key meanwhile.
    #[test]
    fn own_changes_remove_the_old_value_first() {
        let (l1, k) = (l1(), key("k"));
        assert!(fill(&l1, &k, "1", l1.epoch(k.as_str())));
        let before = l1.epoch(k.as_str());
        let change = l1.begin(&k);
        assert!(held(&l1, &k).is_none(), "gone before the write is sent");
        assert_ne!(l1.epoch(k.as_str()), before);
        change.succeeded_with(bytes("2"), Duration::from_secs(10));
        assert_eq!(held(&l1, &k), Some(2));

        let change = l1.begin(&k);
        l1.invalidate_key(k.as_str());
        change.succeeded_with(bytes("3"), Duration::from_secs(10));
        assert!(held(&l1, &k).is_none(), "raced by an invalidation");
    }

    // A read that fetched the old value while the change was on its way
    // cannot fill it after the change ended.
    #[test]
    fn reads_during_an_own_change_cannot_fill_the_old_value_after_it() {
        let (l1, k) = (l1(), key("k"));
        let change = l1.begin(&k);
        let seen = l1.epoch(k.as_str());
        change.succeeded_with(bytes("2"), Duration::from_secs(10));
        assert!(!fill(&l1, &k, "1", seen));
        assert_eq!(held(&l1, &k), Some(2));
    }

    // A change dropped without an outcome (error, timeout, cancellation)
    // leaves nothing behind, refuses fills of its key for a while, and makes
    // this instance apply its own invalidation of it.
    #[test]
    fn a_change_of_unknown_outcome_unsettles_its_key() {
        let (l1, k) = (l1(), key("k"));
        assert!(!l1.applies_own(&Scope::Key(k.clone())));
        let change = l1.begin(&k);
        // A read raced the change and filled the old value meanwhile.
        assert!(fill(&l1, &k, "1", l1.epoch(k.as_str())));
        drop(change);
        assert!(held(&l1, &k).is_none());
        assert!(!fill(&l1, &k, "1", l1.epoch(k.as_str())));
        assert!(l1.applies_own(&Scope::Key(k.clone())));
        let other = (0..)
            .map(|i| key(&format!("other{i}")))
            .find(|o| l1.stripe(o.as_str()) != l1.stripe(k.as_str()))
            .unwrap();
        assert!(fill(&l1, &other, "1", l1.epoch(other.as_str())));
    }

    // A pattern change of unknown outcome unsettles every key.
    #[test]
    fn a_pattern_change_of_unknown_outcome_unsettles_everything() {
        let (l1, k) = (l1(), key("k"));
        let pattern = KeyPattern::tenant_cache(&TenantId::new("t").unwrap());
        assert!(fill(&l1, &k, "1", l1.epoch(k.as_str())));
        let change = l1.begin_pattern(&pattern);
        assert!(held(&l1, &k).is_none());
        drop(change);
        assert!(l1.applies_own(&Scope::Pattern(pattern.clone())));
        assert!(!fill(&l1, &k, "1", l1.epoch(k.as_str())));
    }

    // Invalidating one key does not refuse fills of keys in other stripes:
    // under invalidation traffic the L1 still fills.
    #[test]
    fn unrelated_invalidations_do_not_block_fills() {
        let (l1, k) = (l1(), key("k"));
        let other = (0..)
            .map(|i| format!("other-{i}"))
            .find(|o| l1.stripe(o) != l1.stripe(k.as_str()))
            .unwrap();
        let seen = l1.epoch(k.as_str());
        l1.invalidate_key(&other);
        assert!(fill(&l1, &k, "1", seen));
        let seen = l1.epoch(k.as_str());
        l1.flush();
        assert!(!fill(&l1, &k, "1", seen), "a flush covers every key");
    }
}
