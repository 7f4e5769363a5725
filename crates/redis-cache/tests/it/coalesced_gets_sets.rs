//! Concurrent single-key `get`s and `set`s on a single server, coalesced
//! into one command per batch (the cache's `batched.rs`): each caller still
//! gets its own reply, error and statistics, and MONITOR shows the batch.
//!
//! Of calls joined in one task (`join_all`), the first finds nothing in
//! flight and is sent alone, as the command it always was, from the
//! caller's task; the others are all queued behind it before the batch's
//! driver task first runs (a test's runtime has one thread), so they leave
//! together in one batch: these tests do not depend on timing.

use std::time::{Duration, Instant};

use futures::future::join_all;
use redis_cache::{CacheConfig, CacheService, ReadMode, Tier};
use shared_types::RedisKey;
use test_support::RedisServer;
use test_support::fixtures::two_tier_config;

use crate::two_tier::monitor_lines;
use crate::{cache_on, pttl, shard_key, tenant};

/// The lines of `lines` whose command (the first quoted word after the
/// client's address) is `command`, sent by a client (not by a script).
fn sent(lines: &[String], command: &str) -> Vec<String> {
    let quoted = format!("] \"{command}\"");
    lines
        .iter()
        .filter(|l| !l.contains("[0 lua]") && l.to_ascii_uppercase().contains(&quoted))
        .cloned()
        .collect()
}

fn keys(tenant: &str, n: usize) -> Vec<RedisKey> {
    (0..n)
        .map(|i| shard_key(tenant, &format!("s{i}")))
        .collect()
}

// Forty concurrent Redis-only gets, thirty hits with their own values and
// ten misses: the first goes alone as a GET, the other 39 as one MGET (and
// one EXISTS for the misses); each caller gets its own value, and hits and
// misses are counted per key.
#[tokio::test]
async fn concurrent_gets_each_get_their_own_value_from_one_mget() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let keys = keys("t", 40);
    for (i, key) in keys.iter().enumerate().take(30) {
        redis.cmd(&["SET", key.as_str(), &i.to_string()]);
    }
    let mut read = Vec::new();
    let lines = monitor_lines(&redis, async {
        read = join_all(keys.iter().map(|key| cache.get::<u64>(key))).await;
    })
    .await;
    for (i, got) in read.into_iter().enumerate() {
        let expected = (i < 30).then_some(i as u64);
        assert_eq!(got.unwrap(), expected, "key {i}");
    }
    let mgets = sent(&lines, "MGET");
    assert_eq!(mgets.len(), 1, "one MGET for the batch: {lines:#?}");
    assert!(keys[1..].iter().all(|k| mgets[0].contains(k.as_str())));
    let gets = sent(&lines, "GET");
    assert_eq!(gets.len(), 1, "only the first alone: {lines:#?}");
    assert!(gets[0].contains(keys[0].as_str()));
    assert_eq!(sent(&lines, "EXISTS").len(), 1, "{lines:#?}");
    let stats = cache.stats();
    assert_eq!((stats.l2_hits, stats.misses, stats.errors), (30, 10, 0));
}

// Concurrent two-tier gets (but the first, alone as GET and PTTL) go out
// as one call of the GET+PTTL script; each
// caller gets its own value, and each key's L1 copy keeps that key's own
// TTL: the short-lived one is gone from both tiers once Redis expired it,
// while the others are still served from the L1.
#[tokio::test]
async fn concurrent_two_tier_gets_are_one_script_call_and_keep_their_own_ttls() {
    let redis = RedisServer::start().await;
    let cache = crate::two_tier_on(&redis, |_| {}, two_tier_config()).await;
    let keys = keys("t", 20);
    for (i, key) in keys.iter().enumerate() {
        // Key 0 lives 300 ms, the others a minute; key 19 is missing.
        let ttl = if i == 0 { "300" } else { "60000" };
        if i < 19 {
            redis.cmd(&["SET", key.as_str(), &i.to_string(), "PX", ttl]);
        }
    }
    // Loads the script (a first call is NOSCRIPT, then SCRIPT LOAD).
    // The first goes alone: three make a batch of two.
    let warm = [
        shard_key("w", "1"),
        shard_key("w", "2"),
        shard_key("w", "3"),
    ];
    join_all(warm.iter().map(|key| cache.get::<u64>(key))).await;
    let mut read = Vec::new();
    let lines = monitor_lines(&redis, async {
        read = join_all(keys.iter().map(|key| cache.get_with_tier::<u64>(key))).await;
    })
    .await;
    for (i, got) in read.into_iter().enumerate() {
        let expected = (i < 19).then_some((i as u64, Tier::L2));
        assert_eq!(got.unwrap(), expected, "key {i}");
    }
    let scripts = sent(&lines, "EVALSHA");
    assert_eq!(scripts.len(), 1, "one script call: {lines:#?}");
    assert!(keys[1..].iter().all(|k| scripts[0].contains(k.as_str())));
    let (gets, pttls) = (sent(&lines, "GET"), sent(&lines, "PTTL"));
    assert_eq!((gets.len(), pttls.len()), (1, 1), "{lines:#?}");
    assert!(gets[0].contains(keys[0].as_str()));
    test_support::wait_for("Redis to expire key 0", Duration::from_secs(5), || async {
        redis.cmd(&["EXISTS", keys[0].as_str()]).as_int() == Some(0)
    })
    .await;
    assert_eq!(cache.get::<u64>(&keys[0]).await.unwrap(), None);
    let (value, tier) = cache.get_with_tier::<u64>(&keys[1]).await.unwrap().unwrap();
    assert_eq!((value, tier), (1, Tier::L1));
}

