//! The state every handler sees.

use axum::extract::FromRef;
use service_kit::Platform;

/// main-api's state: the Redis layer.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// Connections, pub/sub, two-tier cache, metrics.
    pub platform: Platform,
}
