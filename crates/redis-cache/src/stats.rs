//! Cache statistics, kept in-process with relaxed atomics (counters only;
//! nothing orders against them).

use std::sync::atomic::{AtomicU64, Ordering};

/// The live tally of one cache instance (in-process atomics), shared by
/// its clones. Not to be confused with `counters.rs`, Redis counters that
/// callers keep.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) l1_hits: AtomicU64,
    pub(crate) l2_hits: AtomicU64,
    pub(crate) misses: AtomicU64,
    pub(crate) sets: AtomicU64,
    pub(crate) deletes: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) decode_failures: AtomicU64,
    pub(crate) loads: AtomicU64,
    pub(crate) coalesced_waits: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    pub(crate) refreshes: AtomicU64,
    pub(crate) background_loads: AtomicU64,
    pub(crate) fleet_waits: AtomicU64,
    pub(crate) fleet_wait_timeouts: AtomicU64,
    pub(crate) invalidations_sent: AtomicU64,
    pub(crate) invalidations_received: AtomicU64,
    pub(crate) invalidations_applied: AtomicU64,
    pub(crate) l1_flushes: AtomicU64,
    pub(crate) l1_replays: AtomicU64,
    pub(crate) invalidations_replayed: AtomicU64,
    pub(crate) malformed_messages: AtomicU64,
    /// Invalidations the feed lost by lagging (each time answered by a flush).
    pub(crate) invalidations_missed: AtomicU64,
    /// Invalidations from a newer version of the layer that this one could
    /// not read (each answered by dropping the tenant from the L1).
    pub(crate) invalidations_unreadable: AtomicU64,
    /// When the last remote invalidation was applied, in ms since the Unix
    /// epoch (0: never).
    pub(crate) last_applied_ms: AtomicU64,
    /// How long the last remote invalidation of ours took from its publisher
    /// to this L1, in ms (its payload's timestamp to now; clocks of one
    /// fleet are assumed close).
    pub(crate) last_delay_ms: AtomicU64,
}

/// Now, in milliseconds since the Unix epoch (0 for a clock before it).
pub(crate) fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Sets a gauge kept in an atomic.
pub(crate) fn store(gauge: &AtomicU64, value: u64) {
    gauge.store(value, Ordering::Relaxed);
}

/// Adds `n` to a counter.
pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

/// Adds one to a counter.
pub(crate) fn bump(counter: &AtomicU64) {
    add(counter, 1);
}

impl Tally {
    pub(crate) fn snapshot(&self) -> CacheStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CacheStats {
            l1_hits: get(&self.l1_hits),
            l2_hits: get(&self.l2_hits),
            misses: get(&self.misses),
            sets: get(&self.sets),
            deletes: get(&self.deletes),
            errors: get(&self.errors),
            decode_failures: get(&self.decode_failures),
            loads: get(&self.loads),
            coalesced_waits: get(&self.coalesced_waits),
            stale_served: get(&self.stale_served),
            refreshes: get(&self.refreshes),
            background_loads: get(&self.background_loads),
            fleet_waits: get(&self.fleet_waits),
            fleet_wait_timeouts: get(&self.fleet_wait_timeouts),
            invalidations_sent: get(&self.invalidations_sent),
            invalidations_received: get(&self.invalidations_received),
            invalidations_applied: get(&self.invalidations_applied),
            l1_flushes: get(&self.l1_flushes),
            l1_replays: get(&self.l1_replays),
            invalidations_replayed: get(&self.invalidations_replayed),
            malformed_messages: get(&self.malformed_messages),
            invalidations_missed: get(&self.invalidations_missed),
            invalidations_unreadable: get(&self.invalidations_unreadable),
            last_invalidation_applied_ms: get(&self.last_applied_ms),
            last_invalidation_delay_ms: get(&self.last_delay_ms),
            ..CacheStats::default()
        }
    }
}

