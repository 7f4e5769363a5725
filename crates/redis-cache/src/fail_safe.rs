//! Fail-safe: which keys may be served stale by `get_or_load_with` when its
//! loader fails or times out, and for how long past their expiry.
//!
//! **How the last known value is kept.** A load with fail-safe writes its
//! value with a Redis TTL of the value's TTL *plus* the maximum staleness,
//! and `get_or_load_with` treats the last `max_stale` of a key's remaining
//! TTL as logically expired: it reloads, and serves the kept value (flagged
//! stale, counted in `stale_served`) only if the loader fails or times out.
//! The value itself stays the plain JSON document (no envelope: other
//! clients read it as before); the price is that plain `get`s and other
//! clients read a value up to `max_stale` past its expiry as current.
//! Deletes and invalidations remove it like any value: fail-safe never
//! brings back a value after an acknowledged invalidation.
//!
//! **Never for security state.** Sessions and ACL decisions must not be
//! served stale (a revoked session or access would keep working): asking
//! for it is a typed error, and a per-family policy cannot name them.

use std::collections::HashMap;
use std::time::Duration;

use shared_types::KeyFamily;

use crate::error::CacheError;

/// Whether keys of `family` may ever be served stale: cached data except
/// ACL decisions (`KeyFamily::may_serve_stale`).
pub(crate) fn allows(family: KeyFamily) -> bool {
    family.may_serve_stale()
}

/// Fail-safe per key family, part of [`CacheConfig`](crate::CacheConfig):
/// off for every family by default; a family turned on here uses it in
/// every `get_or_load_with` call that does not set its own
/// ([`LoadOptions::fail_safe`](crate::LoadOptions::fail_safe)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use redis_cache::{CacheConfig, FailSafePolicy};
/// use shared_types::KeyFamily;
///
/// let policy = FailSafePolicy::default()
///     .with(KeyFamily::ShardStructured, Duration::from_secs(3600))
///     .expect("shards may be served stale");
/// assert!(policy.with(KeyFamily::Acl, Duration::from_secs(60)).is_err());
/// let config = CacheConfig::default().with_fail_safe(policy);
/// assert_eq!(
///     config.fail_safe.max_stale(KeyFamily::ShardStructured),
///     Some(Duration::from_secs(3600))
/// );
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailSafePolicy {
    families: HashMap<KeyFamily, Duration>,
}

impl FailSafePolicy {
    /// Turns fail-safe on for `family`, serving values at most `max_stale`
    /// past their expiry.
    ///
    /// # Errors
    /// [`CacheError::StaleNotAllowed`] for sessions, ACL decisions and
    /// other state (nothing is changed).
    pub fn with(&self, family: KeyFamily, max_stale: Duration) -> Result<Self, CacheError> {
        check(family)?;
        let mut next = self.clone();
        next.families.insert(family, max_stale);
        Ok(next)
    }

    /// The maximum staleness for `family`, when it is on.
    pub fn max_stale(&self, family: KeyFamily) -> Option<Duration> {
        self.families.get(&family).copied()
    }
}

/// [`CacheError::StaleNotAllowed`] unless `family` may be served stale.
pub(crate) fn check(family: KeyFamily) -> Result<(), CacheError> {
    if allows(family) {
        Ok(())
    } else {
        Err(CacheError::StaleNotAllowed {
            family: family.name(),
        })
    }
}

/// Whether a value with `remaining` TTL is in its fail-safe window: past
/// its logical expiry, kept only to be served if a reload fails.
pub(crate) fn in_window(remaining: Option<Duration>, max_stale: Duration) -> bool {
    remaining.is_some_and(|left| left <= max_stale)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Sessions, their sets and ACL decisions are never fail-safe; cached
    // data other than ACL may be.
    #[test]
    fn security_state_is_never_served_stale() {
        for family in KeyFamily::ALL {
            let expected = matches!(
                family,
                KeyFamily::ShardStructured | KeyFamily::UserProfile | KeyFamily::VectorSearch
            );
            assert_eq!(allows(family), expected, "{family:?}");
            let policy = FailSafePolicy::default().with(family, Duration::from_secs(1));
            assert_eq!(policy.is_ok(), expected, "{family:?}");
        }
    }

    // A key is in its window only once its remaining TTL is at most the
    // maximum staleness; a key without expiry never is.
    #[test]
    fn the_window_is_the_last_part_of_the_ttl() {
        let window = Duration::from_secs(10);
        assert!(in_window(Some(Duration::from_secs(10)), window));
        assert!(!in_window(Some(Duration::from_secs(11)), window));
        assert!(!in_window(None, window));
    }
}
