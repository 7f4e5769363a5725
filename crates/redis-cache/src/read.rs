//! Reads: L1 (when trusted), then Redis; when Redis cannot answer, the
//! L1's copy flagged stale (`Tier::Stale`), else a miss.

use std::sync::Arc;

use redis_connection::RejectionKind;
use serde::de::DeserializeOwned;
use shared_types::RedisKey;
use tracing::{debug, instrument, warn};

use crate::codec::{self, DecodeFailure};
use crate::config::ReadMode;
use crate::error::CacheError;
use crate::l1::{Epoch, L1};
use crate::service::CacheService;
use crate::stats::bump;
use crate::store::Fetched;
use crate::traced::in_span;

/// Which tier answered a read, and whether the answer could be trusted.
///
/// Non-exhaustive: match with a wildcard arm, so that a tier added later
/// (another kind of answer) does not break callers.
///
/// # Examples
///
/// ```
/// use redis_cache::Tier;
///
/// // What main-api sends as `x-cache`.
/// fn header(tier: Tier) -> &'static str {
///     match tier {
///         Tier::L1 => "hit-l1",
///         Tier::L2 => "hit-l2",
///         Tier::Stale => "stale",
///         _ => "hit",
///     }
/// }
/// assert_eq!(header(Tier::Stale), "stale");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Tier {
    /// The in-process L1, trusted: its invalidation feed is live, so no
    /// acknowledged change is missing from it.
    L1,
    /// Redis.
    L2,
    /// The in-process L1 as a fallback: Redis could not answer (unavailable
    /// or timed out) while the L1 was not trusted on its own (its feed was
    /// down), so the value may miss a change made meanwhile. It is at most
    /// the L1 TTL cap old, never a session's or an ACL decision's, and
    /// counted in [`CacheStats::stale_served`](crate::CacheStats::stale_served).
    Stale,
}

/// What a cached value must be to be read: decodable, and cloneable so the
/// L1 can hand out copies of one decoded value.
pub trait CacheValue: DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

