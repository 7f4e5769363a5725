//! `/health/live`, `/health/ready` (and `/health`), `/metrics`.

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use redis_connection::HealthStatus;

use crate::openapi::{Liveness, Readiness};
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
        .route("/health", get(health))
        .route("/metrics", get(metrics))
}

/// Liveness: up as soon as the process serves HTTP, whatever Redis does.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "The process serves", body = Liveness))
)]
pub(crate) async fn live() -> impl IntoResponse {
    axum::Json(Liveness { status: "ok" })
}

/// Readiness: 200 while Redis is healthy or degraded, 503 when it is unhealthy.
///
/// The body names the state only, never its cause; the verdict is reused
/// for 250 ms, however many probes arrive.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "Redis is healthy or degraded", body = Readiness),
        (status = 503, description = "Redis is unhealthy", body = Readiness),
    )
)]
pub(crate) async fn ready(State(platform): State<Platform>) -> Response {
    let verdict = platform.readiness.verdict(&platform.manager).await;
    let (code, status, redis) = match verdict {
        HealthStatus::Healthy => (StatusCode::OK, "ok", "healthy"),
        HealthStatus::Degraded => (StatusCode::OK, "degraded", "degraded"),
        HealthStatus::Unhealthy => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "unhealthy"),
    };
    (code, axum::Json(Readiness { status, redis })).into_response()
}

/// Readiness, under the older path: the same answer as `/health/ready`.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Redis is healthy or degraded", body = Readiness),
        (status = 503, description = "Redis is unhealthy", body = Readiness),
    )
)]
pub(crate) async fn health(state: State<Platform>) -> Response {
    ready(state).await
}

/// Metrics in the Prometheus text format (every metric has `# HELP` text).
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain", body = String),
    )
)]
pub(crate) async fn metrics(State(platform): State<Platform>) -> Response {
    let body = platform.metrics.render(
        &platform.cache.stats(),
        &platform.pubsub.stats(),
        &platform.manager,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