// A key holding another Redis type among concurrent gets is what it is for
// a lone get: a miss, deleted and counted as a decode failure (not an
// error), while the keys around it are read. Redis-only (MGET answers nil
// for it) and two-tier (the script refuses it alone).
#[tokio::test]
async fn a_wrongly_typed_key_among_concurrent_gets_is_deleted_like_a_lone_get() {
    let redis = RedisServer::start().await;
    let redis_only = cache_on(&redis).await;
    let two_tier = crate::two_tier_on(&redis, |_| {}, two_tier_config()).await;
    for (name, cache) in [("redis-only", &redis_only), ("two-tier", &two_tier)] {
        let keys = keys(name, 10);
        for (i, key) in keys.iter().enumerate() {
            if i == 4 {
                redis.cmd(&["HSET", key.as_str(), "f", "v"]);
            } else if i != 7 {
                redis.cmd(&["SET", key.as_str(), &i.to_string()]);
            }
        }
        let read = join_all(keys.iter().map(|key| cache.get::<u64>(key))).await;
        for (i, got) in read.into_iter().enumerate() {
            let expected = (i != 4 && i != 7).then_some(i as u64);
            assert_eq!(got.unwrap(), expected, "{name}: key {i}");
        }
        assert_eq!(
            redis.cmd(&["EXISTS", keys[4].as_str()]).as_int(),
            Some(0),
            "{name}: the hash was not deleted"
        );
        let stats = cache.stats();
        assert_eq!(
            (
                stats.l2_hits,
                stats.misses,
                stats.decode_failures,
                stats.errors
            ),
            (8, 2, 1, 0),
            "{name}"
        );
    }
}

// Forty concurrent sets of two tenants, each with its own value and TTL,
// go out as two script calls, the first set alone (the SET+index script)
// and one that writes and indexes the 39 others: each key
// holds its value with its TTL, and flushing one tenant removes exactly
// its keys (the index holds every one of them).
#[tokio::test]
async fn concurrent_sets_are_one_script_call_that_writes_and_indexes_every_key() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let (a, b) = (keys("a", 20), keys("b", 20));
    let entries: Vec<(&RedisKey, u64, Duration)> = a
        .iter()
        .chain(&b)
        .enumerate()
        .map(|(i, key)| (key, i as u64, Duration::from_secs(100 + i as u64)))
        .collect();
    // Loads the script (a first call is NOSCRIPT, then SCRIPT LOAD).
    // The first goes alone: three make a batch of two.
    let warm = [
        shard_key("w", "1"),
        shard_key("w", "2"),
        shard_key("w", "3"),
    ];
    join_all(
        warm.iter()
            .map(|key| cache.set(key, &0, Duration::from_secs(60))),
    )
    .await;
    let mut written = Vec::new();
    let lines = monitor_lines(&redis, async {
        written = join_all(
            entries
                .iter()
                .map(|(key, value, ttl)| cache.set(key, value, *ttl)),
        )
        .await;
    })
    .await;
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    let scripts = sent(&lines, "EVALSHA");
    assert_eq!(scripts.len(), 2, "two script calls: {lines:#?}");
    let key = |l: &String, k: &RedisKey| l.contains(&format!("\"{}\"", k.as_str()));
    let alone = scripts.iter().find(|l| key(l, &a[0])).unwrap();
    assert!(a[1..].iter().all(|k| !key(alone, k)), "{alone}");
    let batch = scripts.iter().find(|l| !key(l, &a[0])).unwrap();
    assert!(a[1..].iter().chain(&b).all(|k| key(batch, k)), "{batch}");
    assert!(sent(&lines, "SET").is_empty(), "no plain SET: {lines:#?}");
    for (key, value, ttl) in &entries {
        let stored = redis.cmd(&["GET", key.as_str()]).as_string();
        assert_eq!(stored, Some(value.to_string()), "{}", key.as_str());
        let left = crate::pttl(&redis, key);
        let ttl = i64::try_from(ttl.as_millis()).unwrap();
        assert!(
            left > ttl - 10_000 && left <= ttl,
            "{}: {left}",
            key.as_str()
        );
    }
    assert_eq!(cache.stats().sets, 43);

    assert_eq!(cache.flush_tenant(&tenant("a")).await.unwrap(), 20);
    for key in &a {
        assert_eq!(redis.cmd(&["EXISTS", key.as_str()]).as_int(), Some(0));
    }
    for key in &b {
        assert_eq!(redis.cmd(&["EXISTS", key.as_str()]).as_int(), Some(1));
    }
    assert_eq!(cache.flush_tenant(&tenant("b")).await.unwrap(), 20);
    assert_eq!(cache.flush_tenant(&tenant("w")).await.unwrap(), 3);
    assert_eq!(crate::cache_keys(&redis), 0);
}

