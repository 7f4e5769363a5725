//! The two-tier cache: L1 + Redis, kept coherent across instances by
//! pub/sub. One test per correctness rule, plus single flight.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use redis_cache::{CacheConfig, CacheService, L1Config, LoadError};
use shared_types::{Invalidation, RedisKey};
use test_support::{RedisServer, wait_for};
use tokio::sync::Notify;

use crate::{shard, shard_key, tenant, two_tier_on, user};

pub(crate) const TTL: Duration = Duration::from_secs(600);

/// One service instance: its own connection manager, L1 and subscriber.
pub(crate) async fn instance(
    server: &RedisServer,
    tweak: impl FnOnce(&mut redis_connection::RedisConfig),
) -> CacheService {
    two_tier_on(server, tweak, test_support::fixtures::two_tier_config()).await
}

/// Waits until `b` has heard every invalidation `a` published: each one
/// arriving late may (rightly) drop or prevent one of B's L1 fills.
async fn heard(a: &CacheService, b: &CacheService) {
    let sent = a.stats().invalidations_sent;
    wait_for(
        "B to hear A's invalidations",
        Duration::from_secs(1),
        || async { b.stats().invalidations_received >= sent },
    )
    .await;
}

pub(crate) async fn pair(server: &RedisServer) -> (CacheService, CacheService) {
    (
        instance(server, |_| {}).await,
        instance(server, |_| {}).await,
    )
}

// A value set on instance A is read by B from Redis, then from B's L1.
#[tokio::test]
async fn l2_hit_fills_l1() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t", "s");
    a.set(&key, &"v1", TTL).await.unwrap();
    heard(&a, &b).await;
    assert_eq!(b.get::<String>(&key).await.unwrap().as_deref(), Some("v1"));
    assert_eq!((b.stats().l2_hits, b.stats().l1_hits), (1, 0));
    assert_eq!(b.get::<String>(&key).await.unwrap().as_deref(), Some("v1"));
    assert_eq!((b.stats().l2_hits, b.stats().l1_hits), (1, 1));
    // A holds its own write in L1.
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("v1"));
    assert_eq!(a.stats().l1_hits, 1);
}

// Rule 3, bounded staleness: a change on A is served by B within 1 s.
#[tokio::test]
async fn change_reaches_other_instance_within_a_second() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t", "s");
    a.set(&key, &1, TTL).await.unwrap();
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1));
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1), "now in B's L1");

    let start = Instant::now();
    a.set(&key, &2, TTL).await.unwrap();
    let took = wait_for("B to see the new value", Duration::from_secs(1), || async {
        b.get::<u32>(&key).await.unwrap() == Some(2)
    })
    .await;
    assert!(start.elapsed() < Duration::from_secs(1), "took {took:?}");
    assert!(b.stats().invalidations_applied >= 1);
    assert!(a.stats().invalidations_sent >= 2);

    a.delete(&key).await.unwrap();
    wait_for("B to see the delete", Duration::from_secs(1), || async {
        b.get::<u32>(&key).await.unwrap().is_none()
    })
    .await;
}

// Rule 4, tenant isolation: invalidating tenant "a" leaves tenant "ab" in
// every L1 and in Redis.
#[tokio::test]
async fn tenant_invalidation_is_isolated() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key_a = RedisKey::user_profile(&tenant("a"), &user("u"));
    let key_ab = RedisKey::user_profile(&tenant("ab"), &user("u"));
    for key in [&key_a, &key_ab] {
        a.set(key, &"x", TTL).await.unwrap();
    }
    heard(&a, &b).await;
    for key in [&key_a, &key_ab] {
        assert!(b.get::<String>(key).await.unwrap().is_some());
    }
    let l1_hits = b.stats().l1_hits;
    assert!(b.get::<String>(&key_ab).await.unwrap().is_some());
    assert_eq!(b.stats().l1_hits, l1_hits + 1, "ab is in B's L1");

    let deleted = a
        .invalidate(&Invalidation::Tenant {
            tenant_id: tenant("a"),
        })
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    wait_for("B to drop tenant a", Duration::from_secs(1), || async {
        b.get::<String>(&key_a).await.unwrap().is_none()
    })
    .await;
    let l1_hits = b.stats().l1_hits;
    assert!(b.get::<String>(&key_ab).await.unwrap().is_some());
    assert_eq!(b.stats().l1_hits, l1_hits + 1, "ab is still in B's L1");
    assert!(a.get::<String>(&key_ab).await.unwrap().is_some());
    assert_eq!(redis.cmd(&["EXISTS", key_ab.as_str()]).as_int(), Some(1));
}

