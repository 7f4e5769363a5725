//! TTL policies: how long each family of entries lives in Redis.
//!
//! Entries written together (a tenant's shards after a deploy, say) would all
//! expire together and stampede their source of truth. A policy therefore adds
//! jitter: each write draws its TTL uniformly from `base ± jitter`. Sessions
//! are the exception: their expiry is a promise to the user, so they use a
//! fixed policy.

use std::time::Duration;

use crate::error::ValidationError;

/// Default jitter: ±10 % of the base TTL.
pub const DEFAULT_JITTER_PERCENT: u8 = 10;

/// The allowed range of the shard structured-data TTL.
pub const SHARD_TTL_RANGE: (Duration, Duration) = (minutes(15), minutes(30));

const fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

/// How long one family of entries lives, and how much that may vary per write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TtlPolicy {
    base: Duration,
    jitter_percent: u8,
}

impl TtlPolicy {
    /// A policy of `base` ± `jitter_percent` %.
    ///
    /// # Errors
    /// [`ValidationError::Ttl`] when `base` is under one second (Redis expiry
    /// granularity we rely on) or the jitter is over 50 %.
    pub fn new(base: Duration, jitter_percent: u8) -> Result<Self, ValidationError> {
        if base < Duration::from_secs(1) {
            return Err(ttl_error("custom", "must be at least 1 second"));
        }
        if jitter_percent > 50 {
            return Err(ttl_error("custom", "jitter must be at most 50 %"));
        }
        Ok(Self {
            base,
            jitter_percent,
        })
    }

    /// A policy without jitter: every write gets exactly `base`.
    const fn fixed(base: Duration) -> Self {
        Self {
            base,
            jitter_percent: 0,
        }
    }

    const fn jittered(base: Duration) -> Self {
        Self {
            base,
            jitter_percent: DEFAULT_JITTER_PERCENT,
        }
    }

    /// Shard structured data: 15 minutes ± 10 %.
    pub const fn shard_structured() -> Self {
        Self::jittered(minutes(15))
    }

    /// Shard structured data with a configured base TTL.
    ///
    /// # Errors
    /// [`ValidationError::Ttl`] unless `base` lies within [`SHARD_TTL_RANGE`].
    pub fn shard_structured_with(base: Duration) -> Result<Self, ValidationError> {
        let (min, max) = SHARD_TTL_RANGE;
        if base < min || base > max {
            return Err(ttl_error(
                "shard_structured",
                "must be between 15 and 30 minutes (900 to 1800 seconds)",
            ));
        }
        Ok(Self::jittered(base))
    }

    /// User profiles: 1 hour ± 10 %.
    pub const fn user_profile() -> Self {
        Self::jittered(minutes(60))
    }

    /// ACL check results: 10 minutes ± 10 %.
    pub const fn acl() -> Self {
        Self::jittered(minutes(10))
    }

    /// Vector-search results: 30 minutes ± 10 %.
    pub const fn vector_search() -> Self {
        Self::jittered(minutes(30))
    }

    /// Sessions: 9 hours, without jitter.
    pub const fn session() -> Self {
        Self::fixed(minutes(9 * 60))
    }

    /// Sessions with a configured lifetime, without jitter.
    ///
    /// # Errors
    /// [`ValidationError::Ttl`] when `lifetime` is under one second.
    pub fn session_with(lifetime: Duration) -> Result<Self, ValidationError> {
        if lifetime < Duration::from_secs(1) {
            return Err(ttl_error("session", "must be at least 1 second"));
        }
        Ok(Self::fixed(lifetime))
    }

    /// The base TTL, before jitter.
    pub const fn base(&self) -> Duration {
        self.base
    }

    /// The jitter, in percent of the base.
    pub const fn jitter_percent(&self) -> u8 {
        self.jitter_percent
    }

    /// The shortest and longest TTL a write can get (inclusive), in whole
    /// milliseconds, the unit entries are written with.
    pub fn bounds(&self) -> (Duration, Duration) {
        let base = millis(self.base);
        let spread = base * u64::from(self.jitter_percent) / 100;
        (
            Duration::from_millis(base - spread),
            Duration::from_millis(base + spread),
        )
    }

    /// The TTL for one write: drawn uniformly from [`bounds`](Self::bounds).
    pub fn ttl_for_write(&self) -> Duration {
        let (min, max) = self.bounds();
        if min == max {
            return min;
        }
        Duration::from_millis(fastrand::u64(millis(min)..=millis(max)))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn ttl_error(policy: &'static str, reason: &str) -> ValidationError {
    ValidationError::Ttl {
        policy,
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every draw stays within ±10 % and draws are not all equal.
    #[test]
    fn jitter_stays_in_bounds() {
        let policy = TtlPolicy::user_profile();
        let (min, max) = policy.bounds();
        assert_eq!(min, Duration::from_secs(3240));
        assert_eq!(max, Duration::from_secs(3960));
        let draws: Vec<_> = (0..1000).map(|_| policy.ttl_for_write()).collect();
        assert!(draws.iter().all(|d| (min..=max).contains(d)));
        assert!(draws.iter().any(|d| *d != draws[0]), "jitter never varied");
    }

    // Sessions never jitter.
    #[test]
    fn session_is_fixed() {
        let policy = TtlPolicy::session();
        for _ in 0..100 {
            assert_eq!(policy.ttl_for_write(), Duration::from_secs(9 * 3600));
        }
    }

    // The shard TTL is configurable only within 15..=30 minutes.
    #[test]
    fn shard_ttl_is_configurable_only_within_15_to_30_minutes() {
        assert!(TtlPolicy::shard_structured_with(minutes(15)).is_ok());
        assert!(TtlPolicy::shard_structured_with(minutes(30)).is_ok());
        let err = TtlPolicy::shard_structured_with(minutes(31)).unwrap_err();
        assert!(err.to_string().contains("shard_structured"), "{err}");
        assert!(TtlPolicy::shard_structured_with(minutes(14)).is_err());
    }

    // Bad custom policies are refused.
    #[test]
    fn bad_custom_ttl_policies_are_refused() {
        assert!(TtlPolicy::new(Duration::from_millis(10), 10).is_err());
        assert!(TtlPolicy::new(Duration::from_secs(10), 51).is_err());
        assert!(TtlPolicy::session_with(Duration::ZERO).is_err());
    }
}
