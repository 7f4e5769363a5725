//! [`LoadOptions`]: how one `get_or_load_with` call may deviate from a plain
//! cache-aside load.

use std::time::Duration;

/// Options of [`CacheService::get_or_load_with`](crate::CacheService::get_or_load_with);
/// the default is exactly [`get_or_load`](crate::CacheService::get_or_load).
///
/// Concurrent callers of one key share one load (single flight): the
/// options of the caller that started it apply to all of them.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use redis_cache::LoadOptions;
///
/// // A missing id is remembered for 30 s, so a client hammering it reaches
/// // the loader twice a minute at most.
/// let options = LoadOptions::default().negative_ttl(Duration::from_secs(30));
/// assert_eq!(options.negative(), Some(Duration::from_secs(30)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    negative_ttl: Option<Duration>,
}

impl LoadOptions {
    /// Caches "not found" for at most `ttl` (never longer than the value's
    /// own expiry). A loader says "not found" by returning `Ok(None)` for a
    /// value type `Option<U>`; that is stored as the JSON `null` (what
    /// every client reads as JSON), returned as `None` to later callers
    /// without calling the loader, and removed by a delete or invalidation
    /// of the key like any value. Without this option a `null` is cached
    /// as long as any value.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheService, LoadOptions};
    /// # use shared_types::{RedisKey, UserId, TenantId};
    /// # async fn example(cache: CacheService) {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::user_profile(&tenant, &UserId::new("u404").unwrap());
    /// let options = LoadOptions::default().negative_ttl(Duration::from_secs(30));
    /// let profile: Option<String> = cache
    ///     .get_or_load_with(&key, Duration::from_secs(900), &options, || async {
    ///         // The database has no such user.
    ///         Ok::<Option<String>, std::io::Error>(None)
    ///     })
    ///     .await
    ///     .expect("this loader never fails")
    ///     .value;
    /// assert_eq!(profile, None);
    /// # }
    /// ```
    #[must_use]
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// How long "not found" is cached, when set.
    pub fn negative(&self) -> Option<Duration> {
        self.negative_ttl
    }
}