// Rule 1, a reconnect loses nothing: with A's subscriber killed, an
// invalidation from B is lost to A's channel; after A re-subscribes it
// replays it from the stream and does not serve the old value (replay.rs
// has the rest: no flush, gaps beyond the retention, Redis restarted).
#[tokio::test]
async fn reconnect_never_serves_a_missed_invalidation() {
    let redis = RedisServer::start().await;
    // A reconnects slowly, so its outage is wide enough to invalidate into.
    let a = instance(&redis, |c| {
        c.reconnect.base_delay = Duration::from_millis(400);
        c.reconnect.max_delay = Duration::from_millis(400);
    })
    .await;
    let b = instance(&redis, |_| {}).await;
    let key = shard_key("t", "s");
    b.set(&key, &"old", TTL).await.unwrap();
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("old"));
    assert_eq!(
        a.get::<String>(&key).await.unwrap().as_deref(),
        Some("old"),
        "in A's L1"
    );

    assert!(
        redis
            .cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])
            .as_int()
            .unwrap()
            >= 1
    );
    wait_for(
        "A to notice its subscriber is gone",
        Duration::from_secs(2),
        || async { !a.l1_live() },
    )
    .await;
    // B is the only writer: it deletes in Redis and publishes; A hears nothing.
    redis.cmd(&["SET", key.as_str(), r#""new""#]);
    b.invalidate(&Invalidation::for_key(&key).unwrap())
        .await
        .unwrap();
    redis.cmd(&["SET", key.as_str(), r#""new""#]);

    wait_for("A to re-subscribe", Duration::from_secs(5), || async {
        a.l1_live()
    })
    .await;
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("new"));
    assert!(a.stats().l1_replays >= 1);
}

// Rule 2, no resurrection: a load that started before an invalidation does
// not put its (old) value into L1 or Redis after the invalidation.
#[tokio::test]
async fn no_resurrection_after_invalidation() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t", "s");
    let (entered, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let loading = {
        let (a, key, entered, release) = (a.clone(), key.clone(), entered.clone(), release.clone());
        tokio::spawn(async move {
            a.get_or_load(&key, TTL, move || async move {
                entered.notify_one();
                release.notified().await;
                Ok::<_, std::io::Error>("old".to_owned())
            })
            .await
        })
    };
    entered.notified().await;
    // The invalidation runs while the loader holds its (now stale) value.
    b.invalidate(&Invalidation::for_key(&key).unwrap())
        .await
        .unwrap();
    let a_epoch_moved = wait_for(
        "A to apply the invalidation",
        Duration::from_secs(1),
        || async { a.stats().invalidations_applied >= 1 },
    );
    a_epoch_moved.await;
    release.notify_one();
    assert_eq!(
        loading.await.unwrap().unwrap(),
        "old",
        "the caller still gets its value"
    );

    assert_eq!(
        redis.cmd(&["EXISTS", key.as_str()]).as_int(),
        Some(0),
        "not written to Redis"
    );
    assert_eq!(a.get::<String>(&key).await.unwrap(), None, "not in A's L1");
    assert_eq!(a.stats().l1_hits, 0);
}

// Rule 5, Redis down: L1 keeps serving what it holds (until the TTL cap),
// loaders still run on a miss, writes fail with the unavailable error.
#[tokio::test]
async fn redis_down_serves_l1_and_runs_loaders() {
    let mut redis = RedisServer::start().await;
    let a = instance(&redis, |_| {}).await;
    let key = shard_key("t", "s");
    a.set(&key, &"cached", TTL).await.unwrap();
    redis.stop().await;

    assert_eq!(
        a.get::<String>(&key).await.unwrap().as_deref(),
        Some("cached")
    );
    let loaded = a
        .get_or_load(&shard_key("t", "other"), TTL, || async {
            Ok::<_, std::io::Error>("fresh".to_owned())
        })
        .await
        .unwrap();
    assert_eq!(loaded, "fresh");
    assert!(a.set(&key, &"new", TTL).await.unwrap_err().is_unavailable());
    assert!(a.stats().loads >= 1);
}

// Rule 5's exception: ACL decisions are security state, like sessions. Once
// the instance knows its feed is down (a revocation may be missed), its L1
// never answers one, while cached data is still served from it.
#[tokio::test]
async fn redis_down_never_serves_an_acl_decision_from_the_l1() {
    let mut redis = RedisServer::start().await;
    let a = instance(&redis, |_| {}).await;
    let t = tenant("t");
    let acl = RedisKey::acl(&t, &user("u"), &shard("s"));
    let data = shard_key("t", "s");
    a.set(&acl, &"allow", TTL).await.unwrap();
    a.set(&data, &"cached", TTL).await.unwrap();
    redis.stop().await;

    wait_for(
        "the ACL decision to stop being served",
        Duration::from_secs(5),
        || async { !matches!(a.get::<String>(&acl).await, Ok(Some(_))) },
    )
    .await;
    assert_eq!(
        a.get::<String>(&data).await.unwrap().as_deref(),
        Some("cached"),
        "cached data is still served from the L1"
    );
}

// While Redis is down, an L1 entry is served at most the L1 TTL cap.
#[tokio::test]
async fn l1_ttl_cap_bounds_staleness_while_down() {
    let mut redis = RedisServer::start().await;
    let config = CacheConfig::default().with_l1(Some(
        L1Config::default()
            .with_max_entries(100)
            .with_ttl_cap(Duration::from_millis(300)),
    ));
    let a = two_tier_on(&redis, |_| {}, config).await;
    let key = shard_key("t", "s");
    a.set(&key, &1, TTL).await.unwrap();
    let written = Instant::now();
    redis.stop().await;
    assert_eq!(a.get::<u32>(&key).await.unwrap(), Some(1));
    wait_for("the L1 entry to expire", Duration::from_secs(3), || async {
        a.get::<u32>(&key).await.unwrap().is_none()
    })
    .await;
    assert!(written.elapsed() >= Duration::from_millis(300));
}

// 1 000 concurrent get_or_load calls on one cold key run the loader once per
// instance; everyone gets the value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_flight_per_instance() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    for (instance, key) in [(a, shard_key("t", "k1")), (b, shard_key("t", "k2"))] {
        let calls = Arc::new(AtomicU32::new(0));
        let tasks: Vec<_> = (0..1000)
            .map(|_| {
                let (cache, key, calls) = (instance.clone(), key.clone(), calls.clone());
                tokio::spawn(async move {
                    cache
                        .get_or_load(&key, TTL, move || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, std::io::Error>(42u64)
                        })
                        .await
                        .unwrap()
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap(), 42);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let stats = instance.stats();
        assert_eq!(stats.loads, 1);
        assert!(stats.coalesced_waits > 0);
    }
}

// A loader error reaches every waiter, and nothing is cached.
#[tokio::test]
async fn loader_error_reaches_every_waiter() {
    let redis = RedisServer::start().await;
    let a = instance(&redis, |_| {}).await;
    let key = shard_key("t", "s");
    let release = Arc::new(Notify::new());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (a, key, release) = (a.clone(), key.clone(), release.clone());
            tokio::spawn(async move {
                a.get_or_load(&key, TTL, move || async move {
                    release.notified().await;
                    Err::<u32, _>(std::io::Error::other("database down"))
                })
                .await
            })
        })
        .collect();
    wait_for(
        "every caller to join the flight",
        Duration::from_secs(2),
        || async { a.stats().coalesced_waits == 9 },
    )
    .await;
    release.notify_one();
    for task in tasks {
        match task.await.unwrap() {
            Err(LoadError::Loader(e)) => assert_eq!(e.to_string(), "database down"),
            other => panic!("expected the loader's error, got {other:?}"),
        }
    }
    assert_eq!(crate::cache_keys(&redis), 0);
    assert_eq!(a.get::<u32>(&key).await.unwrap(), None);
}

