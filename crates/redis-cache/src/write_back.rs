//! What a load does after its loader: serve the kept value (fail-safe),
//! finish in the background (soft timeout), or write the value back under
//! its lease; and the loader's time limit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use shared_types::RedisKey;
use tracing::{debug, warn};

use crate::codec;
use crate::expiry::Expiry;
use crate::lease::Lease;
use crate::load::{LoadError, LoadOutcome};
use crate::load_options::LoadOptions;
use crate::read::CacheValue;
use crate::service::CacheService;
use crate::stats::bump;

impl CacheService {
    /// The kept value, flagged stale and counted (fail-safe).
    pub(crate) fn serve_stale<T>(&self, key: &RedisKey, value: T) -> LoadOutcome<T> {
        bump(&self.inner.tally.stale_served);
        debug!(
            cache.family = key.family().name(),
            "loader failed or slow; serving the kept value (fail-safe)"
        );
        LoadOutcome { value, stale: true }
    }

    /// Lets a load that passed its soft timeout finish in a task of its
    /// own (bounded: see `load_through`) and write its value back.
    pub(crate) fn finish_in_background<T, E, L>(
        &self,
        key: &RedisKey,
        lease: Option<Lease>,
        load: L,
        write: WriteBack,
    ) where
        T: CacheValue + Serialize,
        E: Send + Sync + 'static,
        L: Future<Output = Result<T, LoadError<E>>> + Send + 'static,
    {
        bump(&self.inner.tally.background_loads);
        let (this, key) = (self.clone(), key.clone());
        tokio::spawn(async move {
            let loaded = load.await;
            match lease {
                Some(lease) => drop(this.write_back(&key, lease, loaded, write).await),
                None => drop(loaded),
            }
        });
    }

    /// Writes a loaded value back under `lease` (see `lease.rs`), or gives
    /// the lease back when there is nothing to write or the key changed.
    pub(crate) async fn write_back<T, E>(
        &self,
        key: &RedisKey,
        lease: Lease,
        loaded: Result<T, LoadError<E>>,
        write: WriteBack,
    ) -> Result<T, LoadError<E>>
    where
        T: CacheValue + Serialize,
    {
        let l1 = self.l1_for(key).cloned();
        let encoded = loaded.as_ref().ok().map(|value| {
            codec::encode(value, self.inner.config.max_value_bytes).inspect_err(
                |error| warn!(cache.family = key.family().name(), %error, "loaded value not cached"),
            )
        });
        let Some(Ok(bytes)) = encoded else {
            // Nothing to write: give the key back at once.
            self.release_lease(lease, key).await;
            return loaded;
        };
        // An invalidation this instance heard of during the load (a client
        // that deletes the key without knowing its lease, see lease.rs):
        // the value may predate it.
        if let (Some(l1), Some(epoch)) = (&l1, write.epoch)
            && l1.epoch(key.as_str()) != epoch
        {
            self.release_lease(lease, key).await;
            return loaded;
        }
        let value = loaded?;
        let (ttl, kept_for) = write_ttls(&write.options, &write.expiry, &bytes, write.max_stale);
        match self
            .fulfil_lease(lease, key, bytes.clone(), kept_for, write.replacing)
            .await
        {
            Ok(true) => {
                bump(&self.inner.tally.sets);
                // The L1 refuses it if anything was invalidated meanwhile.
                if let (Some(l1), Some(epoch)) = (&l1, write.epoch) {
                    l1.fill(key, bytes, Some(ttl), Some(value.clone()), epoch);
                }
            }
            Ok(false) => debug!(
                cache.family = key.family().name(),
                "changed during load; not caching the loaded value"
            ),
            Err(error) => {
                bump(&self.inner.tally.errors);
                if let Some(suppressed) = self.inner.write_errors.check() {
                    warn!(%error, suppressed, "could not cache a loaded value");
                }
            }
        }
        Ok(value)
    }
}

/// How a load's value is written back.
pub(crate) struct WriteBack {
    pub(crate) expiry: Expiry,
    pub(crate) options: LoadOptions,
    pub(crate) max_stale: Option<Duration>,
    /// The kept value a fail-safe load replaces (see `Lease::fulfil`).
    pub(crate) replacing: Option<(Bytes, Duration)>,
    /// The L1's epoch before the load, when there is an L1.
    pub(crate) epoch: Option<crate::l1::Epoch>,
}

/// Runs `loader` within `limit`: past it the loader's future is dropped,
/// which cancels it (nothing is left running).
pub(crate) async fn run_loader<T, E, F, Fut>(
    limit: Option<Duration>,
    loader: F,
) -> Result<T, LoadError<E>>
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    match limit {
        Some(limit) => match tokio::time::timeout(limit, loader()).await {
            Ok(result) => result.map_err(|e| LoadError::Loader(Arc::new(e))),
            Err(_) => Err(LoadError::TimedOut),
        },
        None => loader().await.map_err(|e| LoadError::Loader(Arc::new(e))),
    }
}

/// The TTL a loaded value (`bytes`) is fresh for, and how long Redis keeps
/// it: "not found" for the negative TTL at most, and with fail-safe
/// `max_stale` longer.
pub(crate) fn write_ttls(
    options: &LoadOptions,
    expiry: &Expiry,
    bytes: &[u8],
    max_stale: Option<Duration>,
) -> (Duration, Duration) {
    let ttl = match options.negative() {
        Some(negative) if bytes == b"null" => expiry.resolve().min(negative),
        _ => expiry.resolve(),
    };
    (ttl, ttl + max_stale.unwrap_or_default())
}
