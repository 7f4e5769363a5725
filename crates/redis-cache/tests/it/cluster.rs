//! The cache on a real 3-primary Redis Cluster: bulk operations across hash
//! slots, pattern deletion over every primary, counters and rate windows,
//! and the two-tier correctness rules.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use redis_cache::{CacheService, Expiry};
use redis_connection::{RedisConfig, RedisConnectionManager};
use shared_types::{CounterName, Invalidation, KeyPattern, RedisKey, TokenHash};
use test_support::{RedisCluster, Reply, fixtures, wait_for};

use crate::{shard, shard_key, tenant, user};

const TTL: Duration = Duration::from_secs(600);

/// How long Redis may take to replace a dead primary (1 s node timeout).
pub(crate) const FAILOVER: Duration = Duration::from_secs(15);

/// The tests' cluster config; commands get 500 ms, as a write paused on
/// every primary must time out (see the timed-out write test).
fn cluster_config(cluster: &RedisCluster) -> RedisConfig {
    let mut config = fixtures::cluster_config(cluster);
    config.command_timeout = Duration::from_millis(500);
    config
}

/// A Redis-only cache on `cluster`.
async fn cache_on(cluster: &RedisCluster) -> CacheService {
    let manager = RedisConnectionManager::connect(cluster_config(cluster))
        .await
        .unwrap();
    CacheService::new(manager, fixtures::redis_only_config())
}

/// One two-tier service instance on `cluster`.
pub(crate) async fn instance(
    cluster: &RedisCluster,
    tweak: impl FnOnce(&mut RedisConfig),
) -> CacheService {
    let mut redis = cluster_config(cluster);
    tweak(&mut redis);
    fixtures::two_tier(redis, fixtures::two_tier_config()).await
}

