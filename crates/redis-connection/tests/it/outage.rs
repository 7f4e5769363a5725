//! Redis going away under a connected manager, and coming back.

use std::time::{Duration, Instant};

use redis_connection::fred::prelude::*;
use redis_connection::{ConnectionError, ConnectionStatus, HealthStatus, RedisConnectionManager};
use test_support::{RedisServer, wait_for};

use test_support::fixtures::redis_config;

async fn get(manager: &RedisConnectionManager) -> (Result<Option<String>, Error>, Duration) {
    let start = Instant::now();
    let r = manager.pool().get("k").await;
    (r, start.elapsed())
}

// Stopped: commands fail within the timeout, status turns disconnected,
// health is unhealthy with an error. Restarted: recovers with no call to the manager.
#[tokio::test]
async fn stopped_then_restarted() {
    let mut redis = RedisServer::start().await;
    let config = redis_config(&redis);
    let timeout = config.command_timeout;
    let manager = RedisConnectionManager::connect(config).await.unwrap();
    let mut status = manager.watch_status();

    redis.stop().await;
    for _ in 0..5 {
        let (r, took) = get(&manager).await;
        let err = r.expect_err("a command succeeded while Redis was down");
        assert!(
            ConnectionError::from_fred(&err, timeout).is_unavailable(),
            "{err:?}"
        );
        assert!(
            took <= timeout * 3,
            "a command took {took:?} (timeout {timeout:?})"
        );
    }
    tokio::time::timeout(
        Duration::from_secs(3),
        status.wait_for(|s| *s == ConnectionStatus::Disconnected),
    )
    .await
    .expect("status turned disconnected")
    .unwrap();
    let start = Instant::now();
    let health = manager.health_check().await;
    assert!(start.elapsed() <= timeout * 3);
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert!(!health.connected);
    assert!(health.latency.is_none());
    assert!(health.error.is_some());

    redis.start_again().await;
    wait_for(
        "commands to succeed again",
        Duration::from_secs(5),
        || async {
            manager
                .pool()
                .set::<(), _, _>("k", "back", None, None, false)
                .await
                .is_ok()
        },
    )
    .await;
    let (r, _) = get(&manager).await;
    assert_eq!(r.unwrap().as_deref(), Some("back"));
    wait_for("health to recover", Duration::from_secs(5), || async {
        manager.health_check().await.status == HealthStatus::Healthy
    })
    .await;
    assert_eq!(manager.status(), ConnectionStatus::Connected);
}

// Paused (SIGSTOP): commands time out and health is unhealthy; resumed: recovers.
#[tokio::test]
async fn paused_then_resumed() {
    let redis = RedisServer::start().await;
    let config = redis_config(&redis);
    let timeout = config.command_timeout;
    let manager = RedisConnectionManager::connect(config).await.unwrap();

    redis.pause();
    let (r, took) = get(&manager).await;
    let err = r.expect_err("a paused server answered");
    assert!(
        ConnectionError::from_fred(&err, timeout).is_unavailable(),
        "{err:?}"
    );
    assert!(took <= timeout * 3, "took {took:?}");
    let health = manager.health_check().await;
    assert_eq!(health.status, HealthStatus::Unhealthy, "{health:?}");

    redis.resume();
    wait_for(
        "commands to succeed after resume",
        Duration::from_secs(10),
        || async { get(&manager).await.0.is_ok() },
    )
    .await;
    wait_for("health to recover", Duration::from_secs(10), || async {
        manager.health_check().await.status == HealthStatus::Healthy
    })
    .await;
}
