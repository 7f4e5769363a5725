//! A real 3-primary Redis Cluster: configuration from `REDIS_URL`, routing,
//! health per primary, and recovery from failovers.

use std::time::Duration;

use redis_connection::fred::prelude::*;
use redis_connection::{
    ConnectionStatus, HealthStatus, ReconnectConfig, RedisConfig, RedisConnectionManager, Topology,
};
use test_support::{RedisCluster, Reply, wait_for};

/// How long Redis may take to replace a dead primary: the node timeout (1 s
/// here) twice over for failure detection and the election, with room for a
/// loaded 2-core box.
const FAILOVER: Duration = Duration::from_secs(15);

/// A config read the way a service reads it, `REDIS_URL` = `url`, with the
/// short timeouts of the other tests.
fn config_from_url(url: &str) -> RedisConfig {
    test_support::init_tracing();
    let mut config =
        RedisConfig::from_lookup(|name| (name == "REDIS_URL").then(|| url.to_owned())).unwrap();
    config.pool_size = 2;
    config.command_timeout = Duration::from_millis(300);
    config.connect_timeout = Duration::from_millis(500);
    config.reconnect = ReconnectConfig::default()
        .with_max_attempts(0)
        .with_base_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(200))
        .with_factor(2)
        .with_jitter(Duration::from_millis(10));
    config
}

/// 30 fixed key names; on a 3-primary cluster they hash to all three.
fn keys() -> Vec<String> {
    (0..30).map(|i| format!("key:{i}")).collect()
}

async fn get(manager: &RedisConnectionManager, key: &str) -> Result<Option<String>, Error> {
    manager.pool().get(key).await
}

// REDIS_URL=redis-cluster://...?node=... (every primary as a seed), a single
// seed and a comma-separated seed list all connect; commands reach the
// primary that owns each key, across all three, as a client that does not
// follow redirections sees.
#[tokio::test]
async fn redis_url_connects_and_routes_to_every_primary() {
    let cluster = RedisCluster::start(3, 0).await;
    let seeds = config_from_url(&cluster.seed_url());
    let Topology::Cluster { nodes } = &seeds.topology else {
        panic!("not a cluster config: {:?}", seeds.topology);
    };
    assert_eq!(nodes.len(), 3);
    let manager = RedisConnectionManager::connect(seeds).await.unwrap();
    for key in keys() {
        let _: () = manager
            .pool()
            .set(key.as_str(), format!("v:{key}"), None, None, false)
            .await
            .unwrap();
        assert_eq!(
            cluster.cmd_on_key_owner(&key, &["GET", &key]).as_string(),
            Some(format!("v:{key}"))
        );
    }
    let owners: std::collections::BTreeSet<u16> =
        keys().iter().map(|k| cluster.node_for_key(k)).collect();
    assert_eq!(owners.len(), 3, "the keys span every primary");

    let one_seed = format!("redis-cluster://127.0.0.1:{}", cluster.primaries()[1]);
    let list: Vec<String> = cluster
        .primaries()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    let seed_list = format!("redis-cluster://{}", list.join(","));
    for url in [one_seed, seed_list] {
        let manager = RedisConnectionManager::connect(config_from_url(&url))
            .await
            .unwrap();
        for key in keys() {
            assert_eq!(get(&manager, &key).await.unwrap(), Some(format!("v:{key}")));
        }
        wait_for("health to be healthy", Duration::from_secs(2), || async {
            manager.health_check().await.status == HealthStatus::Healthy
        })
        .await;
    }
}

// health_check PINGs every primary, not one: whichever primary is slowed
// down (CLIENT PAUSE), the report is degraded with that primary's latency.
#[tokio::test]
async fn health_check_probes_every_primary() {
    let cluster = RedisCluster::start(3, 0).await;
    let mut config = config_from_url(&cluster.seed_url());
    config.command_timeout = Duration::from_secs(2);
    config.health_degraded_threshold = Duration::from_millis(100);
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    // A loaded box can make a first PING slow: healthy within a deadline.
    wait_for("health to be healthy", Duration::from_secs(2), || async {
        manager.health_check().await.status == HealthStatus::Healthy
    })
    .await;
    for primary in cluster.primaries() {
        // Returns at once; every client of that node then waits 400 ms.
        let paused = cluster.node_cmd(primary, &["CLIENT", "PAUSE", "400", "ALL"]);
        assert_eq!(paused, Reply::Simple("OK".into()));
        let report = manager.health_check().await;
        assert_eq!(
            report.status,
            HealthStatus::Degraded,
            "{primary}: {report:?}"
        );
        assert!(
            report.latency.unwrap() >= Duration::from_millis(300),
            "{primary}: {report:?}"
        );
        wait_for("the pause to end", Duration::from_secs(2), || async {
            manager.health_check().await.status == HealthStatus::Healthy
        })
        .await;
    }
}

