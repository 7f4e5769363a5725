//! The readiness verdict, cached so that probes cost Redis at most one
//! health check per period.

use std::time::{Duration, Instant};

use redis_connection::{HealthStatus, RedisConnectionManager};
use tracing::info;

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
                // INFO: the connection layer's WARN already says Redis is
                // unreachable; this says what the probes answer.
                HealthStatus::Unhealthy => info!(
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
