//! The cluster harness: each capability the other crates' cluster tests rely on.

use std::collections::BTreeSet;
use std::time::Duration;

use test_support::{NodeRole, NodeState, RedisCluster, Reply, wait_for};

/// How long peers may take to notice a dead or frozen node: the harness's
/// 1.5 s node timeout plus failure-report gossip, with room for a loaded box.
const DETECTION: Duration = Duration::from_secs(15);

fn node(cluster: &RedisCluster, port: u16) -> test_support::ClusterNode {
    cluster
        .nodes()
        .into_iter()
        .find(|n| n.port == port)
        .expect("a node of the cluster")
}

// Three primaries come up with cluster_state:ok on every node and all 16384
// slots split among exactly those three; the seed URL names each of them, and
// dropping the cluster kills every node.
#[tokio::test]
async fn three_primaries_start_ok_with_all_slots_covered() {
    let cluster = RedisCluster::start(3, 0).await;
    let ports = cluster.ports();
    assert_eq!(ports.len(), 3);
    assert_eq!(cluster.primaries(), ports);
    assert!(cluster.replicas().is_empty());
    for &port in &ports {
        assert_eq!(cluster.cluster_state(port), "ok", "node {port}");
        let info = cluster
            .node_cmd(port, &["CLUSTER", "INFO"])
            .as_string()
            .unwrap();
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_slots_ok:16384"), "{info}");
        assert!(info.contains("cluster_known_nodes:3"), "{info}");
    }
    let nodes = cluster.nodes();
    assert!(nodes.iter().all(|n| n.state == NodeState::Running));
    assert!(nodes.iter().all(|n| n.slots > 0), "{nodes:?}");
    assert_eq!(nodes.iter().map(|n| n.slots).sum::<usize>(), 16_384);
    assert_eq!(
        cluster.seed_url(),
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            ports[0], ports[1], ports[2]
        )
    );

    drop(cluster);
    for port in ports {
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "node {port} survived the cluster's handle"
        );
    }
}

// Keys written on the primary that owns them are readable there, every other
// primary redirects them (so the owner found is the real one), and
// dbsize_total counts them until flushall empties the cluster.
#[tokio::test]
async fn keys_live_on_their_owning_primary() {
    let cluster = RedisCluster::start(3, 0).await;
    // The example from the Redis Cluster specification.
    assert_eq!(cluster.key_slot("foo"), 12_182);

    let keys: Vec<String> = (0..30).map(|i| format!("key:{i}")).collect();
    let mut owners = BTreeSet::new();
    for key in &keys {
        let value = format!("value of {key}");
        assert_eq!(
            cluster.cmd_on_key_owner(key, &["SET", key, &value]),
            Reply::Simple("OK".into())
        );
        let owner = cluster.node_for_key(key);
        owners.insert(owner);
        assert_eq!(
            cluster.node_cmd(owner, &["GET", key]).as_string(),
            Some(value)
        );
        for other in cluster.primaries().into_iter().filter(|&p| p != owner) {
            let reply = cluster.node_cmd(other, &["GET", key]);
            assert!(
                matches!(&reply, Reply::Error(e) if e.starts_with("MOVED") && e.ends_with(&format!(":{owner}"))),
                "node {other} answered {reply:?} for {key}, owned by {owner}"
            );
        }
    }
    // Fixed key names, so this is deterministic: they hash to all three.
    assert_eq!(owners.len(), 3, "{owners:?}");
    assert_eq!(cluster.dbsize_total(), 30);

    cluster.flushall();
    assert_eq!(cluster.dbsize_total(), 0);
}

