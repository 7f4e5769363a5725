//! mget and mset.

use std::time::Duration;

use redis_cache::Expiry;
use test_support::RedisServer;

use crate::{cache_keys, cache_on, pttl, shard_key};

// mget returns values in the caller's order, with None for missing keys.
#[tokio::test]
async fn mget_preserves_order_and_misses() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    for i in [0, 2, 4] {
        cache
            .set(
                &shard_key("t", &format!("s{i}")),
                &i,
                Duration::from_secs(60),
            )
            .await
            .unwrap();
    }
    let keys: Vec<_> = (0..6).map(|i| shard_key("t", &format!("s{i}"))).collect();
    let values: Vec<Option<u32>> = cache.mget(&keys).await.unwrap();
    assert_eq!(values, vec![Some(0), None, Some(2), None, Some(4), None]);
    assert!(cache.mget::<u32>(&[]).await.unwrap().is_empty());
    let stats = cache.stats();
    assert_eq!((stats.l2_hits, stats.misses), (3, 3));
}

// mset writes every entry with its own TTL in one call.
#[tokio::test]
async fn mset_with_per_entry_ttls() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let entries: Vec<_> = (1..=5u64)
        .map(|i| {
            (
                shard_key("t", &format!("s{i}")),
                i,
                Expiry::After(Duration::from_secs(i * 100)),
            )
        })
        .collect();
    cache.mset(&entries).await.unwrap();
    for (key, value, _) in &entries {
        let ttl = pttl(&redis, key);
        let expected = i64::try_from(*value).unwrap() * 100_000;
        assert!(
            (expected - 2000..=expected).contains(&ttl),
            "{key}: {ttl} vs {expected}"
        );
        assert_eq!(cache.get::<u64>(key).await.unwrap(), Some(*value));
    }
    assert_eq!(cache.stats().sets, 5);
}

// One oversize value in an mset refuses the whole batch: nothing is written.
#[tokio::test]
async fn mset_is_all_or_nothing_on_size() {
    let redis = RedisServer::start().await;
    let config = redis_cache::CacheConfig::default()
        .with_max_value_bytes(100)
        .with_l1(None);
    let cache = crate::cache_with(&redis, config).await;
    let entries = vec![
        (
            shard_key("t", "small"),
            "x".repeat(10),
            Expiry::After(Duration::from_secs(60)),
        ),
        (
            shard_key("t", "big"),
            "x".repeat(200),
            Expiry::After(Duration::from_secs(60)),
        ),
    ];
    let err = cache.mset(&entries).await.unwrap_err();
    assert!(
        matches!(err, redis_cache::CacheError::ValueTooLarge { .. }),
        "{err:?}"
    );
    assert_eq!(redis.dbsize(), 0);
}

// A batch larger than one script chunk is written whole, each key with its
// own value and TTL; a key given twice keeps its last value; and the batch
// still goes through after Redis forgot the script (SCRIPT FLUSH, as after
// a restart).
#[tokio::test]
async fn large_mset_with_repeats_and_a_forgotten_script() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let n = 1_200u64;
    let mut entries: Vec<_> = (0..n)
        .map(|i| {
            (
                shard_key("t", &format!("s{i}")),
                i,
                Expiry::After(Duration::from_secs(100 + i)),
            )
        })
        .collect();
    // s7 again, far from its first occurrence (another chunk).
    entries.push((
        shard_key("t", "s7"),
        7_000,
        Expiry::After(Duration::from_secs(50)),
    ));
    for round in 0..2 {
        redis.cmd(&["SCRIPT", "FLUSH"]);
        cache.mset(&entries).await.unwrap();
        assert_eq!(
            cache_keys(&redis),
            i64::try_from(n).unwrap(),
            "round {round}"
        );
    }
    let keys: Vec<_> = (0..n).map(|i| shard_key("t", &format!("s{i}"))).collect();
    let values: Vec<Option<u64>> = cache.mget(&keys).await.unwrap();
    for (i, value) in (0..n).zip(&values) {
        let expected = if i == 7 { 7_000 } else { i };
        assert_eq!(*value, Some(expected), "s{i}");
    }
    let ttl = pttl(&redis, &shard_key("t", "s7"));
    assert!((48_000..=50_000).contains(&ttl), "s7 ttl {ttl}");
    let ttl = pttl(&redis, &shard_key("t", "s1100"));
    assert!((1_198_000..=1_200_000).contains(&ttl), "s1100 ttl {ttl}");
}
