//! Changes whose outcome the writer does not learn (an error after Redis
//! took the command, a timeout, a dropped future), and changes made by
//! another cache of the same process: no instance keeps the old value.
//!
//! `CLIENT PAUSE … WRITE` holds every write (and PUBLISH) for longer than
//! the command timeout: the writer's command fails, and Redis runs it when
//! the pause ends. The pause must end before fred closes the connection as
//! unresponsive (twice the command timeout, at least 500 ms), which would
//! make Redis drop the command instead.

use std::time::Duration;

use redis_cache::{CacheService, Expiry};
use redis_connection::RedisConnectionManager;
use redis_pubsub::PubSub;
use shared_types::{Invalidation, RedisKey};
use test_support::{RedisServer, wait_for};

use crate::two_tier::{TTL, instance};
use crate::{redis_config, shard_key};
use test_support::fixtures;

/// The command timeout of these tests' instances.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(200);

/// Longer than [`COMMAND_TIMEOUT`], shorter than fred's unresponsive limit.
pub(crate) const PAUSE_MS: &str = "350";

/// An instance whose commands time out during a [`PAUSE_MS`] pause.
pub(crate) async fn pausable(redis: &RedisServer) -> CacheService {
    instance(redis, |config| config.command_timeout = COMMAND_TIMEOUT).await
}

/// Two of them.
pub(crate) async fn pausable_pair(redis: &RedisServer) -> (CacheService, CacheService) {
    (pausable(redis).await, pausable(redis).await)
}

/// The change each test makes while writes are paused.
#[derive(Debug, Clone, Copy)]
enum Change {
    Set,
    Delete,
    Invalidate,
    Expire,
}

impl Change {
    const ALL: [Change; 4] = [
        Change::Set,
        Change::Delete,
        Change::Invalidate,
        Change::Expire,
    ];

    async fn run(self, cache: &CacheService, key: &RedisKey) -> bool {
        match self {
            Change::Set => cache.set(key, &2u32, TTL).await.is_ok(),
            Change::Delete => cache.delete(key).await.is_ok(),
            Change::Invalidate => {
                let invalidation = Invalidation::for_key(key).unwrap();
                cache.invalidate(&invalidation).await.is_ok()
            }
            Change::Expire => cache.expire(key, Duration::from_millis(50)).await.is_ok(),
        }
    }

    /// What Redis holds under the key once the change has run.
    fn landed(self, redis: &RedisServer, key: &RedisKey) -> bool {
        let value = redis.cmd(&["GET", key.as_str()]);
        match self {
            Change::Set => value.as_string().as_deref() == Some("2"),
            Change::Delete | Change::Invalidate | Change::Expire => value.is_nil(),
        }
    }

    /// What a reader must see once the change has landed.
    fn expected(self) -> Option<u32> {
        match self {
            Change::Set => Some(2),
            Change::Delete | Change::Invalidate | Change::Expire => None,
        }
    }
}

/// Runs every change once on a scratch key, so that Redis has loaded the
/// scripts they use: a script loaded during the pause would be a command of
/// its own, timing out before the change is even sent.
/// (Fresh keys: a key this cache wrote lately needs no index update, so
/// its writes use no script.)
async fn load_scripts(cache: &CacheService) {
    for change in Change::ALL {
        let scratch = shard_key("t", &format!("scratch-{change:?}"));
        assert!(change.run(cache, &scratch).await, "{change:?} failed");
    }
}

/// Writes 1 under `key` and reads it twice on `cache`, so that its L1 holds it.
async fn held_in_l1(cache: &CacheService, key: &RedisKey) {
    cache.set(key, &1u32, TTL).await.unwrap();
    for _ in 0..2 {
        assert_eq!(cache.get::<u32>(key).await.unwrap(), Some(1));
    }
    let (_, tier) = cache.get_with_tier::<u32>(key).await.unwrap().unwrap();
    assert_eq!(tier, redis_cache::Tier::L1);
}

/// Waits until Redis has run `change`, then until `cache` reads what Redis
/// holds (at most 3 s: far less than the tests' 60 s L1 cap, so an L1
/// keeping the old value fails).
async fn reads_what_landed(
    redis: &RedisServer,
    cache: &CacheService,
    key: &RedisKey,
    change: Change,
) {
    wait_for(
        &format!("Redis to run the paused {change:?}"),
        Duration::from_secs(5),
        || async { change.landed(redis, key) },
    )
    .await;
    wait_for(
        &format!("the cache to read what {change:?} left"),
        Duration::from_secs(3),
        || async { cache.get::<u32>(key).await.unwrap() == change.expected() },
    )
    .await;
}

