//! The L1's storage: a sharded map bounded in bytes and in entries, where no
//! tenant holds more than its share.
//!
//! **Weight.** An entry weighs its key, its JSON bytes, an estimate of its
//! decoded copy (as much again as the JSON: the first read decodes it once
//! and keeps the result) and a fixed overhead for the map slot, the `Arc`
//! and the ring slot. Values whose JSON exceeds `max_value_bytes` are never
//! held: one of them would cost more than many small hot entries, and they
//! are what a hostile caller would use to fill memory.
//!
//! **Fairness.** Each tenant has a ledger: its bytes, its entries, and a
//! ring of its entries in insertion order. A tenant over its share (of bytes
//! or of entries) evicts its own oldest entries, never another tenant's. When
//! the whole L1 is over its bounds, the tenant holding the most bytes gives
//! way first. Within a tenant the ring is a second-chance FIFO (CLOCK): an
//! entry read since it was last considered goes round once more, so hot
//! entries stay and one-off fills leave first.
//!
//! **Lookups.** A key is hashed once per operation, with SipHash keyed at
//! random per L1 instance (as `HashMap`'s: a tenant cannot pick key names
//! that collide, to slow other tenants' lookups); the hash picks the shard
//! and finds the slot in the shard's table. A hit clones its decoded value
//! under the shard's read lock rather than taking the entry's `Arc`; the
//! rare read that must decode takes the `Arc` and decodes after the lock.
//!
//! **Locking.** Reads take one shard's read lock and touch the entry's
//! `referenced` flag (written only when it changes). Every change (insert,
//! removal, eviction, sweep) holds the ledger mutex, then the shard's write
//! lock: that order is the only one, and it makes the accounting exact (an
//! entry is subtracted exactly once, by whoever detaches it under the
//! mutex). Rings hold `Weak` references, so an entry removed from the map
//! frees its bytes at once even before its ring slot is reclaimed.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock, Weak};
use std::time::Duration;

use bytes::Bytes;
use hashbrown::HashTable;
use hashbrown::hash_table::Entry as Slot;

use super::clock::Moment;

/// Bookkeeping bytes of one entry beyond its key and value: the `Entry`
/// itself, its `Arc`, the map slot and the ring slot (measured sizes rounded
/// up; the exact figure matters less than counting something per entry).
const ENTRY_OVERHEAD: usize = 160;

/// Shards of the map: enough that a write rarely blocks readers of others.
const SHARDS: usize = 64;

/// One cached value: the JSON bytes, and the decoded value of the first type
/// it was read as (so hits skip JSON decoding).
pub(crate) struct Entry {
    key: Box<str>,
    /// The key's hash (see [`Entries::hash`]): its shard, and its slot when
    /// the table grows.
    hash: u64,
    tenant: Arc<str>,
    pub(crate) bytes: Bytes,
    pub(crate) typed: OnceLock<Box<dyn Any + Send + Sync>>,
    expires_at: Moment,
    weight: usize,
    /// Read since the eviction hand last passed (second chance).
    referenced: AtomicBool,
    /// Detached from the map and the accounting (set under the ledger mutex).
    removed: AtomicBool,
}

impl Entry {
    fn is_expired(&self, now: Moment) -> bool {
        self.expires_at <= now
    }
}

/// What bounds the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    pub(crate) max_bytes: usize,
    pub(crate) max_entries: usize,
    pub(crate) max_value_bytes: usize,
    /// Share of `max_bytes` and `max_entries` one tenant may hold, in percent.
    pub(crate) tenant_share_percent: u8,
}

impl Limits {
    fn tenant_bytes(&self) -> usize {
        share(self.max_bytes, self.tenant_share_percent)
    }

    fn tenant_entries(&self) -> usize {
        share(self.max_entries, self.tenant_share_percent).max(1)
    }
}

fn share(total: usize, percent: u8) -> usize {
    // Bounds fit comfortably in u128; the result is at most `total`.
    usize::try_from(total as u128 * u128::from(percent) / 100).unwrap_or(total)
}

