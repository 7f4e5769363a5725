//! `/health/live`, `/health/ready` (and `/health`), `/metrics`.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use redis_connection::HealthStatus;
use serde::Serialize;
use serde_json::json;

use crate::platform::Platform;

/// The health and metrics routes, for any state that holds a [`Platform`].
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    Platform: FromRef<S>,
{
    Router::new()
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
        .route("/health", get(ready))
        .route("/metrics", get(metrics))
}

/// Up as soon as the process serves HTTP, whatever Redis does.
async fn live() -> impl IntoResponse {
    axum::Json(json!({"status": "ok"}))
}

#[derive(Serialize)]
struct ReadinessBody {
    status: &'static str,
    redis: &'static str,
}

/// 200 while Redis is healthy or degraded, 503 when it is unhealthy; the
/// body names the state only (`{"status":"ok","redis":"healthy"}`).
async fn ready(State(platform): State<Platform>) -> Response {
    let verdict = platform.readiness.verdict(&platform.manager).await;
    let (code, status, redis) = match verdict {
        HealthStatus::Healthy => (StatusCode::OK, "ok", "healthy"),
        HealthStatus::Degraded => (StatusCode::OK, "degraded", "degraded"),
        HealthStatus::Unhealthy => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "unhealthy"),
    };
    (code, axum::Json(ReadinessBody { status, redis })).into_response()
}

/// Prometheus text format.
async fn metrics(State(platform): State<Platform>) -> Response {
    let body = platform
        .metrics
        .render(&platform.cache.stats(), &platform.manager);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