/// `calls` of `INFO commandstats` for `command` on the node on `port`.
fn calls(cluster: &RedisCluster, port: u16, command: &str) -> u64 {
    let info = cluster
        .node_cmd(port, &["INFO", "commandstats"])
        .as_string()
        .unwrap_or_default();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// Keys matching `pattern` on the node on `port`, by SCAN behind the cache's back.
fn scan(cluster: &RedisCluster, port: u16, pattern: &str) -> usize {
    let mut cursor = "0".to_owned();
    let mut found = 0;
    loop {
        let reply = cluster.node_cmd(port, &["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
        let Reply::Array(Some(parts)) = reply else {
            panic!("SCAN answered {reply:?}");
        };
        cursor = parts[0].as_string().unwrap();
        found += parts[1].as_strings().len();
        if cursor == "0" {
            return found;
        }
    }
}

/// An id for `i` whose hash slot varies widely. CRC16 is linear: ids that
/// differ only in a few decimal digits (`s1`..`s199`) differ in few bits and
/// land in a narrow band of slots, on one or two primaries only.
pub(crate) fn scattered(i: u32) -> String {
    format!("s{:08x}", i.wrapping_mul(0x9E37_79B1))
}

/// Writes `keys` through the cache in pipelined batches.
async fn seed(cache: &CacheService, keys: &[RedisKey]) {
    for batch in keys.chunks(5_000) {
        let entries: Vec<_> = batch
            .iter()
            .map(|key| (key.clone(), 1u8, Expiry::After(TTL)))
            .collect();
        cache.mset(&entries).await.unwrap();
    }
}

// mget over keys in many slots on every primary returns values in the
// caller's order, sending one MGET per hash slot (fred does not split
// multi-key commands; a cross-slot MGET would fail with CROSSSLOT); mset
// writes each key on its owner with its own TTL.
#[tokio::test]
async fn mget_and_mset_across_slots() {
    let cluster = RedisCluster::start(3, 0).await;
    let cache = cache_on(&cluster).await;
    let keys: Vec<RedisKey> = (0..200).map(|i| shard_key("t", &scattered(i))).collect();
    let entries: Vec<_> = (0..200u64)
        .step_by(2)
        .map(|i| {
            (
                keys[i as usize].clone(),
                i,
                Expiry::After(Duration::from_secs(100 + i)),
            )
        })
        .collect();
    cache.mset(&entries).await.unwrap();
    for (key, value, _) in &entries {
        let name = key.as_str();
        assert_eq!(
            cluster.cmd_on_key_owner(name, &["GET", name]).as_string(),
            Some(value.to_string())
        );
        let ttl = cluster
            .cmd_on_key_owner(name, &["PTTL", name])
            .as_int()
            .unwrap();
        let expected = i64::try_from(100 + value).unwrap() * 1000;
        assert!(
            (expected - 5_000..=expected).contains(&ttl),
            "{name}: {ttl}"
        );
    }

    let primaries = cluster.primaries();
    for &port in &primaries {
        cluster.node_cmd(port, &["CONFIG", "RESETSTAT"]);
    }
    let values: Vec<Option<u64>> = cache.mget(&keys).await.unwrap();
    let expected: Vec<Option<u64>> = (0..200u64).map(|i| (i % 2 == 0).then_some(i)).collect();
    assert_eq!(values, expected);
    // One MGET per slot group, each on the primary owning it.
    let mut groups: BTreeMap<u16, BTreeSet<u16>> = BTreeMap::new();
    for key in &keys {
        groups
            .entry(cluster.node_for_key(key.as_str()))
            .or_default()
            .insert(cluster.key_slot(key.as_str()));
    }
    assert_eq!(groups.len(), 3, "the keys span every primary");
    for &port in &primaries {
        assert_eq!(
            calls(&cluster, port, "mget"),
            groups[&port].len() as u64,
            "MGETs on {port}"
        );
    }
    // Edge cases: one key, nothing found.
    assert_eq!(cache.mget::<u64>(&keys[..1]).await.unwrap(), [Some(0)]);
    assert_eq!(
        cache
            .mget::<u64>(&[keys[1].clone(), keys[3].clone()])
            .await
            .unwrap(),
        [None, None]
    );
}

// 50 000 keys spread over every slot: delete_pattern visits every primary
// and deletes exactly the 20 000 matching keys (UNLINKs grouped by slot: a
// cross-slot UNLINK would fail); flush_tenant then removes the tenant's other
// cached keys, and leaves another tenant whose id extends it, and the
// tenant's counters and sessions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pattern_and_flush_tenant_over_50k_keys() {
    let cluster = RedisCluster::start(3, 0).await;
    let cache = cache_on(&cluster).await;
    let (t1, t10) = (tenant("t1"), tenant("t10"));
    let acl: Vec<_> = (0..20_000)
        .map(|i| RedisKey::acl(&t1, &user(&format!("u{i}")), &shard("s1")))
        .collect();
    let profiles: Vec<_> = (0..15_000)
        .map(|i| RedisKey::user_profile(&t1, &user(&format!("u{i}"))))
        .collect();
    let other: Vec<_> = (0..15_000)
        .map(|i| RedisKey::acl(&t10, &user(&format!("u{i}")), &shard("s1")))
        .collect();
    for keys in [&acl, &profiles, &other] {
        seed(&cache, keys).await;
    }
    let counter = RedisKey::counter(&t1, &CounterName::new("logins").unwrap());
    cache.increment(&counter, 1).await.unwrap();
    let session = RedisKey::session(&t1, &TokenHash::of_token("token"));
    cache.set(&session, &"state", TTL).await.unwrap();
    // Two tenants' key indexes besides the 50 002 keys; a purge leaves an
    // index (its members expire with their keys).
    assert_eq!(cluster.dbsize_total(), 50_004);
    let pattern = KeyPattern::tenant_acl(&t1);
    for port in cluster.primaries() {
        assert!(
            scan(&cluster, port, pattern.as_str()) > 5_000,
            "node {port}"
        );
    }

    assert_eq!(cache.delete_pattern(&pattern).await.unwrap(), 20_000);
    assert_eq!(cluster.dbsize_total(), 30_004);
    for port in cluster.primaries() {
        assert_eq!(scan(&cluster, port, pattern.as_str()), 0, "node {port}");
    }

    assert_eq!(cache.flush_tenant(&t1).await.unwrap(), 15_000);
    assert_eq!(cluster.dbsize_total(), 15_004);
    let t10_left: usize = cluster
        .primaries()
        .into_iter()
        .map(|port| scan(&cluster, port, "tenant:t10:*"))
        .sum();
    assert_eq!(t10_left, 15_000);
    assert_eq!(cache.increment(&counter, 1).await.unwrap(), 2);
    assert!(cache.exists(&session).await.unwrap());
}

// Counters and rate-limit windows on keys owned by every primary: the
// window script is loaded on all of them, and after a failover (the replica
// has the counts but maybe not the script) windows keep counting.
#[tokio::test]
async fn counters_and_rate_windows_survive_a_failover() {
    let cluster = RedisCluster::builder(3, 1)
        .node_timeout(Duration::from_secs(1))
        .start()
        .await;
    let cache = cache_on(&cluster).await;
    let t = tenant("t1");
    let action = CounterName::new("login").unwrap();
    let windows: Vec<_> = (0..12)
        .map(|i| RedisKey::rate_limit(&t, &user(&format!("u{i}")), &action))
        .collect();
    let counters: Vec<_> = (0..12)
        .map(|i| RedisKey::counter(&t, &CounterName::new(format!("c{i}")).unwrap()))
        .collect();
    let owners: BTreeSet<u16> = windows
        .iter()
        .chain(&counters)
        .map(|k| cluster.node_for_key(k.as_str()))
        .collect();
    assert_eq!(owners.len(), 3, "the keys span every primary");

    // Right after the cluster's start fred may still replace a connection
    // (seen twice under a loaded full run: the first command canceled with
    // "Connection closed unexpectedly"); this test is about the failover.
    wait_for("the cluster to answer", FAILOVER, || async {
        futures::future::join_all(windows.iter().chain(&counters).map(|k| cache.exists(k)))
            .await
            .iter()
            .all(Result::is_ok)
    })
    .await;
    let window = Duration::from_secs(60);
    for (key, counter) in windows.iter().zip(&counters) {
        assert_eq!(cache.increment_window(key, window).await.unwrap().count, 1);
        assert_eq!(cache.increment(counter, 5).await.unwrap(), 5);
    }
    for port in cluster.primaries() {
        let info = cluster
            .node_cmd(port, &["INFO", "memory"])
            .as_string()
            .unwrap();
        assert!(info.contains("number_of_cached_scripts:1"), "node {port}");
    }

    let victim = cluster.node_for_key(windows[0].as_str());
    cluster.failover(victim).await;
    wait_for("the window to count again", FAILOVER, || async {
        cache.increment_window(&windows[0], window).await.is_ok()
    })
    .await;
    for (key, counter) in windows.iter().zip(&counters) {
        let state = cache.increment_window(key, window).await.unwrap();
        assert!(state.count >= 2, "{key}: {state:?}");
        assert!(state.resets_in <= window && state.resets_in > Duration::ZERO);
        let pttl = cluster
            .cmd_on_key_owner(key.as_str(), &["PTTL", key.as_str()])
            .as_int()
            .unwrap();
        assert!(pttl > 0, "{key} keeps its window");
        assert_eq!(cache.increment(counter, 1).await.unwrap(), 6);
    }
}

// Two-tier rules on a cluster, whichever nodes the two subscribers sit on:
// a change on A is served by B within 1 s; invalidating tenant "a" (pattern
// deletion over every primary) leaves tenant "ab" in Redis and in B's L1.
#[tokio::test]
async fn two_tier_changes_and_tenant_isolation() {
    let cluster = RedisCluster::start(3, 0).await;
    let (a, b) = (
        instance(&cluster, |_| {}).await,
        instance(&cluster, |_| {}).await,
    );
    let key = shard_key("t", "s");
    a.set(&key, &1, TTL).await.unwrap();
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1));
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1), "now in B's L1");
    let start = Instant::now();
    a.set(&key, &2, TTL).await.unwrap();
    wait_for("B to see the new value", Duration::from_secs(1), || async {
        b.get::<u32>(&key).await.unwrap() == Some(2)
    })
    .await;
    assert!(start.elapsed() < Duration::from_secs(1));
    assert!(b.stats().invalidations_applied >= 1);

    let keys_a: Vec<_> = (0..20)
        .map(|i| RedisKey::user_profile(&tenant("a"), &user(&scattered(i))))
        .collect();
    let key_ab = RedisKey::user_profile(&tenant("ab"), &user("u"));
    for key in keys_a.iter().chain([&key_ab]) {
        a.set(key, &"x", TTL).await.unwrap();
        assert!(b.get::<String>(key).await.unwrap().is_some());
    }
    // Across nodes B hears A's invalidations a little after A's PUBLISH
    // returned, and each one may drop (or prevent) a fill: wait until B has
    // heard them all, then put ab in B's L1.
    let sent = a.stats().invalidations_sent;
    wait_for("B to hear A's writes", Duration::from_secs(1), || async {
        b.stats().invalidations_received >= sent
    })
    .await;
    assert!(b.get::<String>(&key_ab).await.unwrap().is_some());
    let l1_hits = b.stats().l1_hits;
    assert!(b.get::<String>(&key_ab).await.unwrap().is_some());
    assert_eq!(b.stats().l1_hits, l1_hits + 1, "ab is in B's L1");
    let owners: BTreeSet<u16> = keys_a
        .iter()
        .map(|k| cluster.node_for_key(k.as_str()))
        .collect();
    assert_eq!(owners.len(), 3, "tenant a spans every primary");
    let deleted = a
        .invalidate(&Invalidation::Tenant {
            tenant_id: tenant("a"),
        })
        .await
        .unwrap();
    assert_eq!(deleted, 20);
    wait_for("B to drop tenant a", Duration::from_secs(1), || async {
        b.get::<String>(&keys_a[0]).await.unwrap().is_none()
    })
    .await;
    for key in &keys_a {
        assert!(b.get::<String>(key).await.unwrap().is_none());
    }
    let l1_hits = b.stats().l1_hits;
    assert!(b.get::<String>(&key_ab).await.unwrap().is_some());
    assert_eq!(b.stats().l1_hits, l1_hits + 1, "ab is still in B's L1");
    assert_eq!(
        cluster.cmd_on_key_owner(key_ab.as_str(), &["EXISTS", key_ab.as_str()]),
        Reply::Int(1)
    );
}