// Concurrent rewrites of keys the index already covers (written for a
// minute, rewritten for less) are not coalesced: each is one plain
// `SET ... PX` from its caller (a batch of them cost more than it saved;
// issue 15), with its own value and TTL, and no script runs.
#[tokio::test]
async fn concurrent_rewrites_of_indexed_keys_are_plain_sets() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let keys = keys("t", 20);
    let minute = Duration::from_secs(60);
    let first = join_all(keys.iter().map(|key| cache.set(key, &0, minute))).await;
    assert!(first.iter().all(Result::is_ok), "{first:?}");
    let values: Vec<usize> = (1..=keys.len()).collect();
    let mut written = Vec::new();
    let lines = monitor_lines(&redis, async {
        written = join_all(
            keys.iter()
                .enumerate()
                .map(|(i, key)| cache.set(key, &values[i], Duration::from_secs(30 + i as u64))),
        )
        .await;
    })
    .await;
    assert!(written.iter().all(Result::is_ok), "{written:?}");
    assert!(sent(&lines, "EVALSHA").is_empty(), "no script: {lines:#?}");
    assert_eq!(sent(&lines, "SET").len(), keys.len(), "{lines:#?}");
    for (i, key) in keys.iter().enumerate() {
        let stored = redis.cmd(&["GET", key.as_str()]).as_string();
        assert_eq!(stored, Some((i + 1).to_string()), "{}", key.as_str());
        let left = crate::pttl(&redis, key);
        assert!(
            left > 20_000 + 1_000 * i as i64 && left <= 30_000 + 1_000 * i as i64,
            "{left}"
        );
    }
    assert_eq!(cache.flush_tenant(&tenant("t")).await.unwrap(), 20);
}

// Rewrites of keys the index already covers, sent beside writes of new
// keys: the new keys are indexed (a flush finds every key), whatever the
// mix.
#[tokio::test]
async fn a_batch_mixing_indexed_and_new_keys_indexes_the_new_ones() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let old = keys("t", 10);
    let minute = Duration::from_secs(60);
    let first = join_all(old.iter().map(|key| cache.set(key, &1, minute))).await;
    assert!(first.iter().all(Result::is_ok));
    let new: Vec<RedisKey> = (0..10).map(|i| shard_key("t", &format!("n{i}"))).collect();
    let second = join_all(old.iter().chain(&new).map(|key| cache.set(key, &2, minute))).await;
    assert!(second.iter().all(Result::is_ok));
    assert_eq!(cache.flush_tenant(&tenant("t")).await.unwrap(), 20);
    assert_eq!(crate::cache_keys(&redis), 0);
}

// A key given twice in one batch keeps the later request's value and TTL,
// and both callers are told it was written. (The first call of all goes
// alone; the three behind it make the batch.)
#[tokio::test]
async fn a_key_set_twice_in_one_batch_keeps_the_later_value() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "twice");
    let other = shard_key("t", "other");
    let alone = shard_key("t", "alone");
    let minute = Duration::from_secs(60);
    let (lone, first, between, second) = futures::join!(
        cache.set(&alone, &0, minute),
        cache.set(&key, &1, minute),
        cache.set(&other, &3, minute),
        cache.set(&key, &2, minute * 2),
    );
    assert!(lone.is_ok() && first.is_ok() && between.is_ok() && second.is_ok());
    assert_eq!(cache.get::<u64>(&key).await.unwrap(), Some(2));
    assert!(pttl(&redis, &key) > 60_000);
}

