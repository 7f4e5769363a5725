//! What this process knows it indexed: a write whose key the tenant index
//! already covers for the write's whole TTL needs no index update, so a key
//! rewritten while hot costs a plain `SET`.
//!
//! **Why it is safe.** Index scores only grow (`ZADD GT`), and a member is
//! only removed once its score has passed (trimming). So "the index held key
//! K until at least D" stays true until D, and a write of K whose expiry is
//! before D is covered. The index entry is written with a margin (half the
//! TTL) beyond the key's expiry, so that rewrites within that margin are
//! covered.
//!
//! **Clocks.** Deadlines are kept on this process's monotonic clock, while
//! Redis scores with its own: both the recorded deadline and a later
//! write's expiry are "now + duration" on the same client clock, and the
//! index's score and the key's expiry are the same sums on the server's, so
//! a constant offset between the clocks cancels out.
//!
//! **What it forgets.** Nothing is trusted across a reconnection (the server
//! may have restarted empty or failed over): the memo is cleared when the
//! connection epoch moves. A `FLUSHALL` on a live connection also removes
//! the index without a reconnection; keys rewritten within their margin
//! after it are missed by index purges until their margin passes
//! (`CACHE_PURGE_MODE=scan` finds them).
//!
//! **Layout.** A fixed table of slots, each the 64-bit hash of a key and a
//! deadline in milliseconds. The hash is keyed at random per memo
//! (SipHash, as `HashMap`'s): with a public one (FNV-1a, once) a tenant
//! could pick two key names of equal hash in under a minute, and the
//! second key, taken as indexed, would escape the tenant's purges.
//!
//! A slot is published hash-last (zero while it is written): a reader
//! accepts a deadline only between two reads of the same hash, so a torn
//! slot is never taken for another key's.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Slots of the table: 512 KiB, enough for the hot keys of a busy process.
const SLOTS: usize = 32 * 1024;

pub(crate) struct IndexMemo {
    /// The secret key of the slots' hash.
    seed: RandomState,
    hashes: Box<[AtomicU64]>,
    deadlines: Box<[AtomicU64]>,
    /// The connection epoch the slots belong to.
    epoch: AtomicU64,
    born: Instant,
}

impl std::fmt::Debug for IndexMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexMemo").finish_non_exhaustive()
    }
}

impl IndexMemo {
    pub(crate) fn new() -> Self {
        let zeros = || (0..SLOTS).map(|_| AtomicU64::new(0)).collect();
        Self {
            seed: RandomState::new(),
            hashes: zeros(),
            deadlines: zeros(),
            epoch: AtomicU64::new(0),
            born: Instant::now(),
        }
    }

    /// `key`'s keyed hash, never 0 (0 marks a slot being written).
    fn hash(&self, key: &str) -> u64 {
        self.seed.hash_one(key).max(1)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn slot(h: u64) -> usize {
        // The modulus is below SLOTS, which fits usize.
        usize::try_from(h % SLOTS as u64).unwrap_or(0)
    }

    /// Forgets everything if the connection epoch moved since the slots
    /// were written.
    fn check_epoch(&self, epoch: u64) {
        if self.epoch.load(Ordering::Acquire) == epoch {
            return;
        }
        for hash in &self.hashes {
            hash.store(0, Ordering::Release);
        }
        self.epoch.store(epoch, Ordering::Release);
    }

    /// Whether the index is known to hold `key` for at least `ttl` from now.
    pub(crate) fn covers(&self, key: &str, ttl: Duration, epoch: u64) -> bool {
        self.check_epoch(epoch);
        let h = self.hash(key);
        let i = Self::slot(h);
        if self.hashes[i].load(Ordering::Acquire) != h {
            return false;
        }
        let deadline = self.deadlines[i].load(Ordering::Acquire);
        if self.hashes[i].load(Ordering::Acquire) != h {
            return false;
        }
        let needed = self
            .now_ms()
            .saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
        needed <= deadline
    }

    /// Records that the index holds `key` for `held` from `since` (taken
    /// before the index update was sent, so the deadline is a lower bound).
    pub(crate) fn record(&self, key: &str, since: Instant, held: Duration, epoch: u64) {
        if self.epoch.load(Ordering::Acquire) != epoch {
            // A reconnection happened meanwhile: the update may be lost.
            return;
        }
        let start = u64::try_from(since.saturating_duration_since(self.born).as_millis())
            .unwrap_or(u64::MAX);
        let deadline = start.saturating_add(u64::try_from(held.as_millis()).unwrap_or(u64::MAX));
        let h = self.hash(key);
        let i = Self::slot(h);
        self.hashes[i].store(0, Ordering::Release);
        self.deadlines[i].store(deadline, Ordering::Release);
        self.hashes[i].store(h, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    // A recorded key is covered for writes that expire before its deadline,
    // and only those; other keys are not.
    #[test]
    fn covers_what_was_recorded_and_nothing_else() {
        let memo = IndexMemo::new();
        assert!(!memo.covers("k", MIN, 0));
        memo.record("k", Instant::now(), 3 * MIN, 0);
        assert!(memo.covers("k", MIN, 0));
        assert!(memo.covers("k", 2 * MIN, 0));
        assert!(!memo.covers("k", 4 * MIN, 0));
        assert!(!memo.covers("other", MIN, 0));
    }

    // Keys a caller picked so that a public hash (FNV-1a) gives them the
    // same 64 bits are still told apart: the slots are keyed by a hash
    // seeded at random per memo.
    #[test]
    fn chosen_colliding_names_are_told_apart() {
        let memo = IndexMemo::new();
        memo.record(
            "tenant:t:shard:isKnY0eIswg:structured",
            Instant::now(),
            3 * MIN,
            0,
        );
        assert!(!memo.covers("tenant:t:shard:jvZMhUjd4Xk:structured", MIN, 0));
    }

    // A new connection epoch forgets everything, and a record made across
    // one is dropped.
    #[test]
    fn a_reconnection_forgets_everything() {
        let memo = IndexMemo::new();
        memo.record("k", Instant::now(), 3 * MIN, 0);
        assert!(!memo.covers("k", MIN, 1));
        memo.record("k", Instant::now(), 3 * MIN, 0);
        assert!(!memo.covers("k", MIN, 1), "recorded under an old epoch");
        memo.record("k", Instant::now(), 3 * MIN, 1);
        assert!(memo.covers("k", MIN, 1));
    }
}
