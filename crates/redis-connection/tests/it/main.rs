//! Integration tests of redis-connection, against real redis-server processes.

mod auth;
mod cluster;
mod env;
mod health;
mod lifecycle;
mod outage;
mod subscriber;
mod tls;

use test_support::RedisServer;

/// The number of client connections the server sees, other than the asker's.
fn client_count(server: &RedisServer) -> usize {
    let list = server
        .cmd(&["CLIENT", "LIST"])
        .as_string()
        .unwrap_or_default();
    list.lines().count().saturating_sub(1)
}
