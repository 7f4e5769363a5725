//! Integration tests of redis-pubsub, against real redis-server processes.

mod cluster;
mod invalidations;
mod reconnects;
mod subscriptions;

use std::time::Duration;

use redis_connection::{ReconnectConfig, RedisConfig, RedisConnectionManager};
use redis_pubsub::{PubSub, PubSubEvent, Subscription};
use test_support::RedisServer;

const WAIT: Duration = Duration::from_secs(5);

fn redis_config(server: &RedisServer) -> RedisConfig {
    test_support::init_tracing();
    let mut config = RedisConfig::centralized(server.host(), server.port());
    config.pool_size = 1;
    config.command_timeout = Duration::from_millis(300);
    config.reconnect = ReconnectConfig::default()
        .with_base_delay(Duration::from_millis(20))
        .with_max_delay(Duration::from_millis(200))
        .with_jitter(Duration::from_millis(10));
    config
}

async fn pubsub_on(server: &RedisServer) -> PubSub {
    let manager = RedisConnectionManager::connect(redis_config(server))
        .await
        .unwrap();
    PubSub::new(manager).unwrap()
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
