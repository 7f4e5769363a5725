//! The L1's bounds: bytes, the largest value it holds, and each tenant's
//! share, so that no caller can make it exhaust a process or take it from
//! the other tenants.

use std::time::Duration;

use redis_cache::{CacheConfig, CacheService, Expiry, L1Config, Tier};
use shared_types::RedisKey;
use test_support::RedisServer;

use crate::two_tier::TTL;
use crate::{shard_key, two_tier_on};

const MIB: u64 = 1024 * 1024;

async fn cache_with_l1(server: &RedisServer, l1: L1Config) -> CacheService {
    let config = CacheConfig::default().with_l1(Some(l1));
    two_tier_on(server, |_| {}, config).await
}

// A tenant writing and reading far more than the L1 holds evicts only its
// own entries: another tenant's hot keys stay L1 hits, and the L1 stays
// within its byte bound.
#[tokio::test]
async fn a_tenant_flooding_the_l1_leaves_another_tenants_hits_intact() {
    let redis = RedisServer::start().await;
    let cache = cache_with_l1(
        &redis,
        L1Config::default()
            .with_max_entries(100_000)
            .with_max_bytes(MIB)
            .with_tenant_share_percent(25)
            .with_ttl_cap(Duration::from_secs(60)),
    )
    .await;
    let quiet: Vec<RedisKey> = (0..50)
        .map(|i| shard_key("quiet", &format!("s{i}")))
        .collect();
    let small = "q".repeat(1_000);
    for key in &quiet {
        cache.set(key, &small, TTL).await.unwrap();
    }
    let large = "l".repeat(2_000);
    for batch in 0..4 {
        let flood: Vec<_> = (0..500)
            .map(|i| {
                let key = shard_key("loud", &format!("s{batch}-{i}"));
                (key, large.clone(), Expiry::After(TTL))
            })
            .collect();
        cache.mset(&flood).await.unwrap();
        for (key, _, _) in &flood {
            assert!(cache.get::<String>(key).await.unwrap().is_some());
        }
    }
    let stats = cache.stats();
    assert!(stats.l1_bytes <= MIB, "{} bytes held", stats.l1_bytes);
    assert!(stats.l1_evicted_tenant_share > 1_000, "{stats:?}");
    assert_eq!(stats.l1_evicted_size, 0, "{stats:?}");

    let before = cache.stats().l1_hits;
    for key in &quiet {
        let (value, tier) = cache.get_with_tier::<String>(key).await.unwrap().unwrap();
        assert_eq!((value.len(), tier), (1_000, Tier::L1));
    }
    assert_eq!(cache.stats().l1_hits - before, 50);
}

// A value larger than the L1's per-value bound is never held in the L1:
// every read of it goes to Redis, and memory holds nothing of it.
#[tokio::test]
async fn values_above_the_per_value_bound_are_read_from_redis() {
    let redis = RedisServer::start().await;
    let cache = cache_with_l1(&redis, L1Config::default().with_max_value_bytes(1024)).await;
    let key = shard_key("t", "big");
    cache.set(&key, &"b".repeat(2_000), TTL).await.unwrap();
    for _ in 0..3 {
        let (value, tier) = cache.get_with_tier::<String>(&key).await.unwrap().unwrap();
        assert_eq!((value.len(), tier), (2_000, Tier::L2));
    }
    let stats = cache.stats();
    assert_eq!((stats.l1_entries, stats.l1_bytes), (0, 0));
    assert!(stats.l1_too_large >= 3, "{stats:?}");
    let small = shard_key("t", "small");
    cache.set(&small, &"s", TTL).await.unwrap();
    let (_, tier) = cache
        .get_with_tier::<String>(&small)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tier, Tier::L1);
}
