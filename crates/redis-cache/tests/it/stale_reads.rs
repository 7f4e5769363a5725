//! Plain reads that Redis could not answer, served from the L1 and flagged
//! stale (`Tier::Stale`, `stale_served`), next to trusted L1 hits.

use std::time::Duration;

use redis_cache::Tier;
use test_support::{RedisServer, wait_for};

use crate::shard_key;
use crate::two_tier::{TTL, instance};

// A value read from the L1 while Redis answers is a trusted L1 hit; once
// Redis is gone and the L1 no longer trusted, the same value is served
// flagged stale and counted, never as a trusted hit.
#[tokio::test]
async fn an_l1_value_served_while_redis_is_down_is_flagged_stale() {
    let mut redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    let key = shard_key("t", "s");
    cache.set(&key, &"cached", TTL).await.unwrap();
    let trusted = cache.get_with_tier::<String>(&key).await.unwrap();
    assert_eq!(trusted, Some(("cached".to_owned(), Tier::L1)));
    assert_eq!(cache.stats().stale_served, 0);

    redis.stop().await;
    wait_for(
        "the L1 to stop being trusted",
        Duration::from_secs(5),
        || async { !cache.l1_live() },
    )
    .await;
    let hits = cache.stats().l1_hits;
    let (value, tier) = cache.get_with_tier::<String>(&key).await.unwrap().unwrap();
    assert_eq!(value, "cached");
    assert_eq!(
        tier,
        Tier::Stale,
        "a value Redis could not confirm is not a trusted hit"
    );
    let stats = cache.stats();
    assert_eq!(stats.stale_served, 1, "{stats:?}");
    assert_eq!(stats.l1_hits, hits, "{stats:?}");

    // mget serves the same copy and counts it; a key the L1 lacks is a miss.
    let other = shard_key("t", "never-cached");
    let values = cache.mget::<String>(&[key, other]).await.unwrap();
    assert_eq!(values, vec![Some("cached".to_owned()), None]);
    let stats = cache.stats();
    assert_eq!((stats.stale_served, stats.l1_hits), (2, hits), "{stats:?}");
}

// A frozen Redis (SIGSTOP: connections open, nothing answers): once the
// L1 is no longer trusted, the read times out and the L1's copy is served
// flagged stale; after the thaw the answers are trusted again.
#[tokio::test]
async fn a_read_that_times_out_serves_the_l1_copy_flagged_stale() {
    let redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    let key = shard_key("t", "frozen");
    cache.set(&key, &"cached", TTL).await.unwrap();

    redis.pause();
    let last = std::sync::Mutex::new(None);
    wait_for(
        "the read to be answered stale",
        Duration::from_secs(10),
        || async {
            let answer = cache.get_with_tier::<String>(&key).await.unwrap();
            let trusted = answer.as_ref().is_some_and(|(_, tier)| *tier == Tier::L1);
            *last.lock().unwrap() = Some(answer);
            !trusted
        },
    )
    .await;
    redis.resume();
    let answer = last.into_inner().unwrap().unwrap();
    assert_eq!(answer, Some(("cached".to_owned(), Tier::Stale)));
    assert!(cache.stats().stale_served >= 1);
    wait_for("Redis to answer again", Duration::from_secs(10), || async {
        matches!(
            cache.get_with_tier::<String>(&key).await,
            Ok(Some((_, Tier::L1 | Tier::L2)))
        )
    })
    .await;
}
