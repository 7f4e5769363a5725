//! delete_pattern and flush_tenant.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use redis_cache::Expiry;
use shared_types::{CounterName, KeyPattern, RedisKey, TokenHash};
use test_support::RedisServer;

use crate::{cache_keys, cache_on, shard, tenant, user};

// Over 100 000 keys of which 10 000 match, delete_pattern deletes exactly the
// matching ones, while another task keeps writing non-matching keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_exactly_the_matching_keys_under_writes() {
    if !test_support::server_is_at_least(7, 0, "--enable-debug-command") {
        return;
    }
    let redis = RedisServer::builder()
        .args(["--enable-debug-command", "yes"])
        .start()
        .await;
    let cache = cache_on(&redis).await;
    let t = tenant("t1");

    // 90 000 non-matching keys: DEBUG POPULATE writes "tenant:t1:shard:<n>".
    redis.cmd(&["DEBUG", "POPULATE", "90000", "tenant:t1:shard"]);
    // 10 000 matching ACL entries, written through the cache.
    for batch in 0..10 {
        let entries: Vec<_> = (0..1000)
            .map(|i| {
                let key = RedisKey::acl(&t, &user(&format!("u{batch}-{i}")), &shard("s1"));
                (key, true, Expiry::After(Duration::from_secs(600)))
            })
            .collect();
        cache.mset(&entries).await.unwrap();
    }
    assert_eq!(cache_keys(&redis), 100_000);

    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let writer = {
        let (cache, stop, written, t) = (cache.clone(), stop.clone(), written.clone(), t.clone());
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = RedisKey::user_profile(&t, &user(&format!("during-{i}")));
                cache.set(&key, &i, Duration::from_secs(600)).await.unwrap();
                written.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };

    let deleted = cache
        .delete_pattern(&KeyPattern::tenant_acl(&t))
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    assert_eq!(deleted, 10_000);
    let written = written.load(Ordering::Relaxed);
    assert!(written > 0, "the writer ran during the deletion");
    assert_eq!(cache_keys(&redis), i64::try_from(90_000 + written).unwrap());
    let leftover = redis.cmd(&["SCAN", "0", "MATCH", "tenant:t1:acl:*", "COUNT", "200000"]);
    let Some(test_support::Reply::Array(Some(parts))) = Some(leftover) else {
        panic!("bad SCAN reply")
    };
    assert!(parts[1].as_strings().is_empty(), "matching keys survived");
    assert_eq!(cache.stats().deletes, 10_000);
}

// flush_tenant("a") removes a's cached data and nothing of "ab", "a-b", "b",
// nor a's own sessions and counters.
#[tokio::test]
async fn flush_tenant_is_exact() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let ttl = Duration::from_secs(600);
    let mut survivors = Vec::new();
    for name in ["a", "ab", "a-b", "b"] {
        let t = tenant(name);
        for i in 0..20 {
            let keys = [
                RedisKey::shard_structured(&t, &shard(&format!("s{i}"))),
                RedisKey::user_profile(&t, &user(&format!("u{i}"))),
                RedisKey::acl(&t, &user(&format!("u{i}")), &shard("s")),
            ];
            for key in keys {
                cache.set(&key, &i, ttl).await.unwrap();
                if name != "a" {
                    survivors.push(key);
                }
            }
        }
        let state = [
            RedisKey::session(&t, &TokenHash::of_token(name)),
            RedisKey::counter(&t, &CounterName::new("c").unwrap()),
            RedisKey::rate_limit(&t, &user("u1"), &CounterName::new("login").unwrap()),
        ];
        for key in state {
            cache.set(&key, &1, ttl).await.unwrap();
            survivors.push(key);
        }
    }

    let deleted = cache.flush_tenant(&tenant("a")).await.unwrap();
    assert_eq!(deleted, 60);
    assert_eq!(cache_keys(&redis), i64::try_from(survivors.len()).unwrap());
    for key in &survivors {
        assert!(cache.exists(key).await.unwrap(), "{key} was deleted");
    }
}
