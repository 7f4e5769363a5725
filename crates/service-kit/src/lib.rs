//! What the platform's axum services share, so that both behave the same:
//!
//! - [`Env`] and [`ConfigError`] (redis-connection's, re-exported): typed
//!   configuration read once from the environment, errors naming the
//!   variable, and [`likely_typos`] among the variables set;
//! - [`ApiError`]: the JSON error shape `{"error": {"code", "message"}}`;
//! - extractors ([`JsonBody`], [`JsonDocument`], [`PathParams`]) whose
//!   rejections are 400/413/415 in that shape;
//! - [`Platform`]: connection manager + pub/sub + two-tier cache + metrics;
//! - [`health::routes`]: `/health/live`, `/health/ready`, `/health`, `/metrics`;
//! - [`openapi`]: what both services' OpenAPI documents share, and the
//!   route serving a document at `/openapi.json`;
//! - [`with_common_layers`]: request ids, access logs without secrets, a
//!   concurrency limit (and a share of it per tenant, taken by
//!   [`Authenticated`]), a request timeout, a body limit, HTTP metrics;
//! - sessions ([`Session`], [`SessionToken`], [`authenticate`]);
//! - [`OtelConfig`] and [`telemetry::init_with`]: OpenTelemetry traces and
//!   metrics over OTLP/HTTP (or https, with the `otlp-tls` feature) from
//!   the standard `OTEL_*` variables (off without an endpoint), with a span
//!   per request, per cache operation and per Redis command, W3C
//!   `traceparent` taken from callers, and the `/metrics` series pushed as
//!   the same numbers;
//! - [`serve`]: hyper under our own accept loop, with a header-read timeout,
//!   a connection cap and a shutdown deadline ([`ServerLimits`]), stopped by
//!   [`shutdown_signal`].

mod auth;
mod command_metrics;
mod config;
mod error;
mod extract;
mod fairness;
pub mod health;
mod metrics;
mod metrics_bridge;
mod middleware;
pub mod openapi;
mod otel;
mod otel_config;
mod otel_headers;
mod otel_metrics;
#[cfg(feature = "otlp-tls")]
mod otlp_client;
mod platform;
mod readiness;
mod serve;
mod server;
mod session;
pub mod telemetry;
mod throttle;
mod token;
mod trace_span;

pub use auth::{Authenticated, InternalCaller, InternalToken};
pub use config::{CommonConfig, HTTP_ENV_VARS, likely_typos};
pub use error::ApiError;
pub use extract::{JsonBody, JsonDocument, PathParams};
pub use metrics::Metrics;
pub use middleware::{HttpLimits, MAX_HEADER_BYTES, with_common_layers};
pub use openapi::{ErrorBody, ErrorDetail};
pub use otel_config::{OTEL_ENV_VARS, OtelConfig, SamplerChoice};
pub use platform::{Platform, StartError};
pub use redis_connection::{ConfigError, Env};
pub use serve::{ServiceError, Shutdown, run_service, service_main, shutdown_signal};
pub use server::{ServerLimits, serve};
pub use session::{ADMIN_ROLE, Session, authenticate, require_tenant, require_user_or_admin};
pub use token::{SessionToken, TOKEN_SECRET_BYTES, bearer, constant_time_eq};
