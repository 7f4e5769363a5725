//! `get_or_load`: cache-aside with single flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use serde::Serialize;
use shared_types::RedisKey;
use tracing::instrument;

use crate::codec;
use crate::config::ReadMode;
use crate::error::CacheError;
use crate::expiry::Expiry;
use crate::fail_safe;
use crate::fleet_wait::FleetWait;
use crate::flight::{Role, outcome};
use crate::lease::{self, Lease};
use crate::load_options::LoadOptions;
use crate::read::CacheValue;
use crate::refresh::Current;
use crate::service::CacheService;
use crate::stats::bump;
use crate::write_back::{WriteBack, run_loader};

/// Why `get_or_load` produced no value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError<E> {
    /// The loader failed; every caller waiting on the same load gets the
    /// same error, and nothing was cached.
    #[error("the loader failed: {0}")]
    Loader(Arc<E>),
    /// Redis failed and the cache is in [`ReadMode::Strict`].
    #[error(transparent)]
    Cache(CacheError),
    /// The loader panicked; nothing was cached.
    #[error("the loader panicked")]
    Panicked,
    /// The loader took longer than [`LoadOptions::timeout`] and was
    /// cancelled, and fail-safe had no value to serve; nothing was cached.
    #[error("the loader timed out")]
    TimedOut,
}

impl<E> Clone for LoadError<E> {
    fn clone(&self) -> Self {
        match self {
            LoadError::Loader(e) => LoadError::Loader(e.clone()),
            LoadError::Cache(e) => LoadError::Cache(e.clone()),
            LoadError::Panicked => LoadError::Panicked,
            LoadError::TimedOut => LoadError::TimedOut,
        }
    }
}

/// What [`CacheService::get_or_load_with`] produced.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LoadOutcome<T> {
    /// The value: cached, or just loaded.
    pub value: T,
    /// Whether the value is past its expiry, served by fail-safe because
    /// the loader failed or timed out ([`LoadOptions::fail_safe`]).
    pub stale: bool,
}

impl<T> LoadOutcome<T> {
    pub(crate) fn fresh(value: T) -> Self {
        Self {
            value,
            stale: false,
        }
    }
}

/// What a flight's participants share.
type Loaded<T, E> = Result<LoadOutcome<T>, LoadError<E>>;

