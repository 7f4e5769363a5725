//! Typed invalidation messages between instances, over plain pub/sub
//! services (no cache): the feed and the typed `invalidate`.

use std::time::Duration;

use redis_cache::{InvalidationEvent, InvalidationFeed, Invalidations, Unreadable};
use redis_connection::RedisConnectionManager;
use redis_pubsub::PubSub;
use shared_types::{Invalidation, TenantId};
use test_support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);

async fn pubsub_on(server: &RedisServer) -> PubSub {
    let manager = RedisConnectionManager::connect(test_support::fixtures::redis_config(server))
        .await
        .unwrap();
    PubSub::new(manager).await.unwrap()
}

async fn next(feed: &mut InvalidationFeed) -> InvalidationEvent {
    tokio::time::timeout(WAIT, feed.recv())
        .await
        .expect("an event in time")
        .expect("feed open")
}

async fn until_subscribed(feed: &mut InvalidationFeed) {
    while next(feed).await != InvalidationEvent::Subscribed {}
}

/// A pub/sub service on `server` and its invalidation feed, subscribed.
async fn subscribed_feed(server: &RedisServer) -> (PubSub, InvalidationFeed) {
    let pubsub = pubsub_on(server).await;
    let mut feed = pubsub.invalidations().await.unwrap();
    until_subscribed(&mut feed).await;
    (pubsub, feed)
}

fn shard_inv(t: &str, s: &str) -> Invalidation {
    Invalidation::Shard {
        tenant_id: t.parse().unwrap(),
        shard_id: s.parse().unwrap(),
    }
}

