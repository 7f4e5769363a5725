//! How long a written entry lives, and what Redis says about an entry's TTL.

use std::time::Duration;

use shared_types::TtlPolicy;

/// The TTL of one write: a policy (jittered per write) or a fixed duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Draw the TTL from the policy (see [`TtlPolicy::ttl_for_write`]).
    Policy(TtlPolicy),
    /// Exactly this TTL.
    After(Duration),
}

impl Expiry {
    /// The TTL to write now, at least 1 ms.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use redis_cache::Expiry;
    /// use shared_types::TtlPolicy;
    ///
    /// assert_eq!(Expiry::After(Duration::from_secs(60)).resolve(), Duration::from_secs(60));
    /// assert_eq!(Expiry::After(Duration::ZERO).resolve(), Duration::from_millis(1));
    /// // A policy draws a jittered TTL on every call.
    /// assert!(Expiry::from(TtlPolicy::shard_structured()).resolve() > Duration::ZERO);
    /// ```
    pub fn resolve(&self) -> Duration {
        let ttl = match self {
            Expiry::Policy(policy) => policy.ttl_for_write(),
            Expiry::After(d) => *d,
        };
        ttl.max(Duration::from_millis(1))
    }
}

impl From<TtlPolicy> for Expiry {
    fn from(policy: TtlPolicy) -> Self {
        Expiry::Policy(policy)
    }
}

impl From<Duration> for Expiry {
    fn from(d: Duration) -> Self {
        Expiry::After(d)
    }
}

/// A key's remaining lifetime, as Redis reports it (`PTTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyTtl {
    /// There is no such key.
    Missing,
    /// The key exists and never expires.
    Persistent,
    /// The key expires in this long.
    ExpiresIn(Duration),
}

impl KeyTtl {
    /// Interprets a `PTTL` reply.
    pub(crate) fn from_pttl(ms: i64) -> Self {
        match ms {
            -2 => KeyTtl::Missing,
            ms if ms < 0 => KeyTtl::Persistent,
            ms => KeyTtl::ExpiresIn(Duration::from_millis(ms.unsigned_abs())),
        }
    }
}
