//! Writes, deletes and invalidation. On a two-tier cache every change also
//! updates this instance's L1 and is published, so that other instances drop
//! their copies.
//!
//! **Order in Redis.** Redis makes the change visible no later than the
//! announcement (the order that lets a reader anywhere only ever refill
//! from the new state): a change of one key and its `PUBLISH` are one
//! script, atomic in Redis, on a single server and on a cluster
//! (`coherence/atomic_write.rs`), and an `mset`'s keys with their
//! announcements in its scripts on a single server (`coherence/batch.rs`);
//! a pattern's deletion and an `mset` on a cluster are announced after
//! their outcome. A change is
//! announced whatever its outcome (success, error, timeout, or the caller
//! dropping the future): a command that timed out may still run, and an
//! extra invalidation only costs other instances one L2 read.
//!
//! **This instance's L1** is changed before anything is sent and again when
//! the outcome is known or lost ([`OwnChange`]), so no outcome leaves the old
//! value behind.

use std::time::Duration;

use serde::Serialize;
use shared_types::{Invalidation, KeyPattern, RedisKey, Scope, TenantId};
use tracing::instrument;

use crate::codec;
use crate::coherence::KeyChange;
use crate::config::PurgeMode;
use crate::error::CacheError;
use crate::expiry::{Expiry, KeyTtl};
use crate::l1::OwnChange;
use crate::service::CacheService;
use crate::stats::add;
use crate::traced::in_span;

