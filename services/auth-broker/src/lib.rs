//! auth-broker: sessions, revocation and rate limiting, all Redis-native.
//!
//! - `POST /v1/sessions` (internal): create a session, rate-limited per
//!   tenant and user; the token is returned once and only its hash is stored.
//! - `GET /v1/sessions/current`, `DELETE /v1/sessions/current` (bearer token).
//! - `DELETE /v1/tenants/{t}/users/{u}/sessions` (internal): revoke them all.
//! - `GET /health/live`, `/health/ready`, `/health`, `/metrics`.
//!
//! Internal endpoints need `Authorization: Bearer <INTERNAL_API_TOKEN>`.

mod config;
mod sessions;
mod state;

use axum::Router;
use axum::routing::{delete, get, post};
use service_kit::{
    HttpLimits, InternalToken, ServiceError, Shutdown, run_service, with_common_layers,
};
use tokio::net::TcpListener;

pub use config::Config;
pub use state::{AppState, SessionPolicy};

/// The router, with every layer.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    let metrics = state.platform.metrics.clone();
    let routes = Router::new()
        .route("/v1/sessions", post(sessions::create))
        .route(
            "/v1/sessions/current",
            get(sessions::current).delete(sessions::revoke_current),
        )
        .route(
            "/v1/tenants/{tenant_id}/users/{user_id}/sessions",
            delete(sessions::revoke_user),
        )
        .merge(service_kit::health::routes())
        .fallback(|| async { service_kit::ApiError::not_found() })
        .with_state(state);
    with_common_layers(routes, limits, metrics)
}

/// Starts the Redis layer, serves on `listener` until `shutdown`, then
/// closes the Redis layer (unsubscribe, QUIT).
///
/// # Errors
/// Configuration errors of the Redis layer, or I/O errors of the listener.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: Shutdown,
) -> Result<(), ServiceError> {
    let limits = config.common.http;
    let sessions = SessionPolicy {
        ttl: config.session_ttl,
        rate_limit: config.session_rate_limit,
        rate_window: config.session_rate_window,
    };
    let internal_token = InternalToken(config.internal_token.clone());
    let router = |platform| {
        app(
            AppState {
                platform,
                internal_token,
                sessions,
            },
            limits,
        )
    };
    run_service("auth-broker", listener, &config.common, router, shutdown).await
}
