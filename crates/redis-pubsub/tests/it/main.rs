//! Integration tests of redis-pubsub, against real redis-server processes.

mod cluster;
mod reconnects;
mod subscriptions;

use std::time::Duration;

use redis_connection::{RedisConfig, RedisConnectionManager};
use redis_pubsub::{PubSub, PubSubEvent, Subscription};
use test_support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);

/// The tests' connection config, with one pooled connection: pub/sub tests
/// count the clients a server sees, and the pool only adds noise.
fn redis_config(server: &RedisServer) -> RedisConfig {
    let mut config = test_support::fixtures::redis_config(server);
    config.pool_size = 1;
    config
}

async fn pubsub_on(server: &RedisServer) -> PubSub {
    let manager = RedisConnectionManager::connect(redis_config(server))
        .await
        .unwrap();
    PubSub::new(manager).await.unwrap()
}

/// The next event, or a panic after `WAIT`.
async fn next(sub: &mut Subscription) -> PubSubEvent {
    tokio::time::timeout(WAIT, sub.recv())
        .await
        .expect("an event in time")
        .expect("stream open")
}

/// Skips events until `Subscribed`.
async fn until_subscribed(sub: &mut Subscription) {
    loop {
        if next(sub).await == PubSubEvent::Subscribed {
            return;
        }
    }
}

/// The next message's (channel, pattern, payload), skipping other events.
async fn next_message(sub: &mut Subscription) -> (String, Option<String>, String) {
    loop {
        if let PubSubEvent::Message(m) = next(sub).await {
            return (
                m.channel,
                m.pattern,
                String::from_utf8(m.payload.to_vec()).unwrap(),
            );
        }
    }
}