impl CacheService {
    /// Reads `key` as `T`: from the L1 when it holds the key and is trusted,
    /// else from Redis (filling the L1).
    ///
    /// `None` when the key is missing, when the stored value does not decode
    /// as `T` (the key is then deleted and counted as a decode failure), and,
    /// in [`ReadMode::Degrade`], when Redis is unavailable and the L1 holds
    /// nothing for the key.
    ///
    /// **A stale value may be served.** While Redis cannot answer (down, or
    /// the read timed out) a value still in the L1 is served although the L1
    /// may have missed an invalidation: at most the L1 TTL cap old, never for
    /// sessions or ACL decisions, and counted in
    /// [`CacheStats::stale_served`](crate::CacheStats::stale_served).
    /// [`get_with_tier`](Self::get_with_tier) says so ([`Tier::Stale`]).
    ///
    /// # Errors
    /// Only in [`ReadMode::Strict`]: the Redis error.
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
    /// let name: Option<String> = cache.get(&key).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get<T: CacheValue>(&self, key: &RedisKey) -> Result<Option<T>, CacheError> {
        // L1 hits are answered before the instrumented Redis path: that
        // path's future holds fred's command futures (several KB), and the
        // span wrapper moves it whole on every call, which cost an L1 hit a
        // quarter of its time (BENCHMARKS.md, workload 2). A hit takes well
        // under a microsecond; it has no span of its own.
        if let Some(l1) = self.l1_for(key)
            && let Some(value) = self.l1_hit(l1, key, false)
        {
            return Ok(Some(value));
        }
        Ok(self.get_traced(key).await?.map(|(value, _)| value))
    }

    /// [`get`](Self::get), also saying which tier answered: [`Tier::L1`] for
    /// a trusted L1 hit, [`Tier::L2`] for Redis, [`Tier::Stale`] for a value
    /// the L1 served because Redis could not answer (see [`Tier::Stale`]).
    ///
    /// # Errors
    /// As [`get`](Self::get).
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
    /// use redis_cache::Tier;
    ///
    /// if let Some((name, tier)) = cache.get_with_tier::<String>(&key).await? {
    ///     let from_memory = tier == Tier::L1;
    ///     let unconfirmed = tier == Tier::Stale; // Redis could not answer
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_with_tier<T: CacheValue>(
        &self,
        key: &RedisKey,
    ) -> Result<Option<(T, Tier)>, CacheError> {
        if let Some(l1) = self.l1_for(key)
            && let Some(value) = self.l1_hit(l1, key, false)
        {
            return Ok(Some((value, Tier::L1)));
        }
        self.get_traced(key).await
    }

    /// [`get_through`](Self::get_through) in a `cache.get` span (not
    /// `#[instrument]`: see `traced.rs`).
    async fn get_traced<T: CacheValue>(
        &self,
        key: &RedisKey,
    ) -> Result<Option<(T, Tier)>, CacheError> {
        let span = tracing::debug_span!("cache.get", cache.family = key.family().name());
        in_span(span, || self.get_through(key)).await
    }

    /// A read past the L1 (its hit check was made): Redis, filling the L1.
    async fn get_through<T: CacheValue>(
        &self,
        key: &RedisKey,
    ) -> Result<Option<(T, Tier)>, CacheError> {
        let Some(l1) = self.l1_for(key) else {
            return match self.inner.store.get(key.as_str()).await {
                Ok(Some(bytes)) => Ok(self.decode_hit(key, &bytes).await.map(|v| (v, Tier::L2))),
                Ok(None) => Ok(self.miss()),
                Err(error) => self.read_failed(key, error).await.map(|()| None),
            };
        };
        let epoch = l1.epoch(key.as_str());
        match self.inner.store.get_with_ttl(key.as_str()).await {
            Ok(Some(fetched)) => Ok(self
                .decode_and_fill(key, l1, fetched, epoch)
                .await
                .map(|v| (v, Tier::L2))),
            Ok(None) => Ok(self.miss()),
            Err(error) => self
                .l1_fallback(key, l1, error)
                .await
                .map(|v| v.map(|v| (v, Tier::Stale))),
        }
    }

    /// Reads many keys in one round trip (one per node on a cluster), in the
    /// caller's order; missing or undecodable values are `None`. Keys the L1
    /// holds are not fetched.
    ///
    /// Like [`get`](Self::get), when Redis cannot answer the L1's copies are
    /// served (stale, counted in
    /// [`CacheStats::stale_served`](crate::CacheStats::stale_served)); the
    /// result does not say which values those are: read a key with
    /// [`get_with_tier`](Self::get_with_tier) when that matters.
    ///
    /// # Errors
    /// Only in [`ReadMode::Strict`]: the Redis error.
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
    /// let other = RedisKey::shard_structured(&tenant, &ShardId::new("s2").unwrap());
    /// let names: Vec<Option<String>> = cache.mget(&[key, other]).await?;
    /// assert_eq!(names.len(), 2); // in the keys' order, `None` for a miss
    /// # Ok(())
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.mget", skip_all, fields(cache.keys = keys.len()))]
    pub async fn mget<T: CacheValue>(
        &self,
        keys: &[RedisKey],
    ) -> Result<Vec<Option<T>>, CacheError> {
        let Some(l1) = self.inner.l1.as_ref() else {
            return self.mget_redis(keys).await;
        };
        let mut out: Vec<Option<T>> = Vec::with_capacity(keys.len());
        let mut missing = Vec::new();
        for (i, key) in keys.iter().enumerate() {
            let hit = self.l1_for(key).and_then(|l1| self.l1_hit(l1, key, false));
            if hit.is_none() {
                missing.push(i);
            }
            out.push(hit);
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let epochs: Vec<Epoch> = missing
            .iter()
            .map(|&i| l1.epoch(keys[i].as_str()))
            .collect();
        let names: Vec<&str> = missing.iter().map(|&i| keys[i].as_str()).collect();
        let fetched = match self.inner.store.mget_with_ttl(&names).await {
            Ok(fetched) => fetched,
            Err(error) => {
                for &i in &missing {
                    out[i] = self
                        .l1_for(&keys[i])
                        .filter(|_| keys[i].family().may_serve_stale())
                        .and_then(|l1| self.l1_hit(l1, &keys[i], true));
                }
                // A key neither tier could answer is unreadable, not missing:
                // strict mode says so, degraded mode counts it as a miss.
                if let Some(&unread) = missing.iter().find(|&&i| out[i].is_none()) {
                    self.read_failed(&keys[unread], error).await?;
                }
                return Ok(out);
            }
        };
        for ((&i, result), epoch) in missing.iter().zip(fetched).zip(epochs) {
            let key = &keys[i];
            out[i] = match result {
                Ok(Some(fetched)) => match self.l1_for(key) {
                    Some(l1) => self.decode_and_fill(key, l1, fetched, epoch).await,
                    None => self.decode_hit(key, &fetched.bytes).await,
                },
                Ok(None) => self.miss(),
                Err(error) => {
                    self.read_failed(key, error).await?;
                    None
                }
            };
        }
        Ok(out)
    }

    async fn mget_redis<T: CacheValue>(
        &self,
        keys: &[RedisKey],
    ) -> Result<Vec<Option<T>>, CacheError> {
        let names: Vec<&str> = keys.iter().map(RedisKey::as_str).collect();
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
                None => self.miss(),
            });
        }
        Ok(out)
    }

    /// An L1 hit, if the L1 is trusted; or, with `stale_ok` (Redis could
    /// not answer), whatever it holds, counted as served stale rather than
    /// as a hit: it was not checked against Redis nor kept by a live feed.
    pub(crate) fn l1_hit<T: CacheValue>(
        &self,
        l1: &L1,
        key: &RedisKey,
        stale_ok: bool,
    ) -> Option<T> {
        if !stale_ok && !l1.is_live() {
            return None;
        }
        match l1.get::<T>(key.as_str())? {
            Ok(value) => {
                let tally = &self.inner.tally;
                bump(if stale_ok {
                    &tally.stale_served
                } else {
                    &tally.l1_hits
                });
                Some(value)
            }
            Err(_) => {
                // Held as another type by another caller: let Redis decide.
                l1.invalidate_key(key.as_str());
                None
            }
        }
    }

    /// Redis could not answer: serve what the L1 still holds (it expires
    /// within the TTL cap) if the key's family allows stale copies (not
    /// sessions), else degrade like any failed read.
    async fn l1_fallback<T: CacheValue>(
        &self,
        key: &RedisKey,
        l1: &Arc<L1>,
        error: CacheError,
    ) -> Result<Option<T>, CacheError> {
        if error.is_unavailable()
            && key.family().may_serve_stale()
            && let Some(value) = self.l1_hit(l1, key, true)
        {
            debug!(
                cache.family = key.family().name(),
                "Redis unavailable; served stale from L1"
            );
            return Ok(Some(value));
        }
        self.read_failed(key, error).await.map(|()| None)
    }

    pub(crate) async fn decode_and_fill<T: CacheValue>(
        &self,
        key: &RedisKey,
        l1: &L1,
        fetched: Fetched,
        epoch: Epoch,
    ) -> Option<T> {
        let value = self.decode_hit::<T>(key, &fetched.bytes).await?;
        if fetched.ttl != Some(std::time::Duration::ZERO) {
            l1.fill(key, fetched.bytes, fetched.ttl, Some(value.clone()), epoch);
        }
        Some(value)
    }

    /// Decodes a value read from Redis; an undecodable one is a miss, deleted.
    /// A lease (a load in progress, see `lease.rs`) is a plain miss.
    pub(crate) async fn decode_hit<T: CacheValue>(
        &self,
        key: &RedisKey,
        bytes: &[u8],
    ) -> Option<T> {
        if crate::lease::is_lease(bytes) {
            return self.miss();
        }
        match codec::decode(bytes) {
            Ok(value) => {
                bump(&self.inner.tally.l2_hits);
                Some(value)
            }
            Err(failure) => {
                self.discard_undecodable(key, failure).await;
                None
            }
        }
    }

    pub(crate) fn miss<T>(&self) -> Option<T> {
        bump(&self.inner.tally.misses);
        None
    }

    /// A value that is not a `T` (a type changed between deployments, a stray
    /// writer, a key of another Redis type) is deleted, counted and logged,
    /// and the read is a miss.
    async fn discard_undecodable(&self, key: &RedisKey, failure: DecodeFailure) {
        bump(&self.inner.tally.decode_failures);
        bump(&self.inner.tally.misses);
        warn!(cache.family = key.family().name(), reason = %failure, "cached value did not decode; deleting it");
        if let Some(l1) = &self.inner.l1 {
            l1.invalidate_key(key.as_str());
        }
        // Boxed: an unlink's future (a pipeline per slot on a cluster) is
        // large, and this rare path would otherwise grow every read's.
        if let Err(error) = Box::pin(self.inner.store.unlink(&[key.as_str()])).await {
            debug!(%error, "could not delete an undecodable value");
        }
    }

    /// A read failed: degrade to a miss (logging now and then) or, in strict
    /// mode, return the error. A key holding another Redis type answers
    /// WRONGTYPE, which is an undecodable value, not an outage.
    pub(crate) async fn read_failed(
        &self,
        key: &RedisKey,
        error: CacheError,
    ) -> Result<(), CacheError> {
        if error
            .rejection()
            .is_some_and(|r| r.kind() == RejectionKind::WrongType)
        {
            let failure = DecodeFailure {
                category: "wrong Redis type",
                line: 0,
                column: 0,
            };
            self.discard_undecodable(key, failure).await;
            return Ok(());
        }
        bump(&self.inner.tally.errors);
        if self.inner.config.read_mode == ReadMode::Strict {
            return Err(error);
        }
        bump(&self.inner.tally.misses);
        if let Some(suppressed) = self.inner.read_errors.check() {
            warn!(%error, suppressed, "cache read failed; answering as a miss");
        }
        Ok(())
    }
}
