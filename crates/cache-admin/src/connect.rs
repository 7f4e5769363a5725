//! Connecting as the services do: the same `REDIS_*` and `CACHE_*`
//! variables, read once through their crates' readers, but bounded.
//!
//! A service may wait for Redis forever (`REDIS_RECONNECT_MAX_ATTEMPTS=0`,
//! the default, retries until it answers); an operator's command must not
//! hang, so the first connection gets `REDIS_CONNECT_TIMEOUT_MS` in all,
//! and every command after it the usual command timeout.

use redis_cache::{CacheConfig, CacheService, PurgeMode};
use redis_connection::{Env, RedisConfig, RedisConnectionManager};
use redis_pubsub::PubSub;
use tracing::warn;

use crate::error::AdminError;

/// The configuration of a run, read from the environment.
#[derive(Debug)]
pub(crate) struct Settings {
    redis: RedisConfig,
    cache: CacheConfig,
}

impl Settings {
    /// Reads `REDIS_*` and `CACHE_*` from the process's environment.
    pub(crate) fn from_env() -> Result<Self, AdminError> {
        let env = Env::process();
        let redis = RedisConfig::from_reader(&env)?;
        let mut cache = CacheConfig::from_reader(&env)?;
        // The CLI reads nothing twice: an L1 would only cost memory.
        cache.l1 = None;
        Ok(Self { redis, cache })
    }

    /// The `ZSCAN` page size hint of purges and reports (the cache's
    /// `scan_count`, 1000 by default).
    pub(crate) fn scan_count(&self) -> u32 {
        self.cache.scan_count
    }

    /// A connection manager, connected within the connect timeout.
    pub(crate) async fn connect(&self) -> Result<RedisConnectionManager, AdminError> {
        let waited = self.redis.connect_timeout;
        match tokio::time::timeout(waited, RedisConnectionManager::connect(self.redis.clone()))
            .await
        {
            Ok(connected) => Ok(connected?),
            Err(_) => Err(AdminError::Unreachable {
                addresses: self.redis.topology.addresses().join(", "),
                waited,
            }),
        }
    }

    /// A Redis-only cache (for commands that change nothing).
    pub(crate) async fn cache(&self) -> Result<CacheService, AdminError> {
        Ok(CacheService::new(self.connect().await?, self.cache.clone()))
    }

    /// A cache that announces its changes on the invalidation bus, as the
    /// services' two-tier caches do (for purges).
    pub(crate) async fn announcing_cache(&self) -> Result<CacheService, AdminError> {
        if self.cache.purge_mode == PurgeMode::Scan {
            warn!(
                "CACHE_PURGE_MODE=scan: cache-admin purge walks the tenant's key index, \
                 so keys that only other clients wrote are not found"
            );
        }
        let manager = self.connect().await?;
        let pubsub = PubSub::new(manager.clone()).await?;
        Ok(CacheService::two_tier(manager, self.cache.clone(), pubsub).await?)
    }

    /// The pub/sub service alone (for `watch`).
    pub(crate) async fn pubsub(&self) -> Result<PubSub, AdminError> {
        Ok(PubSub::new(self.connect().await?).await?)
    }
}
