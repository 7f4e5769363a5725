//! Fail-safe: `get_or_load_with` serves the last known value, flagged
//! stale, when its loader fails or times out (`LoadOptions::fail_safe`,
//! `FailSafePolicy`), never after an invalidation and never for security
//! state.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use redis_cache::{CacheError, CacheService, FailSafePolicy, LoadError, LoadOptions};
use shared_types::{Invalidation, KeyFamily, RedisKey};
use test_support::{RedisServer, wait_for};
use tokio::sync::Notify;

use crate::{cache_on, cache_with, pttl, shard, shard_key, tenant, user};

/// The value's own TTL: short, so that tests reach its logical expiry.
const TTL: Duration = Duration::from_millis(300);
const MAX_STALE: Duration = Duration::from_secs(60);

fn fail_safe() -> LoadOptions {
    LoadOptions::default().fail_safe(MAX_STALE)
}

/// Loads `value` into `key` with `options`, then waits until it is past its
/// logical expiry (only its fail-safe window left).
async fn kept(cache: &CacheService, redis: &RedisServer, key: &RedisKey, options: &LoadOptions) {
    let loaded = cache
        .get_or_load_with(key, TTL, options, || async {
            Ok::<_, std::io::Error>("v1".to_owned())
        })
        .await
        .unwrap();
    assert!(!loaded.stale);
    let ms = u64::try_from(pttl(redis, key)).unwrap();
    assert!(ms > 60_000, "kept for the window too: {ms}");
    wait_for("the logical expiry", Duration::from_secs(3), || async {
        pttl(redis, key) <= 60_000
    })
    .await;
}

async fn failing(
    cache: &CacheService,
    key: &RedisKey,
    options: &LoadOptions,
) -> Result<redis_cache::LoadOutcome<String>, LoadError<std::io::Error>> {
    cache
        .get_or_load_with(key, TTL, options, || async {
            Err::<String, _>(std::io::Error::other("source down"))
        })
        .await
}

// Past its expiry, a value is reloaded; when the loader fails the kept
// value is served flagged stale and counted, and a later successful load
// replaces it with a fresh one.
#[tokio::test]
async fn a_failing_loader_serves_the_kept_value_flagged_stale() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "s");
    kept(&cache, &redis, &key, &fail_safe()).await;
    let served = failing(&cache, &key, &fail_safe()).await.unwrap();
    assert_eq!((served.value.as_str(), served.stale), ("v1", true));
    assert_eq!(cache.stats().stale_served, 1);
    let fresh = cache
        .get_or_load_with(&key, Duration::from_secs(600), &fail_safe(), || async {
            Ok::<_, std::io::Error>("v2".to_owned())
        })
        .await
        .unwrap();
    assert_eq!((fresh.value.as_str(), fresh.stale), ("v2", false));
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""v2""#)
    );
    assert!(pttl(&redis, &key) > 600_000, "the new value and its window");
}

// A loader past its timeout is cancelled: with a kept value the call
// answers it stale; without one, TimedOut; either way well before the
// loader would have ended (it never does).
#[tokio::test]
async fn a_timed_out_loader_is_cancelled_and_answered_by_fail_safe() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let (key, cold) = (shard_key("t", "s"), shard_key("t", "cold"));
    let options = fail_safe().timeout(Duration::from_millis(100));
    kept(&cache, &redis, &key, &options).await;
    let dropped = Arc::new(Notify::new());
    let never = |dropped: Arc<Notify>| {
        move || async move {
            let _guard = NotifyOnDrop(dropped);
            std::future::pending::<Result<String, std::io::Error>>().await
        }
    };
    let served = tokio::time::timeout(
        Duration::from_secs(5),
        cache.get_or_load_with(&key, TTL, &options, never(dropped.clone())),
    )
    .await
    .expect("the timeout bounds the wait")
    .unwrap();
    assert_eq!((served.value.as_str(), served.stale), ("v1", true));
    dropped.notified().await;
    let error = tokio::time::timeout(
        Duration::from_secs(5),
        cache.get_or_load_with(&cold, TTL, &options, never(dropped.clone())),
    )
    .await
    .expect("the timeout bounds the wait")
    .unwrap_err();
    assert!(matches!(error, LoadError::TimedOut), "{error:?}");
    dropped.notified().await;
    assert!(redis.cmd(&["GET", cold.as_str()]).is_nil());
}

/// Notifies when the loader's future is dropped (cancelled).
struct NotifyOnDrop(Arc<Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        self.0.notify_one();
    }
}

// Off by default: without the option or a family policy a failing loader's
// error reaches the caller; a family policy turns it on for its family.
#[tokio::test]
async fn fail_safe_is_off_by_default_and_on_by_family_policy() {
    let redis = RedisServer::start().await;
    let plain = cache_on(&redis).await;
    let key = shard_key("t", "s");
    let error = failing(&plain, &key, &LoadOptions::default()).await;
    assert!(matches!(error, Err(LoadError::Loader(_))));

    let policy = FailSafePolicy::default()
        .with(KeyFamily::ShardStructured, MAX_STALE)
        .unwrap();
    let config = test_support::fixtures::redis_only_config().with_fail_safe(policy);
    let cache = cache_with(&redis, config).await;
    kept(&cache, &redis, &key, &LoadOptions::default()).await;
    let served = failing(&cache, &key, &LoadOptions::default())
        .await
        .unwrap();
    assert!(served.stale);
    let profile = RedisKey::user_profile(&tenant("t"), &user("u"));
    assert!(
        matches!(
            failing(&cache, &profile, &LoadOptions::default()).await,
            Err(LoadError::Loader(_))
        ),
        "another family keeps it off"
    );
}