/// A snapshot of a cache instance's counters since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    /// Reads answered by the in-process L1 while it was trusted (its
    /// invalidation feed live). Its copies served because Redis could not
    /// answer count in [`stale_served`](Self::stale_served) instead.
    pub l1_hits: u64,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads that found nothing (including reads degraded to a miss).
    pub misses: u64,
    /// Values written.
    pub sets: u64,
    /// Keys removed (by `delete`, `delete_pattern`, invalidations).
    pub deletes: u64,
    /// Operations that failed because Redis was unavailable or refused.
    pub errors: u64,
    /// Stored values that did not decode as the requested type (each deleted).
    pub decode_failures: u64,
    /// Loader calls made by `get_or_load`.
    pub loads: u64,
    /// `get_or_load` callers that waited for another caller's load.
    pub coalesced_waits: u64,
    /// Values served stale, in two cases: `get_or_load_with` calls
    /// answered with a value past its expiry because the loader failed or
    /// timed out (fail-safe); and plain reads (`get`, `mget`,
    /// `get_with_tier` with [`Tier::Stale`](crate::Tier::Stale)) answered
    /// from the L1 because Redis could not answer while the L1 was not
    /// trusted. The latter are not counted as hits ([`hits`](Self::hits)).
    pub stale_served: u64,
    /// Eager refreshes started by this instance (it held the key's lease):
    /// background reloads of values read in the last part of their TTL.
    pub refreshes: u64,
    /// Loads that passed their soft timeout and finished in the background
    /// while callers got the kept value (each bounded in time).
    pub background_loads: u64,
    /// Waits of `get_or_load` for another instance's load of the same key
    /// (it held the key's lease), instead of calling the loader here.
    pub fleet_waits: u64,
    /// Of those, waits that ran out (the holder died or was slower than
    /// [`LoadOptions::fleet_wait`](crate::LoadOptions::fleet_wait)): the
    /// loader ran here, its value not cached.
    pub fleet_wait_timeouts: u64,
    /// Invalidations published by this instance.
    pub invalidations_sent: u64,
    /// Invalidations received from other instances.
    pub invalidations_received: u64,
    /// Invalidations applied to this instance's L1.
    pub invalidations_applied: u64,
    /// Whole-L1 flushes: after a gap the invalidation stream no longer
    /// held (older than its retention, or Redis lost its data), or that
    /// could not be read.
    pub l1_flushes: u64,
    /// Gaps (a subscriber reconnect, a lag, a missed message) caught up by
    /// replaying the invalidation stream, without a flush.
    pub l1_replays: u64,
    /// Invalidations applied from the stream by those replays.
    pub invalidations_replayed: u64,
    /// Messages on invalidation channels that name no invalidation (the
    /// channel does not parse): ignored.
    pub malformed_messages: u64,
    /// Invalidations applied although their payload was not ours (a
    /// TypeScript service's, empty, garbled): the channel said what.
    pub foreign_payloads: u64,
    /// Bytes the L1 holds now (a gauge): keys, JSON and decoded copies.
    pub l1_bytes: u64,
    /// Entries the L1 holds now (a gauge).
    pub l1_entries: u64,
    /// L1 entries evicted because the L1 was over its byte or entry bound.
    pub l1_evicted_size: u64,
    /// L1 entries evicted because their tenant was over its share.
    pub l1_evicted_tenant_share: u64,
    /// L1 entries that outlived their TTL.
    pub l1_expired: u64,
    /// L1 entries removed by invalidations, flushes and this instance's
    /// own changes.
    pub l1_invalidated: u64,
    /// Values not held in the L1 for being larger than its per-value bound.
    pub l1_too_large: u64,
    /// Whether the invalidation feed is live now (a gauge): subscribed, so
    /// that the L1 serves. `false` for a cache without an L1.
    pub invalidation_feed_live: bool,
    /// Invalidations lost on the channel because the feed lagged (each
    /// loss replayed from the stream, or flushed the L1).
    pub invalidations_missed: u64,
    /// Invalidations from a newer version of this layer that this one could
    /// not read (a newer wire format or an unknown kind, see
    /// [`WIRE_VERSION`](crate::WIRE_VERSION)): each dropped its whole tenant from
    /// the L1.
    pub invalidations_unreadable: u64,
    /// When the last invalidation from another instance or client was
    /// applied, in milliseconds since the Unix epoch; 0 before the first.
    pub last_invalidation_applied_ms: u64,
    /// How long the last applied invalidation of another instance of ours
    /// took from its publisher to this L1, in milliseconds (the payload's
    /// timestamp to the moment it was applied; assumes the fleet's clocks
    /// agree). Foreign payloads carry no trusted timestamp and leave it.
    pub last_invalidation_delay_ms: u64,
}

impl CacheStats {
    pub(crate) fn add_l1(&mut self, l1: &crate::l1::L1Stats) {
        self.l1_bytes = l1.bytes;
        self.l1_entries = l1.entries;
        self.l1_evicted_size = l1.evicted_size;
        self.l1_evicted_tenant_share = l1.evicted_tenant_share;
        self.l1_expired = l1.expired;
        self.l1_invalidated = l1.invalidated;
        self.l1_too_large = l1.too_large;
    }

    /// Reads that found a value, in either tier (not counting values
    /// served stale from the L1, see [`stale_served`](Self::stale_served)).
    ///
    /// # Examples
    ///
    /// ```
    /// let stats = redis_cache::CacheStats::default();
    /// assert_eq!(stats.hits(), 0);
    /// ```
    pub fn hits(&self) -> u64 {
        self.l1_hits + self.l2_hits
    }

    /// Hits over all reads, from 0.0 to 1.0 (0.0 before any read).
    ///
    /// # Examples
    ///
    /// ```
    /// // No read yet: 0, not NaN.
    /// assert_eq!(redis_cache::CacheStats::default().hit_rate(), 0.0);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        let reads = self.hits() + self.misses;
        if reads == 0 {
            0.0
        } else {
            // Counts stay far below 2^52, where f64 would round.
            #[allow(clippy::cast_precision_loss)]
            let rate = self.hits() as f64 / reads as f64;
            rate
        }
    }
}

/// What Redis itself reports (the seed's `getStats()`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ServerStats {
    /// Keys in the database (summed over primaries on a cluster).
    pub keys: u64,
    /// `used_memory` in bytes (summed over primaries on a cluster).
    pub used_memory_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    // The hit rate counts both tiers and is 0 before any read.
    #[test]
    fn hit_rate_counts_both_tiers_and_is_zero_before_reads() {
        assert_eq!(CacheStats::default().hit_rate(), 0.0);
        let s = CacheStats {
            l1_hits: 2,
            l2_hits: 1,
            misses: 1,
            ..CacheStats::default()
        };
        assert_eq!(s.hits(), 3);
        assert!((s.hit_rate() - 0.75).abs() < f64::EPSILON);
    }
}