/// Why entries left the storage other than by being replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The whole L1 was over its byte or entry bound.
    Size,
    /// The entry's tenant was over its share.
    TenantShare,
    /// The entry outlived its TTL.
    Ttl,
    /// An invalidation, a flush, or a change made by this instance.
    Invalidation,
}

/// The storage's counters, readable without locks.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) bytes: AtomicU64,
    pub(crate) entries: AtomicU64,
    pub(crate) evicted_size: AtomicU64,
    pub(crate) evicted_tenant_share: AtomicU64,
    pub(crate) expired: AtomicU64,
    pub(crate) invalidated: AtomicU64,
    /// Values refused for being larger than `max_value_bytes`.
    pub(crate) too_large: AtomicU64,
}

impl Counts {
    fn evicted(&self, cause: Cause, n: u64) {
        let counter = match cause {
            Cause::Size => &self.evicted_size,
            Cause::TenantShare => &self.evicted_tenant_share,
            Cause::Ttl => &self.expired,
            Cause::Invalidation => &self.invalidated,
        };
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// One tenant's holdings.
#[derive(Default)]
struct Tenant {
    bytes: usize,
    entries: usize,
    /// Its entries in insertion order (with second chances); may hold
    /// references to entries already removed, skipped when met.
    ring: VecDeque<Weak<Entry>>,
}

#[derive(Default)]
struct Ledger {
    tenants: HashMap<Arc<str>, Tenant>,
    bytes: usize,
    entries: usize,
}

type Shard = RwLock<HashTable<Arc<Entry>>>;

pub(crate) struct Entries {
    /// The secret key of [`Entries::hash`].
    seed: RandomState,
    shards: Box<[Shard]>,
    ledger: Mutex<Ledger>,
    limits: Limits,
    pub(crate) counts: Counts,
}

impl std::fmt::Debug for Entries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entries")
            .field("limits", &self.limits)
            .field("counts", &self.counts)
            .finish_non_exhaustive()
    }
}

