//! Tenant purges: their cost is the tenant's keys, not the keyspace's; they
//! find keys from every write path; whatever happens to them, no instance
//! keeps a purged value in its L1.

use std::time::Duration;

use redis_cache::{CacheService, Expiry};
use shared_types::{Invalidation, KeyPattern, RedisKey, TenantId};
use test_support::{RedisServer, wait_for};

use crate::own_changes::{PAUSE_MS, pausable_pair};
use crate::two_tier::TTL;
use crate::{cache_on, shard, shard_key, tenant, user};

/// Commands Redis processed while `work` ran (the `INFO` calls excluded).
async fn commands_during<F: Future>(redis: &RedisServer, work: F) -> (F::Output, i64) {
    let processed = || {
        let info = redis.cmd(&["INFO", "stats"]).as_string().unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap()
    };
    let before = processed();
    let output = work.await;
    // The second INFO is counted once it has run: one more than the work.
    (output, processed() - before - 1)
}

/// `n` keys of each of `tenants`, written through `cache` in batches.
async fn populate(cache: &CacheService, tenants: &[TenantId], n: usize) {
    for t in tenants {
        let entries: Vec<_> = (0..n)
            .map(|i| {
                let key = RedisKey::shard_structured(t, &shard(&format!("s{i}")));
                (key, i, Expiry::After(TTL))
            })
            .collect();
        cache.mset(&entries).await.unwrap();
    }
}

// Purging a small tenant among 20 000 keys of 1 000 others costs a few
// commands, not a walk of the keyspace; it deletes exactly that tenant's
// keys (t1's purge leaves t10's alone).
#[tokio::test]
async fn a_tenant_purge_costs_the_tenants_keys_not_the_keyspace() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let others: Vec<TenantId> = (0..1_000).map(|i| tenant(&format!("t{i}"))).collect();
    populate(&cache, &others, 20).await;
    let small = tenant("small");
    populate(&cache, std::slice::from_ref(&small), 10).await;
    let keys_before = redis.dbsize();

    let (deleted, commands) = commands_during(&redis, Box::pin(cache.flush_tenant(&small))).await;
    assert_eq!(deleted.unwrap(), 10);
    assert!(commands <= 5, "the purge sent {commands} commands");
    assert_eq!(
        redis.dbsize(),
        keys_before - 10,
        "only the tenant's keys went"
    );

    let (deleted, commands) =
        commands_during(&redis, Box::pin(cache.flush_tenant(&tenant("t1")))).await;
    assert_eq!(deleted.unwrap(), 20);
    assert!(commands <= 5, "the purge sent {commands} commands");
    let t10 = RedisKey::shard_structured(&tenant("t10"), &shard("s0"));
    assert_eq!(cache.get::<usize>(&t10).await.unwrap(), Some(0));
}

// A purge finds keys from every write path: set, mset, expire (a TTL
// extended past the first one) and get_or_load's write-back; and a
// narrower pattern deletes only what it matches.
#[tokio::test]
async fn a_purge_finds_keys_from_every_write_path() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let t = tenant("t");
    let set = RedisKey::user_profile(&t, &user("set"));
    cache.set(&set, &1, TTL).await.unwrap();
    let msets = [
        RedisKey::acl(&t, &user("u1"), &shard("s1")),
        RedisKey::acl(&t, &user("u2"), &shard("s1")),
    ];
    let entries: Vec<_> = msets
        .iter()
        .map(|k| (k.clone(), true, Expiry::After(TTL)))
        .collect();
    cache.mset(&entries).await.unwrap();
    let extended = shard_key("t", "extended");
    cache
        .set(&extended, &1, Duration::from_millis(200))
        .await
        .unwrap();
    assert!(cache.expire(&extended, TTL).await.unwrap());
    let loaded = shard_key("t", "loaded");
    let value: u32 = cache
        .get_or_load(&loaded, TTL, || async { Ok::<_, std::io::Error>(7) })
        .await
        .unwrap();
    assert_eq!(value, 7);
    // The index follows the extended TTL: its member for `extended`
    // expires with the key, not at the first TTL (when trimming would drop it).
    let index = RedisKey::tenant_index(&t);
    let score = redis.cmd(&["ZSCORE", index.as_str(), extended.as_str()]);
    let score: f64 = score.as_string().unwrap().parse().unwrap();
    let time = redis.cmd(&["TIME"]).as_strings();
    let now_ms = time[0].parse::<f64>().unwrap() * 1000.0;
    assert!(
        score - now_ms > 500_000.0,
        "indexed until {score}, now {now_ms}"
    );

    assert_eq!(
        cache
            .delete_pattern(&KeyPattern::tenant_acl(&t))
            .await
            .unwrap(),
        2
    );
    assert!(cache.exists(&set).await.unwrap());
    assert_eq!(cache.flush_tenant(&t).await.unwrap(), 3);
    for key in [&set, &extended, &loaded] {
        assert!(!cache.exists(key).await.unwrap(), "{key:?} survived");
    }
}

