//! Redis going away and coming back, as the cache's callers see it.

use std::time::{Duration, Instant};

use redis_cache::{CacheConfig, CacheError, ReadMode};
use test_support::{RedisServer, wait_for};

use crate::{cache_with, shard_key};

// Stopped: reads are misses within the timeout, writes, deletes and counters
// return the unavailable error. Restarted: everything works again, untouched.
#[tokio::test]
async fn stopped_then_restarted() {
    let mut redis = RedisServer::start().await;
    let cache = cache_with(&redis, CacheConfig::default().with_l1(None)).await;
    let timeout = cache.manager().command_timeout();
    let key = shard_key("t", "s");
    cache.set(&key, &1, Duration::from_secs(60)).await.unwrap();

    redis.stop().await;
    for _ in 0..3 {
        let start = Instant::now();
        assert_eq!(cache.get::<u32>(&key).await.unwrap(), None);
        assert_eq!(
            cache.mget::<u32>(std::slice::from_ref(&key)).await.unwrap(),
            vec![None]
        );
        assert!(
            start.elapsed() <= timeout * 3,
            "reads took {:?}",
            start.elapsed()
        );
    }
    let err = cache
        .set(&key, &2, Duration::from_secs(60))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(cache.delete(&key).await.unwrap_err().is_unavailable());
    assert!(cache.increment(&key, 1).await.unwrap_err().is_unavailable());
    // Scripted commands fail the same way (and as fast).
    let window = Duration::from_secs(10);
    assert!(
        cache
            .increment_window(&key, window)
            .await
            .unwrap_err()
            .is_unavailable()
    );
    let batch = [(key.clone(), 4, redis_cache::Expiry::After(window))];
    assert!(cache.mset(&batch).await.unwrap_err().is_unavailable());
    assert!(
        cache
            .flush_tenant(&crate::tenant("t"))
            .await
            .unwrap_err()
            .is_unavailable()
    );
    assert!(cache.stats().errors >= 8);

    redis.start_again().await;
    wait_for(
        "writes to succeed again",
        Duration::from_secs(5),
        || async { cache.set(&key, &3, Duration::from_secs(60)).await.is_ok() },
    )
    .await;
    assert_eq!(cache.get::<u32>(&key).await.unwrap(), Some(3));
}

// Once every pooled connection is known to be down, reads and counters
// fail at once, not after the command timeout: a read, an increment and
// the GET+PTTL pair of a two-tier read each answer well within a fraction
// of a long timeout.
#[tokio::test]
async fn known_outage_fails_fast_instead_of_waiting_out_the_timeout() {
    let mut redis = RedisServer::start().await;
    let (manager, cache) = strict_with_timeout(&redis, Duration::from_secs(10)).await;
    let pubsub = redis_pubsub::PubSub::new(manager.clone()).await.unwrap();
    let two_tier = test_support::fixtures::two_tier_with(
        manager.clone(),
        pubsub,
        test_support::fixtures::two_tier_config().with_read_mode(ReadMode::Strict),
    )
    .await;
    let key = shard_key("t", "s");
    cache.set(&key, &1, Duration::from_secs(60)).await.unwrap();

    redis.stop().await;
    // Known to fred: fail-fast is fred's check of its own connection state,
    // which may follow the loss later than the manager's status does.
    wait_for(
        "every pooled connection to be down",
        Duration::from_secs(10),
        || async { manager.pool_connections().0 == 0 },
    )
    .await;
    let bound = Duration::from_secs(2);
    let fails_fast = |what: &str, start: Instant, unavailable: bool| {
        assert!(unavailable, "{what} did not fail as unavailable");
        assert!(
            start.elapsed() < bound,
            "{what} took {:?} with a 10 s command timeout",
            start.elapsed()
        );
    };
    let start = Instant::now();
    let get = cache.get::<u32>(&key).await;
    fails_fast("get", start, get.unwrap_err().is_unavailable());
    let start = Instant::now();
    let incr = cache.increment(&key, 1).await;
    fails_fast("increment", start, incr.unwrap_err().is_unavailable());
    let start = Instant::now();
    let read = two_tier.get::<u32>(&key).await;
    fails_fast("two-tier get", start, read.unwrap_err().is_unavailable());
    let start = Instant::now();
    let set = cache.set(&key, &2, Duration::from_secs(60)).await;
    fails_fast("set", start, set.unwrap_err().is_unavailable());
}