// A reconnect of A's subscriber on a cluster: with the subscribed
// connections killed on every node, an invalidation from B is lost to A's
// channel; once A re-subscribes it replays it from the invalidation stream
// (on whichever node owns the stream's slot), serves no old value, and
// keeps the rest of its L1.
#[tokio::test]
async fn a_reconnect_on_a_cluster_replays_from_the_stream() {
    let cluster = RedisCluster::start(3, 0).await;
    // A reconnects slowly, so its outage is wide enough to invalidate into.
    let a = instance(&cluster, |c| {
        c.reconnect.base_delay = Duration::from_millis(400);
        c.reconnect.max_delay = Duration::from_millis(400);
    })
    .await;
    let b = instance(&cluster, |_| {}).await;
    let key = shard_key("t", "s");
    let kept = shard_key("t", &scattered(7));
    let name = key.as_str();
    b.set(&key, &"old", TTL).await.unwrap();
    b.set(&kept, &"kept", TTL).await.unwrap();
    wait_for("A to hear B's writes", Duration::from_secs(2), || async {
        a.stats().invalidations_received >= 2
    })
    .await;
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("old"));
    assert_eq!(
        a.get::<String>(&kept).await.unwrap().as_deref(),
        Some("kept")
    );
    let hits = a.stats().l1_hits;
    assert_eq!(
        a.get::<String>(&key).await.unwrap().as_deref(),
        Some("old"),
        "in A's L1"
    );
    assert_eq!(a.stats().l1_hits, hits + 1);

    let killed: i64 = cluster
        .primaries()
        .into_iter()
        .map(|port| {
            cluster
                .node_cmd(port, &["CLIENT", "KILL", "TYPE", "pubsub"])
                .as_int()
                .unwrap()
        })
        .sum();
    assert_eq!(killed, 2, "A's and B's subscribed connections");
    wait_for("A to notice", Duration::from_secs(2), || async {
        !a.l1_live()
    })
    .await;
    cluster.cmd_on_key_owner(name, &["SET", name, r#""new""#]);
    b.invalidate(&Invalidation::for_key(&key).unwrap())
        .await
        .unwrap();
    cluster.cmd_on_key_owner(name, &["SET", name, r#""new""#]);

    wait_for("A to re-subscribe", Duration::from_secs(5), || async {
        a.l1_live()
    })
    .await;
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("new"));
    let hits = a.stats().l1_hits;
    assert_eq!(
        a.get::<String>(&kept).await.unwrap().as_deref(),
        Some("kept")
    );
    assert_eq!(a.stats().l1_hits, hits + 1, "the rest of A's L1 is kept");
    assert_eq!(a.stats().l1_flushes, 0);
    assert!(a.stats().l1_replays >= 1 && a.stats().invalidations_replayed >= 1);
}

// No resurrection on a cluster: a load that started before an invalidation
// (published through another node) puts its old value neither into L1 nor
// into Redis.
#[tokio::test]
async fn no_resurrection_on_a_cluster() {
    use std::sync::Arc;
    use tokio::sync::Notify;

    let cluster = RedisCluster::start(3, 0).await;
    let (a, b) = (
        instance(&cluster, |_| {}).await,
        instance(&cluster, |_| {}).await,
    );
    let key = shard_key("t", "resurrect");
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
    // The lease is a side key in the key's slot (one script settles both).
    let lease = shared_types::RedisKey::load_lease_of(key.as_str());
    let slot = |k: &str| cluster.cmd_on_key_owner(k, &["CLUSTER", "KEYSLOT", k]);
    assert_eq!(slot(&lease), slot(key.as_str()));
    let held = cluster.cmd_on_key_owner(&lease, &["EXISTS", &lease]);
    assert_eq!(held, Reply::Int(1), "the lease is held");
    b.invalidate(&Invalidation::for_key(&key).unwrap())
        .await
        .unwrap();
    wait_for(
        "A to apply the invalidation",
        Duration::from_secs(1),
        || async { a.stats().invalidations_applied >= 1 },
    )
    .await;
    release.notify_one();
    assert_eq!(loading.await.unwrap().unwrap(), "old");
    let exists = cluster.cmd_on_key_owner(key.as_str(), &["EXISTS", key.as_str()]);
    assert_eq!(exists, Reply::Int(0), "not written to Redis");
    assert_eq!(a.get::<String>(&key).await.unwrap(), None, "not in A's L1");
}

// The whole cluster down: the L1 keeps serving what it holds, loaders still
// run on a miss, writes fail with the unavailable error.
#[tokio::test]
async fn cluster_down_serves_l1_and_runs_loaders() {
    let mut cluster = RedisCluster::start(3, 0).await;
    let a = instance(&cluster, |_| {}).await;
    let key = shard_key("t", "kept");
    a.set(&key, &"cached", TTL).await.unwrap();
    for port in cluster.primaries() {
        cluster.stop_node(port);
    }
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
}

// On a cluster the announcement follows the write's outcome, and goes out
// when that outcome is a failure too: a SET that timed out while every
// primary held its writes (and that Redis ran afterwards) still makes other
// instances drop their copy.
#[tokio::test]
async fn a_timed_out_write_on_a_cluster_is_still_announced() {
    let cluster = RedisCluster::start(3, 0).await;
    let (a, b) = (
        instance(&cluster, |_| {}).await,
        instance(&cluster, |_| {}).await,
    );
    let key = shard_key("t", "timed-out");
    b.set(&key, &1u32, TTL).await.unwrap();
    for _ in 0..2 {
        assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1));
    }
    // Longer than the 500 ms command timeout, shorter than fred's
    // unresponsive limit (1 s), which would drop the paused command.
    for port in cluster.primaries() {
        cluster.node_cmd(port, &["CLIENT", "PAUSE", "700", "WRITE"]);
    }
    assert!(
        a.set(&key, &2u32, TTL).await.is_err(),
        "the SET should time out"
    );
    wait_for(
        "Redis to run the paused SET",
        Duration::from_secs(5),
        || async {
            cluster
                .cmd_on_key_owner(key.as_str(), &["GET", key.as_str()])
                .as_string()
                .as_deref()
                == Some("2")
        },
    )
    .await;
    wait_for("B to drop its copy", Duration::from_secs(3), || async {
        b.get::<u32>(&key).await.unwrap() == Some(2)
    })
    .await;
}