// A load claims its lease only once its key is indexed, so that a purge
// that can see the lease also finds (and removes) it. Here the index script
// must be reloaded first (`NOSCRIPT`, then `EVAL`: a second round trip),
// which once let the claim run in between.
#[tokio::test]
async fn a_loads_lease_is_claimed_only_once_its_key_is_indexed() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "indexed-first");
    redis.cmd(&["SCRIPT", "FLUSH"]);
    let lines = crate::two_tier::monitor_lines(&redis, async {
        let loaded = cache
            .get_or_load(&key, TTL, || async { Ok::<_, std::io::Error>(1u32) })
            .await
            .unwrap();
        assert_eq!(loaded, 1);
    })
    .await;
    let position = |what: &dyn Fn(&str) -> bool| lines.iter().position(|l| what(l));
    let claimed = position(&|l: &str| l.contains(r#""SET""#) && l.contains(":lease"))
        .unwrap_or_else(|| panic!("no lease claimed:\n{}", lines.join("\n")));
    let indexed = position(&|l: &str| {
        l.contains(" lua]") && l.contains("keyindex:tenant:t") && l.contains(key.as_str())
    })
    .unwrap_or_else(|| panic!("the key was never indexed:\n{}", lines.join("\n")));
    assert!(
        indexed < claimed,
        "the lease was claimed before its key was indexed:\n{}",
        lines.join("\n")
    );
}

// A get_or_load in flight when its tenant is purged does not write its
// value back over the purge: the lease was indexed and purged too.
#[tokio::test]
async fn a_purge_during_a_load_removes_its_lease() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "loading");
    let release = std::sync::Arc::new(tokio::sync::Notify::new());
    let load = {
        let (cache, key, release) = (cache.clone(), key.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_or_load(&key, TTL, move || async move {
                    release.notified().await;
                    Ok::<_, std::io::Error>(1u32)
                })
                .await
        })
    };
    let lease = RedisKey::load_lease_of(key.as_str());
    wait_for("the lease", Duration::from_secs(2), || async {
        !redis.cmd(&["GET", &lease]).is_nil()
    })
    .await;
    assert_eq!(
        cache.flush_tenant(&tenant("t")).await.unwrap(),
        0,
        "a lease is not a key"
    );
    assert!(redis.cmd(&["GET", &lease]).is_nil(), "the lease survived");
    release.notify_one();
    assert_eq!(load.await.unwrap().unwrap(), 1);
    assert!(
        !cache.exists(&key).await.unwrap(),
        "written back over the purge"
    );
}

// The index forgets keys that expired, and itself expires with its longest
// member: an idle tenant leaves nothing behind.
#[tokio::test]
async fn the_index_forgets_expired_keys_and_expires_itself() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let t = tenant("t");
    let index = RedisKey::tenant_index(&t);
    // Long enough that ten writes on a loaded machine all land within it
    // (the index trims members past their time as later keys are written).
    const SHORT: Duration = Duration::from_millis(500);
    for i in 0..10 {
        let key = shard_key("t", &format!("short{i}"));
        cache.set(&key, &i, SHORT).await.unwrap();
    }
    assert_eq!(redis.cmd(&["ZCARD", index.as_str()]).as_int(), Some(10));
    let pttl = redis.cmd(&["PTTL", index.as_str()]).as_int().unwrap();
    // One and a half times the keys' TTL (see `held` in the index module).
    assert!((1..=750).contains(&pttl), "index PTTL {pttl}");
    wait_for(
        "the keys and the index to expire",
        Duration::from_secs(5),
        || async { redis.dbsize() == 0 },
    )
    .await;
    // Members of expired keys are trimmed as new keys are written (a long
    // key keeps the index itself alive meanwhile).
    cache.set(&shard_key("t", "long"), &1, TTL).await.unwrap();
    for i in 0..10 {
        let key = shard_key("t", &format!("brief{i}"));
        cache.set(&key, &i, SHORT).await.unwrap();
    }
    // Past the brief keys' index entries (which outlive the keys by half
    // their TTL), by the server's clock.
    wait_for(
        "the brief keys' index entries to pass",
        Duration::from_secs(5),
        || async {
            let time = redis.cmd(&["TIME"]).as_strings();
            let now_ms =
                time[0].parse::<u64>().unwrap() * 1000 + time[1].parse::<u64>().unwrap() / 1000;
            let passed = redis.cmd(&["ZCOUNT", index.as_str(), "-inf", &now_ms.to_string()]);
            passed.as_int() == Some(10)
        },
    )
    .await;
    cache.set(&shard_key("t", "later"), &1, TTL).await.unwrap();
    assert_eq!(redis.cmd(&["ZCARD", index.as_str()]).as_int(), Some(2));
    let pttl = redis.cmd(&["PTTL", index.as_str()]).as_int().unwrap();
    assert!(
        pttl > 100_000,
        "the index lives as long as its longest key: {pttl}"
    );
}

