//! Health reports.

use std::time::Duration;

use redis_connection::{HealthStatus, RedisConnectionManager};
use test_support::RedisServer;

use test_support::fixtures::redis_config;

// A responsive server is healthy, with a measured sub-threshold latency.
#[tokio::test]
async fn responsive_server_is_healthy_with_a_measured_latency() {
    let redis = RedisServer::start().await;
    let manager = RedisConnectionManager::connect(redis_config(&redis))
        .await
        .unwrap();
    let report = manager.health_check().await;
    assert_eq!(report.status, HealthStatus::Healthy, "{report:?}");
    assert!(report.connected);
    let latency = report.latency.expect("a latency");
    assert!(latency > Duration::ZERO && latency < Duration::from_millis(100));
    assert_eq!(report.error, None);
    let json = serde_json::to_value(&report).unwrap();
    assert!(json["latency_ms"].as_f64().unwrap() > 0.0);
}

// A server that answers slower than the threshold is degraded, not unhealthy.
#[tokio::test]
async fn slow_server_is_degraded() {
    let redis = RedisServer::start().await;
    let mut config = redis_config(&redis);
    config.command_timeout = Duration::from_secs(2);
    config.health_degraded_threshold = Duration::from_millis(50);
    let manager = RedisConnectionManager::connect(config).await.unwrap();

    // CLIENT PAUSE holds every client's commands (PING included) for 300 ms;
    // it returns at once, so the pause is in force when the check starts.
    let paused = redis.cmd(&["CLIENT", "PAUSE", "300", "ALL"]);
    assert_eq!(paused.as_string().as_deref(), Some("OK"));
    let report = manager.health_check().await;
    assert_eq!(report.status, HealthStatus::Degraded, "{report:?}");
    assert!(report.connected);
    assert!(report.latency.unwrap() > Duration::from_millis(50));
    assert!(report.error.unwrap().contains("threshold"));
}
