//! Tally and rate-limit windows.

use std::sync::LazyLock;
use std::time::Duration;

use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use redis_connection::{Rejection, RejectionKind};
use shared_types::RedisKey;
use tracing::instrument;

use crate::error::CacheError;
use crate::service::CacheService;
use crate::store::Store;

/// Increments a counter and starts its window on the first increment, in
/// one atomic step. INCR then EXPIRE as two commands would leave a counter
/// without expiry (a user locked out forever) if the client died between
/// them; a script cannot be interrupted. A key found without expiry (a
/// stray writer) gets the window too.
const WINDOW_LUA: &str = r"
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  ttl = tonumber(ARGV[2])
end
return {count, ttl}
";

/// The state of a fixed rate-limit window after an increment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateWindow {
    /// Increments in the current window, this one included.
    pub count: i64,
    /// Time until the window ends and the count resets.
    pub resets_in: Duration,
}

/// The window script, loaded by SHA on first use (`EVALSHA`, reloading
/// after `NOSCRIPT`, e.g. when Redis restarted).
static WINDOW: LazyLock<Script> = LazyLock::new(|| Script::from_lua(WINDOW_LUA));

/// Adds `by` to the window at `key`, starting it (`window` long) if new.
async fn run_window(
    store: &Store,
    key: &str,
    by: i64,
    window: Duration,
) -> Result<RateWindow, CacheError> {
    let window_ms = i64::try_from(window.as_millis()).unwrap_or(i64::MAX).max(1);
    let (count, ttl): (i64, i64) = store
        .run_script(
            &WINDOW,
            vec![Key::from(key)],
            vec![Value::Integer(by), Value::Integer(window_ms)],
        )
        .await?;
    Ok(RateWindow {
        count,
        resets_in: Duration::from_millis(ttl.unsigned_abs()),
    })
}

impl CacheService {
    /// Adds `by` to the integer at `key` (created at 0); returns the new value.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], or [`CacheError::Rejected`] when the key
    /// holds something other than an integer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// use shared_types::CounterName;
    ///
    /// let logins = RedisKey::counter(&tenant, &CounterName::new("logins").unwrap());
    /// let total = cache.increment(&logins, 1).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.increment", skip_all, fields(cache.family = key.family().name()))]
    pub async fn increment(&self, key: &RedisKey, by: i64) -> Result<i64, CacheError> {
        self.counted(self.inner.store.incr_by(key.as_str(), by).await)
    }

    /// Subtracts `by` from the integer at `key`; returns the new value.
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// use shared_types::CounterName;
    ///
    /// let seats = RedisKey::counter(&tenant, &CounterName::new("free-seats").unwrap());
    /// let left = cache.decrement(&seats, 1).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn decrement(&self, key: &RedisKey, by: i64) -> Result<i64, CacheError> {
        let by = by.checked_neg().ok_or_else(|| {
            CacheError::Rejected(Rejection::new(RejectionKind::Other, "decrement overflows"))
        })?;
        self.increment(key, by).await
    }

    /// Counts one hit in a fixed rate-limit window: increments `key` and, on
    /// the first increment, makes it expire after `window`, atomically (one
    /// script, no race between INCR and EXPIRE). Returns the count so far and
    /// when the window resets; the caller decides the limit, and whether to
    /// fail open or closed when Redis is unavailable.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] or [`CacheError::Rejected`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// use shared_types::{CounterName, UserId};
    ///
    /// let login = CounterName::new("login").unwrap();
    /// let window_key = RedisKey::rate_limit(&tenant, &UserId::new("alice").unwrap(), &login);
    /// let window = cache.increment_window(&window_key, Duration::from_secs(60)).await?;
    /// let refused = window.count > 5; // and retry after `window.resets_in`
    /// # Ok(())
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.rate_window", skip_all, fields(cache.family = key.family().name()))]
    pub async fn increment_window(
        &self,
        key: &RedisKey,
        window: Duration,
    ) -> Result<RateWindow, CacheError> {
        let result = run_window(&self.inner.store, key.as_str(), 1, window).await;
        self.counted(result)
    }
}