// fred 10.1 limitation, pinned: with a primary dead and no replica to take
// over, Redis (cluster-require-full-coverage no) still serves the other
// primaries' slots, but fred's cluster router re-syncs by connecting to every
// primary CLUSTER SLOTS names, fails on the dead one, and serves no slot at
// all until the node is back. Health probes each primary on its own
// connection, so it reports what the cluster does: degraded (one primary of
// three down), with `connected: false` for our stuck pool. When the node
// returns the manager recovers by itself.
#[tokio::test]
async fn dead_primary_without_replica_stops_every_slot() {
    let mut cluster = RedisCluster::builder(3, 0)
        .node_timeout(Duration::from_secs(1))
        .args(["--cluster-require-full-coverage", "no"])
        .start()
        .await;
    let manager = RedisConnectionManager::connect(config_from_url(&cluster.seed_url()))
        .await
        .unwrap();
    let victim = cluster.primaries()[0];
    let live_key = keys()
        .into_iter()
        .find(|k| cluster.node_for_key(k) != victim)
        .unwrap();
    let _: () = manager
        .pool()
        .set(live_key.as_str(), "v", None, None, false)
        .await
        .unwrap();

    cluster.stop_node(victim);
    let mut status = manager.watch_status();
    tokio::time::timeout(
        Duration::from_secs(5),
        status.wait_for(|s| *s == ConnectionStatus::Disconnected),
    )
    .await
    .expect("the pool noticed the dead primary")
    .unwrap();
    // Redis serves the live key; we cannot.
    assert_eq!(
        cluster
            .cmd_on_key_owner(&live_key, &["GET", &live_key])
            .as_string(),
        Some("v".to_owned())
    );
    assert!(get(&manager, &live_key).await.is_err());
    let health = manager.health_check().await;
    assert_eq!(health.status, HealthStatus::Degraded, "{health:?}");
    assert!(!health.connected);
    let error = health.error.unwrap();
    assert!(
        error.contains("1 of 3 cluster primaries did not answer"),
        "{error}"
    );

    cluster.restart_node(victim);
    wait_for(
        "the pool to serve again",
        Duration::from_secs(10),
        || async { get(&manager, &live_key).await.is_ok() },
    )
    .await;
    wait_for("health to recover", Duration::from_secs(5), || async {
        manager.health_check().await.status == HealthStatus::Healthy
    })
    .await;
}

// After a coordinated failover, and after a crash that Redis answers by
// promoting the replica, commands for the moved slots succeed again with no
// call to the manager, and health is healthy.
#[tokio::test]
async fn recovers_after_failover_and_after_a_crash() {
    let mut cluster = RedisCluster::builder(3, 1)
        .node_timeout(Duration::from_secs(1))
        .start()
        .await;
    let manager = RedisConnectionManager::connect(config_from_url(&cluster.seed_url()))
        .await
        .unwrap();
    let key = "failover:key";
    let _: () = manager
        .pool()
        .set(key, "v1", None, None, false)
        .await
        .unwrap();

    let old = cluster.node_for_key(key);
    let new = cluster.failover(old).await;
    wait_for(
        "the moved slot to be served",
        Duration::from_secs(5),
        || async {
            manager
                .pool()
                .set::<(), _, _>(key, "v2", None, None, false)
                .await
                .is_ok()
        },
    )
    .await;
    assert_eq!(cluster.node_for_key(key), new);
    assert_eq!(
        cluster.cmd_on_key_owner(key, &["GET", key]).as_string(),
        Some("v2".to_owned())
    );

    // The replica is the old primary: a crash of the new one hands the slot back.
    cluster.stop_node(new);
    wait_for("Redis to promote the replica", FAILOVER, || async {
        cluster.primaries().contains(&old)
    })
    .await;
    wait_for(
        "the slot to be served again",
        Duration::from_secs(10),
        || async {
            get(&manager, key)
                .await
                .is_ok_and(|v| v.as_deref() == Some("v2"))
        },
    )
    .await;
    wait_for("health to recover", Duration::from_secs(5), || async {
        manager.health_check().await.status == HealthStatus::Healthy
    })
    .await;
}
