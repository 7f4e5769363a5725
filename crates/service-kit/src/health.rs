//! `/health/live`, `/health/ready` (and `/health`), `/metrics`.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{FromRef, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use redis_connection::{HealthStatus, RedisConnectionManager};
use serde::Serialize;
use serde_json::json;
use tracing::{info, warn};

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

/// How long a readiness verdict is reused. Probes bypass the concurrency
/// limit (an overloaded instance is still alive), so without this every
/// probe would cost Redis a PING per pooled connection: at most one health
/// check runs per period, however many probes arrive.
const READINESS_TTL: Duration = Duration::from_millis(250);

/// The last readiness verdict, shared by all probes of one instance.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// When the last check ran and what it found. Held across the check, so
    /// that concurrent probes wait for one check instead of each running
    /// their own.
    last: tokio::sync::Mutex<Option<(Instant, HealthStatus)>>,
}

impl Readiness {
    /// The verdict of a check at most [`READINESS_TTL`] old, running one
    /// when there is none. Changes of verdict are logged, with the cause,
    /// which the public body never carries.
    pub(crate) async fn verdict(&self, manager: &RedisConnectionManager) -> HealthStatus {
        let mut last = self.last.lock().await;
        if let Some((at, status)) = *last
            && at.elapsed() < READINESS_TTL
        {
            return status;
        }
        let report = manager.health_check().await;
        let before = last.map(|(_, status)| status);
        if before != Some(report.status) {
            match report.status {
                HealthStatus::Unhealthy => warn!(
                    error = report.error.as_deref().unwrap_or("-"),
                    "not ready: Redis is unhealthy"
                ),
                status => info!(redis = ?status, "ready"),
            }
        }
        *last = Some((Instant::now(), report.status));
        report.status
    }
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
        .render(&platform.cache.stats(), platform.manager.is_connected());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}
