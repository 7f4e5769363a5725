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

/// A change of a key made while a load of it runs.
enum Change {
    /// Any client's `SET` (here a raw one, as the TypeScript services do).
    RawSet,
    /// Another instance's `delete`.
    Delete,
    /// Another instance's invalidation of the key.
    InvalidateKey,
    /// Another instance's pattern invalidation (through the key index).
    InvalidatePattern,
    /// Another instance's purge of the tenant, by `SCAN`.
    PurgeByScan,
    /// Another instance's `set`, then its `delete`: the key is absent again
    /// when the load ends, but the change happened.
    SetThenDelete,
}

// Every change that reaches Redis while a load runs wins over the load's
// write-back (here with no invalidation feed at all, as when the change's
// invalidation is still on its way): a SET by any client, and a delete,
// invalidation or purge by any instance.
#[tokio::test]
async fn a_change_during_a_load_is_not_overwritten() {
    use shared_types::{Invalidation, KeyPattern};
    let redis = RedisServer::start().await;
    let (cache, other) = (cache_on(&redis).await, cache_on(&redis).await);
    let changes = [
        (Change::RawSet, Some(r#""new""#)),
        (Change::Delete, None),
        (Change::InvalidateKey, None),
        (Change::InvalidatePattern, None),
        (Change::PurgeByScan, None),
        (Change::SetThenDelete, None),
    ];
    for (i, (change, expected)) in changes.into_iter().enumerate() {
        let key = shard_key("t", &format!("s{i}"));
        let key = &key;
        let (entered, release, load) = blocked_load(&cache, key);
        entered.notified().await;
        match change {
            Change::RawSet => drop(redis.cmd(&["SET", key.as_str(), r#""new""#])),
            Change::Delete => drop(other.delete(key).await.unwrap()),
            Change::InvalidateKey => {
                let stale = Invalidation::for_key(key).unwrap();
                other.invalidate(&stale).await.unwrap();
            }
            Change::InvalidatePattern => {
                let stale = Invalidation::ShardAll {
                    tenant_id: crate::tenant("t"),
                };
                other.invalidate(&stale).await.unwrap();
            }
            Change::PurgeByScan => {
                let pattern = KeyPattern::tenant_cache(&crate::tenant("t"));
                other.delete_pattern_by_scan(&pattern).await.unwrap();
            }
            Change::SetThenDelete => {
                other.set(key, &"new", TTL).await.unwrap();
                other.delete(key).await.unwrap();
            }
        }
        let change = i;
        release.notify_one();
        assert_eq!(
            load.await.unwrap(),
            "old",
            "the caller still gets its value"
        );
        assert_eq!(
            redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
            expected,
            "after change {change}"
        );
    }
}

// The same race on a two-tier instance whose invalidation feed is live:
// the change reaches Redis, its invalidation has not arrived yet (another
// instance without a bus deletes the key: no invalidation ever comes).
#[tokio::test]
async fn two_tier_load_does_not_resurrect_before_the_invalidation_arrives() {
    let redis = RedisServer::start().await;
    let cache = crate::two_tier_on(&redis, |_| {}, CacheConfig::default()).await;
    let other = cache_on(&redis).await;
    let key = shard_key("t", "s");
    let (entered, release, load) = blocked_load(&cache, &key);
    entered.notified().await;
    other.delete(&key).await.unwrap();
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

// While a load runs, the key holds nothing any client can read: a raw GET
// and EXISTS (redis-cli, the TypeScript services, which parse every value
// as JSON) see no key at all, and the cache's own `exists` agrees.
#[tokio::test]
async fn a_load_in_progress_is_invisible_to_other_clients() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "s");
    let (entered, release, load) = blocked_load(&cache, &key);
    entered.notified().await;
    assert!(redis.cmd(&["GET", key.as_str()]).is_nil(), "a raw GET");
    assert_eq!(redis.cmd(&["EXISTS", key.as_str()]).as_int(), Some(0));
    assert!(!cache.exists(&key).await.unwrap());
    release.notify_one();
    assert_eq!(load.await.unwrap(), "old");
    assert_eq!(
        redis.cmd(&["GET", key.as_str()]).as_string().as_deref(),
        Some(r#""old""#),
        "the loaded value is cached as its JSON text"
    );
}

// A client that does not know the lease (the TypeScript package) deletes
// the absent key, which leaves no trace in Redis, and publishes its
// invalidation: a two-tier instance that heard it before the load ended
// does not write the loaded value back.
#[tokio::test]
async fn a_foreign_invalidation_heard_during_a_load_stops_its_write_back() {
    let redis = RedisServer::start().await;
    let cache = crate::two_tier_on(&redis, |_| {}, CacheConfig::default()).await;
    let key = shard_key("t1", "s1");
    let (entered, release, load) = blocked_load(&cache, &key);
    entered.notified().await;
    redis.cmd(&["DEL", key.as_str()]);
    redis.cmd(&[
        "PUBLISH",
        "cache:invalidate:shard:t1:s1",
        r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"ts","ts":1}"#,
    ]);
    test_support::wait_for(
        "the invalidation to arrive",
        Duration::from_secs(2),
        || async { cache.stats().invalidations_applied >= 1 },
    )
    .await;
    release.notify_one();
    assert_eq!(load.await.unwrap(), "old");
    assert!(redis.cmd(&["GET", key.as_str()]).is_nil(), "written back");
}
