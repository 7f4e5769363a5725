//! Channels, patterns, channel management.

use std::time::Duration;

use redis_pubsub::{PubSubError, PubSubEvent, Subscriptions};
use test_support::RedisServer;

use crate::{next, next_message, pubsub_on, until_subscribed};

// A channel subscription is confirmed, then delivers what is published on it.
#[tokio::test]
async fn subscribe_and_publish() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut sub = pubsub.subscribe("news").await.unwrap();
    assert_eq!(next(&mut sub).await, PubSubEvent::Subscribed);
    let receivers = pubsub
        .publish("news", &serde_json::json!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    assert_eq!(
        next_message(&mut sub).await,
        ("news".into(), None, r#"{"n":1}"#.into())
    );
    assert_eq!(pubsub.publish("elsewhere", &1).await.unwrap(), 0);
    let stats = pubsub.stats();
    assert_eq!((stats.published, stats.received), (2, 1));
}

// A pattern subscription reports which pattern matched; with overlapping
// patterns each one gets exactly one copy of each message.
#[tokio::test]
async fn patterns_report_the_match_once_each() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut wide = pubsub.psubscribe("cache:*").await.unwrap();
    let mut narrow = pubsub.psubscribe("cache:invalidate:shard:*").await.unwrap();
    let mut other = pubsub.psubscribe("audit:*").await.unwrap();
    for sub in [&mut wide, &mut narrow, &mut other] {
        until_subscribed(sub).await;
    }
    // Redis sends one pmessage per matching pattern: two here.
    assert_eq!(
        pubsub
            .publish("cache:invalidate:shard:t:s", &1)
            .await
            .unwrap(),
        2
    );
    assert_eq!(pubsub.publish("cache:other", &2).await.unwrap(), 1);
    assert_eq!(
        next_message(&mut wide).await,
        (
            "cache:invalidate:shard:t:s".into(),
            Some("cache:*".into()),
            "1".into()
        )
    );
    assert_eq!(
        next_message(&mut narrow).await,
        (
            "cache:invalidate:shard:t:s".into(),
            Some("cache:invalidate:shard:*".into()),
            "1".into()
        )
    );
    // The next message on `wide` is the second publish, not a duplicate of the first.
    assert_eq!(
        next_message(&mut wide).await,
        ("cache:other".into(), Some("cache:*".into()), "2".into())
    );
    pubsub.publish("audit:x", &3).await.unwrap();
    assert_eq!(
        next_message(&mut other).await.2,
        "3",
        "audit:* saw only its own message"
    );
    // A sentinel proves `narrow` received nothing between the first message and it.
    pubsub
        .publish("cache:invalidate:shard:sentinel", &4)
        .await
        .unwrap();
    assert_eq!(next_message(&mut narrow).await.2, "4");
}

// subscriptions() lists what we listen to; unsubscribing ends the streams and
// the server stops delivering.
#[tokio::test]
async fn subscriptions_are_listed_and_unsubscribing_ends_their_streams() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut a = pubsub.subscribe("a").await.unwrap();
    let mut p = pubsub.psubscribe("p:*").await.unwrap();
    until_subscribed(&mut a).await;
    until_subscribed(&mut p).await;
    assert_eq!(
        pubsub.subscriptions(),
        Subscriptions {
            channels: vec!["a".into()],
            patterns: vec!["p:*".into()]
        }
    );
    pubsub.unsubscribe("a").await.unwrap();
    pubsub.punsubscribe("p:*").await.unwrap();
    assert_eq!(pubsub.subscriptions(), Subscriptions::default());
    assert_eq!(
        tokio::time::timeout(crate::WAIT, a.recv()).await.unwrap(),
        None
    );
    assert_eq!(
        tokio::time::timeout(crate::WAIT, p.recv()).await.unwrap(),
        None
    );
    assert_eq!(pubsub.publish("a", &1).await.unwrap(), 0);
    assert_eq!(pubsub.publish("p:1", &1).await.unwrap(), 0);
}

// Bad names and use after shutdown get typed errors.
#[tokio::test]
async fn bad_names_and_use_after_shutdown_get_typed_errors() {
    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    assert!(matches!(
        pubsub.subscribe("").await,
        Err(PubSubError::InvalidName(_))
    ));
    assert!(matches!(
        pubsub.publish("", &1).await,
        Err(PubSubError::InvalidName(_))
    ));
    let mut sub = pubsub.subscribe("x").await.unwrap();
    pubsub.shutdown().await;
    // Events sent before the shutdown may still be read; then the stream ends.
    let end = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(event) = sub.recv().await {
            assert!(!matches!(event, PubSubEvent::Message(_)), "{event:?}");
        }
    });
    end.await.expect("the stream ended after shutdown");
    assert_eq!(
        pubsub.subscribe("y").await.unwrap_err(),
        PubSubError::Shutdown
    );
    assert_eq!(
        pubsub.publish("x", &1).await.unwrap_err(),
        PubSubError::Shutdown
    );
}