// An invalidation removes the kept value too: fail-safe never serves a
// value after an acknowledged invalidation.
#[tokio::test]
async fn no_stale_value_after_an_invalidation() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "s");
    kept(&cache, &redis, &key, &fail_safe()).await;
    cache
        .invalidate(&Invalidation::for_key(&key).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        failing(&cache, &key, &fail_safe()).await,
        Err(LoadError::Loader(_))
    ));
    assert_eq!(cache.stats().stale_served, 0);
}

// A `set` while a fail-safe load replaces a kept value wins: the loaded
// value is not written over it.
#[tokio::test]
async fn a_set_during_a_fail_safe_reload_is_not_overwritten() {
    let redis = RedisServer::start().await;
    let (cache, other) = (cache_on(&redis).await, cache_on(&redis).await);
    let key = shard_key("t", "s");
    kept(&cache, &redis, &key, &fail_safe()).await;
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let load = {
        let (cache, key) = (cache.clone(), key.clone());
        let (entered, release) = (entered.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load_with(&key, TTL, &fail_safe(), move || async move {
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, std::io::Error>("loaded".to_owned())
                })
                .await
                .unwrap()
        })
    };
    entered.notified().await;
    other
        .set(&key, &"new", Duration::from_secs(600))
        .await
        .unwrap();
    release.notify_one();
    assert_eq!(load.await.unwrap().value, "loaded");
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""new""#)
    );
}

// Sessions and ACL decisions are never served stale: asking is a typed
// error, the loader is not called and nothing is written.
#[tokio::test]
async fn security_state_refuses_fail_safe() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let acl = RedisKey::acl(&tenant("t"), &user("u"), &shard("s"));
    let error = cache
        .get_or_load_with(&acl, TTL, &fail_safe(), || async {
            Err::<bool, std::io::Error>(std::io::Error::other("the loader must not run"))
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            LoadError::Cache(CacheError::StaleNotAllowed { family: "acl" })
        ),
        "{error:?}"
    );
    assert_eq!(redis.dbsize(), 0);
    let session = FailSafePolicy::default().with(KeyFamily::Session, MAX_STALE);
    assert!(matches!(session, Err(CacheError::StaleNotAllowed { .. })));
}

// Past the soft timeout callers get the kept value at once while the
// loader finishes in the background and writes its value; a caller that
// comes meanwhile gets the kept value too, without a second loader call.
#[tokio::test]
async fn a_soft_timeout_serves_the_kept_value_while_the_load_finishes() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "s");
    let options = fail_safe().soft_timeout(Duration::from_millis(50));
    kept(&cache, &redis, &key, &options).await;
    let (calls, release) = (Arc::new(AtomicU32::new(0)), Arc::new(Notify::new()));
    for _ in 0..2 {
        let (calls, release) = (calls.clone(), release.clone());
        let read = cache.get_or_load_with(&key, TTL, &options, move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            release.notified().await;
            Ok::<_, std::io::Error>("v2".to_owned())
        });
        let served = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the soft timeout bounds the wait")
            .unwrap();
        assert_eq!((served.value.as_str(), served.stale), ("v1", true));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one loader call");
    assert_eq!(cache.stats().background_loads, 1);
    release.notify_one();
    wait_for(
        "the background load's value",
        Duration::from_secs(3),
        || async { redis.cmd(&["GET", key.as_str()]).as_string().as_deref() == Some(r#""v2""#) },
    )
    .await;
}

// A background completion is bounded by the hard timeout: a loader that
// never answers is cancelled (its future dropped) and its lease given back.
#[tokio::test]
async fn a_background_load_is_cancelled_at_the_hard_timeout() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "s");
    let options = fail_safe()
        .soft_timeout(Duration::from_millis(50))
        .timeout(Duration::from_millis(300));
    kept(&cache, &redis, &key, &options).await;
    let dropped = Arc::new(Notify::new());
    let guard = dropped.clone();
    let served = cache
        .get_or_load_with(&key, TTL, &options, move || async move {
            let _guard = NotifyOnDrop(guard);
            std::future::pending::<Result<String, std::io::Error>>().await
        })
        .await
        .unwrap();
    assert!(served.stale);
    tokio::time::timeout(Duration::from_secs(5), dropped.notified())
        .await
        .expect("the background loader is cancelled");
    let lease = RedisKey::load_lease_of(key.as_str());
    wait_for(
        "the lease to be given back",
        Duration::from_secs(3),
        || async { redis.cmd(&["EXISTS", &lease]).as_int() == Some(0) },
    )
    .await;
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""v1""#),
        "the kept value stays"
    );
}
