//! Subscriptions across reconnects, restarts and lag.

use std::time::Duration;

use redis_connection::RedisConnectionManager;
use redis_pubsub::{PubSub, PubSubEvent};
use test_support::RedisServer;

use crate::{next, next_message, pubsub_on, redis_config, until_subscribed};

// Killing the subscriber connection: the stream says Disconnected, then
// Subscribed again, and messages flow without the caller doing anything.
#[tokio::test]
async fn client_kill_resubscribes() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    let mut pat = pubsub.psubscribe("n*").await.unwrap();
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;

    assert_eq!(
        redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).as_int(),
        Some(1)
    );
    assert_eq!(next(&mut sub).await, PubSubEvent::Disconnected);
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;
    assert_eq!(pubsub.publish("news", &"after").await.unwrap(), 2);
    assert_eq!(next_message(&mut sub).await.2, r#""after""#);
    assert_eq!(next_message(&mut pat).await.1.as_deref(), Some("n*"));
    assert_eq!(pubsub.stats().resubscriptions, 1);
}

// After a Redis restart every channel and pattern is subscribed again.
#[tokio::test]
async fn subscriptions_survive_a_restart() {
    let mut redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    let mut pat = pubsub.psubscribe("cache:*").await.unwrap();
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;

    redis.restart().await;
    assert_eq!(next(&mut sub).await, PubSubEvent::Disconnected);
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;
    let subscribed = redis.cmd(&["PUBSUB", "NUMSUB", "news"]).as_strings();
    assert_eq!(subscribed, ["news", "1"]);
    assert_eq!(redis.cmd(&["PUBSUB", "NUMPAT"]).as_int(), Some(1));
    // The pool publishes: it may still be reconnecting after the restart.
    test_support::wait_for(
        "the pool to publish again",
        Duration::from_secs(5),
        || async { pubsub.publish("cache:x", &1).await.is_ok() },
    )
    .await;
    assert_eq!(next_message(&mut pat).await.0, "cache:x");
}

// A subscription made while Redis is down becomes active when it comes up.
#[tokio::test]
async fn subscribe_while_down() {
    let mut redis = RedisServer::start().await;
    let manager = RedisConnectionManager::connect_lazy(redis_config(&redis)).unwrap();
    redis.stop().await;
    let pubsub = PubSub::new(manager.clone()).await.unwrap();
    let mut sub = pubsub.subscribe("late").await.unwrap();
    assert_eq!(pubsub.subscriptions().channels, ["late"]);
    redis.start_again().await;
    until_subscribed(&mut sub).await;
    let mut status = manager.watch_status();
    tokio::time::timeout(
        Duration::from_secs(5),
        status.wait_for(|_| manager.is_connected()),
    )
    .await
    .unwrap()
    .unwrap();
    pubsub.publish("late", &1).await.unwrap();
    assert_eq!(next_message(&mut sub).await.2, "1");
}

// A consumer that falls behind gets Lagged with the number of dropped
// messages, and the stream goes on.
#[tokio::test]
async fn slow_consumer_is_told_it_lagged() {
    let redis = RedisServer::start().await;
    let mut config = redis_config(&redis);
    config.event_capacity = 8;
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let pubsub = PubSub::new(manager).await.unwrap();
    let mut sub = pubsub.subscribe("flood").await.unwrap();
    until_subscribed(&mut sub).await;
    for i in 0..50 {
        pubsub.publish("flood", &i).await.unwrap();
    }
    // The sentinel proves every flood message reached the pump first.
    pubsub.publish("flood", &"end").await.unwrap();
    let mut saw_lag = false;
    loop {
        match tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .unwrap()
            .unwrap()
        {
            PubSubEvent::Lagged { missed } => {
                assert!(missed > 0);
                saw_lag = true;
            }
            PubSubEvent::Message(m) if m.payload.as_ref() == br#""end""# => break,
            _ => {}
        }
    }
    assert!(saw_lag, "no Lagged event");
}

// A hung server (SIGSTOP) is noticed even on a silent subscriber connection:
// the stream says Disconnected, and after the server resumes, Subscribed.
#[tokio::test]
async fn hung_server_is_noticed() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut sub = pubsub.subscribe("quiet").await.unwrap();
    until_subscribed(&mut sub).await;
    redis.pause();
    let disconnected = tokio::time::timeout(Duration::from_secs(5), async {
        while next(&mut sub).await != PubSubEvent::Disconnected {}
    })
    .await;
    redis.resume();
    assert!(disconnected.is_ok(), "a hung server went unnoticed");
    until_subscribed(&mut sub).await;
    pubsub.publish("quiet", &1).await.unwrap();
    assert_eq!(next_message(&mut sub).await.2, "1");
}

