//! Eager refresh: a `get_or_load_with` that reads a value in the last part
//! of its TTL ([`LoadOptions::eager_refresh`]) answers with it at once and
//! reloads it in the background, so that a hot key is replaced before it
//! expires instead of every reader waiting for a load after it did.
//!
//! **One refresh per key.** In this process a flight of its own per key
//! (`flight.rs`, a type no load uses) lets one refresh run at a time; across
//! the fleet the refresh claims the key's lease (`lease.rs`) and gives up
//! when another instance (or a load) holds it. The refresh's write-back
//! replaces the value only if the key still holds what the reader saw, in
//! the same part of its TTL: a `set`, delete or invalidation meanwhile wins,
//! as for any load. A refresh that fails changes nothing (the current value
//! stays until it expires); it is bounded by the loader timeout when one is
//! set, and counted (`refreshes`).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use shared_types::RedisKey;
use tracing::debug;

use crate::codec;
use crate::expiry::Expiry;
use crate::flight::Role;
use crate::lease::Lease;
use crate::load::LoadError;
use crate::load_options::LoadOptions;
use crate::read::CacheValue;
use crate::service::CacheService;
use crate::stats::bump;
use crate::write_back::{run_loader, write_ttls};

/// The flight type of refreshes: never a load's result type.
struct Refresh;

/// What a refresh replaces: the value as read, and the most TTL it may
/// have left (the refresh part of its TTL plus any fail-safe window).
pub(crate) struct Current {
    pub(crate) bytes: Bytes,
    pub(crate) within: Duration,
}

impl CacheService {
    /// Starts a background refresh of `key` unless one runs in this
    /// process already.
    pub(crate) fn refresh_in_background<T, E, F, Fut>(
        &self,
        key: &RedisKey,
        expiry: Expiry,
        options: &LoadOptions,
        loader: F,
        current: Current,
    ) where
        T: CacheValue + Serialize,
        E: Send + Sync + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let Role::Leader(leader) = self.inner.flights.join::<Refresh>(key.as_str()) else {
            return;
        };
        let (this, key, options) = (self.clone(), key.clone(), options.clone());
        tokio::spawn(async move {
            this.refresh(&key, expiry, &options, loader, current).await;
            // Ends the flight: the next reader in the refresh part may start one.
            leader.finish(Arc::new(()));
        });
    }

    async fn refresh<T, E, F, Fut>(
        &self,
        key: &RedisKey,
        expiry: Expiry,
        options: &LoadOptions,
        loader: F,
        current: Current,
    ) where
        T: CacheValue + Serialize,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let store = &self.inner.store;
        let Some(lease) = Lease::claim(store, key).await else {
            // Another instance refreshes it (or Redis cannot answer).
            return;
        };
        bump(&self.inner.tally.refreshes);
        let l1 = self.l1_for(key).cloned();
        let epoch = l1.as_ref().map(|l1| l1.epoch(key.as_str()));
        bump(&self.inner.tally.loads);
        let loaded: Result<T, LoadError<E>> = run_loader(options.loader_timeout(), loader).await;
        let encoded = loaded.ok().and_then(|value| {
            Some((
                codec::encode(&value, self.inner.config.max_value_bytes).ok()?,
                value,
            ))
        });
        let Some((bytes, value)) = encoded else {
            debug!(
                cache.family = key.family().name(),
                "eager refresh failed; keeping the current value"
            );
            self.release_lease(lease, key).await;
            return;
        };
        let max_stale = self.max_stale_for(key, options);
        let (ttl, kept_for) = write_ttls(options, &expiry, &bytes, max_stale);
        let replacing = Some((current.bytes, current.within));
        match self
            .fulfil_lease(lease, key, bytes.clone(), kept_for, replacing)
            .await
        {
            Ok(true) => {
                bump(&self.inner.tally.sets);
                if let (Some(l1), Some(epoch)) = (&l1, epoch) {
                    l1.fill(key, bytes, Some(ttl), Some(value), epoch);
                }
            }
            Ok(false) => debug!(
                cache.family = key.family().name(),
                "changed during an eager refresh; not writing it"
            ),
            Err(error) => debug!(%error, "could not write an eager refresh"),
        }
    }
}
