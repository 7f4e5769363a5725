//! `get_or_load` writes its loaded value back to Redis only if nothing
//! changed the key since the miss. Found by the soak (`cargo xtask soak`):
//! a load that read its source of truth before another instance's change
//! wrote the old value back after that change had reached Redis but before
//! its invalidation reached this instance, and every instance then served
//! the old value from Redis until the next change or the TTL.

use std::sync::Arc;
use std::time::Duration;

use redis_cache::{CacheConfig, CacheService};
use test_support::RedisServer;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::{cache_on, shard_key};

const TTL: Duration = Duration::from_secs(600);

/// Starts a `get_or_load` whose loader answers `"old"` once released.
fn blocked_load(
    cache: &CacheService,
    key: &shared_types::RedisKey,
) -> (Arc<Notify>, Arc<Notify>, JoinHandle<String>) {
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let task = {
        let (cache, key) = (cache.clone(), key.clone());
        let (entered, release) = (entered.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, TTL, move || async move {
                    entered.notify_one();
                    release.notified().await;
                    Ok::<_, std::io::Error>("old".to_owned())
                })
                .await
                .unwrap()
        })
    };
    (entered, release, task)
}

// Another writer's SET or DEL that reaches Redis while a load runs wins over
// the load's write-back (here with no invalidation feed at all, as when the
// change's invalidation is still on its way).
#[tokio::test]
async fn a_change_during_a_load_is_not_overwritten() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let (set, del) = (shard_key("t", "set"), shard_key("t", "del"));
    let changes: [(&_, &[&str], Option<&str>); 2] = [
        (&set, &["SET", set.as_str(), r#""new""#], Some(r#""new""#)),
        (&del, &["DEL", del.as_str()], None),
    ];
    for (key, change, expected) in changes {
        let (entered, release, load) = blocked_load(&cache, key);
        entered.notified().await;
        redis.cmd(change);
        release.notify_one();
        assert_eq!(
            load.await.unwrap(),
            "old",
            "the caller still gets its value"
        );
        assert_eq!(
            redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
            expected,
            "after {change:?}"
        );
    }
}

// The same race on a two-tier instance whose invalidation feed is live:
// the change reaches Redis, its invalidation has not arrived yet.
#[tokio::test]
async fn two_tier_load_does_not_resurrect_before_the_invalidation_arrives() {
    let redis = RedisServer::start().await;
    let cache = crate::two_tier_on(&redis, |_| {}, CacheConfig::default()).await;
    let key = shard_key("t", "s");
    let (entered, release, load) = blocked_load(&cache, &key);
    entered.notified().await;
    redis.cmd(&["DEL", key.as_str()]);
    release.notify_one();
    assert_eq!(load.await.unwrap(), "old");
    assert!(redis.cmd(&["GET", key.as_str()]).is_nil());
    assert_eq!(cache.get::<String>(&key).await.unwrap(), None);
}

// While a load runs, other readers see a miss (not an undecodable value,
// which they would delete), and an undisturbed load is cached as before.
#[tokio::test]
async fn readers_during_a_load_see_a_miss() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "s");
    let (entered, release, load) = blocked_load(&cache, &key);
    entered.notified().await;
    assert_eq!(cache.get::<String>(&key).await.unwrap(), None);
    assert_eq!(
        cache
            .mget::<String>(std::slice::from_ref(&key))
            .await
            .unwrap(),
        [None]
    );
    assert_eq!(cache.stats().decode_failures, 0);
    release.notify_one();
    assert_eq!(load.await.unwrap(), "old");
    assert_eq!(
        cache.get::<String>(&key).await.unwrap().as_deref(),
        Some("old")
    );
    let ttl = crate::pttl(&redis, &key);
    assert!(ttl > 590_000, "the value's TTL, not the lease's: {ttl}");
}
