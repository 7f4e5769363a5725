//! Pub/sub on a real 3-primary Redis Cluster: delivery across nodes, and
//! subscriptions that survive the failover of the node they live on.

use std::time::{Duration, Instant};

use redis_connection::RedisConnectionManager;
use redis_connection::fred::interfaces::{ClientLike, ClusterInterface};
use redis_pubsub::{PubSub, PubSubEvent, Subscription};
use test_support::{RedisCluster, Reply};

use crate::{WAIT, next, next_message, until_subscribed};

/// How long Redis may take to replace a dead primary (1 s node timeout).
const FAILOVER: Duration = Duration::from_secs(15);

async fn pubsub_on(cluster: &RedisCluster) -> PubSub {
    let mut config = test_support::fixtures::cluster_config(cluster);
    config.pool_size = 1;
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    PubSub::new(manager).await.unwrap()
}

/// The running node(s) holding a subscribed connection, asked behind fred's back.
fn subscriber_nodes(cluster: &RedisCluster) -> Vec<u16> {
    cluster
        .ports()
        .into_iter()
        .filter(|&port| {
            cluster
                .try_node_cmd(port, &["CLIENT", "LIST", "TYPE", "pubsub"])
                .ok()
                .and_then(|r| r.as_string())
                .is_some_and(|list| list.lines().any(|l| !l.trim().is_empty()))
        })
        .collect()
}

/// The one element of `ports`.
fn only(ports: &[u16]) -> u16 {
    assert_eq!(ports.len(), 1, "one subscribed connection: {ports:?}");
    ports[0]
}

/// Publishes numbered probes through `via` until one reaches `sub`, skipping
/// connection events; panics after `timeout`. Messages published while a
/// subscription is being restored are lost (pub/sub is fire-and-forget), so
/// one probe is not enough.
async fn until_a_probe_arrives(
    cluster: &RedisCluster,
    via: impl Fn(&RedisCluster) -> u16,
    sub: &mut Subscription,
    timeout: Duration,
) {
    let start = Instant::now();
    for n in 0.. {
        assert!(start.elapsed() < timeout, "no probe arrived in {timeout:?}");
        let probe = format!("probe-{n}");
        let _ = cluster.try_node_cmd(via(cluster), &["PUBLISH", "news", &probe]);
        let wait = tokio::time::timeout(Duration::from_millis(200), async {
            loop {
                match sub.recv().await {
                    Some(PubSubEvent::Message(m)) if m.payload.as_ref() == probe.as_bytes() => {
                        return;
                    }
                    Some(_) => {}
                    None => panic!("subscription ended"),
                }
            }
        });
        if wait.await.is_ok() {
            return;
        }
    }
}

