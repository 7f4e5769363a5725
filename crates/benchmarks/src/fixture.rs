//! What every workload builds on: the run's mode, the 512-byte value,
//! servers, connections and caches.

use std::time::Duration;

use redis_cache::{CacheConfig, CacheService};
use redis_connection::{RedisConfig, RedisConnectionManager};
use serde::{Deserialize, Serialize};
use shared_types::{RedisKey, ShardId, TenantId};
use test_support::{RedisServer, fixtures};

/// Size of every benchmark value, as JSON.
pub(crate) const VALUE_BYTES: usize = 512;

/// TTL of benchmark writes: far longer than any run.
pub(crate) const TTL: Duration = Duration::from_secs(3600);

/// A full run, or a quick one that only proves every workload works.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mode {
    pub(crate) quick: bool,
}

impl Mode {
    /// `full` in a full run, `quick` in a quick one.
    pub(crate) fn pick<T>(self, full: T, quick: T) -> T {
        if self.quick { quick } else { full }
    }
}

/// The cached value: a typical small document, exactly [`VALUE_BYTES`] of
/// JSON, so that reads pay for real decoding and cloning.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Doc {
    pub(crate) id: u64,
    pub(crate) tenant: String,
    pub(crate) shard: String,
    pub(crate) version: u32,
    pub(crate) tags: Vec<String>,
    pub(crate) body: String,
}

impl Doc {
    pub(crate) fn new(id: u64) -> Self {
        let mut doc = Self {
            id,
            tenant: "bench".to_owned(),
            shard: format!("s{id}"),
            version: 1,
            tags: vec!["alpha".to_owned(), "beta".to_owned(), "gamma".to_owned()],
            body: String::new(),
        };
        let bare = doc.encode().len();
        doc.body = "x".repeat(VALUE_BYTES.saturating_sub(bare));
        doc
    }

    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Doc always encodes")
    }
}

pub(crate) fn tenant(name: &str) -> TenantId {
    TenantId::new(name).expect("benchmark tenant ids are valid")
}

/// `tenant:{tenant}:shard:s{i}:structured`.
pub(crate) fn shard_key(tenant_name: &str, i: u64) -> RedisKey {
    let shard = ShardId::new(format!("s{i}")).expect("benchmark shard ids are valid");
    RedisKey::shard_structured(&tenant(tenant_name), &shard)
}

/// The connection settings a service gets by default (`REDIS_*` unset),
/// pointed at `server`: the figures are what a deployment would see.
pub(crate) fn redis_config(server: &RedisServer) -> RedisConfig {
    RedisConfig::centralized(server.host(), server.port())
}

pub(crate) async fn connect(server: &RedisServer) -> Result<RedisConnectionManager, String> {
    connect_with(server, |_| {}).await
}

/// [`connect`] with some settings changed.
pub(crate) async fn connect_with(
    server: &RedisServer,
    tweak: impl FnOnce(&mut RedisConfig),
) -> Result<RedisConnectionManager, String> {
    let mut config = redis_config(server);
    tweak(&mut config);
    RedisConnectionManager::connect(config)
        .await
        .map_err(|e| format!("connecting to the benchmark redis-server: {e}"))
}

/// A Redis-only cache (`CacheService::new`).
pub(crate) fn redis_only(manager: RedisConnectionManager) -> CacheService {
    CacheService::new(manager, fixtures::redis_only_config())
}

/// A two-tier cache instance with its own connections and subscriber, as
/// one service process has, with a service's default settings (an L1 of
/// `CacheConfig::default()`); returns once its L1 is live.
pub(crate) async fn two_tier(server: &RedisServer) -> CacheService {
    fixtures::two_tier(redis_config(server), CacheConfig::default()).await
}

/// Polls `check` every millisecond until it holds, or fails naming `what`.
pub(crate) async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !check() {
        if tokio::time::Instant::now() > deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every document is exactly VALUE_BYTES of JSON, whatever its id.
    #[test]
    fn documents_have_the_benchmark_size() {
        for id in [0, 7, 12_345, u64::MAX] {
            assert_eq!(Doc::new(id).encode().len(), VALUE_BYTES, "id {id}");
        }
    }
}