// fred notices a hung connection only when a command waited twice the
// command timeout since the last write; a heartbeat written every second
// resets that clock, so with a command timeout above half a second it never
// fired. The heartbeat's own answer (or its timeout) decides instead.
#[tokio::test]
async fn hung_server_is_noticed_with_a_long_command_timeout() {
    let redis = RedisServer::start().await;
    let config = redis_config(&redis).with_command_timeout(Duration::from_millis(1_500));
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let pubsub = PubSub::new(manager).await.unwrap();
    let mut sub = pubsub.subscribe("quiet").await.unwrap();
    until_subscribed(&mut sub).await;
    redis.pause();
    let disconnected = tokio::time::timeout(Duration::from_secs(8), async {
        while sub.recv().await != Some(PubSubEvent::Disconnected) {}
    })
    .await;
    redis.resume();
    assert!(disconnected.is_ok(), "a hung server went unnoticed");
    until_subscribed(&mut sub).await;
    pubsub.publish("quiet", &1).await.unwrap();
    assert_eq!(next_message(&mut sub).await.2, "1");
}

// One CLIENT KILL is one resubscription: subscribing at start is not
// counted as one, and each subscription hears exactly one Disconnected and
// one Subscribed before the next message.
#[tokio::test]
async fn one_client_kill_is_one_resubscription() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    let mut pat = pubsub.psubscribe("n*").await.unwrap();
    until_subscribed(&mut sub).await;
    until_subscribed(&mut pat).await;
    assert_eq!(pubsub.stats().resubscriptions, 0, "nothing was lost yet");

    assert_eq!(
        redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).as_int(),
        Some(1)
    );
    for stream in [&mut sub, &mut pat] {
        assert_eq!(next(stream).await, PubSubEvent::Disconnected);
        assert_eq!(next(stream).await, PubSubEvent::Subscribed);
    }
    assert_eq!(pubsub.publish("news", &"after").await.unwrap(), 2);
    // Nothing between the resubscription and the next message.
    for stream in [&mut sub, &mut pat] {
        let event = next(stream).await;
        assert!(
            matches!(&event, PubSubEvent::Message(m) if m.payload.as_ref() == br#""after""#),
            "{event:?}"
        );
    }
    assert_eq!(pubsub.stats().resubscriptions, 1);
}

// A consumer behind on its events can lose a Disconnected (and the
// Subscribed after it) to a lag: its events alone cannot say that the
// subscription was lost meanwhile. Its state can: it is down as soon as the
// pump knows, before any event is read, and a restoration is a new session.
#[tokio::test]
async fn a_lag_can_hide_a_disconnection_but_not_from_the_state() {
    let redis = RedisServer::start().await;
    let mut config = redis_config(&redis);
    config.event_capacity = 4;
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let pubsub = PubSub::new(manager).await.unwrap();
    // A second holder of the same channel, read promptly, tells the test
    // what the pump did; `slow` is not read until the end.
    let mut prompt = pubsub.subscribe("feed").await.unwrap();
    let mut slow = pubsub.subscribe("feed").await.unwrap();
    until_subscribed(&mut prompt).await;
    let before = slow.state().session().expect("subscribed");

    redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]);
    assert_eq!(next(&mut prompt).await, PubSubEvent::Disconnected);
    assert!(
        !slow.state().is_subscribed(),
        "down before any event is read"
    );
    until_subscribed(&mut prompt).await;
    let after = slow.state().session().expect("subscribed again");
    assert_ne!(before, after, "a restoration is a new session");
    for i in 0..20 {
        pubsub.publish("feed", &i).await.unwrap();
    }
    pubsub.publish("feed", &"end").await.unwrap();
    while next_message(&mut prompt).await.2 != r#""end""# {}

    // The slow holder: its first Subscribed (it joined an active route),
    // then a lag where Disconnected and Subscribed were, then messages.
    assert_eq!(next(&mut slow).await, PubSubEvent::Subscribed);
    let mut events = Vec::new();
    loop {
        let event = next(&mut slow).await;
        let end = matches!(&event, PubSubEvent::Message(m) if m.payload.as_ref() == br#""end""#);
        events.push(event);
        if end {
            break;
        }
    }
    assert!(
        matches!(events[0], PubSubEvent::Lagged { .. }),
        "{events:?}"
    );
    assert!(
        !events
            .iter()
            .any(|e| matches!(e, PubSubEvent::Disconnected | PubSubEvent::Subscribed)),
        "the lag hid the disconnection: {events:?}"
    );
}