impl CacheService {
    /// Writes `value` under `key`, with a TTL from `expiry` (a
    /// [`shared_types::TtlPolicy`] or a `Duration`). On a two-tier cache the
    /// L1 takes the new value and other instances drop their copy.
    ///
    /// # Errors
    /// [`CacheError::ValueTooLarge`] or [`CacheError::Encode`] before anything
    /// is sent; [`CacheError::Unavailable`] when Redis cannot take the write,
    /// or took it but the invalidation could not be published (other
    /// instances may then serve their old copy for up to their L1 TTL cap).
    /// After an error this instance's L1 holds neither the old value nor the
    /// new one.
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
    /// use shared_types::TtlPolicy;
    ///
    /// cache.set(&key, &"Shard 1", Duration::from_secs(900)).await?;
    /// // Or the family's policy, jittered per write.
    /// cache.set(&key, &"Shard 1", TtlPolicy::shard_structured()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        expiry: impl Into<Expiry>,
    ) -> Result<(), CacheError> {
        // Not `#[instrument]`: see `traced.rs`.
        let span = tracing::debug_span!("cache.set", cache.family = key.family().name());
        let expiry = expiry.into();
        in_span(span, || self.set_traced(key, value, expiry)).await
    }

    /// [`set`](Self::set) inside its span.
    async fn set_traced<T: Serialize + ?Sized>(
        &self,
        key: &RedisKey,
        value: &T,
        expiry: Expiry,
    ) -> Result<(), CacheError> {
        let bytes = codec::encode(value, self.inner.config.max_value_bytes)?;
        let ttl = expiry.resolve();
        let change = self.l1_for(key).map(|l1| l1.begin(key));
        // A copy for the L1 only when there is one (a clone of these bytes
        // allocates).
        let kept = change.as_ref().map(|_| bytes.clone());
        let write = KeyChange::Set { value: bytes, ttl };
        let announcement = self.announcement_for(key);
        let (written, announced) = self.change_key(key, write, announcement).await;
        self.write_result(written, 1)?;
        if let (Some(change), Some(bytes)) = (change, kept) {
            change.succeeded_with(bytes, ttl);
        }
        announced
    }

    /// Writes many entries, each with its own TTL, sent together: a Lua
    /// script per 250 keys on a single server, one `SET` per key on a
    /// cluster (see `mset.rs` for why not a fred pipeline). A key given twice
    /// takes its last value. Every value is encoded and size-checked first:
    /// if any is refused, nothing is sent. Every key is announced, even when
    /// the batch fails part-way (some of it may have been written).
    ///
    /// # Errors
    /// As [`set`](Self::set).
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
    /// use redis_cache::Expiry;
    ///
    /// let other = RedisKey::shard_structured(&tenant, &ShardId::new("s2").unwrap());
    /// let ttl = Expiry::After(Duration::from_secs(900));
    /// cache.mset(&[(key, "Shard 1", ttl), (other, "Shard 2", ttl)]).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.mset", skip_all, fields(cache.keys = entries.len()))]
    pub async fn mset<T: Serialize>(
        &self,
        entries: &[(RedisKey, T, Expiry)],
    ) -> Result<(), CacheError> {
        let max = self.inner.config.max_value_bytes;
        let encoded = entries
            .iter()
            .map(|(key, value, expiry)| Ok((key, codec::encode(value, max)?, expiry.resolve())))
            .collect::<Result<Vec<_>, CacheError>>()?;
        let changes: Vec<Option<OwnChange<'_>>> = encoded
            .iter()
            .map(|(key, _, _)| self.l1_for(key).map(|l1| l1.begin(key)))
            .collect();
        let (written, announced) = self.mset_announced(&encoded).await;
        self.write_result(written.map(|()| false), encoded.len() as u64)?;
        for ((_, bytes, ttl), change) in encoded.iter().zip(changes) {
            if let Some(change) = change {
                change.succeeded_with(bytes.clone(), *ttl);
            }
        }
        announced
    }

    /// Deletes `key` (everywhere, on a two-tier cache); `true` when it
    /// existed in Redis.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot take the delete or the
    /// invalidation cannot be published.
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
    /// let existed = cache.delete(&key).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.delete", skip_all, fields(cache.family = key.family().name()))]
    pub async fn delete(&self, key: &RedisKey) -> Result<bool, CacheError> {
        let deleted = self.delete_key(key, self.announcement_for(key)).await?;
        Ok(deleted > 0)
    }

    /// `UNLINK` of `key` and its announcement; this instance's L1 changed
    /// around it.
    async fn delete_key(
        &self,
        key: &RedisKey,
        announcement: Option<Invalidation>,
    ) -> Result<u64, CacheError> {
        let change = self.l1_for(key).map(|l1| l1.begin(key));
        let (deleted, announced) = self.change_key(key, KeyChange::Unlink, announcement).await;
        let deleted = self.delete_result(deleted)?;
        if let Some(change) = change {
            change.succeeded();
        }
        announced?;
        Ok(deleted)
    }

    /// Makes everything `invalidation` covers stale, everywhere: deletes the
    /// covered key (UNLINK) or keys (through the tenant's key index, or
    /// `SCAN`: see [`PurgeMode`]) in Redis, publishes the invalidation so
    /// that every other instance removes them from its L1 (Redis runs the
    /// deletion first), and removes them from this instance's L1. Returns
    /// how many keys were deleted in Redis.
    ///
    /// A pattern's deletion costs the tenant's keys, not the keyspace's
    /// ([`PurgeMode::Index`], the default). Whatever happens to it (an
    /// error, a timeout, the caller's future dropped part-way), the
    /// invalidation is still published, so no instance keeps in its L1 a
    /// value that was deleted.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot take the delete or the
    /// invalidation cannot be published (keys deleted before a failure stay
    /// deleted).
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
    /// use shared_types::Invalidation;
    ///
    /// let stale = Invalidation::ShardAll { tenant_id: tenant.clone() };
    /// let deleted = cache.invalidate(&stale).await?;
    /// # Ok(())
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.invalidate", skip_all, fields(cache.invalidation = invalidation.kind()))]
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, CacheError> {
        let announcement = self.inner.bus.as_ref().map(|_| invalidation.clone());
        match invalidation.scope() {
            Scope::Key(key) => self.delete_key(&key, announcement).await,
            // Boxed: a purge's future is large and rare; it should not
            // grow every key invalidation's.
            Scope::Pattern(pattern) => {
                Box::pin(self.delete_matching(&pattern, announcement, self.inner.config.purge_mode))
                    .await
            }
        }
    }

    /// Deletes what `pattern` covers and announces `announcement` whatever
    /// the outcome.
    async fn delete_matching(
        &self,
        pattern: &KeyPattern,
        announcement: Option<Invalidation>,
        mode: PurgeMode,
    ) -> Result<u64, CacheError> {
        let store = &self.inner.store;
        let count = self.inner.config.scan_count;
        let deletion = async move {
            match mode {
                PurgeMode::Index => store.delete_indexed(pattern, count).await,
                PurgeMode::Scan => {
                    use crate::delete_pattern::delete_pattern;
                    // Boxed: each walk's future is large.
                    let deleted = Box::pin(delete_pattern(store, pattern.as_str(), count)).await?;
                    // The leases of keys being loaded (lease.rs), which
                    // have no value for the first walk to find: a second
                    // walk, and not counted (a lease is not a key).
                    let leases = pattern.load_leases();
                    Box::pin(delete_pattern(store, &leases, count)).await?;
                    Ok(deleted)
                }
            }
        };
        self.delete_announced(pattern, announcement, deletion).await
    }

    /// Runs `deletion` (of keys `pattern` covers) as a change of this
    /// instance's L1 and announces `announcement` whatever its outcome: the
    /// one path every pattern deletion takes, whole (`delete_matching`) or
    /// a page at a time (`purge_step`).
    pub(crate) async fn delete_announced(
        &self,
        pattern: &KeyPattern,
        announcement: Option<Invalidation>,
        deletion: impl Future<Output = Result<u64, CacheError>>,
    ) -> Result<u64, CacheError> {
        let change = self.inner.l1.as_ref().map(|l1| l1.begin_pattern(pattern));
        // Armed before the first deletion: if this future is dropped part-way
        // the announcement still goes out (from a task of its own).
        let pending = self
            .inner
            .publisher
            .as_ref()
            .map(|publisher| self.pending(publisher, announcement.into_iter().collect()));
        let deleted = deletion.await;
        let announced = match pending {
            Some(pending) => pending.send_all().await,
            None => Ok(()),
        };
        let deleted = self.delete_result(deleted)?;
        if let Some(change) = change {
            change.succeeded();
        }
        announced?;
        Ok(deleted)
    }

    /// Deletes every key matching `pattern` (on a two-tier cache, everywhere)
    /// and returns how many were deleted in Redis; see
    /// [`invalidate`](Self::invalidate). Safe while keys are being written:
    /// only matching keys are ever deleted.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate).
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
    /// use shared_types::KeyPattern;
    ///
    /// let deleted = cache.delete_pattern(&KeyPattern::tenant_acl(&tenant)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64, CacheError> {
        self.invalidate(&Invalidation::for_pattern(pattern)).await
    }

    /// [`delete_pattern`](Self::delete_pattern) with `SCAN` over the whole
    /// keyspace instead of the tenant's key index: it also finds keys that
    /// other clients wrote (which do not keep the index), at the cost of
    /// walking every key of every tenant. Never `KEYS`.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate).
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
    /// use shared_types::KeyPattern;
    ///
    /// let deleted = cache.delete_pattern_by_scan(&KeyPattern::tenant_acl(&tenant)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_pattern_by_scan(&self, pattern: &KeyPattern) -> Result<u64, CacheError> {
        let announcement = self
            .inner
            .bus
            .as_ref()
            .map(|_| Invalidation::for_pattern(pattern));
        self.delete_matching(pattern, announcement, PurgeMode::Scan)
            .await
    }

    /// Removes every cached key of `tenant` (`tenant:{t}:*`) and nothing
    /// else: not its sessions, rate limits or counters, and nothing of any
    /// other tenant.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate).
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
    /// let deleted = cache.flush_tenant(&tenant).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn flush_tenant(&self, tenant: &TenantId) -> Result<u64, CacheError> {
        self.invalidate(&Invalidation::Tenant {
            tenant_id: tenant.clone(),
        })
        .await
    }

    /// Whether `key` exists in Redis.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
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
    /// let present = cache.exists(&key).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn exists(&self, key: &RedisKey) -> Result<bool, CacheError> {
        self.counted(self.inner.store.exists(key.as_str()).await)
    }

    /// Sets `key`'s TTL; `true` when the key exists. Other instances drop
    /// their copy, so none keeps it past the new TTL.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
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
    /// let extended = cache.expire(&key, Duration::from_secs(600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn expire(&self, key: &RedisKey, ttl: Duration) -> Result<bool, CacheError> {
        let change = self.l1_for(key).map(|l1| l1.begin(key));
        let announcement = self.announcement_for(key);
        let (existed, announced) = self
            .change_key(key, KeyChange::Expire { ttl }, announcement)
            .await;
        let existed = self.counted(existed)? > 0;
        if let Some(change) = change {
            change.succeeded();
        }
        announced?;
        Ok(existed)
    }

    /// `key`'s remaining lifetime in Redis: missing, persistent, or expiring
    /// in `d`.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
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
    /// use redis_cache::KeyTtl;
    ///
    /// if let KeyTtl::ExpiresIn(left) = cache.ttl(&key).await? {
    ///     assert!(left <= Duration::from_secs(1800));
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ttl(&self, key: &RedisKey) -> Result<KeyTtl, CacheError> {
        self.counted(self.inner.store.pttl(key.as_str()).await)
            .map(KeyTtl::from_pttl)
    }

    /// What a change of `key` announces: nothing on a Redis-only cache, or
    /// for families no other instance holds.
    fn announcement_for(&self, key: &RedisKey) -> Option<Invalidation> {
        self.inner
            .bus
            .as_ref()
            .and_then(|_| Invalidation::for_key(key))
    }

    fn write_result<T>(&self, result: Result<T, CacheError>, n: u64) -> Result<T, CacheError> {
        let written = self.counted(result)?;
        add(&self.inner.tally.sets, n);
        Ok(written)
    }

    fn delete_result(&self, result: Result<u64, CacheError>) -> Result<u64, CacheError> {
        let deleted = self.counted(result)?;
        add(&self.inner.tally.deletes, deleted);
        Ok(deleted)
    }
}
