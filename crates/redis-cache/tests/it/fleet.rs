//! One load per fleet (issue 20, item 4): instances that find another
//! instance loading a key wait for its value instead of calling their own
//! loader, within a bound, and load themselves when the holder dies.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis_cache::{CacheService, LoadOptions};
use shared_types::RedisKey;
use test_support::{RedisServer, wait_for};
use tokio::sync::Notify;

use crate::two_tier::instance;
use crate::{cache_on, shard_key};

const TTL: Duration = Duration::from_secs(600);

/// Three two-tier instances on `redis`.
async fn three_instances(redis: &RedisServer) -> [CacheService; 3] {
    [
        instance(redis, |_| {}).await,
        instance(redis, |_| {}).await,
        instance(redis, |_| {}).await,
    ]
}

/// `callers` concurrent `get_or_load`s of `key` on each of `caches`, with a
/// loader that counts its calls and takes 80 ms: (calls, values).
async fn stampede(caches: &[CacheService], key: &RedisKey, callers: usize) -> (u32, Vec<u64>) {
    let calls = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for cache in caches {
        for _ in 0..callers {
            let (cache, key, calls) = (cache.clone(), key.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_load(&key, TTL, move || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(80)).await;
                        Ok::<_, std::io::Error>(42u64)
                    })
                    .await
                    .unwrap()
            }));
        }
    }
    let mut values = Vec::new();
    for task in tasks {
        values.push(task.await.unwrap());
    }
    (calls.load(Ordering::SeqCst), values)
}

// 3 two-tier instances x 300 callers on one cold key call the loader once
// in total: the instances that lost the lease wait for the holder's value,
// woken by its announcement, and every caller gets it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_two_tier_instances_load_a_cold_key_once() {
    let redis = RedisServer::start().await;
    let fleet = three_instances(&redis).await;
    for round in 0..3 {
        let key = shard_key("t", &format!("cold{round}"));
        let (calls, values) = stampede(&fleet, &key, 300).await;
        assert_eq!(calls, 1, "round {round}: one loader call in the fleet");
        assert!(values.iter().all(|&v| v == 42));
    }
    let waits: u64 = fleet.iter().map(|c| c.stats().fleet_waits).sum();
    let timeouts: u64 = fleet.iter().map(|c| c.stats().fleet_wait_timeouts).sum();
    assert!(
        waits >= 2,
        "the instances without the lease waited: {waits}"
    );
    assert_eq!(timeouts, 0, "no wait ran out");
}

// Redis-only instances (no listener) poll the lease instead, with the same
// result: one loader call for the fleet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_only_instances_poll_and_load_a_cold_key_once() {
    let redis = RedisServer::start().await;
    let fleet = [
        cache_on(&redis).await,
        cache_on(&redis).await,
        cache_on(&redis).await,
    ];
    let key = shard_key("t", "cold");
    let (calls, values) = stampede(&fleet, &key, 100).await;
    assert_eq!(calls, 1);
    assert!(values.iter().all(|&v| v == 42));
}

// A load nobody waits for announces nothing: the holder publishes only
// when a waiter's flag asks for it.
#[tokio::test]
async fn an_unawaited_load_announces_nothing() {
    let redis = RedisServer::start().await;
    let a = instance(&redis, |_| {}).await;
    let (calls, _) = stampede(std::slice::from_ref(&a), &shard_key("t", "s"), 1).await;
    assert_eq!(calls, 1);
    assert_eq!(a.stats().invalidations_sent, 0);
}

/// Starts a `get_or_load` of `key` on `cache` whose loader runs `body`.
fn load_with<F>(
    cache: &CacheService,
    key: &RedisKey,
    options: LoadOptions,
    body: impl FnOnce() -> F + Send + 'static,
) -> tokio::task::JoinHandle<String>
where
    F: Future<Output = String> + Send + 'static,
{
    let (cache, key) = (cache.clone(), key.clone());
    tokio::spawn(async move {
        cache
            .get_or_load_with(&key, TTL, &options, move || async move {
                Ok::<_, std::io::Error>(body().await)
            })
            .await
            .unwrap()
            .value
    })
}

// The holder's loader never returns: the waiters on the other instances
// give up after their bound and load themselves (each once), and their
// callers get a value.
#[tokio::test]
async fn waiters_load_themselves_when_the_holder_never_answers() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_instances(&redis).await;
    let key = shard_key("t", "s");
    let entered = Arc::new(Notify::new());
    let holder = {
        let entered = entered.clone();
        load_with(&a, &key, LoadOptions::default(), move || async move {
            entered.notify_one();
            std::future::pending::<String>().await
        })
    };
    entered.notified().await;
    let bound = LoadOptions::default().fleet_wait(Duration::from_millis(300));
    let started = Instant::now();
    let waiters =
        [&b, &c].map(|cache| load_with(cache, &key, bound.clone(), || async { "mine".to_owned() }));
    for waiter in waiters {
        assert_eq!(waiter.await.unwrap(), "mine");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the bound ended the wait: {:?}",
        started.elapsed()
    );
    for cache in [&b, &c] {
        let stats = cache.stats();
        assert_eq!((stats.loads, stats.fleet_wait_timeouts), (1, 1));
    }
    holder.abort();
}

// A lease left behind by a holder that died expires: the waiter then
// claims the key itself, within its bound, and its value is cached.
#[tokio::test]
async fn a_lease_left_behind_expires_and_the_waiter_loads_and_caches() {
    let redis = RedisServer::start().await;
    let b = instance(&redis, |_| {}).await;
    let key = shard_key("t", "s");
    let lease = RedisKey::load_lease_of(key.as_str());
    redis.cmd(&["SET", lease.as_str(), "dead-holder", "PX", "300"]);
    let loaded = load_with(&b, &key, LoadOptions::default(), || async {
        "fresh".to_owned()
    });
    assert_eq!(loaded.await.unwrap(), "fresh");
    let stats = b.stats();
    assert_eq!((stats.fleet_waits, stats.fleet_wait_timeouts), (1, 0));
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""fresh""#),
        "loaded under its own lease, so cached"
    );
}

// An invalidation while a waiter waits is respected: the waiter does not
// take the holder's (now stale) value but loads after the change, and the
// holder's value is not written back over it.
#[tokio::test]
async fn an_invalidation_during_the_wait_is_respected() {
    let redis = RedisServer::start().await;
    let [a, b, c] = three_instances(&redis).await;
    let key = shard_key("t", "s");
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let holder = {
        let (entered, release) = (entered.clone(), release.clone());
        load_with(&a, &key, LoadOptions::default(), move || async move {
            entered.notify_one();
            release.notified().await;
            "old".to_owned()
        })
    };
    entered.notified().await;
    let bound = LoadOptions::default().fleet_wait(Duration::from_secs(30));
    let waiter = load_with(&b, &key, bound, || async { "new".to_owned() });
    wait_for("B to wait", Duration::from_secs(5), || async {
        b.stats().fleet_waits >= 1
    })
    .await;
    // The source of truth changes, and C invalidates the key.
    c.delete(&key).await.unwrap();
    assert_eq!(waiter.await.unwrap(), "new", "loaded after the change");
    release.notify_one();
    assert_eq!(holder.await.unwrap(), "old", "the holder's callers");
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""new""#)
    );
    assert_eq!(b.stats().fleet_wait_timeouts, 0, "woken, not timed out");
}