// A garbled payload on an invalidation channel still invalidates what the
// channel names; it is counted as foreign (not malformed), the L1 stays
// live and later invalidations still apply.
#[tokio::test]
async fn a_garbled_payload_still_invalidates_and_is_counted_as_foreign() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t", "s");
    a.set(&key, &1, TTL).await.unwrap();
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1));

    redis.cmd(&["SET", key.as_str(), "2", "KEEPTTL"]);
    redis.cmd(&["PUBLISH", "cache:invalidate:shard:t:s", "{garbage"]);
    wait_for(
        "B to apply the garbled invalidation",
        Duration::from_secs(1),
        || async { b.get::<u32>(&key).await.unwrap() == Some(2) },
    )
    .await;
    assert_eq!(
        (b.stats().foreign_payloads, b.stats().malformed_messages),
        (1, 0)
    );
    assert!(b.l1_live());
    a.set(&key, &3, TTL).await.unwrap();
    wait_for(
        "B to apply the valid invalidation",
        Duration::from_secs(1),
        || async { b.get::<u32>(&key).await.unwrap() == Some(3) },
    )
    .await;
    assert_eq!(
        b.stats().foreign_payloads,
        1,
        "our own payload counted as foreign"
    );
}

// With Redis down and nothing in L1, a strict two-tier read is an error,
// never a "not found" (a service must answer 503, not 404 or 401).
#[tokio::test]
async fn strict_read_while_down_is_an_error_not_a_miss() {
    let mut redis = RedisServer::start().await;
    let config = CacheConfig::default().with_read_mode(redis_cache::ReadMode::Strict);
    let a = two_tier_on(&redis, |_| {}, config).await;
    let key = shard_key("t", "s");
    redis.stop().await;
    let err = a.get::<u32>(&key).await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    let err = a
        .mget::<u32>(&[key.clone(), shard_key("t", "s2")])
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
}

