//! Counters and rate-limit windows.

use std::time::Duration;

use shared_types::{CounterName, RedisKey};
use test_support::{RedisServer, wait_for};

use crate::{cache_on, pttl, tenant, user};

fn counter_key(name: &str) -> RedisKey {
    RedisKey::counter(&tenant("t1"), &CounterName::new(name).unwrap())
}

// increment and decrement return the new value.
#[tokio::test]
async fn increment_and_decrement() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = counter_key("visits");
    assert_eq!(cache.increment(&key, 5).await.unwrap(), 5);
    assert_eq!(cache.increment(&key, 1).await.unwrap(), 6);
    assert_eq!(cache.decrement(&key, 2).await.unwrap(), 4);
    redis.cmd(&["SET", key.as_str(), "not a number"]);
    let err = cache.increment(&key, 1).await.unwrap_err();
    assert!(
        matches!(err, redis_cache::CacheError::Rejected(_)),
        "{err:?}"
    );
}

// 100 concurrent tasks incrementing one counter lose no increment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_increments_are_not_lost() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = counter_key("hits");
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move {
                for _ in 0..10 {
                    cache.increment(&key, 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(redis.cmd(&["GET", key.as_str()]).as_int(), Some(1000));
}

// The window starts on the first hit, counts, and resets after it expires.
#[tokio::test]
async fn rate_window_starts_on_first_hit_counts_and_resets_after_expiry() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let action = CounterName::new("login").unwrap();
    let key = RedisKey::rate_limit(&tenant("t1"), &user("u1"), &action);
    let window = Duration::from_millis(400);

    let first = cache.increment_window(&key, window).await.unwrap();
    assert_eq!(first.count, 1);
    assert!(first.resets_in <= window && first.resets_in > Duration::from_millis(200));
    let ttl_after_first = pttl(&redis, &key);
    assert!(ttl_after_first > 0, "the first hit starts the window");
    for expected in 2..=4 {
        let w = cache.increment_window(&key, window).await.unwrap();
        assert_eq!(w.count, expected);
        assert!(
            w.resets_in <= first.resets_in,
            "later hits do not extend the window"
        );
    }
    wait_for("the window to expire", Duration::from_secs(3), || async {
        redis.cmd(&["EXISTS", key.as_str()]).as_int() == Some(0)
    })
    .await;
    assert_eq!(cache.increment_window(&key, window).await.unwrap().count, 1);

    // A counter left without expiry by a stray writer gets the window.
    redis.cmd(&["SET", key.as_str(), "7"]);
    let w = cache.increment_window(&key, window).await.unwrap();
    assert_eq!(w.count, 8);
    assert!(pttl(&redis, &key) > 0);
}

// 100 concurrent hits on one window are all counted, and the window is set once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_window_hits() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = RedisKey::rate_limit(
        &tenant("t1"),
        &user("u1"),
        &CounterName::new("api").unwrap(),
    );
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (cache, key) = (cache.clone(), key.clone());
            tokio::spawn(async move {
                cache
                    .increment_window(&key, Duration::from_secs(60))
                    .await
                    .unwrap()
                    .count
            })
        })
        .collect();
    let mut counts = Vec::new();
    for task in tasks {
        counts.push(task.await.unwrap());
    }
    counts.sort_unstable();
    assert_eq!(
        counts,
        (1..=100).collect::<Vec<_>>(),
        "each hit saw a distinct count"
    );
    assert!(pttl(&redis, &key) > 59_000);
}
