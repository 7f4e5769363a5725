//! main-api: tenant data (shard structured data, user profiles) served
//! through the two-tier cache, for callers holding an auth-broker session.
//!
//! - `GET|PUT|DELETE /v1/tenants/{t}/shards/{s}/structured`
//! - `GET|PUT|DELETE /v1/tenants/{t}/users/{u}/profile` (user `u`, or role `admin`)
//! - `POST /v1/tenants/{t}/cache/invalidate` (role `admin`; a large tenant's
//!   purge becomes a background job)
//! - `GET /v1/tenants/{t}/cache/jobs/{id}` (role `admin`): a purge job's progress
//! - `GET /health/live`, `/health/ready`, `/health`, `/metrics`
//! - `GET /openapi.json`: [`openapi`], the HTTP contract (committed as
//!   `docs/openapi/main-api.json`)
//!
//! [`app`] builds the router (tests drive it in-process); [`run`] serves it
//! until a shutdown signal, then closes the Redis layer.

mod config;
mod data;
mod invalidate;
mod job_runner;
mod job_view;
mod jobs;
mod state;

use axum::Router;
use axum::routing::{get, post};
use service_kit::{HttpLimits, ServiceError, Shutdown, run_service, with_common_layers};
use tokio::net::TcpListener;
use utoipa::OpenApi as _;

pub use config::{Config, JobConfig};
pub use jobs::Jobs;
pub use state::AppState;

/// The router, with every layer.
pub fn app(state: AppState, limits: HttpLimits) -> Router {
    let metrics = state.platform.metrics.clone();
    let routes = Router::new()
        .route(
            "/v1/tenants/{tenant_id}/shards/{shard_id}/structured",
            get(data::get_shard)
                .put(data::put_shard)
                .delete(data::delete_shard),
        )
        .route(
            "/v1/tenants/{tenant_id}/users/{user_id}/profile",
            get(data::get_profile)
                .put(data::put_profile)
                .delete(data::delete_profile),
        )
        .route(
            "/v1/tenants/{tenant_id}/cache/invalidate",
            post(invalidate::invalidate),
        )
        .route(
            "/v1/tenants/{tenant_id}/cache/jobs/{job_id}",
            get(jobs::get_job),
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
    data::get_shard,
    data::put_shard,
    data::delete_shard,
    data::get_profile,
    data::put_profile,
    data::delete_profile,
    invalidate::invalidate,
    jobs::get_job,
))]
struct Operations;

/// main-api's OpenAPI 3.1 document: what `GET /openapi.json` serves and
/// `docs/openapi/main-api.json` holds (`cargo xtask openapi` writes it).
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut operations = Operations::openapi();
    if let Some(components) = operations.components.as_mut() {
        components.schemas.insert(
            "InvalidateBody".to_owned(),
            invalidate::InvalidateBody::strict_schema(),
        );
    }
    service_kit::openapi::document(
        operations,
        "main-api",
        "Tenant data (shard structured data, user profiles) served through the \
         two-tier cache, for callers holding an auth-broker session \
         (`Authorization: Bearer <session token>`). Every error is \
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
    let job_config = config.jobs;
    run_service(
        "main-api",
        listener,
        &config.common,
        |platform| {
            let jobs = Jobs::start(&platform, job_config);
            app(AppState { platform, jobs }, limits)
        },
        shutdown,
    )
    .await
}
