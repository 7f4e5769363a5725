//! [`LoadOptions`]: how one `get_or_load_with` call may deviate from a plain
//! cache-aside load.

use std::time::Duration;

use crate::error::CacheError;

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
    fail_safe: Option<Duration>,
    timeout: Option<Duration>,
    /// Per mille of the TTL (an integer keeps the type `Eq`).
    refresh_per_mille: Option<u16>,
    soft_timeout: Option<Duration>,
    fleet_wait: Option<Duration>,
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

    /// Fail-safe for this call: when the loader fails or times out, serve
    /// the last known value if it expired at most `max_stale` ago, flagged
    /// [`LoadOutcome::stale`](crate::LoadOutcome::stale) and counted in
    /// `stale_served`. Values this call loads are kept in Redis `max_stale`
    /// past their TTL for that (see `fail_safe.rs`). Overrides the key
    /// family's [`FailSafePolicy`](crate::FailSafePolicy); refused for
    /// sessions and ACL decisions ([`CacheError::StaleNotAllowed`](crate::CacheError::StaleNotAllowed)).
    /// Off by default: without it (and without a family policy) a failing
    /// loader's error reaches the caller.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheService, LoadOptions};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let options = LoadOptions::default()
    ///     .fail_safe(Duration::from_secs(3600))
    ///     .timeout(Duration::from_millis(500));
    /// match cache
    ///     .get_or_load_with(&key, Duration::from_secs(900), &options, || async {
    ///         Err::<String, _>(std::io::Error::other("the database is down"))
    ///     })
    ///     .await
    /// {
    ///     Ok(loaded) if loaded.stale => { /* the last known value, at most an hour old */ }
    ///     Ok(loaded) => { /* fresh */ }
    ///     Err(error) => { /* nothing to fall back on */ }
    /// }
    /// # }
    /// ```
    #[must_use]
    pub fn fail_safe(mut self, max_stale: Duration) -> Self {
        self.fail_safe = Some(max_stale);
        self
    }

    /// The maximum staleness this call accepts, when set.
    pub fn max_stale(&self) -> Option<Duration> {
        self.fail_safe
    }

    /// Waits at most `limit` for the loader: past it the loader is dropped
    /// (cancelled, nothing left running) and the call answers the stale
    /// value when fail-safe has one, else [`LoadError::TimedOut`](crate::LoadError::TimedOut).
    /// The limit covers the loader only, not the Redis round trips around
    /// it (the connection's command timeout bounds those).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use redis_cache::LoadOptions;
    ///
    /// let options = LoadOptions::default().timeout(Duration::from_millis(200));
    /// assert_eq!(options.loader_timeout(), Some(Duration::from_millis(200)));
    /// ```
    #[must_use]
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// The loader's time limit, when set.
    pub fn loader_timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Soft timeout: when fail-safe holds a kept value for the key (see
    /// [`fail_safe`](Self::fail_safe)) and the loader has not answered
    /// after `after`, the callers get the kept value (stale) at once while
    /// the loader finishes in a background task and writes its value to the
    /// cache as any load would. That task is bounded by the hard
    /// [`timeout`](Self::timeout), or by the 10 s lease when none is set
    /// (past it the value could not be cached anyway), and counted
    /// (`background_loads`). Without a kept value callers wait for the
    /// loader as before (up to the hard timeout).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use redis_cache::LoadOptions;
    ///
    /// // Answer within ~100 ms with the last value if the source is slow;
    /// // give the source 2 s to refresh the cache in the background.
    /// let options = LoadOptions::default()
    ///     .fail_safe(Duration::from_secs(3600))
    ///     .soft_timeout(Duration::from_millis(100))
    ///     .timeout(Duration::from_secs(2));
    /// assert_eq!(options.soft(), Some(Duration::from_millis(100)));
    /// ```
    #[must_use]
    pub fn soft_timeout(mut self, after: Duration) -> Self {
        self.soft_timeout = Some(after);
        self
    }

    /// The soft timeout, when set.
    pub fn soft(&self) -> Option<Duration> {
        self.soft_timeout
    }

    /// Eager refresh: a call that finds the value in Redis with at most
    /// `part` of its TTL left (0.1: the last 10 %) answers with it at once
    /// and reloads it in the background, one refresh per key across the
    /// fleet (see `refresh.rs`). The TTL is the one this call would write
    /// (`expiry`). Reads the L1 answers do not look at Redis's TTL, so on a
    /// two-tier cache a refresh starts from the first read after the L1's
    /// copy expired (the L1 TTL cap).
    ///
    /// # Errors
    /// [`CacheError::InvalidOption`](crate::CacheError::InvalidOption)
    /// unless `part` is between 0 and 1 (exclusive).
    ///
    /// # Examples
    ///
    /// ```
    /// use redis_cache::LoadOptions;
    ///
    /// let options = LoadOptions::default().eager_refresh(0.1).expect("a part of the TTL");
    /// assert_eq!(options.refresh_part(), Some(0.1));
    /// assert!(LoadOptions::default().eager_refresh(1.5).is_err());
    /// ```
    pub fn eager_refresh(mut self, part: f64) -> Result<Self, CacheError> {
        if !(part > 0.0 && part < 1.0) {
            return Err(CacheError::InvalidOption {
                option: "eager_refresh",
                reason: "the part of the TTL must be between 0 and 1",
            });
        }
        // In (0, 1), so in 0..=1000: the cast cannot truncate.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let per_mille = (part * 1000.0).round() as u16;
        self.refresh_per_mille = Some(per_mille.max(1));
        Ok(self)
    }

    /// The part of the TTL in which reads start a refresh, when set.
    pub fn refresh_part(&self) -> Option<f64> {
        self.refresh_per_mille.map(|p| f64::from(p) / 1000.0)
    }

    /// One load per fleet: how long a call that finds another instance
    /// loading the key (it holds the key's lease) waits for that value
    /// instead of calling its own loader; [`DEFAULT_FLEET_WAIT`](crate::DEFAULT_FLEET_WAIT)
    /// (1 s) unless set, `Duration::ZERO` not to wait. A waiter reads the
    /// key again when the holder's announcement arrives (two-tier caches)
    /// or at its next poll (Redis-only caches, every 5 to 50 ms), and when
    /// the lease expires (the holder died). Past the bound with the lease
    /// still held it calls its loader and returns that value, not cached
    /// (counted in `fleet_wait_timeouts`). Set it above the loader's usual
    /// time and below the time a caller can afford to lose to a dead holder.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use redis_cache::{DEFAULT_FLEET_WAIT, LoadOptions};
    ///
    /// // A loader that takes up to 3 s: wait for another instance's that long.
    /// let options = LoadOptions::default().fleet_wait(Duration::from_secs(3));
    /// assert_eq!(options.fleet_wait_limit(), Duration::from_secs(3));
    /// assert_eq!(LoadOptions::default().fleet_wait_limit(), DEFAULT_FLEET_WAIT);
    /// ```
    #[must_use]
    pub fn fleet_wait(mut self, limit: Duration) -> Self {
        self.fleet_wait = Some(limit);
        self
    }

    /// How long a call waits for another instance's load of its key.
    pub fn fleet_wait_limit(&self) -> Duration {
        self.fleet_wait.unwrap_or(crate::DEFAULT_FLEET_WAIT)
    }
}
