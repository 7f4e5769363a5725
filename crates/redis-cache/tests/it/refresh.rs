//! Eager refresh: a value read in the last part of its TTL is replaced in
//! the background, once per key across instances, while readers keep
//! getting it without waiting.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_cache::{CacheService, LoadOptions};
use shared_types::RedisKey;
use test_support::{RedisServer, wait_for};
use tokio::sync::Notify;

use crate::{cache_on, pttl, shard_key};

const TTL: Duration = Duration::from_secs(2);

fn eager() -> LoadOptions {
    LoadOptions::default().eager_refresh(0.5).unwrap()
}

/// Loads `"v1"` into `key`, then waits until half its TTL is gone.
async fn aged(cache: &CacheService, redis: &RedisServer, key: &RedisKey) {
    let loaded = cache
        .get_or_load_with(key, TTL, &eager(), || async {
            Ok::<_, std::io::Error>("v1".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(loaded.value, "v1");
    wait_for(
        "the refresh part of the TTL",
        Duration::from_secs(3),
        || async { pttl(redis, key) <= 1_000 },
    )
    .await;
}

/// A loader that counts its calls and answers `"v2"` once released.
fn blocked(
    calls: &Arc<AtomicU32>,
    release: &Arc<Notify>,
) -> impl FnOnce() -> std::pin::Pin<Box<dyn Future<Output = Result<String, std::io::Error>> + Send>>
+ Send
+ 'static {
    let (calls, release) = (calls.clone(), release.clone());
    move || {
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            Ok("v2".to_owned())
        })
    }
}

// Readers on two instances in the last half of the TTL all get the current
// value at once (the loader is still blocked); one refresh in total runs,
// and its value replaces the old one with a new TTL.
#[tokio::test]
async fn one_eager_refresh_per_key_while_readers_keep_the_current_value() {
    let redis = RedisServer::start().await;
    let (a, b) = (cache_on(&redis).await, cache_on(&redis).await);
    let key = shard_key("t", "hot");
    aged(&a, &redis, &key).await;
    let (calls, release) = (Arc::new(AtomicU32::new(0)), Arc::new(Notify::new()));
    let options = eager();
    for cache in [&a, &b, &a, &b, &a] {
        let read = cache.get_or_load_with(&key, TTL, &options, blocked(&calls, &release));
        let loaded = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("a reader never waits for the refresh")
            .unwrap();
        assert_eq!((loaded.value.as_str(), loaded.stale), ("v1", false));
    }
    wait_for(
        "the refresh's loader to start",
        Duration::from_secs(2),
        || async { calls.load(Ordering::SeqCst) == 1 },
    )
    .await;
    release.notify_one();
    wait_for("the refreshed value", Duration::from_secs(3), || async {
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref() == Some(r#""v2""#)
    })
    .await;
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one refresh in all");
    assert_eq!(a.stats().refreshes + b.stats().refreshes, 1);
    assert!(pttl(&redis, &key) > 1_000, "a new TTL");
}

// A `set` while a refresh runs wins: the refreshed value is not written
// over it.
#[tokio::test]
async fn a_set_during_an_eager_refresh_is_not_overwritten() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "hot");
    aged(&cache, &redis, &key).await;
    let (calls, release) = (Arc::new(AtomicU32::new(0)), Arc::new(Notify::new()));
    let loaded = cache
        .get_or_load_with(&key, TTL, &eager(), blocked(&calls, &release))
        .await
        .unwrap();
    assert_eq!(loaded.value, "v1");
    wait_for(
        "the refresh's loader to start",
        Duration::from_secs(2),
        || async { calls.load(Ordering::SeqCst) == 1 },
    )
    .await;
    cache
        .set(&key, &"new", Duration::from_secs(600))
        .await
        .unwrap();
    release.notify_one();
    // The refresh ends by giving its lease back (settled or not).
    let lease = RedisKey::load_lease_of(key.as_str());
    wait_for("the refresh to end", Duration::from_secs(3), || async {
        redis.cmd(&["EXISTS", &lease]).as_int() == Some(0)
    })
    .await;
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""new""#)
    );
}

// A part outside (0, 1) is a typed error.
#[test]
fn an_eager_refresh_part_outside_the_ttl_is_refused() {
    for part in [0.0, 1.0, -0.5, 2.0, f64::NAN] {
        let refused = LoadOptions::default().eager_refresh(part);
        assert!(
            matches!(refused, Err(redis_cache::CacheError::InvalidOption { .. })),
            "{part}"
        );
    }
}
