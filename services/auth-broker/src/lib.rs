//! auth-broker: sessions, revocation and rate limiting, all Redis-native.
//!
//! - `POST /v1/sessions` (internal): create a session, rate-limited per
//!   tenant and user; the token is returned once and only its hash is stored.
//! - `GET /v1/sessions/current`, `DELETE /v1/sessions/current` (bearer token).
//! - `DELETE /v1/tenants/{t}/users/{u}/sessions` (internal): revoke them all.
//! - `GET /health/live`, `/health/ready`, `/health`, `/metrics`.
//! - `GET /openapi.json`: [`openapi`], the HTTP contract (committed as
//!   `docs/openapi/auth-broker.json`).
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
use utoipa::OpenApi as _;

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
        .merge(service_kit::openapi::route(&openapi()))
        .fallback(|| async { service_kit::ApiError::not_found() })
        .method_not_allowed_fallback(|| async { service_kit::ApiError::method_not_allowed() })
        .with_state(state);
    with_common_layers(routes, limits, metrics)
}

/// The operations of this service, derived from its handlers.
#[derive(utoipa::OpenApi)]
#[openapi(paths(
    sessions::create,
    sessions::current,
    sessions::revoke_current,
    sessions::revoke_user,
))]
struct Operations;

/// auth-broker's OpenAPI 3.1 document: what `GET /openapi.json` serves and
/// `docs/openapi/auth-broker.json` holds (`cargo xtask openapi` writes it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    service_kit::openapi::document(
        Operations::openapi(),
        "auth-broker",
        "Sessions: creation (internal, rate-limited), reading, revocation. \
         Internal operations take `Authorization: Bearer <INTERNAL_API_TOKEN>`; \
         the others a session token. Every error is \
         `{\"error\": {\"code\", \"message\"}}`. Any operation may also answer \
         400 `headers_too_large` when the request's headers exceed 16 KiB, and \
         405 `method_not_allowed` (with `Allow`) for a method a path does not have.",
    )
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