// An mset on A is announced key by key: B drops every copy it held.
#[tokio::test]
async fn mset_reaches_other_instance() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let keys = [shard_key("t", "s1"), shard_key("t", "s2")];
    for key in &keys {
        a.set(key, &1, TTL).await.unwrap();
        assert_eq!(b.get::<u32>(key).await.unwrap(), Some(1));
    }
    let entries: Vec<_> = keys
        .iter()
        .map(|key| (key.clone(), 2u32, redis_cache::Expiry::After(TTL)))
        .collect();
    a.mset(&entries).await.unwrap();
    for key in &keys {
        wait_for("B to see the mset", Duration::from_secs(1), || async {
            b.get::<u32>(key).await.unwrap() == Some(2)
        })
        .await;
    }
    assert!(a.stats().invalidations_sent >= 4);
}

/// Every command Redis runs while `work` runs, as MONITOR lists them (in
/// the order Redis runs them).
pub(crate) async fn monitor_lines(
    redis: &RedisServer,
    work: impl Future<Output = ()>,
) -> Vec<String> {
    let mut monitor = test_support::RawClient::connect(&redis.addr(), None).unwrap();
    assert!(matches!(
        monitor.cmd(&["MONITOR"]).unwrap(),
        test_support::Reply::Simple(_)
    ));
    let watcher = std::thread::spawn(move || {
        let mut lines = Vec::new();
        loop {
            let test_support::Reply::Simple(line) = monitor.read_reply().unwrap() else {
                panic!("MONITOR sends simple strings");
            };
            if line.contains("\"monitor-end\"") {
                return lines;
            }
            lines.push(line);
        }
    });
    work.await;
    redis.cmd(&["ECHO", "monitor-end"]);
    watcher.join().unwrap()
}

