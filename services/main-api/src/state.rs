//! The state every handler sees.

use axum::extract::FromRef;
use service_kit::Platform;

use crate::jobs::Jobs;

/// main-api's state: the Redis layer and the purge jobs.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// Connections, pub/sub, two-tier cache, metrics.
    pub platform: Platform,
    /// Tenant purge jobs (see `jobs.rs`).
    pub jobs: Jobs,
}
