//! main-api: in-process through its router (`api`), and as real processes
//! next to auth-broker (`e2e`).

mod api;
mod bad_input;
mod command_latency;
mod compose;
mod contract;
mod e2e;
mod env;
mod fairness;
mod interop;
mod jobs;
mod memory;
mod observability;
mod otel;
mod otel_metrics;
mod otel_tls;
mod otlp_receiver;
mod partition;
mod procs;
mod prometheus;
mod server;
mod stale;

use std::collections::HashMap;
use std::time::Duration;

use axum::Router;
use axum::http::{Method, StatusCode};
use redis_connection::HealthStatus;
use serde_json::{Value, json};
use service_kit::{Env, InternalToken, Platform};
use test_support::RedisServer;
use test_support::http::{Answer, call};

pub(crate) const INTERNAL: &str = "test-internal-token-0123456789abcdef";

/// Variables for a service on `redis`, plus `extra`.
pub(crate) fn vars(redis: &RedisServer, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let mut vars: HashMap<String, String> = [
        ("REDIS_PORT", redis.port().to_string()),
        ("REDIS_COMMAND_TIMEOUT_MS", "300".to_owned()),
        ("HTTP_REQUEST_TIMEOUT_MS", "2000".to_owned()),
        ("INTERNAL_API_TOKEN", INTERNAL.to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    vars.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    vars
}

async fn healthy(platform: &Platform) {
    test_support::wait_for(
        "Redis to be healthy and the L1 live",
        Duration::from_secs(5),
        || async {
            platform.manager.health_check().await.status == HealthStatus::Healthy
                && platform.cache.l1_live()
        },
    )
    .await;
}

/// One in-process main-api instance.
pub(crate) async fn main_api(redis: &RedisServer, extra: &[(&str, &str)]) -> Router {
    test_support::init_tracing();
    let vars = vars(redis, extra);
    let config = main_api::Config::from_env(&Env::from_fn(|n| vars.get(n).cloned())).unwrap();
    let platform = Platform::start(config.common.redis.clone(), config.common.cache.clone())
        .await
        .unwrap();
    healthy(&platform).await;
    let jobs = main_api::Jobs::start(&platform, config.jobs);
    main_api::app(main_api::AppState { platform, jobs }, config.common.http)
}

/// One in-process auth-broker instance.
pub(crate) async fn auth_broker(redis: &RedisServer) -> Router {
    auth_broker_with(redis, &[]).await
}

/// One in-process auth-broker instance with extra variables.
pub(crate) async fn auth_broker_with(redis: &RedisServer, extra: &[(&str, &str)]) -> Router {
    let vars = vars(redis, extra);
    let config = auth_broker::Config::from_env(&Env::from_fn(|n| vars.get(n).cloned())).unwrap();
    let platform = Platform::start(config.common.redis.clone(), config.common.cache.clone())
        .await
        .unwrap();
    healthy(&platform).await;
    let state = auth_broker::AppState {
        platform,
        internal_token: InternalToken(config.internal_token.clone()),
        sessions: auth_broker::SessionPolicy {
            ttl: config.session_ttl,
            rate_limit: 1000,
            rate_window: config.session_rate_window,
        },
    };
    auth_broker::app(state, config.common.http)
}

/// A session token from `broker` for `tenant`/`user` with `roles`.
pub(crate) async fn session(broker: &Router, tenant: &str, user: &str, roles: &[&str]) -> String {
    let body = json!({"tenant_id": tenant, "user_id": user, "roles": roles});
    let answer = call(
        broker,
        Method::POST,
        "/v1/sessions",
        Some(INTERNAL),
        Some(&body),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    answer.json["token"].as_str().unwrap().to_owned()
}

/// `x-cache` of an answer.
pub(crate) fn tier(answer: &Answer) -> &str {
    answer
        .headers
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

pub(crate) fn doc(n: u32) -> Value {
    json!({"rows": n, "name": "shard"})
}
