//! [`CacheService`]: the typed cache API.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::RedisConnectionManager;
use serde::Serialize;
use serde::de::DeserializeOwned;
use shared_types::{CacheKey, KeyPattern, TenantId};
use tracing::{debug, instrument, warn};

use crate::codec::{self, DecodeFailure};
use crate::config::{CacheConfig, ReadMode};
use crate::counters::{RateWindow, WindowScript};
use crate::error::CacheError;
use crate::expiry::{Expiry, KeyTtl};
use crate::stats::{CacheStats, Counters, ServerStats, add, bump};
use crate::store::Store;
use crate::throttle::LogThrottle;

/// How often a read that degraded to a miss is logged while Redis is down.
const READ_ERROR_LOG_PERIOD: Duration = Duration::from_secs(10);

/// A typed JSON cache over Redis. Cheap to clone; clones share the
/// connection pool and the statistics.
///
/// Keys are [`CacheKey`]s from shared-types, so a caller can only address
/// keys built from validated ids. Values are any `Serialize` /
/// `DeserializeOwned` type, stored as JSON.
#[derive(Debug, Clone)]
pub struct CacheService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Store,
    config: CacheConfig,
    counters: Counters,
    read_errors: LogThrottle,
    window: WindowScript,
}

impl CacheService {
    /// A cache over `manager`'s pool.
    pub fn new(manager: RedisConnectionManager, config: CacheConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                store: Store::new(manager),
                config,
                counters: Counters::default(),
                read_errors: LogThrottle::new(READ_ERROR_LOG_PERIOD),
                window: WindowScript::new(),
            }),
        }
    }

    /// The connection manager underneath.
    pub fn manager(&self) -> &RedisConnectionManager {
        self.inner.store.manager()
    }

    /// The configuration.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Reads `key` as `T`. `None` when the key is missing, when the stored
    /// value does not decode as `T` (the key is then deleted and counted as a
    /// decode failure), and, in [`ReadMode::Degrade`], when Redis is
    /// unavailable.
    ///
    /// # Errors
    /// Only in [`ReadMode::Strict`]: the Redis error.
    #[instrument(level = "debug", name = "cache.get", skip_all, fields(cache.family = key.family().name()))]
    pub async fn get<T: DeserializeOwned>(&self, key: &CacheKey) -> Result<Option<T>, CacheError> {
        match self.inner.store.get(key.as_str()).await {
            Ok(Some(bytes)) => Ok(self.decode_hit(key, &bytes).await),
            Ok(None) => {
                bump(&self.inner.counters.misses);
                Ok(None)
            }
            Err(error) => self.read_failed(key, error).await.map(|()| None),
        }
    }

    /// Reads many keys in one round trip (one per node on a cluster), in the
    /// caller's order; missing or undecodable values are `None`.
    ///
    /// # Errors
    /// Only in [`ReadMode::Strict`]: the Redis error.
    #[instrument(level = "debug", name = "cache.mget", skip_all, fields(cache.keys = keys.len()))]
    pub async fn mget<T: DeserializeOwned>(
        &self,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<T>>, CacheError> {
        let names: Vec<&str> = keys.iter().map(CacheKey::as_str).collect();
        let values = match self.inner.store.mget(&names).await {
            Ok(values) => values,
            Err(error) => {
                let Some(first) = keys.first() else {
                    return Ok(Vec::new());
                };
                self.read_failed(first, error).await?;
                return Ok(keys.iter().map(|_| None).collect());
            }
        };
        let mut out = Vec::with_capacity(keys.len());
        for (key, value) in keys.iter().zip(values) {
            out.push(match value {
                Some(bytes) => self.decode_hit(key, &bytes).await,
                None => {
                    bump(&self.inner.counters.misses);
                    None
                }
            });
        }
        Ok(out)
    }

    /// Writes `value` under `key` with a TTL from `expiry` (a [`shared_types::TtlPolicy`]
    /// or a `Duration`).
    ///
    /// # Errors
    /// [`CacheError::ValueTooLarge`] or [`CacheError::Encode`] before anything
    /// is sent; [`CacheError::Unavailable`] when Redis cannot take the write.
    #[instrument(level = "debug", name = "cache.set", skip_all, fields(cache.family = key.family().name()))]
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &CacheKey,
        value: &T,
        expiry: impl Into<Expiry>,
    ) -> Result<(), CacheError> {
        let bytes = codec::encode(value, self.inner.config.max_value_bytes)?;
        self.set_bytes(key, bytes, expiry.into().resolve()).await
    }

    pub(crate) async fn set_bytes(
        &self,
        key: &CacheKey,
        bytes: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let result = self.inner.store.set(key.as_str(), bytes, ttl).await;
        self.count_write(result.map(|()| 1))?;
        Ok(())
    }

    /// Writes many entries, each with its own TTL, in one round trip (one per
    /// node on a cluster). Every value is encoded and size-checked first: if
    /// any is refused, nothing is sent.
    ///
    /// # Errors
    /// As [`set`](Self::set).
    #[instrument(level = "debug", name = "cache.mset", skip_all, fields(cache.keys = entries.len()))]
    pub async fn mset<T: Serialize>(
        &self,
        entries: &[(CacheKey, T, Expiry)],
    ) -> Result<(), CacheError> {
        let max = self.inner.config.max_value_bytes;
        let encoded = entries
            .iter()
            .map(|(key, value, expiry)| {
                Ok((key.as_str(), codec::encode(value, max)?, expiry.resolve()))
            })
            .collect::<Result<Vec<_>, CacheError>>()?;
        let n = encoded.len() as u64;
        let result = self.inner.store.mset(encoded).await;
        self.count_write(result.map(|()| n))?;
        Ok(())
    }

    /// Deletes `key`; `true` when it existed.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot take the delete.
    #[instrument(level = "debug", name = "cache.delete", skip_all, fields(cache.family = key.family().name()))]
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let deleted = self.inner.store.unlink(&[key.as_str()]).await;
        self.count_delete(deleted).map(|n| n > 0)
    }

    /// Whether `key` exists.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    pub async fn exists(&self, key: &CacheKey) -> Result<bool, CacheError> {
        self.counted(self.inner.store.exists(key.as_str()).await)
    }

    /// Sets `key`'s TTL; `true` when the key exists.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    pub async fn expire(&self, key: &CacheKey, ttl: Duration) -> Result<bool, CacheError> {
        self.counted(self.inner.store.pexpire(key.as_str(), ttl).await)
    }

    /// `key`'s remaining lifetime: missing, persistent, or expiring in `d`.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    pub async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, CacheError> {
        self.counted(self.inner.store.pttl(key.as_str()).await)
            .map(KeyTtl::from_pttl)
    }

    /// Adds `by` to the integer at `key` (created at 0); returns the new value.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`], or [`CacheError::Rejected`] when the key
    /// holds something other than an integer.
    #[instrument(level = "debug", name = "cache.increment", skip_all, fields(cache.family = key.family().name()))]
    pub async fn increment(&self, key: &CacheKey, by: i64) -> Result<i64, CacheError> {
        self.counted(self.inner.store.incr_by(key.as_str(), by).await)
    }

    /// Subtracts `by` from the integer at `key`; returns the new value.
    ///
    /// # Errors
    /// As [`increment`](Self::increment).
    pub async fn decrement(&self, key: &CacheKey, by: i64) -> Result<i64, CacheError> {
        let by = by
            .checked_neg()
            .ok_or_else(|| CacheError::Rejected("decrement overflows".into()))?;
        self.increment(key, by).await
    }

    /// Counts one hit in a fixed rate-limit window: increments `key` and, on
    /// the first increment, makes it expire after `window`, atomically (one
    /// script, no race between INCR and EXPIRE). Returns the count so far and
    /// when the window resets; the caller decides what the limit is and
    /// whether to fail open or closed when Redis is unavailable.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] or [`CacheError::Rejected`].
    #[instrument(level = "debug", name = "cache.rate_window", skip_all, fields(cache.family = key.family().name()))]
    pub async fn increment_window(
        &self,
        key: &CacheKey,
        window: Duration,
    ) -> Result<RateWindow, CacheError> {
        let result = self
            .inner
            .window
            .run(&self.inner.store, key.as_str(), 1, window)
            .await;
        self.counted(result)
    }

    /// Deletes every key matching `pattern` with `SCAN` + `UNLINK` in
    /// batches (never `KEYS`); returns how many were deleted. Safe while keys
    /// are being written: only matching keys are ever deleted.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis fails mid-way (keys deleted
    /// until then stay deleted).
    #[instrument(level = "debug", name = "cache.delete_pattern", skip_all)]
    pub async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64, CacheError> {
        let result = crate::delete_pattern::delete_pattern(
            &self.inner.store,
            pattern.as_str(),
            self.inner.config.scan_count,
        )
        .await;
        self.count_delete(result)
    }

    /// Removes every cached key of `tenant` (`tenant:{t}:*`) and nothing
    /// else: not its sessions, rate limits or counters, and nothing of any
    /// other tenant.
    ///
    /// # Errors
    /// As [`delete_pattern`](Self::delete_pattern).
    pub async fn flush_tenant(&self, tenant: &TenantId) -> Result<u64, CacheError> {
        self.delete_pattern(&KeyPattern::tenant_cache(tenant)).await
    }

    /// This instance's counters.
    pub fn stats(&self) -> CacheStats {
        self.inner.counters.snapshot()
    }

    /// Key count and memory use, as Redis reports them.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    pub async fn server_stats(&self) -> Result<ServerStats, CacheError> {
        let (keys, used_memory_bytes) = self.counted(self.inner.store.server_stats().await)?;
        Ok(ServerStats {
            keys,
            used_memory_bytes,
        })
    }

    /// Decodes a value read from Redis; an undecodable one is a miss, deleted.
    async fn decode_hit<T: DeserializeOwned>(&self, key: &CacheKey, bytes: &[u8]) -> Option<T> {
        match codec::decode(bytes) {
            Ok(value) => {
                bump(&self.inner.counters.l2_hits);
                Some(value)
            }
            Err(failure) => {
                self.discard_undecodable(key, &failure.to_string()).await;
                None
            }
        }
    }

    /// A value that is not a `T` (a type changed between deployments, a stray
    /// writer, a key of another Redis type) is deleted, counted and logged,
    /// and the read is a miss.
    async fn discard_undecodable(&self, key: &CacheKey, reason: &str) {
        bump(&self.inner.counters.decode_failures);
        bump(&self.inner.counters.misses);
        warn!(
            cache.family = key.family().name(),
            reason, "cached value did not decode; deleting it"
        );
        if let Err(error) = self.inner.store.unlink(&[key.as_str()]).await {
            debug!(%error, "could not delete an undecodable value");
        }
    }

    /// A read failed: degrade to a miss (logging now and then) or, in strict
    /// mode, return the error. A key holding another Redis type answers
    /// WRONGTYPE, which is an undecodable value, not an outage.
    async fn read_failed(&self, key: &CacheKey, error: CacheError) -> Result<(), CacheError> {
        if let CacheError::Rejected(message) = &error
            && message.starts_with("WRONGTYPE")
        {
            let failure = DecodeFailure {
                category: "wrong Redis type",
                line: 0,
                column: 0,
            };
            self.discard_undecodable(key, &failure.to_string()).await;
            return Ok(());
        }
        bump(&self.inner.counters.errors);
        if self.inner.config.read_mode == ReadMode::Strict {
            return Err(error);
        }
        bump(&self.inner.counters.misses);
        if let Some(suppressed) = self.inner.read_errors.check() {
            warn!(%error, suppressed, "cache read failed; answering as a miss");
        }
        Ok(())
    }

    fn count_write(&self, result: Result<u64, CacheError>) -> Result<u64, CacheError> {
        match result {
            Ok(n) => {
                add(&self.inner.counters.sets, n);
                Ok(n)
            }
            Err(e) => {
                bump(&self.inner.counters.errors);
                Err(e)
            }
        }
    }

    fn count_delete(&self, result: Result<u64, CacheError>) -> Result<u64, CacheError> {
        match result {
            Ok(n) => {
                add(&self.inner.counters.deletes, n);
                Ok(n)
            }
            Err(e) => {
                bump(&self.inner.counters.errors);
                Err(e)
            }
        }
    }

    fn counted<T>(&self, result: Result<T, CacheError>) -> Result<T, CacheError> {
        if result.is_err() {
            bump(&self.inner.counters.errors);
        }
        result
    }
}