// An invalidation published by one instance reaches another, with kind,
// ids, the publisher's id and a timestamp.
#[tokio::test]
async fn reaches_other_instances() {
    let redis = RedisServer::start().await;
    let (a, b) = (pubsub_on(&redis).await, pubsub_on(&redis).await);
    assert_ne!(a.instance_id(), b.instance_id());
    let mut feed_b = b.invalidations().await.unwrap();
    until_subscribed(&mut feed_b).await;

    let inv = Invalidation::Tenant {
        tenant_id: TenantId::new("acme").unwrap(),
    };
    assert_eq!(a.invalidate(&inv).await.unwrap(), 1);
    let InvalidationEvent::Received(message) = next(&mut feed_b).await else {
        panic!("expected a message")
    };
    assert_eq!(message.invalidation, inv);
    assert_eq!(message.origin(), Some(a.instance_id()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    assert!(now.as_millis() - u128::from(message.ts().unwrap()) < 60_000);
    assert_eq!(
        (feed_b.stats().malformed, feed_b.stats().foreign_payloads),
        (0, 0)
    );
}

// Messages on channels that name no invalidation are counted, logged once
// (not once each) and skipped; the feed keeps delivering the good ones.
#[tokio::test]
async fn messages_on_channels_that_do_not_parse_are_counted_and_ignored() {
    let (logs, subscriber) = test_support::LogCapture::new();
    let _guard = tracing::subscriber::set_default(subscriber);
    let redis = RedisServer::start().await;
    let (_pubsub, mut feed) = subscribed_feed(&redis).await;

    let good = r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"x","ts":1}"#;
    let bad = [
        "cache:invalidate:nonsense",
        "cache:invalidate:shard:t1:OTHER?",
        "cache:invalidate:shard:t 1:s1",
        "cache:invalidate:shard:t1",
    ];
    for channel in bad {
        redis.cmd(&["PUBLISH", channel, good]);
    }
    redis.cmd(&["PUBLISH", "cache:invalidate:shard:t1:s1", good]);
    let InvalidationEvent::Received(message) = next(&mut feed).await else {
        panic!("expected the good message")
    };
    assert_eq!(message.invalidation, shard_inv("t1", "s1"));
    assert_eq!(message.origin(), Some("x"));
    assert_eq!(feed.stats().malformed, 4);
    assert_eq!(feed.stats().foreign_payloads, 0);
    logged_once_without(
        &logs,
        "malformed message on an invalidation channel",
        "OTHER",
    );
}

/// `line` was logged once (then only counted), and `secret`, text an
/// attacker chose, never reached the logs.
fn logged_once_without(logs: &test_support::LogCapture, line: &str, secret: &str) {
    let lines = logs.lines_with(line);
    assert_eq!(lines.len(), 1, "logged once, then counted: {lines:?}");
    assert!(!logs.text().contains(secret), "{secret} reached the logs");
}

// Mixed versions: what a newer version of the layer sends and this one
// cannot read (a payload with a newer wire version, a channel of a kind it
// does not know) is delivered as unreadable, naming the channel's tenant,
// and is not counted as malformed.
#[tokio::test]
async fn invalidations_from_a_newer_version_arrive_as_unreadable_for_their_tenant() {
    let redis = RedisServer::start().await;
    let (_pubsub, mut feed) = subscribed_feed(&redis).await;

    let newer = u64::from(redis_cache::WIRE_VERSION) + 1;
    let payload = format!(
        r#"{{"v":{newer},"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"x","ts":1}}"#
    );
    redis.cmd(&["PUBLISH", "cache:invalidate:shard:t1:s1", &payload]);
    redis.cmd(&["PUBLISH", "cache:invalidate:teleport:t2:s1", "{}"]);
    let expected = [
        ("t1", Unreadable::NewerVersion { version: newer }),
        ("t2", Unreadable::UnknownKind),
    ];
    for (tenant, reason) in expected {
        let InvalidationEvent::Unreadable(unreadable) = next(&mut feed).await else {
            panic!("expected an unreadable invalidation of {tenant}")
        };
        assert_eq!(unreadable.tenant_id.as_str(), tenant);
        assert_eq!(unreadable.reason, reason);
    }
    assert_eq!(feed.stats().malformed, 0);
}

// A message whose channel names an invalidation is delivered as that
// invalidation whatever its payload (the TypeScript package's, not JSON,
// empty, a megabyte, ours claiming another key): from no origin, counted
// as foreign, logged once, the payload never logged.
#[tokio::test]
async fn any_payload_on_a_channel_that_parses_is_delivered_as_the_channels_invalidation() {
    let (logs, subscriber) = test_support::LogCapture::new();
    let _guard = tracing::subscriber::set_default(subscriber);
    let redis = RedisServer::start().await;
    let (pubsub, mut feed) = subscribed_feed(&redis).await;

    let payloads = [
        r#"{"tenantId":"t1","type":"shard","id":"s1","timestamp":1}"#.to_owned(),
        "not json SECRET-LOOKING".to_owned(),
        String::new(),
        "x".repeat(1024 * 1024),
        format!(
            r#"{{"kind":"tenant","tenant_id":"t1","origin":"{}","ts":1}}"#,
            pubsub.instance_id()
        ),
    ];
    for payload in &payloads {
        redis.cmd(&["PUBLISH", "cache:invalidate:shard:t1:s1", payload]);
    }
    for payload in &payloads {
        let InvalidationEvent::Received(message) = next(&mut feed).await else {
            panic!("expected a message for {payload:.40}")
        };
        assert_eq!(message.invalidation, shard_inv("t1", "s1"), "{payload:.40}");
        assert_eq!(message.origin(), None, "{payload:.40}");
        assert!(!message.is_from(pubsub.instance_id()));
    }
    let stats = feed.stats();
    assert_eq!((stats.foreign_payloads, stats.malformed), (5, 0));
    logged_once_without(&logs, "payload is not ours", "SECRET-LOOKING");
}

// Own messages are delivered with our own id, so a consumer can skip them.
#[tokio::test]
async fn own_messages_carry_our_id() {
    let redis = RedisServer::start().await;
    let (pubsub, mut feed) = subscribed_feed(&redis).await;
    pubsub.invalidate(&shard_inv("t", "s")).await.unwrap();
    let InvalidationEvent::Received(message) = next(&mut feed).await else {
        panic!()
    };
    assert_eq!(message.origin(), Some(pubsub.instance_id()));
    assert!(message.is_from(pubsub.instance_id()));
}
