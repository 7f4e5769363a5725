//! The state every handler sees.

use std::time::Duration;

use axum::extract::FromRef;
use service_kit::{InternalToken, Platform};

/// auth-broker's state.
#[derive(Debug, Clone, FromRef)]
pub struct AppState {
    /// Connections, pub/sub, two-tier cache, metrics.
    pub platform: Platform,
    /// Guards the internal endpoints.
    pub internal_token: InternalToken,
    /// Session lifetime and creation limits.
    pub sessions: SessionPolicy,
}

/// How sessions are issued.
#[derive(Debug, Clone, Copy)]
pub struct SessionPolicy {
    /// Lifetime of a session.
    pub ttl: Duration,
    /// Creations allowed per tenant and user per window.
    pub rate_limit: i64,
    /// The window.
    pub rate_window: Duration,
}
