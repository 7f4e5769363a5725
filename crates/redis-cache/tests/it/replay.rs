//! Sequenced, replayable invalidations: every announcement is also in the
//! invalidation stream, and an instance that missed messages replays the
//! stream from the last entry it applied instead of flushing its L1; it
//! flushes only when the stream no longer holds the gap.

use std::time::Duration;

use redis_cache::{CacheService, Retention};
use shared_types::RedisKey;
use test_support::{RedisServer, wait_for};

use crate::shard_key;
use crate::two_tier::{TTL, instance};

/// The stream every announcement is appended to.
const STREAM: &str = "coherence:invalidations";

/// An instance that reconnects slowly (so that its outage is wide enough
/// to change things in), and one that writes.
async fn slow_and_writer(redis: &RedisServer) -> (CacheService, CacheService) {
    let a = instance(redis, |c| {
        c.reconnect.base_delay = Duration::from_millis(400);
        c.reconnect.max_delay = Duration::from_millis(400);
    })
    .await;
    (a, instance(redis, |_| {}).await)
}

/// Writes `value` to `key` through `writer` and has `reader` hold it in its
/// L1 (two reads: Redis, then the L1).
async fn held(reader: &CacheService, writer: &CacheService, key: &RedisKey, value: &str) {
    let received = reader.stats().invalidations_received;
    writer.set(key, &value, TTL).await.unwrap();
    // Heard first: an announcement arriving after the read would (rightly)
    // drop the value it filled.
    wait_for(
        "the reader to hear the write",
        Duration::from_secs(2),
        || async { reader.stats().invalidations_received > received },
    )
    .await;
    assert_eq!(
        reader.get::<String>(key).await.unwrap().as_deref(),
        Some(value)
    );
    let hits = reader.stats().l1_hits;
    assert_eq!(
        reader.get::<String>(key).await.unwrap().as_deref(),
        Some(value)
    );
    assert_eq!(
        reader.stats().l1_hits,
        hits + 1,
        "{} in the L1",
        key.as_str()
    );
}

/// Kills every subscribed connection and waits until `a` stops trusting
/// its L1.
async fn cut_subscribers(redis: &RedisServer, a: &CacheService) {
    let killed = redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).as_int();
    assert!(killed.unwrap() >= 1);
    wait_for(
        "A to notice its subscriber is gone",
        Duration::from_secs(2),
        || async { !a.l1_live() },
    )
    .await;
}

async fn live_again(a: &CacheService) {
    wait_for("A to re-subscribe", Duration::from_secs(5), || async {
        a.l1_live()
    })
    .await;
}

/// The ids of the stream's entries, oldest first.
fn entry_ids(redis: &RedisServer) -> Vec<String> {
    let reply = redis.cmd(&["XRANGE", STREAM, "-", "+"]);
    let test_support::Reply::Array(Some(entries)) = reply else {
        panic!("XRANGE answered {reply:?}");
    };
    entries
        .iter()
        .map(|entry| entry.as_strings()[0].clone())
        .collect()
}

// A subscriber killed while another instance changes keys: once it is back
// it replays the missed changes from the stream (no stale read), keeps
// every other entry of its L1 (no flush), and counts the replay.
#[tokio::test]
async fn a_resubscribed_instance_replays_what_it_missed_without_flushing() {
    let redis = RedisServer::start().await;
    let (a, b) = slow_and_writer(&redis).await;
    let (changed, kept) = (shard_key("t", "changed"), shard_key("t", "kept"));
    held(&a, &b, &changed, "old").await;
    held(&a, &b, &kept, "kept").await;

    cut_subscribers(&redis, &a).await;
    let before = entry_ids(&redis).len();
    b.set(&changed, &"new", TTL).await.unwrap();
    for i in 0..20 {
        b.set(&shard_key("t", &format!("other{i}")), &"x", TTL)
            .await
            .unwrap();
    }
    assert_eq!(
        entry_ids(&redis).len(),
        before + 21,
        "every write is in the stream"
    );
    live_again(&a).await;

    assert_eq!(
        a.get::<String>(&changed).await.unwrap().as_deref(),
        Some("new")
    );
    let hits = a.stats().l1_hits;
    assert_eq!(
        a.get::<String>(&kept).await.unwrap().as_deref(),
        Some("kept")
    );
    assert_eq!(
        a.stats().l1_hits,
        hits + 1,
        "the unchanged key is still in A's L1"
    );
    let stats = a.stats();
    assert_eq!(stats.l1_flushes, 0);
    // The kill's resubscription replayed. On a loaded machine a second
    // resubscription (the heartbeat missing its deadline) may replay again,
    // harmlessly; one kill counts as one resubscription is redis-pubsub's
    // `one_client_kill_is_one_resubscription`.
    assert!(stats.l1_replays >= 1, "{stats:?}");
    assert!(stats.invalidations_replayed >= 21, "{stats:?}");
}

