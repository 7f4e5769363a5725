//! A write and its announcement are atomic in Redis: a subscriber that
//! reads the key the moment an announcement arrives finds the write done,
//! on a single server and on a cluster, even when Redis has forgotten the
//! write's script (every write below follows a `SCRIPT FLUSH`, as after a
//! restart, so each one goes through the `NOSCRIPT` reload). The same for
//! an `mset`'s keys.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_cache::{CacheService, Expiry};
use test_support::{RawClient, RedisCluster, RedisServer, Reply, wait_for};

use crate::shard_key;

const TTL: Duration = Duration::from_secs(600);

/// Keys written, each set, expired and deleted once; as many again by one
/// `mset`.
const ROUNDS: usize = 12;

/// The value of every key of the `mset`.
const MSET_VALUE: u32 = 100;

/// What the subscriber found on one announcement: the shard named by the
/// channel, the key's value read at once, and the value the writer's
/// current operation leaves.
type Seen = (String, Option<String>, Option<String>);

/// A raw subscriber (independent of the code under test) on `addr`: on
/// every announcement of a shard of tenant `t` it reads the key from the
/// node on the port `owner` gives, and records it with `expected`'s
/// content at that moment.
fn subscriber(
    addr: &str,
    owner: impl Fn(&str) -> u16 + Send + 'static,
    expected: Arc<Mutex<Option<String>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
) {
    let mut connection = RawClient::connect(addr, None).unwrap();
    connection
        .cmd(&["PSUBSCRIBE", "cache:invalidate:shard:t:*"])
        .unwrap();
    std::thread::spawn(move || {
        let mut readers: BTreeMap<u16, RawClient> = BTreeMap::new();
        while let Ok(Reply::Array(Some(parts))) = connection.read_reply() {
            let Some(channel) = parts.get(2).and_then(Reply::as_string) else {
                continue;
            };
            let Some(shard) = channel.strip_prefix("cache:invalidate:shard:t:") else {
                continue;
            };
            let key = shard_key("t", shard);
            let port = owner(key.as_str());
            let reader = readers
                .entry(port)
                .or_insert_with(|| RawClient::connect(&format!("127.0.0.1:{port}"), None).unwrap());
            let value = reader.cmd(&["GET", key.as_str()]).unwrap().as_string();
            let expected = expected.lock().unwrap().clone();
            seen.lock()
                .unwrap()
                .push((shard.to_owned(), value, expected));
        }
    });
}

/// Sets, expires and deletes `ROUNDS` keys through `cache`, each after
/// `flush_scripts`, then writes `ROUNDS` more keys with one `mset`, and
/// checks what the subscriber on `addr` found: one announcement per key
/// written, each finding the write done.
async fn check_announcements(
    cache: &CacheService,
    addr: &str,
    owner: impl Fn(&str) -> u16 + Send + 'static,
    flush_scripts: impl Fn(),
) {
    let expected = Arc::new(Mutex::new(None));
    let seen = Arc::new(Mutex::new(Vec::new()));
    subscriber(addr, owner, expected.clone(), seen.clone());
    let mut writes = 0;
    for round in 0..ROUNDS {
        let shard = format!("s{round}");
        let key = shard_key("t", &shard);
        for step in 0..3 {
            flush_scripts();
            let leaves = (step < 2).then(|| round.to_string());
            *expected.lock().unwrap() = leaves;
            match step {
                0 => cache.set(&key, &round, TTL).await.unwrap(),
                1 => assert!(cache.expire(&key, TTL).await.unwrap()),
                _ => assert!(cache.delete(&key).await.unwrap()),
            }
            writes += 1;
            // The next write starts once this one's announcement was read.
            wait_for("the announcement", Duration::from_secs(5), || async {
                seen.lock().unwrap().len() >= writes
            })
            .await;
        }
    }
    flush_scripts();
    *expected.lock().unwrap() = Some(MSET_VALUE.to_string());
    let batch: Vec<_> = (0..ROUNDS)
        .map(|round| {
            let key = shard_key("t", &format!("m{round}"));
            (key, MSET_VALUE, Expiry::After(TTL))
        })
        .collect();
    cache.mset(&batch).await.unwrap();
    writes += ROUNDS;
    wait_for(
        "the mset's announcements",
        Duration::from_secs(5),
        || async { seen.lock().unwrap().len() >= writes },
    )
    .await;
    let seen = seen.lock().unwrap().clone();
    for (shard, value, expected) in &seen {
        assert_eq!(
            value, expected,
            "an announcement of {shard} arrived before its write was visible: {seen:?}"
        );
    }
    assert_eq!(seen.len(), writes, "one announcement per write: {seen:?}");
}

// On a single server, the SET, PEXPIRE or UNLINK and its PUBLISH run as one
// script: a subscriber reading the key on the announcement finds the new
// value (or its absence), even when each write's script had to be loaded
// again first; and each write is announced exactly once.
#[tokio::test]
async fn a_subscriber_never_hears_of_a_write_before_it_is_visible_on_a_single_server() {
    let redis = RedisServer::start().await;
    let cache = crate::two_tier::instance(&redis, |_| {}).await;
    let port = redis.port();
    check_announcements(
        &cache,
        &redis.addr(),
        move |_| port,
        || {
            redis.cmd(&["SCRIPT", "FLUSH"]);
        },
    )
    .await;
}

// On a cluster too: the script names only the written key (the tenant
// index, in another slot, is updated by a command of its own), so the
// write and its PUBLISH run together on the key's primary.
#[tokio::test]
async fn a_subscriber_never_hears_of_a_write_before_it_is_visible_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0).await;
    let mut config = test_support::fixtures::cluster_config(&cluster);
    config.command_timeout = Duration::from_secs(2);
    let cache =
        test_support::fixtures::two_tier(config, test_support::fixtures::two_tier_config()).await;
    let owners: BTreeMap<String, u16> = (0..ROUNDS)
        .flat_map(|round| [format!("s{round}"), format!("m{round}")])
        .map(|shard| {
            let key = shard_key("t", &shard);
            (key.as_str().to_owned(), cluster.node_for_key(key.as_str()))
        })
        .collect();
    let primaries = cluster.primaries();
    // Published on one primary, a message reaches every node's subscribers.
    let addr = format!("127.0.0.1:{}", primaries[0]);
    check_announcements(
        &cache,
        &addr,
        move |key| owners[key],
        || {
            for port in &primaries {
                cluster.node_cmd(*port, &["SCRIPT", "FLUSH"]);
            }
        },
    )
    .await;
}
