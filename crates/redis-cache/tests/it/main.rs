//! Integration tests of redis-cache, against real redis-server processes.

mod acl_refusals;
mod announced;
mod basics;
mod bulk;
mod cluster;
mod coalesced;
mod coalesced_gets_sets;
mod counters;
mod fail_safe;
mod feed;
mod fleet;
mod foreign;
mod l1_bounds;
mod lagged_feed;
mod members;
mod negative;
mod outage;
mod outage_writes;
mod own_changes;
mod patterns;
mod purge;
mod purge_jobs;
mod refresh;
mod replay;
mod stale_reads;
mod stream_failover;
mod ttl;
mod two_tier;
mod values;
mod write_back;

use redis_cache::{CacheConfig, CacheService};
use redis_connection::{RedisConfig, RedisConnectionManager};
use shared_types::{RedisKey, ShardId, TenantId, UserId};
use test_support::RedisServer;
use test_support::fixtures::{self, redis_config};

/// A Redis-only cache on `server`.
async fn cache_on(server: &RedisServer) -> CacheService {
    cache_with(server, fixtures::redis_only_config()).await
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

fn shard_key(t: &str, s: &str) -> RedisKey {
    RedisKey::shard_structured(&tenant(t), &shard(s))
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
    fixtures::two_tier(redis, config).await
}

/// Keys in `server`'s database other than tenant key indexes (see the
/// cache's `index.rs`): the values and state a test wrote.
fn cache_keys(server: &RedisServer) -> i64 {
    server.dbsize() - i64::try_from(server.cmd(&["KEYS", "keyindex:*"]).as_strings().len()).unwrap()
}

/// Remaining TTL of `key` in ms, read behind the cache's back.
fn pttl(server: &RedisServer, key: &RedisKey) -> i64 {
    server.cmd(&["PTTL", key.as_str()]).as_int().unwrap()
}
