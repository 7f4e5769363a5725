//! The clock L1 entries expire by.
//!
//! Every L1 hit checks its entry's expiry, so the clock is read on every
//! hit, and `Instant::now` (`CLOCK_MONOTONIC`) costs 40-60 ns on the
//! virtual machines we measure on: a fifth of a hit (BENCHMARKS.md,
//! workload 2). On Linux the L1 reads `CLOCK_MONOTONIC_COARSE` instead
//! (about 9 ns: the time of the kernel's last tick, no hardware counter
//! read), which lags the true time by about one tick (1 to 10 ms, for `HZ`
//! 1000 to 100), more when timer interrupts are late (a preempted virtual
//! CPU). So that expiry stays on the safe side, each deadline is set
//! [`SLACK`] early, several ticks at the coarsest `HZ`: an entry leaves
//! the L1 up to that much before its TTL (counted from its fill) is up,
//! and after it only if the clock's lag grew by more than the slack
//! between the fill and the read. Elsewhere the clock is `Instant`, with no
//! slack.

use std::time::Duration;

/// How much earlier than its TTL an entry may expire.
#[cfg(target_os = "linux")]
pub(crate) const SLACK: Duration = Duration::from_millis(25);
#[cfg(not(target_os = "linux"))]
pub(crate) const SLACK: Duration = Duration::ZERO;

/// A reading of the expiry clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Moment(imp::Reading);

impl Moment {
    pub(crate) fn now() -> Self {
        Self(imp::now())
    }

    /// When something held for `ttl` from this moment must be gone:
    /// [`SLACK`] early, so that no reading taken after the true deadline
    /// comes before it.
    pub(crate) fn after(self, ttl: Duration) -> Self {
        Self(imp::add(self.0, ttl.saturating_sub(SLACK)))
    }
}

#[cfg(target_os = "linux")]
mod imp {
    use std::time::Duration;

    pub(super) type Reading = coarsetime::Instant;

    pub(super) fn now() -> Reading {
        // Not `now()`: that also stores the reading in a global for
        // `recent()`, a write to one cache line shared by every thread.
        coarsetime::Instant::now_without_cache_update()
    }

    pub(super) fn add(reading: Reading, by: Duration) -> Reading {
        // coarsetime counts 2^-32 s in a u64 (136 years) and saturates: a
        // sum that does not fit is the largest reading, "never".
        reading.saturating_add(coarsetime::Duration::from(by))
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::time::{Duration, Instant};

    pub(super) type Reading = Instant;

    pub(super) fn now() -> Reading {
        Instant::now()
    }

    pub(super) fn add(reading: Reading, by: Duration) -> Reading {
        // An Instant that cannot be reached is "never"; a century will do.
        reading
            .checked_add(by)
            .or_else(|| reading.checked_add(Duration::from_secs(100 * 365 * 86_400)))
            .unwrap_or(reading)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    // A deadline is never later on the true clock than its TTL allows:
    // every reading taken at or after `start + ttl` (true time) is at or
    // past the deadline set at `start`.
    #[test]
    fn a_deadline_is_never_late() {
        let ttl = Duration::from_millis(30);
        for _ in 0..10 {
            let before = Instant::now();
            let deadline = Moment::now().after(ttl);
            while before.elapsed() < ttl {
                std::hint::spin_loop();
            }
            assert!(Moment::now() >= deadline, "still before the deadline");
        }
    }

    // A TTL beyond the clock's range is "never", not a wrap into the past.
    #[test]
    fn an_unreachable_deadline_is_never() {
        let now = Moment::now();
        assert!(now.after(Duration::MAX) > now.after(Duration::from_secs(3600)));
        assert!(now.after(Duration::MAX) > Moment::now());
    }
}