// After SCRIPT FLUSH (as after a Redis restart) a coalesced batch of sets
// and one of two-tier gets still succeed: the scripts are loaded again.
#[tokio::test]
async fn coalesced_scripts_are_loaded_again_after_a_script_flush() {
    let redis = RedisServer::start().await;
    let writer = cache_on(&redis).await;
    let reader = crate::two_tier_on(&redis, |_| {}, two_tier_config()).await;
    let keys = keys("t", 10);
    let minute = Duration::from_secs(60);
    for round in 0..2_u64 {
        redis.cmd(&["SCRIPT", "FLUSH"]);
        let written = join_all(keys.iter().map(|key| writer.set(key, &round, minute))).await;
        assert!(written.iter().all(Result::is_ok), "{written:?}");
        // Another round's values would be in the L1: read keys new to it.
        let read = join_all(keys.iter().map(|key| reader.get::<u64>(key))).await;
        let read: Vec<_> = read.into_iter().map(Result::unwrap).collect();
        assert_eq!(read, vec![Some(round); 10], "round {round}");
        for key in &keys {
            reader.delete(key).await.unwrap();
        }
    }
}

// While the server is frozen, every caller of a coalesced batch of gets and
// of sets fails with the typed error (unavailable), each within its
// command timeout: the batch carries the timeout of its oldest request.
#[tokio::test]
async fn every_caller_of_a_batch_gets_its_error_while_the_server_is_frozen() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(1);
    let cache = strict(&redis, timeout).await;
    let keys = keys("t", 10);
    let minute = Duration::from_secs(60);
    redis.pause();
    let start = Instant::now();
    let (reads, writes) = futures::join!(
        join_all(keys.iter().map(|key| async {
            let failed = cache.get::<u64>(key).await.unwrap_err();
            (failed.is_unavailable(), start.elapsed())
        })),
        join_all(keys.iter().map(|key| async {
            let failed = cache.set(key, &1, minute).await.unwrap_err();
            (failed.is_unavailable(), start.elapsed())
        })),
    );
    redis.resume();
    for (unavailable, took) in reads.into_iter().chain(writes) {
        assert!(unavailable);
        assert!(took < timeout * 2, "failed only after {took:?}");
    }
    // Nothing stays stuck: the next batch is answered.
    let read = join_all(keys.iter().map(|key| cache.get::<u64>(key))).await;
    assert!(read.into_iter().all(|r| r.is_ok()));
}

// Callers queued behind frozen batches (more of them than two batches
// hold) are not sent with a fresh command timeout when those batches time
// out: each fails within its own command timeout (asserted with a generous
// margin: twice it).
#[tokio::test]
async fn callers_queued_behind_frozen_batches_fail_within_their_own_timeout() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(1);
    let cache = strict(&redis, timeout).await;
    let keys = keys("t", 600);
    redis.pause();
    let start = Instant::now();
    let reads = join_all(keys.iter().map(|key| async {
        let failed = cache.get::<u64>(key).await.unwrap_err();
        (failed.is_unavailable(), start.elapsed())
    }))
    .await;
    redis.resume();
    for (unavailable, took) in reads {
        assert!(unavailable);
        assert!(took < timeout * 2, "failed only after {took:?}");
    }
}

// A caller who stops waiting (its future dropped once queued) leaves the
// others of its batch their replies.
#[tokio::test]
async fn a_caller_who_stops_waiting_leaves_the_others_their_values() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let keys = keys("t", 10);
    for (i, key) in keys.iter().enumerate() {
        redis.cmd(&["SET", key.as_str(), &i.to_string()]);
    }
    let mut calls: Vec<_> = keys
        .iter()
        .map(|key| Box::pin(cache.get::<u64>(key)))
        .collect();
    for call in &mut calls {
        // Polled once: queued for the next batch.
        assert!(futures::poll!(call).is_pending());
    }
    let kept: Vec<_> = calls
        .into_iter()
        .enumerate()
        .filter_map(|(i, call)| (i % 2 == 0).then_some((i, call)))
        .collect();
    for (i, call) in kept {
        assert_eq!(call.await.unwrap(), Some(i as u64));
    }
    let again = join_all(keys.iter().map(|key| cache.get::<u64>(key))).await;
    for (i, got) in again.into_iter().enumerate() {
        assert_eq!(got.unwrap(), Some(i as u64));
    }
}

/// A strict Redis-only cache (errors returned, not degraded) on a manager
/// with command timeout `timeout`.
async fn strict(redis: &RedisServer, timeout: Duration) -> CacheService {
    let mut config = crate::redis_config(redis);
    config.command_timeout = timeout;
    let manager = redis_connection::RedisConnectionManager::connect(config)
        .await
        .unwrap();
    let strict = CacheConfig::default()
        .with_l1(None)
        .with_read_mode(ReadMode::Strict);
    CacheService::new(manager, strict)
}
