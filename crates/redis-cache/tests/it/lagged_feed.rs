//! An instance that is behind on its invalidation feed when its subscriber
//! is lost: it must stop serving from its L1 at once, even while the
//! `Disconnected` is still queued behind a flood, or was dropped by a lag.

use std::time::{Duration, Instant};

use redis_cache::CacheService;
use test_support::{RedisServer, wait_for};

use crate::shard_key;
use crate::two_tier::{TTL, instance};

/// An instance with tiny event channels, so that a flood makes its
/// listener lag, and a slow reconnect, so that its feed stays down long
/// enough to change things in.
async fn lagging(redis: &RedisServer) -> CacheService {
    instance(redis, |c| {
        c.event_capacity = 4;
        c.reconnect.base_delay = Duration::from_millis(400);
        c.reconnect.max_delay = Duration::from_millis(400);
    })
    .await
}

// A floods the feed and its subscriber is killed right after the flood:
// whatever A's listener read or lost of it, from the moment A stops
// trusting its L1 until it is subscribed again, it never trusts it, and
// never serves the value changed meanwhile; once back, it has replayed the
// change.
#[tokio::test]
async fn a_lagging_listener_never_trusts_its_l1_while_the_feed_is_down() {
    let redis = RedisServer::start().await;
    let a = lagging(&redis).await;
    let b = instance(&redis, |_| {}).await;
    let key = shard_key("t", "k");
    b.set(&key, &"old", TTL).await.unwrap();
    wait_for(
        "A to hold old in its L1",
        Duration::from_secs(5),
        || async {
            let hits = a.stats().l1_hits;
            a.get::<String>(&key).await.unwrap().as_deref() == Some("old")
                && a.stats().l1_hits > hits
        },
    )
    .await;

    // Foreign invalidations of another tenant, as fast as Redis sends them,
    // then at once the kill.
    redis.cmd(&[
        "EVAL",
        "for i = 1, tonumber(ARGV[1]) do redis.call('PUBLISH', KEYS[1], '') end",
        "1",
        "cache:invalidate:tenant:flood",
        "3000",
    ]);
    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    wait_for(
        "A to notice its feed is down",
        Duration::from_secs(5),
        || async { !a.l1_live() },
    )
    .await;
    b.set(&key, &"new", TTL).await.unwrap();

    let pubsub = a.pubsub().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut reads = 0;
    while pubsub.stats().resubscriptions == 0 {
        assert!(Instant::now() < deadline, "A never resubscribed");
        assert!(!a.l1_live(), "A trusts its L1 while its feed is down");
        assert_eq!(
            a.get::<String>(&key).await.unwrap().as_deref(),
            Some("new"),
            "A served its L1 while its feed was down"
        );
        reads += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert!(reads > 0, "the feed was down for no read at all");
    wait_for(
        "A to trust its L1 again",
        Duration::from_secs(5),
        || async { a.l1_live() },
    )
    .await;
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("new"));
}