// With one replica per primary, failover() promotes the primary's replica
// through a coordinated hand-over: it reports itself primary, the old primary
// follows it, every node is ok again, and the key written before is served by
// the new primary.
#[tokio::test]
async fn failover_promotes_the_replica() {
    let cluster = RedisCluster::start(3, 1).await;
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    assert_eq!(cluster.replicas().len(), 3);
    for &primary in &primaries {
        assert_eq!(cluster.replicas_of(primary).len(), 1, "{primary}");
    }

    let key = "failover:key";
    assert_eq!(
        cluster.cmd_on_key_owner(key, &["SET", key, "v"]),
        Reply::Simple("OK".into())
    );
    let old = cluster.node_for_key(key);
    let replica = cluster.replicas_of(old)[0];

    let new = cluster.failover(old).await;
    assert_eq!(new, replica);
    assert_eq!(node(&cluster, new).role, NodeRole::Primary);
    assert_eq!(
        node(&cluster, old).role,
        NodeRole::Replica { primary_port: new }
    );
    assert!(node(&cluster, new).slots > 0);
    assert_eq!(node(&cluster, old).slots, 0);
    for port in cluster.ports() {
        assert_eq!(cluster.cluster_state(port), "ok", "node {port}");
    }
    assert_eq!(cluster.node_for_key(key), new);
    assert_eq!(
        cluster.cmd_on_key_owner(key, &["GET", key]).as_string(),
        Some("v".to_owned())
    );
}

// A stopped primary cannot hand over, so failover() forces its replica's
// promotion; restarted, the old primary rejoins under its old identity as the
// new primary's replica. (A long node timeout keeps Redis's own automatic
// failover out of the way, so the forced path is the one exercised.)
#[tokio::test]
async fn failover_of_a_stopped_primary_then_it_rejoins_as_replica() {
    let mut cluster = RedisCluster::builder(3, 1)
        .node_timeout(Duration::from_secs(5))
        .start()
        .await;
    let old = cluster.primaries()[0];
    let old_id = node(&cluster, old).id;
    let replica = cluster.replicas_of(old)[0];

    cluster.stop_node(old);
    assert_eq!(node(&cluster, old).state, NodeState::Stopped);
    assert!(cluster.try_node_cmd(old, &["PING"]).is_err());

    let new = cluster.failover(old).await;
    assert_eq!(new, replica);
    assert_eq!(node(&cluster, new).role, NodeRole::Primary);
    assert!(!cluster.primaries().contains(&old));

    cluster.restart_node(old);
    cluster.wait_until_ok().await;
    let rejoined = node(&cluster, old);
    assert_eq!(rejoined.id, old_id);
    assert_eq!(rejoined.state, NodeState::Running);
    assert_eq!(rejoined.role, NodeRole::Replica { primary_port: new });
}

// A stopped primary without replica takes the cluster down (its slots are
// lost); restarted on the same port with the same nodes.conf, it rejoins with
// its old identity and slots, and every node is ok again. (Peers clear a
// primary's failure flag only two node timeouts after setting it: a short
// node timeout keeps the test quick.)
#[tokio::test]
async fn stopped_node_rejoins_after_restart() {
    let mut cluster = RedisCluster::builder(3, 0)
        .node_timeout(Duration::from_secs(1))
        .start()
        .await;
    let victim = cluster.primaries()[0];
    let witness = cluster.primaries()[1];
    let before = node(&cluster, victim);

    cluster.stop_node(victim);
    assert_eq!(node(&cluster, victim).state, NodeState::Stopped);
    wait_for("peers to notice the lost slots", DETECTION, || async {
        cluster.cluster_state(witness) == "fail"
    })
    .await;

    cluster.restart_node(victim);
    cluster.wait_until_ok().await;
    let after = node(&cluster, victim);
    assert_eq!(after.id, before.id);
    assert_eq!(after.state, NodeState::Running);
    assert_eq!(after.role, NodeRole::Primary);
    assert_eq!(after.slots, before.slots);
    for port in cluster.ports() {
        assert_eq!(cluster.cluster_state(port), "ok", "node {port}");
    }
}

// A paused node is reported as such and its peers declare it failed; resumed,
// it is welcomed back and the cluster is ok again.
#[tokio::test]
async fn paused_node_fails_then_recovers_when_resumed() {
    let mut cluster = RedisCluster::builder(3, 0)
        .node_timeout(Duration::from_secs(1))
        .start()
        .await;
    let victim = cluster.primaries()[2];
    let witness = cluster.primaries()[0];

    cluster.pause_node(victim);
    assert_eq!(node(&cluster, victim).state, NodeState::Paused);
    wait_for("peers to notice the frozen node", DETECTION, || async {
        cluster.cluster_state(witness) == "fail"
    })
    .await;

    cluster.resume_node(victim);
    cluster.wait_until_ok().await;
    assert_eq!(node(&cluster, victim).state, NodeState::Running);
    assert_eq!(cluster.primaries().len(), 3);
}
