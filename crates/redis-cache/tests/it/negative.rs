//! Negative caching: `get_or_load_with` remembers "not found" for a short
//! while (`LoadOptions::negative_ttl`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_cache::{CacheService, LoadOptions};
use shared_types::{Invalidation, RedisKey};
use test_support::RedisServer;

use crate::{cache_on, pttl, shard_key};

const TTL: Duration = Duration::from_secs(600);
const NEGATIVE: Duration = Duration::from_secs(5);

/// Loads `key` with a loader that finds nothing, counting its calls.
async fn load_missing(cache: &CacheService, key: &RedisKey, calls: &Arc<AtomicU32>) -> bool {
    let options = LoadOptions::default().negative_ttl(NEGATIVE);
    let calls = calls.clone();
    let loaded = cache
        .get_or_load_with(key, TTL, &options, move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<Option<String>, std::io::Error>(None)
        })
        .await
        .unwrap();
    assert!(!loaded.stale);
    loaded.value.is_none()
}

// "Not found" is cached as JSON null for the negative TTL (not the value's),
// so repeated reads of a missing id do not reach the loader; an
// invalidation of the key clears it like any value.
#[tokio::test]
async fn not_found_is_cached_briefly_and_cleared_by_invalidation() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "missing");
    let calls = Arc::new(AtomicU32::new(0));
    for _ in 0..5 {
        assert!(load_missing(&cache, &key, &calls).await);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one load for five reads");
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some("null"),
        "stored as JSON"
    );
    let ttl = pttl(&redis, &key);
    assert!(
        (1..=5_000).contains(&ttl),
        "the negative TTL, not the value's: {ttl}"
    );
    cache
        .invalidate(&Invalidation::for_key(&key).unwrap())
        .await
        .unwrap();
    assert!(load_missing(&cache, &key, &calls).await);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "loaded again after the invalidation"
    );
}

// A found value keeps its own TTL, and without the option "not found" is
// cached as long as any value (what get_or_load always did).
#[tokio::test]
async fn the_negative_ttl_applies_to_not_found_only() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let (found, plain) = (shard_key("t", "found"), shard_key("t", "plain"));
    let options = LoadOptions::default().negative_ttl(NEGATIVE);
    let loaded = cache
        .get_or_load_with(&found, TTL, &options, || async {
            Ok::<_, std::io::Error>(Some(7u32))
        })
        .await
        .unwrap();
    assert_eq!(loaded.value, Some(7));
    assert!(pttl(&redis, &found) > 590_000);
    let none: Option<u32> = cache
        .get_or_load(&plain, TTL, || async { Ok::<_, std::io::Error>(None) })
        .await
        .unwrap();
    assert_eq!(none, None);
    assert!(pttl(&redis, &plain) > 590_000);
}
