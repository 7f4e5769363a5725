//! Single-key operations.

use std::time::Duration;

use redis_cache::KeyTtl;
use serde::{Deserialize, Serialize};
use test_support::RedisServer;

use crate::{cache_on, shard_key};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Shard {
    name: String,
    rows: Vec<u32>,
}

// set then get round-trips a typed value, stored as JSON.
#[tokio::test]
async fn set_get_round_trip() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t1", "s1");
    let value = Shard {
        name: "eu".into(),
        rows: vec![1, 2, 3],
    };
    cache
        .set(&key, &value, Duration::from_secs(60))
        .await
        .unwrap();
    assert_eq!(cache.get::<Shard>(&key).await.unwrap(), Some(value));
    let raw = redis.cmd(&["GET", key.as_str()]).as_string().unwrap();
    assert_eq!(raw, r#"{"name":"eu","rows":[1,2,3]}"#);
    assert_eq!(
        cache.get::<Shard>(&shard_key("t1", "nope")).await.unwrap(),
        None
    );
    let stats = cache.stats();
    assert_eq!((stats.sets, stats.l2_hits, stats.misses), (1, 1, 1));
}

// delete and exists report what Redis holds.
#[tokio::test]
async fn delete_and_exists() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t1", "s1");
    assert!(!cache.exists(&key).await.unwrap());
    cache.set(&key, &1, Duration::from_secs(60)).await.unwrap();
    assert!(cache.exists(&key).await.unwrap());
    assert!(cache.delete(&key).await.unwrap());
    assert!(
        !cache.delete(&key).await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(!cache.exists(&key).await.unwrap());
    assert_eq!(cache.stats().deletes, 1);
}

// ttl tells missing, persistent and expiring keys apart; expire changes it.
#[tokio::test]
async fn ttl_and_expire() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t1", "s1");
    assert_eq!(cache.ttl(&key).await.unwrap(), KeyTtl::Missing);
    assert!(!cache.expire(&key, Duration::from_secs(5)).await.unwrap());

    redis.cmd(&["SET", key.as_str(), "1"]);
    assert_eq!(cache.ttl(&key).await.unwrap(), KeyTtl::Persistent);
    assert!(cache.expire(&key, Duration::from_secs(100)).await.unwrap());
    match cache.ttl(&key).await.unwrap() {
        KeyTtl::ExpiresIn(d) => {
            assert!(d > Duration::from_secs(95) && d <= Duration::from_secs(100));
        }
        other => panic!("expected an expiry, got {other:?}"),
    }
}

// server_stats reads key count and memory from Redis.
#[tokio::test]
async fn server_stats_reads_key_count_and_memory_from_redis() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    for i in 0..5 {
        cache
            .set(
                &shard_key("t1", &format!("s{i}")),
                &i,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    let stats = cache.server_stats().await.unwrap();
    // DBSIZE: the five values and their tenant's key index.
    assert_eq!(stats.keys, 6);
    assert!(stats.used_memory_bytes > 100_000);
}
