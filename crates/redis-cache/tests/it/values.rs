//! Oversize, undecodable and wrongly typed values.

use std::time::Duration;

use redis_cache::{CacheConfig, CacheError};
use test_support::{LogCapture, RedisServer};

use crate::{cache_with, shard_key};

// A value over the limit is refused before anything reaches Redis.
#[tokio::test]
async fn oversize_value_refused() {
    let redis = RedisServer::start().await;
    let config = CacheConfig::default()
        .with_max_value_bytes(1024)
        .with_l1(None);
    let cache = cache_with(&redis, config).await;
    let key = shard_key("t", "s");
    let err = cache
        .set(&key, &"x".repeat(2000), Duration::from_secs(60))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        CacheError::ValueTooLarge {
            size: 2002,
            max: 1024
        }
    );
    assert_eq!(redis.dbsize(), 0);
    assert_eq!(cache.stats().sets, 0);
}

// Garbage under a key reads as a miss: the key is deleted, the decode-failure
// counter goes up, and exactly one warning is logged, without the value.
#[tokio::test]
async fn undecodable_value_is_a_counted_deleted_miss() {
    let (logs, subscriber) = LogCapture::new();
    let _guard = tracing::subscriber::set_default(subscriber);
    let redis = RedisServer::start().await;
    let cache = cache_with(&redis, CacheConfig::default().with_l1(None)).await;

    let cases: [(&str, &[u8]); 3] = [
        ("garbage", b"\xff\x00not json at all"),
        ("truncated", br#"{"name":"secret-value","rows":[1,2"#),
        ("other-type", br#""a string, not a number""#),
    ];
    for (i, (name, raw)) in cases.iter().enumerate() {
        let key = shard_key("t", name);
        redis.cmd(&[b"SET".as_slice(), key.as_str().as_bytes(), raw]);
        assert_eq!(cache.get::<u64>(&key).await.unwrap(), None, "{name}");
        assert_eq!(
            redis.cmd(&["EXISTS", key.as_str()]).as_int(),
            Some(0),
            "{name} not deleted"
        );
        assert_eq!(cache.stats().decode_failures, i as u64 + 1);
    }
    let warnings = logs.lines_with("did not decode");
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    assert!(
        warnings
            .iter()
            .all(|l| l.contains("WARN") && l.contains("cache.family=\"shard\"")),
        "{warnings:?}"
    );
    assert!(
        !logs.text().contains("secret-value"),
        "a value reached the logs"
    );
}

// A key holding another Redis type (a hash) is treated like an undecodable value.
#[tokio::test]
async fn wrong_redis_type_is_a_miss() {
    let redis = RedisServer::start().await;
    let cache = cache_with(&redis, CacheConfig::default().with_l1(None)).await;
    let key = shard_key("t", "hash");
    redis.cmd(&["HSET", key.as_str(), "f", "v"]);
    assert_eq!(cache.get::<u64>(&key).await.unwrap(), None);
    assert_eq!(redis.cmd(&["EXISTS", key.as_str()]).as_int(), Some(0));
    let stats = cache.stats();
    assert_eq!((stats.decode_failures, stats.errors), (1, 0));
}

// In a two-tier mget (GET+PTTL scripts), a key holding another Redis type
// is a miss, deleted like an undecodable value, while the keys around it
// are read and land in the L1.
#[tokio::test]
async fn a_wrongly_typed_key_in_a_two_tier_mget_is_a_miss_and_the_others_are_read() {
    let redis = RedisServer::start().await;
    let cache = crate::two_tier_on(&redis, |_| {}, test_support::fixtures::two_tier_config()).await;
    let (before, hash, after) = (
        shard_key("t", "before"),
        shard_key("t", "hash"),
        shard_key("t", "after"),
    );
    redis.cmd(&["SET", before.as_str(), "1"]);
    redis.cmd(&["HSET", hash.as_str(), "f", "v"]);
    redis.cmd(&["SET", after.as_str(), "3"]);
    let read = cache
        .mget::<u64>(&[before.clone(), hash.clone(), after.clone()])
        .await
        .unwrap();
    assert_eq!(read, vec![Some(1), None, Some(3)]);
    assert_eq!(redis.cmd(&["EXISTS", hash.as_str()]).as_int(), Some(0));
    assert_eq!(cache.stats().decode_failures, 1);
    let (_, tier) = cache.get_with_tier::<u64>(&after).await.unwrap().unwrap();
    assert_eq!(tier, redis_cache::Tier::L1);
}