/// The writes (SET, PEXPIRE, UNLINK) of keys `tenant:t:shard:{s}:structured`
/// and the PUBLISHes on `cache:invalidate:shard:t:{s}` that Redis runs while
/// `work` runs, in the order it runs them (MONITOR lists commands in that
/// order), as (command, shard, connection). A command a script ran (MONITOR
/// says `[0 lua]`) belongs to the connection that sent the script, the last
/// client seen before it.
async fn monitored(
    redis: &RedisServer,
    work: impl Future<Output = ()>,
) -> (Vec<(String, String, String)>, String) {
    let lines = monitor_lines(redis, work).await;
    let mut client = String::new();
    let seen = lines
        .iter()
        .filter_map(|line| {
            let mut connection = line.split(['[', ']']).nth(1)?.to_owned();
            if connection.ends_with(" lua") {
                connection.clone_from(&client);
            } else {
                client.clone_from(&connection);
            }
            let args: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            let (command, target) = (args.first()?.to_uppercase(), *args.get(1)?);
            let shard = match command.as_str() {
                "SET" | "PEXPIRE" | "UNLINK" => target
                    .strip_prefix("tenant:t:shard:")?
                    .strip_suffix(":structured")?,
                "PUBLISH" => target.strip_prefix("cache:invalidate:shard:t:")?,
                _ => return None,
            };
            Some((command, shard.to_owned(), connection))
        })
        .collect();
    (seen, lines.join("\n"))
}

// A write and its announcement go together in one script on one
// connection, the announcement first: a refused PUBLISH then changes
// nothing (acl_refusals.rs), and since a script's PUBLISH reaches
// subscribers only once the script has ended, none of them can hear of the
// change before it is visible and refill its L1 from the old value
// (announced.rs reads the key on each announcement).
#[tokio::test]
async fn a_write_runs_in_one_script_right_after_its_announcement() {
    let redis = RedisServer::start().await;
    let (a, _b) = pair(&redis).await;
    // The scripts the writes use, loaded (see the next test for a reload).
    let scratch = shard_key("t", "scratch");
    a.set(&scratch, &0, TTL).await.unwrap();
    a.expire(&scratch, TTL).await.unwrap();

    let rounds = 20;
    let (seen, lines) = monitored(
        &redis,
        Box::pin(async {
            for i in 0..rounds {
                let key = shard_key("t", &format!("s{i}"));
                a.set(&key, &i, TTL).await.unwrap();
                assert!(a.expire(&key, TTL).await.unwrap());
                a.delete(&key).await.unwrap();
                let invalidation = Invalidation::for_key(&key).unwrap();
                a.invalidate(&invalidation).await.unwrap();
            }
        }),
    )
    .await;
    let expected: Vec<(String, String)> = (0..rounds)
        .flat_map(|i| {
            [
                "PUBLISH", "SET", "PUBLISH", "PEXPIRE", "PUBLISH", "UNLINK", "PUBLISH", "UNLINK",
            ]
            .map(|c| (c.to_owned(), format!("s{i}")))
        })
        .collect();
    let order: Vec<(String, String)> = seen
        .iter()
        .map(|(c, s, _)| (c.clone(), s.clone()))
        .collect();
    assert_eq!(order, expected, "MONITOR saw:\n{lines}");
    for pair in seen.chunks(2) {
        assert_eq!(
            pair[0].2, pair[1].2,
            "{} and its PUBLISH on one connection",
            pair[0].0
        );
    }
}

// When Redis has forgotten a write's script (SCRIPT FLUSH, as after a
// restart), the write runs only once the script is loaded again, still in
// the script that announces it, right after the announcement (see
// announced.rs for what a subscriber reads on each announcement).
#[tokio::test]
async fn a_write_whose_script_was_reloaded_still_runs_with_its_announcement() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t", "reloaded");
    a.set(&key, &1, TTL).await.unwrap();
    heard(&a, &b).await;
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1));
    redis.cmd(&["SCRIPT", "FLUSH"]);
    // Another key: a's memo covers `key`, whose write would skip the script.
    let fresh = shard_key("t", "fresh");
    let (seen, lines) = monitored(
        &redis,
        Box::pin(async {
            a.set(&fresh, &2, TTL).await.unwrap();
        }),
    )
    .await;
    let last_set = seen
        .iter()
        .rposition(|(c, s, _)| c == "SET" && s == "fresh");
    let last_publish = seen
        .iter()
        .rposition(|(c, s, _)| c == "PUBLISH" && s == "fresh");
    assert!(
        last_publish.is_some() && last_set == last_publish.map(|at| at + 1),
        "the last write must run right after its announcement; MONITOR saw:\n{lines}"
    );
}