// A two-tier mget of keys in many slots reads values and TTLs with one
// script call per hash slot (a script may only touch one slot), each on the
// primary owning it, and returns them in the caller's order.
#[tokio::test]
async fn two_tier_mget_reads_one_script_call_per_slot() {
    let cluster = RedisCluster::start(3, 0).await;
    let writer = cache_on(&cluster).await;
    let keys: Vec<RedisKey> = (0..120).map(|i| shard_key("t", &scattered(i))).collect();
    let entries: Vec<_> = (0..120u64)
        .step_by(2)
        .map(|i| (keys[i as usize].clone(), i, Expiry::After(TTL)))
        .collect();
    writer.mset(&entries).await.unwrap();
    let reader = instance(&cluster, |_| {}).await;
    let primaries = cluster.primaries();
    for &port in &primaries {
        cluster.node_cmd(port, &["CONFIG", "RESETSTAT"]);
    }
    let values: Vec<Option<u64>> = reader.mget(&keys).await.unwrap();
    let expected: Vec<Option<u64>> = (0..120u64).map(|i| (i % 2 == 0).then_some(i)).collect();
    assert_eq!(values, expected);
    let mut slots: BTreeMap<u16, BTreeSet<u16>> = BTreeMap::new();
    for key in &keys {
        slots
            .entry(cluster.node_for_key(key.as_str()))
            .or_default()
            .insert(cluster.key_slot(key.as_str()));
    }
    for &port in &primaries {
        // evalsha, or evalsha plus a script load the first time on a node.
        let scripts = calls(&cluster, port, "evalsha");
        assert!(
            (slots[&port].len() as u64..=2 * slots[&port].len() as u64).contains(&scripts),
            "{scripts} script calls on {port} for {} slots",
            slots[&port].len()
        );
    }
    // The values found are now L1 hits.
    let before = reader.stats().l1_hits;
    let again: Vec<Option<u64>> = reader.mget(&keys).await.unwrap();
    assert_eq!(again, expected);
    assert_eq!(reader.stats().l1_hits - before, 60);
}
