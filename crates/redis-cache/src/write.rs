//! Writes, deletes and invalidation. On a two-tier cache every change also
//! updates this instance's L1 and is published, so that other instances drop
//! their copies. Redis processes the change before the announcement (the
//! order that lets a reader anywhere only ever refill from the new state):
//! for one key, both are sent together on one connection, in that order
//! (`write_announced`); for a pattern, the announcement follows the last
//! deletion.

use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::Key;
use serde::Serialize;
use shared_types::{CacheKey, Invalidation, KeyPattern, Scope, TenantId};
use tracing::instrument;

use crate::codec;
use crate::error::CacheError;
use crate::expiry::{Expiry, KeyTtl};
use crate::l1::Epoch;
use crate::service::CacheService;
use crate::stats::{add, bump};

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
    #[instrument(level = "debug", name = "cache.set", skip_all, fields(cache.family = key.family().name()))]
    pub async fn set<T: Serialize + ?Sized>(
        &self,
        key: &CacheKey,
        value: &T,
        expiry: impl Into<Expiry>,
    ) -> Result<(), CacheError> {
        let bytes = codec::encode(value, self.inner.config.max_value_bytes)?;
        let ttl = expiry.into().resolve();
        let epoch = self.l1_for(key).map(|l1| l1.epoch(key.as_str()));
        let store = &self.inner.store;
        let value = bytes.clone();
        let (written, announced) = match self.announcement_for(key) {
            // Boxed: the joint future is several times the size of a plain
            // SET's, and a Redis-only `set` should not carry (and move) it.
            Some(invalidation) => {
                Box::pin(
                    self.write_announced(Some(invalidation), |client| async move {
                        store.set_on(&client, key.as_str(), value, ttl).await
                    }),
                )
                .await
            }
            None => (store.set(key.as_str(), value, ttl).await, Ok(())),
        };
        self.write_result(written, 1)?;
        if let (Some(l1), Some(epoch)) = (self.l1_for(key), epoch) {
            l1.after_own_write(key.as_str(), bytes, ttl, epoch);
        }
        announced
    }

    /// Writes many entries, each with its own TTL, sent together: a Lua
    /// script per 250 keys on a single server, one `SET` per key on a
    /// cluster (see `mset.rs` for why not a fred pipeline). A key given twice
    /// takes its last value. Every value is encoded and size-checked first:
    /// if any is refused, nothing is sent.
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
            .map(|(key, value, expiry)| Ok((key, codec::encode(value, max)?, expiry.resolve())))
            .collect::<Result<Vec<_>, CacheError>>()?;
        let epochs: Vec<Option<Epoch>> = encoded
            .iter()
            .map(|(key, _, _)| self.l1_for(key).map(|l1| l1.epoch(key.as_str())))
            .collect();
        let batch = encoded
            .iter()
            .map(|(key, bytes, ttl)| (key.as_str(), bytes.clone(), *ttl))
            .collect();
        self.write_result(self.inner.store.mset(batch).await, encoded.len() as u64)?;
        for ((key, bytes, ttl), epoch) in encoded.iter().zip(epochs) {
            if let (Some(l1), Some(epoch)) = (self.l1_for(key), epoch) {
                l1.after_own_write(key.as_str(), bytes.clone(), *ttl, epoch);
            }
        }
        // Without pub/sub there is nothing to announce; building the
        // futures anyway (each holds a fred publish, several KB, boxed by
        // join_all) cost a Redis-only mset of 1 000 keys more than its
        // pipeline did (BENCHMARKS.md, workload 3).
        if self.inner.bus.is_none() {
            return Ok(());
        }
        let announcements = encoded.iter().map(|(key, _, _)| self.announce_key(key));
        futures::future::join_all(announcements)
            .await
            .into_iter()
            .collect()
    }

    /// Deletes `key` (everywhere, on a two-tier cache); `true` when it
    /// existed in Redis.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot take the delete or the
    /// invalidation cannot be published.
    #[instrument(level = "debug", name = "cache.delete", skip_all, fields(cache.family = key.family().name()))]
    pub async fn delete(&self, key: &CacheKey) -> Result<bool, CacheError> {
        let (deleted, announced) = self
            .write_announced(self.announcement_for(key), |client| {
                self.unlink_on(client, key)
            })
            .await;
        let deleted = self.delete_result(deleted)?;
        if let Some(l1) = self.l1_for(key) {
            l1.invalidate_key(key.as_str());
        }
        announced?;
        Ok(deleted > 0)
    }

    /// Makes everything `invalidation` covers stale, everywhere: deletes the
    /// covered key (UNLINK) or keys (`delete_pattern`) in Redis, publishes
    /// the invalidation so that every other instance removes them from its
    /// L1 (Redis runs the deletion first), and removes them from this
    /// instance's L1. Returns how many keys were deleted in Redis.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot take the delete or the
    /// invalidation cannot be published. A pattern is announced only once
    /// its keys are deleted; one key's announcement is sent with its
    /// `UNLINK` and may go out even if the `UNLINK` fails (harmless: other
    /// instances then read that key from Redis once more).
    #[instrument(level = "debug", name = "cache.invalidate", skip_all, fields(cache.invalidation = invalidation.kind()))]
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, CacheError> {
        let scope = invalidation.scope();
        let pattern = match &scope {
            Scope::Key(key) => {
                let (deleted, announced) = self
                    .write_announced(Some(invalidation.clone()), |client| {
                        self.unlink_on(client, key)
                    })
                    .await;
                let deleted = self.delete_result(deleted)?;
                if let Some(l1) = &self.inner.l1 {
                    l1.invalidate(&scope);
                }
                announced?;
                return Ok(deleted);
            }
            Scope::Pattern(pattern) => pattern,
        };
        // A pattern's keys are deleted in many batches: the announcement
        // waits for the last.
        let deleted = self.delete_result(
            crate::delete_pattern::delete_pattern(
                &self.inner.store,
                pattern.as_str(),
                self.inner.config.scan_count,
            )
            .await,
        )?;
        if let Some(l1) = &self.inner.l1 {
            l1.invalidate(&scope);
        }
        self.announce(invalidation).await?;
        Ok(deleted)
    }

    /// Deletes every key matching `pattern` with `SCAN` + `UNLINK` in batches
    /// (never `KEYS`), and invalidates them everywhere on a two-tier cache;
    /// returns how many were deleted in Redis. Safe while keys are being
    /// written: only matching keys are ever deleted.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate) (keys deleted before a failure
    /// stay deleted).
    pub async fn delete_pattern(&self, pattern: &KeyPattern) -> Result<u64, CacheError> {
        self.invalidate(&Invalidation::for_pattern(pattern)).await
    }

    /// Removes every cached key of `tenant` (`tenant:{t}:*`) and nothing
    /// else: not its sessions, rate limits or counters, and nothing of any
    /// other tenant.
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate).
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
    pub async fn exists(&self, key: &CacheKey) -> Result<bool, CacheError> {
        self.counted(self.inner.store.exists(key.as_str()).await)
    }

    /// Sets `key`'s TTL; `true` when the key exists. Other instances drop
    /// their copy, so none keeps it past the new TTL.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    pub async fn expire(&self, key: &CacheKey, ttl: Duration) -> Result<bool, CacheError> {
        let store = &self.inner.store;
        let (existed, announced) = self
            .write_announced(self.announcement_for(key), |client| async move {
                store.pexpire_on(&client, key.as_str(), ttl).await
            })
            .await;
        let existed = self.counted(existed)?;
        if let Some(l1) = self.l1_for(key) {
            l1.invalidate_key(key.as_str());
        }
        announced?;
        Ok(existed)
    }

    /// `key`'s remaining lifetime in Redis: missing, persistent, or expiring
    /// in `d`.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    pub async fn ttl(&self, key: &CacheKey) -> Result<KeyTtl, CacheError> {
        self.counted(self.inner.store.pttl(key.as_str()).await)
            .map(KeyTtl::from_pttl)
    }

    /// Runs `write` (given the client to send it on) and publishes
    /// `invalidation`, the write first. On a single server both go on one
    /// connection, the message queued right behind the write: Redis
    /// processes them in that order, so an instance acting on the message
    /// already reads the new state, and the caller waits one round trip
    /// instead of two. On a cluster the two may go to different nodes, so
    /// the message waits for the write's reply (and is not sent if the write
    /// failed). On a single server it is sent even if the write fails: an
    /// extra invalidation costs other instances one L2 read, nothing more.
    async fn write_announced<T, F>(
        &self,
        invalidation: Option<Invalidation>,
        write: impl FnOnce(Client) -> F,
    ) -> (Result<T, CacheError>, Result<(), CacheError>)
    where
        F: Future<Output = Result<T, CacheError>>,
    {
        let client = self.inner.store.client().clone();
        let Some((bus, invalidation)) = self.inner.bus.as_ref().zip(invalidation) else {
            return (write(client).await, Ok(()));
        };
        if self.inner.store.is_cluster() {
            let written = write(client).await;
            let announced = match &written {
                Ok(_) => self.announce(&invalidation).await,
                Err(_) => Ok(()),
            };
            return (written, announced);
        }
        let mut write = pin!(write(client.clone()));
        // fred queues a command when its future is first polled: after this
        // poll the write is ahead of anything sent next on `client`.
        let first = futures::poll!(write.as_mut());
        let announce = async { self.sent(bus.invalidate_on(&client, &invalidation).await) };
        match first {
            Poll::Ready(written) => (written, announce.await),
            Poll::Pending => futures::join!(write, announce),
        }
    }

    /// What a change of `key` announces: nothing on a Redis-only cache, or
    /// for families no other instance holds.
    fn announcement_for(&self, key: &CacheKey) -> Option<Invalidation> {
        self.inner.bus.as_ref().and(Invalidation::for_key(key))
    }

    /// `UNLINK` of one key through `client`.
    async fn unlink_on(&self, client: Client, key: &CacheKey) -> Result<u64, CacheError> {
        self.inner
            .store
            .unlink_on(&client, vec![Key::from(key.as_str())])
            .await
    }

    /// Publishes the invalidation of one key, on a two-tier cache, for the
    /// families other instances may hold.
    async fn announce_key(&self, key: &CacheKey) -> Result<(), CacheError> {
        match self.announcement_for(key) {
            Some(invalidation) => self.announce(&invalidation).await,
            None => Ok(()),
        }
    }

    async fn announce(&self, invalidation: &Invalidation) -> Result<(), CacheError> {
        let Some(bus) = &self.inner.bus else {
            return Ok(());
        };
        self.sent(bus.invalidate(invalidation).await)
    }

    /// Counts a publication: an error, or one invalidation sent.
    fn sent(&self, published: Result<u64, redis_pubsub::PubSubError>) -> Result<(), CacheError> {
        self.counted(published.map_err(CacheError::from))?;
        bump(&self.inner.counters.invalidations_sent);
        Ok(())
    }

    fn write_result(&self, result: Result<(), CacheError>, n: u64) -> Result<(), CacheError> {
        self.counted(result)?;
        add(&self.inner.counters.sets, n);
        Ok(())
    }

    fn delete_result(&self, result: Result<u64, CacheError>) -> Result<u64, CacheError> {
        let deleted = self.counted(result)?;
        add(&self.inner.counters.deletes, deleted);
        Ok(deleted)
    }
}
