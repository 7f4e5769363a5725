//! `x-cache: stale`, as real processes on a 3-primary Redis Cluster: the
//! node holding a document hangs while the session's node answers, and
//! main-api serves its L1 copy of the document flagged stale. Sessions are
//! never served stale.

use std::time::Duration;

use reqwest::{Client, StatusCode};
use test_support::{RedisCluster, ServiceProcess, wait_for};

use crate::doc;
use crate::procs::{metrics_text, new_session, send, start_on};

/// The ports of the nodes holding a subscribed (pub/sub) connection.
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

/// The session keys of tenant `acme` on the node on `port`.
fn sessions_on(cluster: &RedisCluster, port: u16) -> Vec<String> {
    cluster
        .node_cmd(port, &["KEYS", "auth:tenant:acme:session:*"])
        .as_strings()
}

/// A new session of `acme`, with the port of the node its key landed on.
async fn session_with_node(
    client: &Client,
    broker: &ServiceProcess,
    cluster: &RedisCluster,
    user: &str,
) -> (String, u16) {
    let before: Vec<usize> = cluster
        .primaries()
        .iter()
        .map(|&p| sessions_on(cluster, p).len())
        .collect();
    let token = new_session(client, broker, user).await;
    let node = cluster
        .primaries()
        .into_iter()
        .zip(before)
        .find(|&(p, n)| sessions_on(cluster, p).len() > n)
        .expect("the new session's key on some primary")
        .0;
    (token, node)
}

// A document in main-api's L1, then its node hangs: that node also holds
// main-api's invalidation subscription, so the L1 is no longer trusted
// and the document's read times out, while the session's node answers.
// main-api answers 200 with the old body and `x-cache: stale`, counted in
// /metrics; a session whose node hangs gets 503, never a stale answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_whose_node_hangs_is_served_stale_over_http() {
    // A node timeout longer than the test: the hung node is never flagged
    // failing, so the others keep serving their slots.
    let mut cluster = RedisCluster::builder(3, 0)
        .node_timeout(Duration::from_secs(60))
        .start()
        .await;
    // The services' default 300 ms command timeout: main-api then notices
    // a hung subscription node within about a second (its heartbeat), and
    // fred replaces a connection whose command is unanswered for 600 ms.
    const EXTRA: &[(&str, &str)] = &[("RUST_LOG", "info")];
    let env = || vec![("REDIS_URL", cluster.seed_url())];
    // main-api first, alone: its subscription is the only one in the cluster.
    let api = start_on("main-api", "MAIN_API_ADDR", env(), EXTRA);
    wait_for("main-api to subscribe", Duration::from_secs(10), || async {
        subscriber_nodes(&cluster).len() == 1
    })
    .await;
    let home = subscriber_nodes(&cluster)[0];
    // The broker's timeout does not matter here: 1 s, so that a loaded CI
    // box does not fail a session's creation.
    let broker = start_on(
        "auth-broker",
        "AUTH_BROKER_ADDR",
        env(),
        &[("RUST_LOG", "info"), ("REDIS_COMMAND_TIMEOUT_MS", "1000")],
    );
    let client = Client::new();

    // A session on another node than `home`, one on `home`.
    let (mut elsewhere, mut at_home) = (None, None);
    for i in 0..40 {
        let (token, node) = session_with_node(&client, &broker, &cluster, &format!("u{i}")).await;
        if node == home {
            at_home.get_or_insert(token);
        } else {
            elsewhere.get_or_insert(token);
        }
        if elsewhere.is_some() && at_home.is_some() {
            break;
        }
    }
    let (token, token_at_home) = (elsewhere.unwrap(), at_home.unwrap());
    let shard = (0..2000)
        .map(|i| format!("s{:x}", i * 2_654_435_761_u64))
        .find(|s| cluster.node_for_key(&format!("tenant:acme:shard:{s}:structured")) == home)
        .expect("a shard on the subscription's node");
    let url = format!("{}/v1/tenants/acme/shards/{shard}/structured", api.url());
    let get = |token: String| {
        let (client, url) = (client.clone(), url.clone());
        async move { send(&client, reqwest::Method::GET, url, &token, None).await }
    };
    // Before the fault, a 300 ms read or write may time out on a loaded
    // box (503): try again until the document is stored and in the L1.
    wait_for("the document to be stored", Duration::from_secs(10), || {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        async move {
            let put = send(&client, reqwest::Method::PUT, url, &token, Some(doc(7))).await;
            put.0 == StatusCode::NO_CONTENT
        }
    })
    .await;
    wait_for(
        "main-api to serve from its L1",
        Duration::from_secs(10),
        || async { get(token.clone()).await == (StatusCode::OK, "hit-l1".to_owned(), doc(7)) },
    )
    .await;

    cluster.pause_node(home);
    // Until main-api notices its subscription is gone its L1 is trusted
    // (hit-l1); then the document's read times out and the copy is stale.
    let last = std::sync::Mutex::new(None);
    wait_for(
        "the document to be served stale",
        Duration::from_secs(10),
        || async {
            // A hit-l1 while the L1 is still trusted, and (on a loaded box)
            // a session read timing out, are passed over; the stale answer
            // comes before fred stops serving every slot (see below).
            let answer = get(token.clone()).await;
            let done = !matches!(answer.1.as_str(), "hit-l1" | "");
            *last.lock().unwrap() = Some(answer);
            done
        },
    )
    .await;
    let (status, tier, body) = last.into_inner().unwrap().unwrap();
    assert_eq!(
        (status, tier.as_str(), &body),
        (StatusCode::OK, "stale", &doc(7))
    );
    let metrics = metrics_text(&client, &api).await;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("cache_stale_served_total ")
                && l.split(' ').nth(1).is_some_and(|n| n != "0")),
        "{metrics}"
    );
    // The session on the hung node cannot be read: 503, not stale. (Soon
    // after, fred 10.1 re-syncs the cluster on replacing the hung node's
    // connection and serves no slot until the node is back, so every
    // request then answers 503: see redis-connection's
    // `dead_primary_without_replica_stops_every_slot`.)
    let (status, tier, _) = get(token_at_home).await;
    assert_eq!(
        (status, tier.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "")
    );
    cluster.resume_node(home);
}
