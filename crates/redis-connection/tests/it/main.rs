//! Integration tests of redis-connection, against real redis-server processes.

mod auth;
mod cluster;
mod env;
mod health;
mod lifecycle;
mod outage;
mod subscriber;
mod tls;

use std::time::Duration;

use redis_connection::{ReconnectConfig, RedisConfig};
use test_support::RedisServer;

/// A config for `server` with short timeouts, so outage tests run quickly.
fn config_for(server: &RedisServer) -> RedisConfig {
    test_support::init_tracing();
    let mut config = RedisConfig::centralized(server.host(), server.port());
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

/// The number of client connections the server sees, other than the asker's.
fn client_count(server: &RedisServer) -> usize {
    let list = server
        .cmd(&["CLIENT", "LIST"])
        .as_string()
        .unwrap_or_default();
    list.lines().count().saturating_sub(1)
}
