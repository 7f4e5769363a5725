//! Connecting, running commands, shutting down, dropping.

use std::time::{Duration, Instant};

use redis_connection::fred::prelude::*;
use redis_connection::{ConnectionError, ConnectionStatus, RedisConfig, RedisConnectionManager};
use test_support::{RedisServer, free_port, wait_for};

use crate::client_count;
use test_support::fixtures::redis_config;

// connect, a command through the pool, and a graceful shutdown that closes every connection.
#[tokio::test]
async fn connect_command_shutdown() {
    let redis = RedisServer::start().await;
    let manager = RedisConnectionManager::connect(redis_config(&redis))
        .await
        .unwrap();
    assert_eq!(manager.status(), ConnectionStatus::Connected);
    let _: () = manager
        .pool()
        .set("k", "v", None, None, false)
        .await
        .unwrap();
    let v: String = manager.pool().get("k").await.unwrap();
    assert_eq!(v, "v");
    assert_eq!(client_count(&redis), 2, "one connection per pooled client");

    manager.shutdown().await;
    assert_eq!(manager.status(), ConnectionStatus::Disconnected);
    wait_for(
        "the server to see our connections closed",
        Duration::from_secs(3),
        || async { client_count(&redis) == 0 },
    )
    .await;
    let after: Result<String, _> = manager.pool().get("k").await;
    assert!(after.is_err(), "a command succeeded after shutdown");
}

// Dropping the last handle closes every connection: no task keeps reconnecting.
#[tokio::test]
async fn drop_leaves_nothing_running() {
    let redis = RedisServer::start().await;
    let manager = RedisConnectionManager::connect(redis_config(&redis))
        .await
        .unwrap();
    let clone = manager.clone();
    drop(manager);
    assert_eq!(client_count(&redis), 2, "a clone keeps the pool alive");
    drop(clone);
    wait_for(
        "dropped connections to close",
        Duration::from_secs(3),
        || async { client_count(&redis) == 0 },
    )
    .await;
}

// connect() keeps retrying until a server that starts late comes up.
#[tokio::test]
async fn connect_waits_for_a_late_server() {
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let config = redis_config(&redis);
    let connecting = tokio::spawn(RedisConnectionManager::connect(config));
    // Let a few attempts fail first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !connecting.is_finished(),
        "connect returned while Redis was down"
    );
    redis.start_again().await;
    let manager = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .expect("connect finished")
        .unwrap()
        .unwrap();
    assert!(manager.is_connected());
}

// With max attempts set, connect() gives up with an error naming the address and attempts.
#[tokio::test]
async fn connect_gives_up_after_max_attempts() {
    let port = free_port();
    let mut config = RedisConfig::centralized("127.0.0.1", port);
    config.reconnect.max_attempts = 3;
    config.reconnect.base_delay = Duration::from_millis(10);
    config.reconnect.max_delay = Duration::from_millis(20);
    let start = Instant::now();
    let err = RedisConnectionManager::connect(config).await.unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5));
    let text = err.to_string();
    assert!(
        matches!(err, ConnectionError::Unavailable { .. }),
        "{err:?}"
    );
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("after 3 attempts"), "{text}");
}

// connect_lazy returns at once while Redis is down, reports "connecting",
// and becomes connected by itself when Redis comes up.
#[tokio::test]
async fn lazy_connect_starts_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    redis.stop().await;
    let manager = RedisConnectionManager::connect_lazy(redis_config(&redis)).unwrap();
    assert_eq!(manager.status(), ConnectionStatus::Connecting);
    // A command while down fails within the timeout instead of hanging.
    let start = Instant::now();
    let r: Result<Option<String>, _> = manager.pool().get("k").await;
    assert!(r.is_err());
    assert!(
        start.elapsed() < Duration::from_millis(900),
        "took {:?}",
        start.elapsed()
    );

    redis.start_again().await;
    let mut status = manager.watch_status();
    tokio::time::timeout(
        Duration::from_secs(5),
        status.wait_for(|s| *s == ConnectionStatus::Connected),
    )
    .await
    .expect("connected after Redis came up")
    .unwrap();
    let _: () = manager
        .pool()
        .set("k", "v", None, None, false)
        .await
        .unwrap();
}

// connect_lazy spawns the manager's background tasks: outside a tokio
// runtime it answers with a typed error instead of panicking.
#[test]
fn lazy_connect_outside_a_runtime_is_a_typed_error() {
    let config = redis_connection::RedisConfig::centralized("127.0.0.1", 1);
    let result = std::panic::catch_unwind(|| RedisConnectionManager::connect_lazy(config));
    let error = result
        .expect("no panic outside a runtime")
        .expect_err("no manager without a runtime");
    assert!(matches!(error, ConnectionError::NoRuntime), "{error:?}");
    assert!(error.to_string().contains("tokio runtime"), "{error}");
}