// In strict mode a read returns the error instead of a miss.
#[tokio::test]
async fn strict_reads_return_the_error() {
    let mut redis = RedisServer::start().await;
    let config = CacheConfig::default()
        .with_read_mode(ReadMode::Strict)
        .with_l1(None);
    let cache = cache_with(&redis, config).await;
    redis.stop().await;
    let err = cache.get::<u32>(&shard_key("t", "s")).await.unwrap_err();
    assert!(matches!(err, CacheError::Unavailable(_)), "{err:?}");
}

// In strict mode an mget that Redis cannot answer is an error, even when
// the L1 still holds some of the keys: a key neither tier could read is
// unreadable, not missing.
#[tokio::test]
async fn strict_mget_reports_unreadable_keys_as_an_error() {
    let mut redis = RedisServer::start().await;
    let config = CacheConfig::default().with_read_mode(ReadMode::Strict);
    let cache = crate::two_tier_on(&redis, |_| {}, config).await;
    let (held, unread) = (shard_key("t", "held"), shard_key("t", "unread"));
    cache
        .set(&held, &1u32, Duration::from_secs(60))
        .await
        .unwrap();
    // Written behind the cache's back: in Redis, not in the L1.
    redis.cmd(&["SET", unread.as_str(), "2", "EX", "60"]);
    assert_eq!(cache.get::<u32>(&held).await.unwrap(), Some(1));
    redis.stop().await;
    let read = cache.mget::<u32>(&[held, unread]).await;
    assert!(
        matches!(&read, Err(e) if e.is_unavailable()),
        "an unreadable key reported as {read:?}"
    );
}

// Frozen (SIGSTOP: connections open, nothing answers): a read and a rewrite
// of an indexed key (a plain SET), the hottest commands, fail as
// unavailable once the command timeout has passed, before fred's
// unresponsive check (twice the timeout) would close the connection and
// fail them anyway: whatever bounds them (fred's timer today, or a cheaper
// bound tried in its place, see BENCHMARKS.md) bounds them by the timeout.
#[tokio::test]
async fn a_frozen_server_fails_reads_and_writes_within_the_command_timeout() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(2);
    let (_manager, cache) = strict_with_timeout(&redis, timeout).await;
    let key = shard_key("t", "s");
    let minute = Duration::from_secs(60);
    // Indexed now: the rewrite below is a plain SET.
    cache.set(&key, &1, minute).await.unwrap();

    redis.pause();
    let start = Instant::now();
    let limit = timeout * 10;
    let (read, write) = futures::join!(
        failed_at(start, limit, async {
            cache.get::<u32>(&key).await.unwrap_err().is_unavailable()
        }),
        failed_at(start, limit, async {
            cache
                .set(&key, &2, minute)
                .await
                .unwrap_err()
                .is_unavailable()
        }),
    );
    redis.resume();
    // Fred's unresponsive check closes the connection at twice the timeout
    // at the earliest; under that, only the command bound can have failed
    // them.
    for (what, (unavailable, took)) in [("get", read), ("set", write)] {
        assert!(unavailable, "{what} did not fail as unavailable");
        assert!(took < timeout * 2, "{what} failed only after {took:?}");
    }
}

/// A manager on `redis` with command timeout `timeout`, and a strict
/// Redis-only cache on it (errors returned, not degraded to misses).
async fn strict_with_timeout(
    redis: &RedisServer,
    timeout: Duration,
) -> (
    redis_connection::RedisConnectionManager,
    redis_cache::CacheService,
) {
    let mut config = crate::redis_config(redis);
    config.command_timeout = timeout;
    let manager = redis_connection::RedisConnectionManager::connect(config)
        .await
        .unwrap();
    let strict = CacheConfig::default()
        .with_l1(None)
        .with_read_mode(ReadMode::Strict);
    let cache = redis_cache::CacheService::new(manager.clone(), strict);
    (manager, cache)
}

/// Runs `step` (whether an operation failed as unavailable) and says when,
/// since `start`, it ended; panics if it is still waiting after `limit`.
async fn failed_at(
    start: Instant,
    limit: Duration,
    step: impl Future<Output = bool>,
) -> (bool, Duration) {
    let unavailable = tokio::time::timeout(limit, step)
        .await
        .expect("still waiting after ten command timeouts");
    (unavailable, start.elapsed())
}