/// A purge of tenant `t` (5 keys held in B's L1) while writes are paused,
/// run by `purge` on A; then every key must be gone from Redis and B. (A
/// stays alive meanwhile: dropping its connections would make Redis drop
/// the paused commands.)
async fn purge_while_paused(purge: impl AsyncFnOnce(&CacheService, TenantId)) {
    let redis = RedisServer::start().await;
    let (a, b) = pausable_pair(&redis).await;
    let t = tenant("t");
    let keys: Vec<RedisKey> = (0..5).map(|i| shard_key("t", &format!("p{i}"))).collect();
    for key in &keys {
        b.set(key, &1u32, TTL).await.unwrap();
        assert_eq!(b.get::<u32>(key).await.unwrap(), Some(1));
    }
    redis.cmd(&["CLIENT", "PAUSE", PAUSE_MS, "WRITE"]);
    purge(&a, t).await;
    wait_for("Redis to run the purge", Duration::from_secs(5), || async {
        keys.iter()
            .all(|key| redis.cmd(&["EXISTS", key.as_str()]).as_int() == Some(0))
    })
    .await;
    for key in &keys {
        wait_for(
            "B to drop the purged value",
            Duration::from_secs(3),
            || async { b.get::<u32>(key).await.unwrap().is_none() },
        )
        .await;
    }
}

// A purge that timed out is still announced: no instance keeps in its L1 a
// value that Redis deleted.
#[tokio::test]
async fn a_timed_out_purge_is_still_announced() {
    purge_while_paused(async |a, t| {
        let purged = a.invalidate(&Invalidation::Tenant { tenant_id: t }).await;
        assert!(purged.is_err(), "the purge should time out: {purged:?}");
    })
    .await;
}

// A purge whose caller stopped waiting (a request timeout dropping its
// future) is still announced.
#[tokio::test]
async fn a_cancelled_purge_is_still_announced() {
    purge_while_paused(async |a, t| {
        let gave_up = tokio::time::timeout(Duration::from_millis(100), a.flush_tenant(&t)).await;
        assert!(gave_up.is_err(), "the purge should still be waiting");
    })
    .await;
}

/// Calls of `command` Redis counted so far (`INFO commandstats`).
fn calls(redis: &RedisServer, command: &str) -> u64 {
    let info = redis.cmd(&["INFO", "commandstats"]).as_string().unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

// A key this instance rewrites within its index margin costs a plain SET
// (no index script); after Redis restarted empty, taking the index with
// it, the next write indexes the key again, and a purge finds it.
#[tokio::test]
async fn rewrites_skip_the_index_until_a_reconnection() {
    let mut redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = shard_key("t", "hot");
    cache.set(&key, &0, TTL).await.unwrap();
    let (scripts, sets) = (calls(&redis, "evalsha"), calls(&redis, "set"));
    for i in 1..=5 {
        cache.set(&key, &i, TTL).await.unwrap();
    }
    assert_eq!(
        calls(&redis, "evalsha"),
        scripts,
        "rewrites ran the index script"
    );
    assert_eq!(calls(&redis, "set") - sets, 5);

    redis.restart().await;
    wait_for(
        "the cache to write again",
        Duration::from_secs(5),
        || async { cache.set(&key, &6, TTL).await.is_ok() },
    )
    .await;
    let index = RedisKey::tenant_index(&tenant("t"));
    assert!(
        !redis
            .cmd(&["ZSCORE", index.as_str(), key.as_str()])
            .is_nil(),
        "not indexed after the restart"
    );
    assert_eq!(cache.flush_tenant(&tenant("t")).await.unwrap(), 1);
}

// A tenant cannot hide a key from its purge by choosing its name: these two
// shard ids make keys with the same 64-bit FNV-1a hash (found in under a
// minute by a birthday search), which is what the index memo once keyed
// its slots by, so writing the second key was taken as already indexed.
#[tokio::test]
async fn keys_whose_names_collide_under_a_public_hash_are_both_indexed() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let (first, second) = (shard_key("t", "isKnY0eIswg"), shard_key("t", "jvZMhUjd4Xk"));
    cache.set(&first, &1, TTL).await.unwrap();
    cache.set(&second, &2, TTL).await.unwrap();

    assert_eq!(cache.flush_tenant(&tenant("t")).await.unwrap(), 2);
    for key in [&first, &second] {
        assert!(redis.cmd(&["GET", key.as_str()]).is_nil(), "{key} survived");
    }
}