impl Entries {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            seed: RandomState::new(),
            shards: (0..SHARDS).map(|_| RwLock::default()).collect(),
            ledger: Mutex::default(),
            limits,
            counts: Counts::default(),
        }
    }

    /// `key`'s hash: the shard, the slot in its table, and (in `L1`) the
    /// epoch stripe all derive from it.
    pub(crate) fn hash(&self, key: &str) -> u64 {
        self.seed.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &Shard {
        // Bits the table does not use: it indexes by the low bits (below 32
        // for any table that fits in memory) and tags slots with the top 7.
        // The modulus is below SHARDS, which fits usize.
        &self.shards[usize::try_from((hash >> 32) % SHARDS as u64).unwrap_or(0)]
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().expect("L1 ledger")
    }

    /// What `read` makes of the live entry for `key`, marked as read;
    /// `read` runs under the shard's read lock (writers of the shard wait
    /// for it: keep it short, a clone at most).
    pub(crate) fn read<R>(&self, key: &str, read: impl FnOnce(&Arc<Entry>) -> R) -> Option<R> {
        let hash = self.hash(key);
        let shard = self.shard(hash).read().expect("L1 shard");
        let entry = shard.find(hash, |e| *e.key == *key)?;
        if entry.is_expired(Moment::now()) {
            return None;
        }
        // Only write when it changes: a hot entry's cache line stays shared.
        if !entry.referenced.load(Ordering::Relaxed) {
            entry.referenced.store(true, Ordering::Relaxed);
        }
        Some(read(entry))
    }

    /// Whether a live entry for `key` is held (and marks it as read).
    #[cfg(test)]
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.read(key, |_| ()).is_some()
    }

    /// Holds `bytes` (and its decoded copy, if given) under `key` for `ttl`,
    /// replacing what was there, then evicts until every bound holds again.
    /// `false` when the value is too large to hold at all.
    pub(crate) fn insert(
        &self,
        key: &str,
        tenant: &str,
        bytes: Bytes,
        typed: Option<Box<dyn Any + Send + Sync>>,
        ttl: Duration,
    ) -> bool {
        let weight = key.len() + 2 * bytes.len() + ENTRY_OVERHEAD;
        if bytes.len() > self.limits.max_value_bytes || weight > self.limits.tenant_bytes() {
            self.counts.too_large.fetch_add(1, Ordering::Relaxed);
            // What was held is older than what Redis now has: drop it.
            self.remove(key, Cause::Invalidation);
            return false;
        }
        let slot = OnceLock::new();
        if let Some(typed) = typed {
            let _ = slot.set(typed);
        }
        let mut ledger = self.ledger();
        let tenant = match ledger.tenants.get_key_value(tenant) {
            Some((name, _)) => name.clone(),
            None => Arc::from(tenant),
        };
        let hash = self.hash(key);
        let entry = Arc::new(Entry {
            key: key.into(),
            hash,
            tenant: tenant.clone(),
            bytes,
            typed: slot,
            expires_at: Moment::now().after(ttl),
            weight,
            referenced: AtomicBool::new(false),
            removed: AtomicBool::new(false),
        });
        let replaced = match self.shard(hash).write().expect("L1 shard").entry(
            hash,
            |e| *e.key == *key,
            |e| e.hash,
        ) {
            Slot::Occupied(mut held) => Some(std::mem::replace(held.get_mut(), entry.clone())),
            Slot::Vacant(slot) => {
                slot.insert(entry.clone());
                None
            }
        };
        if let Some(old) = replaced {
            detach(&mut ledger, &old);
        }
        let holdings = ledger.tenants.entry(tenant.clone()).or_default();
        holdings.bytes += weight;
        holdings.entries += 1;
        holdings.ring.push_back(Arc::downgrade(&entry));
        compact(holdings);
        ledger.bytes += weight;
        ledger.entries += 1;
        self.enforce(&mut ledger, &tenant);
        self.publish(&ledger);
        true
    }

    /// Evicts until `tenant` is within its share and the whole is within
    /// its bounds.
    fn enforce(&self, ledger: &mut Ledger, tenant: &Arc<str>) {
        let now = Moment::now();
        // At 100 % a tenant's bound is the whole's: count it as size.
        let shared = self.limits.tenant_share_percent < 100;
        while shared
            && ledger.tenants.get(tenant).is_some_and(|t| {
                t.bytes > self.limits.tenant_bytes() || t.entries > self.limits.tenant_entries()
            })
        {
            if !self.evict_one(ledger, tenant, Cause::TenantShare, now) {
                break;
            }
        }
        while ledger.bytes > self.limits.max_bytes || ledger.entries > self.limits.max_entries {
            let Some(largest) = ledger
                .tenants
                .iter()
                .filter(|(_, t)| t.entries > 0)
                .max_by_key(|(_, t)| t.bytes)
                .map(|(name, _)| name.clone())
            else {
                break;
            };
            if !self.evict_one(ledger, &largest, Cause::Size, now) {
                break;
            }
        }
    }

    /// Evicts one entry of `tenant`: the oldest not read since the hand last
    /// passed (an expired one counts as expired, whatever `cause`). `false`
    /// when the tenant has nothing left to evict.
    fn evict_one(&self, ledger: &mut Ledger, tenant: &Arc<str>, cause: Cause, now: Moment) -> bool {
        let victim = {
            let Some(holdings) = ledger.tenants.get_mut(tenant) else {
                return false;
            };
            // Two passes at most: the first may only clear `referenced` bits.
            let mut budget = holdings.ring.len().saturating_mul(2);
            loop {
                if budget == 0 {
                    return false;
                }
                budget -= 1;
                let Some(weak) = holdings.ring.pop_front() else {
                    return false;
                };
                let Some(entry) = weak.upgrade() else {
                    continue;
                };
                if entry.removed.load(Ordering::Relaxed) {
                    continue;
                }
                if !entry.is_expired(now) && entry.referenced.swap(false, Ordering::Relaxed) {
                    holdings.ring.push_back(weak);
                    continue;
                }
                break entry;
            }
        };
        let cause = if victim.is_expired(now) {
            Cause::Ttl
        } else {
            cause
        };
        self.unmap(ledger, &victim);
        self.counts.evicted(cause, 1);
        true
    }

    /// Removes `entry` from its shard (if it is still the one mapped) and
    /// from the accounting.
    fn unmap(&self, ledger: &mut Ledger, entry: &Arc<Entry>) {
        let mut shard = self.shard(entry.hash).write().expect("L1 shard");
        if let Ok(held) = shard.find_entry(entry.hash, |held| Arc::ptr_eq(held, entry)) {
            held.remove();
        }
        drop(shard);
        detach(ledger, entry);
    }

    /// Removes `key`; `true` if it was held.
    pub(crate) fn remove(&self, key: &str, cause: Cause) -> bool {
        let mut ledger = self.ledger();
        let hash = self.hash(key);
        let mut shard = self.shard(hash).write().expect("L1 shard");
        let Ok(held) = shard.find_entry(hash, |e| *e.key == *key) else {
            return false;
        };
        let entry = held.remove().0;
        drop(shard);
        detach(&mut ledger, &entry);
        self.counts.evicted(cause, 1);
        self.publish(&ledger);
        true
    }

    /// Removes every key for which `matches` holds.
    pub(crate) fn remove_matching(&self, matches: impl Fn(&str) -> bool) {
        let mut ledger = self.ledger();
        let mut n = 0;
        for shard in &self.shards {
            for entry in shard
                .write()
                .expect("L1 shard")
                .extract_if(|e| matches(&e.key))
            {
                detach(&mut ledger, &entry);
                n += 1;
            }
        }
        self.counts.evicted(Cause::Invalidation, n);
        self.publish(&ledger);
    }

    /// Removes everything.
    pub(crate) fn clear(&self) {
        let mut ledger = self.ledger();
        let mut n = 0;
        for shard in &self.shards {
            for entry in shard.write().expect("L1 shard").drain() {
                entry.removed.store(true, Ordering::Relaxed);
                n += 1;
            }
        }
        *ledger = Ledger::default();
        self.counts.evicted(Cause::Invalidation, n);
        self.publish(&ledger);
    }

    /// Drops expired entries from the front of every tenant's ring, reclaims
    /// ring slots of removed entries, and forgets tenants that hold nothing.
    /// Entries are inserted with TTLs under one cap, so a ring's front is
    /// close to its earliest expiry; what this misses is evicted (and
    /// counted) when the ring's hand reaches it.
    pub(crate) fn sweep(&self) {
        let now = Moment::now();
        let mut ledger = self.ledger();
        let names: Vec<Arc<str>> = ledger.tenants.keys().cloned().collect();
        for name in names {
            while let Some(front) = ledger
                .tenants
                .get_mut(&name)
                .and_then(|holdings| holdings.ring.front().cloned())
            {
                match front.upgrade() {
                    Some(entry) if !entry.removed.load(Ordering::Relaxed) => {
                        if !entry.is_expired(now) {
                            break;
                        }
                        pop_front(&mut ledger, &name);
                        self.unmap(&mut ledger, &entry);
                        self.counts.evicted(Cause::Ttl, 1);
                    }
                    _ => pop_front(&mut ledger, &name),
                }
            }
            let Some(holdings) = ledger.tenants.get_mut(&name) else {
                continue;
            };
            compact(holdings);
            if holdings.entries == 0 && holdings.ring.is_empty() {
                ledger.tenants.remove(&name);
            }
        }
        self.publish(&ledger);
    }

    /// Bytes and entries one tenant holds now.
    #[cfg(test)]
    pub(crate) fn tenant_usage(&self, tenant: &str) -> (usize, usize) {
        self.ledger()
            .tenants
            .get(tenant)
            .map_or((0, 0), |t| (t.bytes, t.entries))
    }

    /// Tenants with a ledger (holding entries, or ring slots not yet swept).
    #[cfg(test)]
    pub(crate) fn tenants(&self) -> usize {
        self.ledger().tenants.len()
    }

    /// Makes the totals readable without the mutex.
    fn publish(&self, ledger: &Ledger) {
        self.counts
            .bytes
            .store(ledger.bytes as u64, Ordering::Relaxed);
        self.counts
            .entries
            .store(ledger.entries as u64, Ordering::Relaxed);
    }
}