// A message whose predecessor in the stream is not the last entry applied
// (an entry was appended without reaching this instance) is a gap: the
// instance replays it, and drops what the missed entry named, no flush.
#[tokio::test]
async fn a_message_after_a_missed_entry_makes_the_instance_replay_the_gap() {
    let redis = RedisServer::start().await;
    let (a, b) = slow_and_writer(&redis).await;
    let (missed, written) = (shard_key("t", "missed"), shard_key("t", "written"));
    held(&a, &b, &missed, "old").await;
    // An entry no message announced: only the stream knows of it.
    redis.cmd(&["SET", missed.as_str(), r#""new""#]);
    let last = entry_ids(&redis).pop().unwrap();
    redis.cmd(&[
        "XADD",
        STREAM,
        "*",
        "c",
        "cache:invalidate:shard:t:missed",
        "p",
        last.as_str(),
    ]);
    let hits = a.stats().l1_hits;
    assert_eq!(
        a.get::<String>(&missed).await.unwrap().as_deref(),
        Some("old")
    );
    assert_eq!(a.stats().l1_hits, hits + 1, "A has not heard yet");

    b.set(&written, &"w", TTL).await.unwrap();
    wait_for("A to replay the gap", Duration::from_secs(2), || async {
        a.stats().l1_replays >= 1
    })
    .await;
    assert_eq!(
        a.get::<String>(&missed).await.unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(a.stats().l1_flushes, 0);
}

// A gap older than the retention: the entries after the last one A applied
// were trimmed while it was away, so the stream cannot tell what it missed
// and A flushes its L1 (and serves nothing stale).
#[tokio::test]
async fn a_gap_beyond_the_retention_flushes_the_l1() {
    let redis = RedisServer::start().await;
    let (a, b) = slow_and_writer(&redis).await;
    let (changed, kept) = (shard_key("t", "changed"), shard_key("t", "kept"));
    held(&a, &b, &changed, "old").await;
    held(&a, &b, &kept, "kept").await;

    cut_subscribers(&redis, &a).await;
    b.set(&changed, &"new", TTL).await.unwrap();
    for i in 0..5 {
        b.set(&shard_key("t", &format!("other{i}")), &"x", TTL)
            .await
            .unwrap();
    }
    // Retention trims everything up to the newest two entries: A's last
    // applied one and the change it missed are gone.
    let ids = entry_ids(&redis);
    let keep_from = &ids[ids.len() - 2];
    redis.cmd(&["XTRIM", STREAM, "MINID", keep_from.as_str()]);
    live_again(&a).await;

    assert_eq!(
        a.get::<String>(&changed).await.unwrap().as_deref(),
        Some("new")
    );
    let l2_hits = a.stats().l2_hits;
    assert_eq!(
        a.get::<String>(&kept).await.unwrap().as_deref(),
        Some("kept")
    );
    assert_eq!(a.stats().l2_hits, l2_hits + 1, "the L1 was flushed");
    assert!(a.stats().l1_flushes >= 1);
    // Nothing was replayed from a stream that no longer held the gap.
    assert_eq!(a.stats().invalidations_replayed, 0);
}

// Redis restarted empty: the stream is gone with the data, so nothing can
// say what changed; A flushes and never serves its old copy.
#[tokio::test]
async fn redis_restarted_empty_flushes_the_l1() {
    let mut redis = RedisServer::start().await;
    let (a, b) = slow_and_writer(&redis).await;
    let key = shard_key("t", "k");
    held(&a, &b, &key, "old").await;
    assert!(!entry_ids(&redis).is_empty());

    redis.restart().await;
    assert_eq!(redis.dbsize(), 0, "restarted empty");
    wait_for(
        "A to flush after the restart",
        Duration::from_secs(10),
        || async { a.stats().l1_flushes >= 1 && a.l1_live() },
    )
    .await;
    assert_eq!(a.get::<String>(&key).await.unwrap(), None);
    // A later resubscribe may replay the new, empty stream: nothing in it.
    assert_eq!(a.stats().invalidations_replayed, 0);
}

/// An instance whose announcements keep `retention` of the stream.
async fn keeping(redis: &RedisServer, retention: Retention) -> CacheService {
    let config = test_support::fixtures::two_tier_config().with_invalidation_retention(retention);
    crate::two_tier_on(redis, |_| {}, config).await
}

// The stream keeps at most the retention's number of entries: trimming is
// by whole stream nodes (`MAXLEN ~`), exact here with one entry a node.
#[tokio::test]
async fn the_stream_keeps_no_more_entries_than_the_retention() {
    let redis = RedisServer::start().await;
    redis.cmd(&["CONFIG", "SET", "stream-node-max-entries", "1"]);
    let a = keeping(
        &redis,
        Retention {
            window: Duration::from_secs(600),
            entries: 10,
        },
    )
    .await;
    for i in 0..50 {
        a.set(&shard_key("t", &format!("k{i}")), &i, TTL)
            .await
            .unwrap();
    }
    let kept = redis.cmd(&["XLEN", STREAM]).as_int().unwrap();
    assert!((10..=11).contains(&kept), "kept {kept} entries");
}

// Entries older than the retention's window (by their ids, Redis's clock)
// are trimmed by later announcements.
#[tokio::test]
async fn the_stream_drops_entries_older_than_the_window() {
    let redis = RedisServer::start().await;
    redis.cmd(&["CONFIG", "SET", "stream-node-max-entries", "1"]);
    let a = keeping(
        &redis,
        Retention {
            window: Duration::from_secs(1),
            entries: 100_000,
        },
    )
    .await;
    a.set(&shard_key("t", "first"), &0, TTL).await.unwrap();
    let first = entry_ids(&redis)[0].clone();
    let mut i = 0;
    wait_for(
        "the first entry to be trimmed",
        Duration::from_secs(5),
        || {
            i += 1;
            let (a, redis, first) = (&a, &redis, &first);
            let key = shard_key("t", &format!("later{i}"));
            async move {
                a.set(&key, &1, TTL).await.unwrap();
                !entry_ids(redis).contains(first)
            }
        },
    )
    .await;
    assert!(redis.cmd(&["XLEN", STREAM]).as_int().unwrap() >= 1);
}

// The subscription comes back while the stream cannot be read (the ACL
// denies XRANGE to A's user for a while): A does not flush its L1, reads
// go to Redis meanwhile (never A's old copy of the key changed during the
// outage), the catch-up is retried, and once the stream answers A replays
// what it missed and trusts its L1 again, its other entries kept.
#[tokio::test]
async fn an_unreadable_stream_keeps_the_l1_untrusted_until_the_replay_succeeds() {
    let redis = RedisServer::builder()
        .args([
            "--user",
            "reader",
            "on",
            ">reader-pass",
            "~*",
            "&*",
            "+@all",
        ])
        .start()
        .await;
    let a = instance(&redis, |c| {
        c.username = Some("reader".into());
        c.password = Some("reader-pass".to_owned().into());
        c.reconnect.base_delay = Duration::from_millis(400);
        c.reconnect.max_delay = Duration::from_millis(400);
    })
    .await;
    let b = instance(&redis, |_| {}).await;
    let (changed, kept) = (shard_key("t", "changed"), shard_key("t", "kept"));
    held(&a, &b, &changed, "old").await;
    held(&a, &b, &kept, "kept").await;

    redis.cmd(&["ACL", "SETUSER", "reader", "-xrange"]);
    cut_subscribers(&redis, &a).await;
    b.set(&changed, &"new", TTL).await.unwrap();
    // Two refusals: the catch-up failed and was tried again.
    wait_for(
        "A's catch-up to be refused twice",
        Duration::from_secs(5),
        || async { redis.acl_refusals("reader", "xrange") >= 2 },
    )
    .await;
    assert_eq!(
        a.stats().l1_flushes,
        0,
        "a failed read is no reason to flush"
    );
    assert!(!a.l1_live(), "trusted before the replay succeeded");
    let l2_hits = a.stats().l2_hits;
    assert_eq!(
        a.get::<String>(&changed).await.unwrap().as_deref(),
        Some("new")
    );
    assert_eq!(
        a.get::<String>(&kept).await.unwrap().as_deref(),
        Some("kept")
    );
    assert_eq!(a.stats().l2_hits, l2_hits + 2, "both read from Redis");

    redis.cmd(&["ACL", "SETUSER", "reader", "+xrange"]);
    live_again(&a).await;
    let hits = a.stats().l1_hits;
    assert_eq!(
        a.get::<String>(&kept).await.unwrap().as_deref(),
        Some("kept")
    );
    assert_eq!(
        a.stats().l1_hits,
        hits + 1,
        "the unchanged key kept in A's L1"
    );
    assert_eq!(
        a.get::<String>(&changed).await.unwrap().as_deref(),
        Some("new")
    );
    let stats = a.stats();
    assert_eq!(stats.l1_flushes, 0, "{stats:?}");
    assert!(stats.l1_replays >= 1, "{stats:?}");
    assert!(stats.invalidations_replayed >= 1, "{stats:?}");
}