impl CacheService {
    /// Reads `key`; on a miss runs `loader`, stores its value in Redis (and
    /// the L1) with a TTL from `expiry`, and returns it.
    ///
    /// Concurrent callers for the same key in this process share one call:
    /// the first runs the loader, the others wait for its result (counted as
    /// coalesced waits). The loader runs in its own task, so a caller that
    /// gives up does not cancel it for the others. A loader error reaches
    /// every waiter and nothing is cached.
    ///
    /// Across instances, the first to claim the key's lease loads it; an
    /// instance that finds the lease held waits for that value (notified
    /// through the invalidation channel on a two-tier cache, polling on a
    /// Redis-only one) for at most [`LoadOptions::fleet_wait`] (1 s by
    /// default), then loads itself, not cached; a lease that expires (its
    /// holder died) ends the wait at once, and the waiter claims the key
    /// (`fleet_wait.rs`).
    ///
    /// While Redis is down the loader still runs on a miss and its value is
    /// returned (not cached). If the key changes while the loader runs (a
    /// `set` by any client; a delete, invalidation or purge by any instance
    /// of this layer, whether or not its invalidation has arrived here; on
    /// a two-tier cache, any invalidation that arrived here), the value is
    /// returned but not cached: it may predate the change. A loader slower
    /// than the lease (10 s) is not cached either. The lease is a side key
    /// (`lease.rs`): while the loader runs the key is absent for every
    /// client, never a placeholder.
    ///
    /// # Errors
    /// [`LoadError::Loader`] with the loader's error; [`LoadError::Cache`]
    /// only in [`ReadMode::Strict`].
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
    /// let name: String = cache
    ///     .get_or_load(&key, Duration::from_secs(900), || async {
    ///         // Runs on a miss only, once per key however many callers wait.
    ///         Ok::<_, std::io::Error>("from the database".to_owned())
    ///     })
    ///     .await
    ///     .expect("this loader never fails");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_or_load<T, E, F, Fut>(
        &self,
        key: &RedisKey,
        expiry: impl Into<Expiry>,
        loader: F,
    ) -> Result<T, LoadError<E>>
    where
        T: CacheValue + Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let options = LoadOptions::default();
        let outcome = self.get_or_load_with(key, expiry, &options, loader).await?;
        Ok(outcome.value)
    }

    /// [`get_or_load`](Self::get_or_load) with [`LoadOptions`] (negative
    /// caching), saying whether the value is stale.
    ///
    /// # Errors
    /// As [`get_or_load`](Self::get_or_load).
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
    /// let options = LoadOptions::default().negative_ttl(Duration::from_secs(10));
    /// let loaded = cache
    ///     .get_or_load_with(&key, Duration::from_secs(900), &options, || async {
    ///         Ok::<_, std::io::Error>(Some("from the database".to_owned()))
    ///     })
    ///     .await
    ///     .expect("this loader never fails");
    /// assert!(!loaded.stale);
    /// # }
    /// ```
    #[instrument(level = "debug", name = "cache.get_or_load", skip_all, fields(cache.family = key.family().name()))]
    pub async fn get_or_load_with<T, E, F, Fut>(
        &self,
        key: &RedisKey,
        expiry: impl Into<Expiry>,
        options: &LoadOptions,
        loader: F,
    ) -> Result<LoadOutcome<T>, LoadError<E>>
    where
        T: CacheValue + Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        if options.max_stale().is_some() {
            // Bad input changes nothing, whatever the L1 holds.
            fail_safe::check(key.family()).map_err(LoadError::Cache)?;
        }
        if let Some(l1) = self.l1_for(key)
            && let Some(value) = self.l1_hit::<T>(l1, key, false)
        {
            return Ok(LoadOutcome::fresh(value));
        }
        let rx = match self.inner.flights.join::<Loaded<T, E>>(key.as_str()) {
            Role::Follower(rx) => {
                bump(&self.inner.tally.coalesced_waits);
                rx
            }
            Role::Leader(leader) => {
                let rx = leader.subscribe();
                let (this, key, expiry) = (self.clone(), key.clone(), expiry.into());
                let options = options.clone();
                tokio::spawn(async move {
                    let result: Loaded<T, E> =
                        this.load_through(&key, expiry, &options, loader).await;
                    leader.finish(Arc::new(result));
                });
                rx
            }
        };
        let Some(shared) = outcome(rx).await else {
            return Err(LoadError::Panicked);
        };
        match shared.downcast_ref::<Loaded<T, E>>() {
            Some(result) => result.clone(),
            None => unreachable!("a flight's participants share its result type"),
        }
    }

    /// The leader's work: Redis, then the loader, then write-back.
    async fn load_through<T, E, F, Fut>(
        &self,
        key: &RedisKey,
        expiry: Expiry,
        options: &LoadOptions,
        loader: F,
    ) -> Loaded<T, E>
    where
        T: CacheValue + Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let max_stale = self.max_stale_for(key, options);
        let l1 = self.l1_for(key).cloned();
        let mut fleet = FleetWait::new(options);
        // Read, and claim a miss; again after waiting for another
        // instance's load of the key (fleet_wait.rs) until its lease is gone.
        let (epoch, mut kept, lease) = loop {
            let epoch = l1.as_ref().map(|l1| l1.epoch(key.as_str()));
            // A value past its logical expiry, kept for fail-safe: served
            // only if the reload fails (see fail_safe.rs).
            let mut kept: Option<Kept<T>> = None;
            // Whether the key may be claimed: absent, or only kept.
            let claimable = match self.inner.store.get_with_ttl(key.as_str()).await {
                Ok(Some(fetched)) => {
                    // An older version's lease as the value: load without
                    // one (not cached).
                    let leased = lease::is_lease(&fetched.bytes);
                    if let Some(window) =
                        max_stale.filter(|w| !leased && fail_safe::in_window(fetched.ttl, *w))
                        && let Ok(value) = codec::decode::<T>(&fetched.bytes)
                    {
                        self.miss::<()>();
                        kept = Some(Kept {
                            value,
                            bytes: fetched.bytes,
                            window,
                        });
                        true
                    } else {
                        let mut fetched = fetched;
                        if let Some(window) = max_stale {
                            // The L1 holds it until its logical expiry only.
                            fetched.ttl = fetched.ttl.map(|ttl| ttl.saturating_sub(window));
                        }
                        let refresh = options.refresh_part().and_then(|part| {
                            let within = expiry.resolve().mul_f64(part);
                            let left = fetched.ttl?;
                            (left <= within).then(|| Current {
                                bytes: fetched.bytes.clone(),
                                within: within + max_stale.unwrap_or_default(),
                            })
                        });
                        let value = match (&l1, epoch) {
                            (Some(l1), Some(epoch)) => {
                                self.decode_and_fill::<T>(key, l1, fetched, epoch).await
                            }
                            _ => self.decode_hit::<T>(key, &fetched.bytes).await,
                        };
                        if let Some(value) = value {
                            if let Some(current) = refresh {
                                self.refresh_in_background(key, expiry, options, loader, current);
                            }
                            return Ok(LoadOutcome::fresh(value));
                        }
                        // An undecodable value was deleted: claim the key as absent.
                        !leased
                    }
                }
                Ok(None) => {
                    self.miss::<()>();
                    true
                }
                Err(error) => {
                    if self.inner.config.read_mode == ReadMode::Strict && !error.is_unavailable() {
                        return Err(LoadError::Cache(error));
                    }
                    self.read_failed(key, error)
                        .await
                        .map_err(LoadError::Cache)?;
                    // Redis is down: load, and do not cache.
                    false
                }
            };
            // Claimed before the loader runs: see lease.rs.
            let lease = if claimable {
                Lease::claim(&self.inner.store, key).await
            } else {
                None
            };
            // Another instance loads it: wait for its value, unless a kept
            // value may answer at once (soft timeout, below).
            let answers_stale = options.soft().is_some() && kept.is_some();
            if lease.is_none() && claimable && !answers_stale && fleet.holder_gone(self, key).await
            {
                continue;
            }
            break (epoch, kept, lease);
        };

        // With a soft timeout, a kept value answers at once while another
        // caller (or instance) holds the lease: its load will refresh it.
        if lease.is_none()
            && options.soft().is_some()
            && let Some(stale) = kept.take()
        {
            return Ok(self.serve_stale(key, stale.value));
        }
        bump(&self.inner.tally.loads);
        // Bounded even without a hard timeout when it may finish in the
        // background: past the lease its value could not be cached anyway.
        let limit = options
            .loader_timeout()
            .or_else(|| (options.soft().is_some() && kept.is_some()).then_some(lease::LEASE_TTL));
        let mut load = Box::pin(run_loader(limit, loader));
        let loaded = match (options.soft(), kept) {
            (Some(soft), Some(stale)) => match tokio::time::timeout(soft, &mut load).await {
                Ok(loaded) => {
                    kept = Some(stale);
                    loaded
                }
                Err(_) => {
                    // Soft timeout: the kept value now, the load's value
                    // (if any) into the cache when it comes.
                    let write = WriteBack {
                        expiry,
                        options: options.clone(),
                        max_stale,
                        replacing: Some((stale.bytes, stale.window)),
                        epoch,
                    };
                    self.finish_in_background(key, lease, load, write);
                    return Ok(self.serve_stale(key, stale.value));
                }
            },
            (_, stale) => {
                kept = stale;
                load.await
            }
        };
        if loaded.is_err()
            && let Some(kept) = kept
        {
            if let Some(lease) = lease {
                self.release_lease(lease, key).await;
            }
            return Ok(self.serve_stale(key, kept.value));
        }
        let Some(lease) = lease else {
            return loaded.map(LoadOutcome::fresh);
        };
        let write = WriteBack {
            expiry,
            options: options.clone(),
            max_stale,
            replacing: kept.map(|kept| (kept.bytes, kept.window)),
            epoch,
        };
        self.write_back(key, lease, loaded, write)
            .await
            .map(LoadOutcome::fresh)
    }

    /// The fail-safe window of a load of `key`: the call's own, else its
    /// family's policy (a call's is checked before its flight starts).
    pub(crate) fn max_stale_for(&self, key: &RedisKey, options: &LoadOptions) -> Option<Duration> {
        options
            .max_stale()
            .or_else(|| self.inner.config.fail_safe.max_stale(key.family()))
    }
}

/// A value found past its logical expiry by a fail-safe load.
struct Kept<T> {
    value: T,
    /// As read, for the write-back to replace only this value.
    bytes: Bytes,
    window: Duration,
}