/// Drops the front of `tenant`'s ring.
fn pop_front(ledger: &mut Ledger, tenant: &Arc<str>) {
    if let Some(holdings) = ledger.tenants.get_mut(tenant) {
        holdings.ring.pop_front();
    }
}

/// Reclaims the ring slots of removed entries once they outnumber the live
/// ones: amortised O(1) per removal, and a ring never holds more than about
/// twice its tenant's entries (each dead slot keeps a small allocation).
fn compact(holdings: &mut Tenant) {
    if holdings.ring.len() > 2 * holdings.entries + 32 {
        holdings.ring.retain(|weak| {
            weak.upgrade()
                .is_some_and(|e| !e.removed.load(Ordering::Relaxed))
        });
    }
}

/// Takes `entry` out of the accounting, once (under the ledger mutex).
fn detach(ledger: &mut Ledger, entry: &Entry) {
    if entry.removed.swap(true, Ordering::Relaxed) {
        return;
    }
    ledger.bytes -= entry.weight;
    ledger.entries -= 1;
    if let Some(holdings) = ledger.tenants.get_mut(&entry.tenant) {
        holdings.bytes -= entry.weight;
        holdings.entries -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_bytes: usize, share: u8) -> Limits {
        Limits {
            max_bytes,
            max_entries: 1_000_000,
            max_value_bytes: 64 * 1024,
            tenant_share_percent: share,
        }
    }

    fn value(len: usize) -> Bytes {
        Bytes::from(vec![b'x'; len])
    }

    const TTL: Duration = Duration::from_secs(60);

    fn weight(key: &str, len: usize) -> usize {
        key.len() + 2 * len + ENTRY_OVERHEAD
    }

    // The total bytes never exceed the bound, and the count is exact.
    #[test]
    fn bytes_stay_within_the_bound() {
        let entries = Entries::new(limits(100_000, 100));
        for i in 0..1_000 {
            entries.insert(&format!("k{i}"), "t", value(1_000), None, TTL);
            let held = entries.counts.bytes.load(Ordering::Relaxed);
            assert!(held <= 100_000, "{held} bytes held after {i} inserts");
        }
        let n = entries.counts.entries.load(Ordering::Relaxed);
        assert_eq!(
            entries.counts.bytes.load(Ordering::Relaxed),
            n * weight("k999", 1_000) as u64
        );
        assert!(entries.contains("k999"), "the newest entry is held");
        assert!(entries.counts.evicted_size.load(Ordering::Relaxed) > 900);
    }

    // A value over the per-value limit is not held, and drops an older copy.
    #[test]
    fn large_values_are_not_held() {
        let entries = Entries::new(limits(10_000_000, 100));
        assert!(entries.insert("k", "t", value(10), None, TTL));
        assert!(!entries.insert("k", "t", value(64 * 1024 + 1), None, TTL));
        assert!(!entries.contains("k"));
        assert_eq!(entries.counts.too_large.load(Ordering::Relaxed), 1);
        assert_eq!(entries.counts.bytes.load(Ordering::Relaxed), 0);
    }

    // A tenant past its share evicts its own entries, never another's.
    #[test]
    fn a_flooding_tenant_evicts_only_its_own_entries() {
        let entries = Entries::new(limits(1_000_000, 25));
        for i in 0..50 {
            entries.insert(&format!("quiet{i}"), "quiet", value(1_000), None, TTL);
        }
        for i in 0..10_000 {
            entries.insert(&format!("loud{i}"), "loud", value(1_000), None, TTL);
        }
        for i in 0..50 {
            assert!(entries.contains(&format!("quiet{i}")), "quiet{i} kept");
        }
        let (loud_bytes, _) = entries.tenant_usage("loud");
        assert!(loud_bytes <= 250_000, "{loud_bytes}");
        assert!(entries.counts.evicted_tenant_share.load(Ordering::Relaxed) > 9_000);
        assert_eq!(entries.counts.evicted_size.load(Ordering::Relaxed), 0);
    }

    // Under global pressure the largest tenant gives way first.
    #[test]
    fn the_largest_tenant_gives_way_under_pressure() {
        let entries = Entries::new(limits(10 * weight("a0", 100), 60));
        for i in 0..4 {
            entries.insert(&format!("a{i}"), "a", value(100), None, TTL);
        }
        for i in 0..6 {
            entries.insert(&format!("b{i}"), "b", value(100), None, TTL);
        }
        // Full: the next insert of `a` evicts from `b`, the larger.
        entries.insert("a4", "a", value(100), None, TTL);
        assert_eq!(entries.tenant_usage("a").1, 5);
        assert_eq!(entries.tenant_usage("b").1, 5);
        assert!(!entries.contains("b0"), "b's oldest went");
    }

    // An entry read since the hand last passed gets a second chance.
    #[test]
    fn read_entries_get_a_second_chance() {
        let entries = Entries::new(limits(3 * weight("k0", 100), 100));
        for i in 0..3 {
            entries.insert(&format!("k{i}"), "t", value(100), None, TTL);
        }
        assert!(entries.contains("k0"));
        entries.insert("k3", "t", value(100), None, TTL);
        assert!(entries.contains("k0"), "read, so kept");
        assert!(!entries.contains("k1"), "oldest unread, so evicted");
    }

    // Replacing, removing and clearing keep the accounting exact.
    #[test]
    fn accounting_is_exact_through_every_change() {
        let entries = Entries::new(limits(10_000_000, 100));
        entries.insert("k", "t", value(10), None, TTL);
        entries.insert("k", "t", value(20), None, TTL);
        assert_eq!(entries.tenant_usage("t"), (weight("k", 20), 1));
        entries.insert("other", "u", value(5), None, TTL);
        assert!(entries.remove("k", Cause::Invalidation));
        assert!(!entries.remove("k", Cause::Invalidation));
        assert_eq!(entries.tenant_usage("t"), (0, 0));
        entries.remove_matching(|k| k.starts_with("oth"));
        assert_eq!(entries.counts.entries.load(Ordering::Relaxed), 0);
        entries.insert("again", "t", value(5), None, TTL);
        entries.clear();
        assert_eq!(entries.counts.bytes.load(Ordering::Relaxed), 0);
        entries.insert("after", "t", value(5), None, TTL);
        assert_eq!(entries.tenant_usage("t"), (weight("after", 5), 1));
    }

    // Expired entries are not served, and the sweep reclaims them.
    #[test]
    fn expired_entries_are_swept() {
        let entries = Entries::new(limits(10_000_000, 100));
        entries.insert("short", "t", value(10), None, Duration::ZERO);
        entries.insert("long", "u", value(10), None, TTL);
        assert!(!entries.contains("short"));
        entries.sweep();
        assert_eq!(entries.tenant_usage("t"), (0, 0));
        assert_eq!(entries.tenants(), 1, "the empty tenant is forgotten");
        assert_eq!(entries.counts.expired.load(Ordering::Relaxed), 1);
        assert!(entries.contains("long"));
    }

    // Rings of tenants that only replace their entries do not grow forever.
    #[test]
    fn rings_are_compacted() {
        let entries = Entries::new(limits(10_000_000, 100));
        for _ in 0..10_000 {
            entries.insert("hot", "t", value(1), None, TTL);
        }
        entries.sweep();
        let ledger = entries.ledger();
        assert!(
            ledger.tenants["t"].ring.len() <= 34,
            "{}",
            ledger.tenants["t"].ring.len()
        );
    }
}