// A subscriber sits on one node, yet a message published on any primary
// reaches it: Redis forwards PUBLISH over the cluster bus. PUBLISH counts only
// the receivers on the node that took it.
#[tokio::test]
async fn published_on_any_node_reaches_the_subscriber() {
    let cluster = RedisCluster::start(3, 0).await;
    let pubsub = pubsub_on(&cluster).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    let mut pat = pubsub.psubscribe("ne*").await.unwrap();
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;
    let home = only(&subscriber_nodes(&cluster));

    for port in cluster.primaries() {
        let text = format!("from {port}");
        let count = cluster.node_cmd(port, &["PUBLISH", "news", &text]);
        let local = i64::from(port == home) * 2;
        assert_eq!(count, Reply::Int(local), "PUBLISH on {port}");
        assert_eq!(next_message(&mut sub).await.2, text);
        assert_eq!(next_message(&mut pat).await.1.as_deref(), Some("ne*"));
    }
    // Through our own pool, whichever node that is.
    pubsub.publish("news", &"pooled").await.unwrap();
    assert_eq!(next_message(&mut sub).await.2, r#""pooled""#);
    assert_eq!(next_message(&mut pat).await.2, r#""pooled""#);
}

// The node holding the subscription is failed over (coordinated): the
// subscription stays on it (a replica now; Redis forwards PUBLISH to every
// node) and messages keep flowing. When fred re-reads the cluster it drops
// that connection without an error event; the subscription must move to the
// new home by itself. Then the new home crashes and Redis promotes its
// replica: Disconnected, and the subscription comes back once more.
#[tokio::test]
async fn subscription_survives_failover_of_its_node() {
    let mut cluster = RedisCluster::builder(3, 1)
        .node_timeout(Duration::from_secs(1))
        .start()
        .await;
    let pubsub = pubsub_on(&cluster).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    until_subscribed(&mut sub).await;
    let home = only(&subscriber_nodes(&cluster));
    let elsewhere = |home: u16| {
        move |c: &RedisCluster| -> u16 { c.primaries().into_iter().find(|&p| p != home).unwrap() }
    };

    let promoted = cluster.failover(home).await;
    until_a_probe_arrives(&cluster, elsewhere(home), &mut sub, WAIT).await;
    pubsub.subscriber().client().sync_cluster().await.unwrap();
    until_a_probe_arrives(&cluster, elsewhere(home), &mut sub, WAIT).await;
    assert_eq!(
        subscriber_nodes(&cluster),
        [promoted],
        "moved to the new home"
    );

    cluster.stop_node(promoted);
    while next(&mut sub).await != PubSubEvent::Disconnected {}
    until_a_probe_arrives(&cluster, elsewhere(promoted), &mut sub, FAILOVER).await;
    assert_eq!(
        subscriber_nodes(&cluster),
        [home],
        "on the promoted replica"
    );
}

// A hung node (SIGSTOP) holding the subscription is noticed although the
// subscriber's connections to the other primaries are fine (the heartbeat
// goes to the subscription's node): Disconnected, and after the node
// resumes, Subscribed again.
#[tokio::test]
async fn hung_subscriber_node_is_noticed() {
    let mut cluster = RedisCluster::start(3, 0).await;
    let pubsub = pubsub_on(&cluster).await;
    let mut sub = pubsub.subscribe("quiet").await.unwrap();
    until_subscribed(&mut sub).await;
    let home = only(&subscriber_nodes(&cluster));
    cluster.pause_node(home);
    let disconnected = tokio::time::timeout(Duration::from_secs(5), async {
        while next(&mut sub).await != PubSubEvent::Disconnected {}
    })
    .await;
    cluster.resume_node(home);
    assert!(
        disconnected.is_ok(),
        "a hung subscriber node went unnoticed"
    );
    until_subscribed(&mut sub).await;
    cluster.wait_until_ok().await;
    pubsub.publish("quiet", &1).await.unwrap();
    assert_eq!(next_message(&mut sub).await.2, "1");
}

// The same with a command timeout above half a second, which fred's own
// unresponsive check missed (see reconnects.rs): other nodes keep taking
// writes and broadcasting their messages, which the hung node never passes on.
#[tokio::test]
async fn hung_subscriber_node_is_noticed_with_a_long_command_timeout() {
    let mut cluster = RedisCluster::start(3, 0).await;
    let mut config = test_support::fixtures::cluster_config(&cluster)
        .with_command_timeout(Duration::from_millis(1_500));
    config.pool_size = 1;
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let pubsub = PubSub::new(manager).await.unwrap();
    let mut sub = pubsub.subscribe("quiet").await.unwrap();
    until_subscribed(&mut sub).await;
    let home = only(&subscriber_nodes(&cluster));
    cluster.pause_node(home);
    let disconnected = tokio::time::timeout(Duration::from_secs(8), async {
        while sub.recv().await != Some(PubSubEvent::Disconnected) {}
    })
    .await;
    cluster.resume_node(home);
    assert!(
        disconnected.is_ok(),
        "a hung subscriber node went unnoticed"
    );
    until_subscribed(&mut sub).await;
}

/// Moves the empty hash slot `slot` from the primary on `from` to the one on
/// `to`, as a resharding does, and waits until every node agrees.
async fn move_slot(cluster: &RedisCluster, slot: u16, from: u16, to: u16) {
    let id = |port: u16| {
        cluster
            .nodes()
            .into_iter()
            .find(|n| n.port == port)
            .expect("a node of the cluster")
            .id
    };
    let (from_id, to_id, slot) = (id(from), id(to), slot.to_string());
    let ok = Reply::Simple("OK".into());
    let setslot = |port: u16, args: &[&str]| {
        let mut command = vec!["CLUSTER", "SETSLOT", slot.as_str()];
        command.extend_from_slice(args);
        assert_eq!(
            cluster.node_cmd(port, &command),
            ok,
            "{command:?} on {port}"
        );
    };
    setslot(to, &["IMPORTING", &from_id]);
    setslot(from, &["MIGRATING", &to_id]);
    // No key lives in the slot: nothing to MIGRATE.
    setslot(to, &["NODE", &to_id]);
    setslot(from, &["NODE", &to_id]);
    cluster.wait_until_ok().await;
}

// The slot that decides where fred subscribes moves to another primary
// (resharding): once fred re-reads the topology the subscriptions follow it
// and leave the old primary, so each message arrives once.
#[tokio::test]
async fn subscriptions_follow_their_slot_to_another_primary() {
    let cluster = RedisCluster::start(3, 0).await;
    let pubsub = pubsub_on(&cluster).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    let mut pat = pubsub.psubscribe("ne*").await.unwrap();
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;
    let old = only(&subscriber_nodes(&cluster));
    let client_id = pubsub.subscriber().client().id().to_owned();
    assert_eq!(
        cluster.node_for_key(&client_id),
        old,
        "home = slot of the id"
    );
    let primaries = cluster.primaries();
    let new = primaries.iter().copied().find(|&p| p != old).unwrap();
    let third = primaries
        .iter()
        .copied()
        .find(|&p| p != old && p != new)
        .unwrap();

    move_slot(&cluster, cluster.key_slot(&client_id), old, new).await;
    pubsub.subscriber().client().sync_cluster().await.unwrap();
    assert_eq!(next(&mut sub).await, PubSubEvent::Disconnected);
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;
    assert_eq!(subscriber_nodes(&cluster), [new], "left the old home");

    for text in ["once", "sentinel"] {
        cluster.node_cmd(third, &["PUBLISH", "news", text]);
    }
    // The sentinel right after the message: no second copy in between.
    for text in ["once", "sentinel"] {
        assert_eq!(next_message(&mut sub).await.2, text);
        assert_eq!(next_message(&mut pat).await.2, text);
    }
}