// A change that timed out but that Redis ran later never leaves the old
// value in the writer's own L1: set, delete, invalidate and expire alike.
#[tokio::test]
async fn a_timed_out_change_never_leaves_the_old_value_in_the_writers_l1() {
    let redis = RedisServer::start().await;
    let a = pausable(&redis).await;
    load_scripts(&a).await;
    for change in Change::ALL {
        let key = shard_key("t", &format!("timed-out-{change:?}"));
        held_in_l1(&a, &key).await;
        redis.cmd(&["CLIENT", "PAUSE", PAUSE_MS, "WRITE"]);
        assert!(!change.run(&a, &key).await, "{change:?} should time out");
        reads_what_landed(&redis, &a, &key, change).await;
    }
}

// A change whose caller stopped waiting (its future dropped after the
// command was sent, as a request timeout does) never leaves the old value
// in the writer's own L1 either.
#[tokio::test]
async fn a_cancelled_change_never_leaves_the_old_value_in_the_writers_l1() {
    let redis = RedisServer::start().await;
    let a = pausable(&redis).await;
    load_scripts(&a).await;
    for change in Change::ALL {
        let key = shard_key("t", &format!("cancelled-{change:?}"));
        held_in_l1(&a, &key).await;
        redis.cmd(&["CLIENT", "PAUSE", PAUSE_MS, "WRITE"]);
        let gave_up = tokio::time::timeout(Duration::from_millis(50), change.run(&a, &key)).await;
        assert!(gave_up.is_err(), "{change:?} should still be waiting");
        reads_what_landed(&redis, &a, &key, change).await;
    }
}

// Other instances do not keep the old value either: a timed-out change is
// still announced, behind the change itself.
#[tokio::test]
async fn a_timed_out_change_is_still_announced_to_other_instances() {
    let redis = RedisServer::start().await;
    let (a, b) = pausable_pair(&redis).await;
    load_scripts(&a).await;
    for change in Change::ALL {
        let key = shard_key("t", &format!("announced-{change:?}"));
        held_in_l1(&b, &key).await;
        redis.cmd(&["CLIENT", "PAUSE", PAUSE_MS, "WRITE"]);
        assert!(!change.run(&a, &key).await, "{change:?} should time out");
        reads_what_landed(&redis, &b, &key, change).await;
    }
}

// An mset that failed (here: timed out, with Redis writing it afterwards)
// is still announced key by key: no other instance keeps an old value.
#[tokio::test]
async fn a_failed_mset_is_still_announced() {
    let redis = RedisServer::start().await;
    let (a, b) = pausable_pair(&redis).await;
    // More than one script chunk (250 keys).
    let keys: Vec<RedisKey> = (0..300).map(|i| shard_key("t", &format!("m{i}"))).collect();
    let ones: Vec<_> = keys
        .iter()
        .map(|key| (key.clone(), 1u32, Expiry::After(TTL)))
        .collect();
    a.mset(&ones).await.unwrap();
    for key in &keys {
        wait_for("B to read 1", Duration::from_secs(1), || async {
            b.get::<u32>(key).await.unwrap() == Some(1)
        })
        .await;
    }
    let twos: Vec<_> = keys
        .iter()
        .map(|key| (key.clone(), 2u32, Expiry::After(TTL)))
        .collect();
    redis.cmd(&["CLIENT", "PAUSE", PAUSE_MS, "WRITE"]);
    assert!(a.mset(&twos).await.is_err(), "the mset should time out");
    for key in &keys {
        reads_what_landed(&redis, &b, key, Change::Set).await;
    }
}

// Two caches of one process sharing one PubSub each apply the other's
// invalidations: an origin belongs to a cache, not to the pub/sub service.
#[tokio::test]
async fn two_caches_sharing_one_pubsub_see_each_others_changes() {
    let redis = RedisServer::start().await;
    let manager = RedisConnectionManager::connect(redis_config(&redis))
        .await
        .unwrap();
    let pubsub = PubSub::new(manager.clone()).await.unwrap();
    let config = fixtures::two_tier_config();
    let first = fixtures::two_tier_with(manager.clone(), pubsub.clone(), config.clone()).await;
    let second = fixtures::two_tier_with(manager, pubsub, config).await;
    let key = shard_key("t", "shared");
    first.set(&key, &1u32, TTL).await.unwrap();
    held_in_l1(&second, &key).await;
    first.set(&key, &2u32, TTL).await.unwrap();
    wait_for(
        "the second cache to drop 1",
        Duration::from_secs(3),
        || async { second.get::<u32>(&key).await.unwrap() == Some(2) },
    )
    .await;
}
