//! Integration tests of redis-cache, against real redis-server processes.

mod basics;
mod bulk;
mod cluster;
mod counters;
mod foreign;
mod l1_bounds;
mod outage;
mod own_changes;
mod patterns;
mod purge;
mod ttl;
mod two_tier;
mod values;
mod write_back;

use std::time::Duration;

use redis_cache::{CacheConfig, CacheService, L1Config};
use redis_connection::{ReconnectConfig, RedisConfig, RedisConnectionManager};
use shared_types::{CacheKey, ShardId, TenantId, UserId};
use test_support::RedisServer;

/// A connection config for `server` with short timeouts.
fn redis_config(server: &RedisServer) -> RedisConfig {
    test_support::init_tracing();
    let mut config = RedisConfig::centralized(server.host(), server.port());
    config.pool_size = 2;
    config.command_timeout = Duration::from_millis(300);
    config.reconnect = ReconnectConfig::default()
        .with_base_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(200))
        .with_jitter(Duration::from_millis(10));
    config
}

/// A Redis-only cache on `server`.
async fn cache_on(server: &RedisServer) -> CacheService {
    cache_with(server, CacheConfig::default().with_l1(None)).await
}

async fn cache_with(server: &RedisServer, config: CacheConfig) -> CacheService {
    let manager = RedisConnectionManager::connect(redis_config(server))
        .await
        .unwrap();
    CacheService::new(manager, config)
}

fn tenant(s: &str) -> TenantId {
    TenantId::new(s).unwrap()
}

fn user(s: &str) -> UserId {
    UserId::new(s).unwrap()
}

fn shard(s: &str) -> ShardId {
    ShardId::new(s).unwrap()
}

fn shard_key(t: &str, s: &str) -> CacheKey {
    CacheKey::shard_structured(&tenant(t), &shard(s))
}

/// The L1 most two-tier tests use: a cap long enough that a test failing to
/// invalidate it sees the stale value, not an expiry.
fn test_l1() -> L1Config {
    L1Config::default()
        .with_max_entries(10_000)
        .with_ttl_cap(Duration::from_secs(60))
}

/// A two-tier cache on `server` (its own manager and subscriber, connection
/// settings adjusted by `tweak`), returned once its L1 is live.
async fn two_tier_on(
    server: &RedisServer,
    tweak: impl FnOnce(&mut RedisConfig),
    config: CacheConfig,
) -> CacheService {
    let mut redis = redis_config(server);
    tweak(&mut redis);
    let manager = RedisConnectionManager::connect(redis).await.unwrap();
    let pubsub = redis_pubsub::PubSub::new(manager.clone()).unwrap();
    let cache = CacheService::two_tier(manager, config, pubsub)
        .await
        .unwrap();
    live(&cache).await;
    cache
}

/// Waits until `cache`'s L1 is live (its invalidation feed subscribed).
async fn live(cache: &CacheService) {
    test_support::wait_for("the L1 to go live", Duration::from_secs(5), || async {
        cache.l1_live()
    })
    .await;
}

/// Keys in `server`'s database other than tenant key indexes (see the
/// cache's `index.rs`): the values and state a test wrote.
fn cache_keys(server: &RedisServer) -> i64 {
    server.dbsize() - i64::try_from(server.cmd(&["KEYS", "keyindex:*"]).as_strings().len()).unwrap()
}

/// Remaining TTL of `key` in ms, read behind the cache's back.
fn pttl(server: &RedisServer, key: &CacheKey) -> i64 {
    server.cmd(&["PTTL", key.as_str()]).as_int().unwrap()
}
