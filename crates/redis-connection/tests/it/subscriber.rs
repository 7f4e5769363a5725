//! The dedicated subscriber connection.

use std::time::Duration;

use redis_connection::fred::prelude::*;
use redis_connection::{ConnectionEvent, ConnectionStatus, RedisConnectionManager};
use test_support::RedisServer;

use test_support::fixtures::redis_config;

// A subscriber connects on its own connection, receives messages published
// through the pool, and reports a reconnect after its connection is killed.
#[tokio::test]
async fn subscriber_reports_reconnects() {
    let redis = RedisServer::start().await;
    let manager = RedisConnectionManager::connect(redis_config(&redis))
        .await
        .unwrap();
    let subscriber = manager.subscriber().unwrap();
    subscriber
        .wait_connected(Duration::from_secs(5))
        .await
        .unwrap();
    let mut events = subscriber.events();
    let mut messages = subscriber.client().message_rx();
    subscriber.client().subscribe("news").await.unwrap();

    let receivers: i64 = manager.client().publish("news", "hello").await.unwrap();
    assert_eq!(receivers, 1);
    let message = tokio::time::timeout(Duration::from_secs(2), messages.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(message.value.as_string().as_deref(), Some("hello"));

    let killed = redis
        .cmd(&["CLIENT", "KILL", "TYPE", "pubsub"])
        .as_int()
        .unwrap();
    assert_eq!(killed, 1, "exactly our subscriber is a pub/sub connection");
    let reconnected = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Ok(ConnectionEvent::Connected {
                reconnect: true, ..
            }) = events.recv().await
            {
                break;
            }
        }
    })
    .await;
    assert!(reconnected.is_ok(), "no reconnect event after CLIENT KILL");
    assert_eq!(subscriber.status(), ConnectionStatus::Connected);
    subscriber.shutdown().await;
    assert_eq!(subscriber.status(), ConnectionStatus::Disconnected);
}
