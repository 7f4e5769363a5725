//! auth-broker, driven in-process through its router against a real Redis.

mod bad_input;
mod sessions;

use std::collections::HashMap;
use std::time::Duration;

use auth_broker::{AppState, Config, SessionPolicy, app};
use axum::Router;
use axum::http::{Method, StatusCode};
use serde_json::Value;
use service_kit::{Env, InternalToken, Platform};
use test_support::RedisServer;

pub(crate) const INTERNAL: &str = "test-internal-token-0123456789abcdef";

/// An auth-broker router on its own Redis.
pub(crate) struct TestApp {
    pub(crate) router: Router,
    pub(crate) redis: RedisServer,
    pub(crate) platform: Platform,
}

impl TestApp {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        test_support::init_tracing();
        let redis = RedisServer::start().await;
        let mut vars: HashMap<String, String> = [
            ("REDIS_PORT", redis.port().to_string()),
            ("REDIS_COMMAND_TIMEOUT_MS", "300".to_owned()),
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
        let config = Config::from_env(&Env::from_fn(|n| vars.get(n).cloned())).unwrap();
        let platform = Platform::start(config.common.redis.clone(), config.common.cache.clone())
            .await
            .unwrap();
        let state = AppState {
            platform: platform.clone(),
            internal_token: InternalToken(config.internal_token.clone()),
            sessions: SessionPolicy {
                ttl: config.session_ttl,
                rate_limit: config.session_rate_limit,
                rate_window: config.session_rate_window,
            },
        };
        let router = app(state, config.common.http);
        test_support::wait_for("Redis to be healthy", Duration::from_secs(5), || async {
            platform.manager.health_check().await.status == redis_connection::HealthStatus::Healthy
        })
        .await;
        Self {
            router,
            redis,
            platform,
        }
    }

    /// Sends a request; returns status, headers and the JSON body (Null if none).
    pub(crate) async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let answer =
            test_support::http::call(&self.router, method, path, bearer, body.as_ref()).await;
        (answer.status, answer.headers, answer.json)
    }

    /// Creates a session; returns the whole 201 body.
    pub(crate) async fn create_session(&self, tenant: &str, user: &str, roles: &[&str]) -> Value {
        let body = serde_json::json!({"tenant_id": tenant, "user_id": user, "roles": roles});
        let (status, _, json) = self
            .call(Method::POST, "/v1/sessions", Some(INTERNAL), Some(body))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{json}");
        json
    }
}