// A subscription is a `futures::Stream` with the events `recv` gives: a
// second holder joining an active channel is told it is subscribed first,
// stream combinators see every message in order, and the stream ends when
// the channel is unsubscribed.
#[tokio::test]
async fn a_subscription_is_a_stream_of_the_same_events_that_ends_on_unsubscribe() {
    use futures::StreamExt;

    let redis = RedisServer::start().await;
    let pubsub = pubsub_on(&redis).await;
    let mut first = pubsub.subscribe("feed").await.unwrap();
    until_subscribed(&mut first).await;
    let second = pubsub.subscribe("feed").await.unwrap();
    for n in 1..=3 {
        assert_eq!(pubsub.publish("feed", &n).await.unwrap(), 1);
    }
    let mut events = Box::pin(second);
    let joined = tokio::time::timeout(Duration::from_secs(5), events.next()).await;
    assert_eq!(joined.unwrap(), Some(PubSubEvent::Subscribed));
    let payloads: Vec<String> = tokio::time::timeout(
        Duration::from_secs(5),
        events
            .as_mut()
            .filter_map(|event| async move {
                match event {
                    PubSubEvent::Message(m) => Some(String::from_utf8(m.payload.to_vec()).unwrap()),
                    _ => None,
                }
            })
            .take(3)
            .collect(),
    )
    .await
    .expect("three messages in time");
    assert_eq!(payloads, ["1", "2", "3"]);
    pubsub.unsubscribe("feed").await.unwrap();
    let rest: Vec<PubSubEvent> = tokio::time::timeout(Duration::from_secs(5), events.collect())
        .await
        .expect("the stream ends once unsubscribed");
    assert!(
        rest.iter().all(|e| !matches!(e, PubSubEvent::Message(_))),
        "no message after the last one published: {rest:?}"
    );
}

/// A pub/sub service that authenticates as `user` on `redis`.
async fn pubsub_as(redis: &RedisServer, user: &str, password: &str) -> redis_pubsub::PubSub {
    let mut config = crate::redis_config(redis);
    config.username = Some(user.to_owned());
    config.password = Some(password.to_owned().into());
    let manager = redis_connection::RedisConnectionManager::connect(config)
        .await
        .unwrap();
    redis_pubsub::PubSub::new(manager).await.unwrap()
}

// A subscription the server refuses at once (an ACL user without rights on
// the channel) is a typed error for `subscribe`'s and `psubscribe`'s
// caller, not a subscription that silently never delivers; it is not kept
// (nor retried), and it does not stop the user's permitted channels from
// being subscribed and delivering.
#[tokio::test]
async fn a_refused_subscription_is_an_error_for_its_caller() {
    if !test_support::server_is_at_least(7, 0, "channel permissions in ACL rules") {
        return;
    }
    let redis = RedisServer::builder()
        .acl_user_with_rules(
            "svc",
            "svc-pass",
            &["~*", "resetchannels", "&allowed", "+@all"],
        )
        .start()
        .await;
    let pubsub = pubsub_as(&redis, "svc", "svc-pass").await;
    assert_eq!(
        pubsub.subscribe("news").await.unwrap_err(),
        PubSubError::Refused {
            channel: "news".into()
        }
    );
    assert_eq!(
        pubsub.psubscribe("news:*").await.unwrap_err(),
        PubSubError::Refused {
            channel: "news:*".into()
        }
    );
    assert_eq!(pubsub.subscriptions(), Subscriptions::default());

    let mut allowed = pubsub.subscribe("allowed").await.unwrap();
    until_subscribed(&mut allowed).await;
    assert_eq!(pubsub.publish("allowed", &1).await.unwrap(), 1);
    assert_eq!(next_message(&mut allowed).await.2, "1");
}

// A re-subscription refused after a reconnect (the user's ACL lost the
// channel meanwhile; Redis 7 closes the subscriber when it does) has no
// caller to tell: it is logged once and counted once however often the
// pump retries it, the refused route stays unconfirmed (its holder reads
// that it hears nothing) while the permitted one is subscribed again and
// delivers, and once the rights come back the refused one is confirmed.
#[tokio::test]
async fn a_resubscription_refused_after_a_reconnect_is_counted_once_and_left_unconfirmed() {
    if !test_support::server_is_at_least(7, 0, "channel permissions in ACL rules") {
        return;
    }
    let redis = RedisServer::builder()
        .args(["--user", "svc", "on", ">svc-pass", "~*", "&*", "+@all"])
        .start()
        .await;
    let pubsub = pubsub_as(&redis, "svc", "svc-pass").await;
    let mut news = pubsub.subscribe("news").await.unwrap();
    let mut allowed = pubsub.subscribe("allowed").await.unwrap();
    until_subscribed(&mut news).await;
    until_subscribed(&mut allowed).await;

    redis.cmd(&["ACL", "SETUSER", "svc", "resetchannels", "&allowed"]);
    // Whether or not the server closed it, the connection is replaced.
    redis.cmd(&["CLIENT", "KILL", "USER", "svc"]);
    assert_eq!(next(&mut allowed).await, PubSubEvent::Disconnected);
    until_subscribed(&mut allowed).await;
    // Refused at least three times: retried, yet counted once.
    test_support::wait_for(
        "the pump to retry the refused channel",
        Duration::from_secs(5),
        || async { redis.acl_refusals("svc", "news") >= 3 },
    )
    .await;
    assert_eq!(pubsub.stats().refusals, 1);
    assert!(!news.state().is_subscribed());
    assert_eq!(pubsub.publish("allowed", &2).await.unwrap(), 1);
    assert_eq!(next_message(&mut allowed).await.2, "2");

    redis.cmd(&["ACL", "SETUSER", "svc", "&news"]);
    until_subscribed(&mut news).await;
    assert_eq!(pubsub.publish("news", &3).await.unwrap(), 1);
    assert_eq!(next_message(&mut news).await.2, "3");
    assert_eq!(pubsub.stats().refusals, 1);
}
