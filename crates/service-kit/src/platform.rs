//! [`Platform`]: the Redis layer as a service holds it.

use std::sync::Arc;

use redis_cache::{CacheConfig, CacheError, CacheService, ReadMode};
use redis_connection::{ConnectionError, RedisConfig, RedisConnectionManager};
use redis_pubsub::{PubSub, PubSubError};
use tracing::info;

use crate::metrics::Metrics;
use crate::readiness::Readiness;

/// Why the platform could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The connection manager refused its configuration.
    #[error(transparent)]
    Connection(#[from] ConnectionError),
    /// The pub/sub service could not start.
    #[error(transparent)]
    PubSub(#[from] PubSubError),
    /// The cache could not start.
    #[error(transparent)]
    Cache(#[from] CacheError),
}

/// The connection manager, pub/sub and two-tier cache of one service
/// instance, plus its metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Platform {
    /// Connections to Redis.
    pub manager: RedisConnectionManager,
    /// Invalidation and other pub/sub traffic.
    pub pubsub: PubSub,
    /// The two-tier cache.
    pub cache: CacheService,
    /// This instance's metrics.
    pub metrics: Metrics,
    /// The readiness verdict probes share.
    pub(crate) readiness: Arc<Readiness>,
    /// Ends the OTLP metrics refresher (if any) when the last clone goes.
    _refresher: Option<Arc<Refresher>>,
}

/// A task that brings the metrics read from elsewhere (cache and pub/sub
/// statistics, Redis gauges) up to date once per OTLP export interval:
/// nothing scrapes `/metrics` for the OTLP export, so without it those
/// series would only move when Prometheus happened to scrape. Aborted on
/// drop.
#[derive(Debug)]
struct Refresher(tokio::task::AbortHandle);

impl Drop for Refresher {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Refresher {
    fn start(
        metrics: &Metrics,
        cache: &CacheService,
        pubsub: &PubSub,
        manager: &RedisConnectionManager,
    ) -> Option<Self> {
        let (_, interval) = crate::otel_metrics::exporting()?;
        let (metrics, cache, pubsub, manager) = (
            metrics.clone(),
            cache.clone(),
            pubsub.clone(),
            manager.clone(),
        );
        let mut ticks = tokio::time::interval(*interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let task = tokio::spawn(async move {
            loop {
                ticks.tick().await;
                metrics.refresh(&cache.stats(), &pubsub.stats(), &manager);
            }
        });
        Some(Self(task.abort_handle()))
    }
}

impl Platform {
    /// Starts everything without waiting for Redis (a service must start, and
    /// answer liveness, while Redis is down; readiness follows Redis).
    ///
    /// Reads are strict: a service must tell "not cached" (404, 401) from
    /// "Redis cannot answer" (503); the L1 still serves what it holds.
    ///
    /// # Errors
    /// Configuration errors, and [`StartError::Cache`] when Redis answers
    /// that the ACL user may not subscribe to the invalidation channels
    /// (`CacheError::Rejected` of kind `NoPermission`): an instance that
    /// can never hear invalidations does not start.
    pub async fn start(redis: RedisConfig, cache: CacheConfig) -> Result<Self, StartError> {
        let manager = RedisConnectionManager::connect_lazy(redis)?;
        crate::command_metrics::export_over_otlp(manager.commands());
        let pubsub = PubSub::new(manager.clone()).await?;
        let config = cache.with_read_mode(ReadMode::Strict);
        let cache = CacheService::two_tier(manager.clone(), config, pubsub.clone()).await?;
        let metrics = Metrics::new();
        let refresher = Refresher::start(&metrics, &cache, &pubsub, &manager).map(Arc::new);
        Ok(Self {
            manager,
            pubsub,
            cache,
            metrics,
            readiness: Arc::default(),
            _refresher: refresher,
        })
    }

    /// Unsubscribes and closes every Redis connection.
    pub async fn shutdown(&self) {
        self.pubsub.shutdown().await;
        self.manager.shutdown().await;
        info!("Redis layer closed");
    }
}
