//! The layers every service puts around its routes: request ids, access
//! logs without secrets, a concurrency limit, a request timeout, a body
//! limit, and metrics. Every refusal uses the JSON error shape.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::http::header::{AUTHORIZATION, COOKIE};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Router};
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

use crate::error::ApiError;
use crate::fairness::TenantSlots;
use crate::metrics::{Metrics, Tracking, track};

/// HTTP limits, from the environment (see each service's config); the
/// default is what the environment's defaults give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpLimits {
    /// Longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Requests handled at once; beyond it, 503 at once rather than queueing.
    pub max_concurrency: usize,
    /// Requests of one tenant (by its authenticated session) handled at
    /// once; beyond it, 429 for that tenant while others are still served.
    pub max_concurrency_per_tenant: usize,
    /// Largest request body accepted (413 beyond it).
    pub max_body_bytes: usize,
    /// Whether every response is logged at INFO (`HTTP_ACCESS_LOG`): method,
    /// route template, status, latency and request id; never a header
    /// value, a path's ids or a body.
    pub access_log: bool,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            max_concurrency: 512,
            max_concurrency_per_tenant: 128,
            max_body_bytes: 1024 * 1024,
            access_log: true,
        }
    }
}

/// Setters in the manner of moka's and reqwest's builders: start from
/// [`HttpLimits::default`] and change what differs.
impl HttpLimits {
    /// Longest a request may take before it is answered 503.
    #[must_use]
    pub fn with_request_timeout(mut self, request_timeout: Duration) -> Self {
        self.request_timeout = request_timeout;
        self
    }

    /// Whether every response is logged at INFO.
    #[must_use]
    pub fn with_access_log(mut self, access_log: bool) -> Self {
        self.access_log = access_log;
        self
    }

    /// Requests handled at once.
    #[must_use]
    pub fn with_max_concurrency(mut self, max_concurrency: usize) -> Self {
        self.max_concurrency = max_concurrency;
        self
    }

    /// Requests of one tenant handled at once.
    #[must_use]
    pub fn with_max_concurrency_per_tenant(mut self, max_concurrency_per_tenant: usize) -> Self {
        self.max_concurrency_per_tenant = max_concurrency_per_tenant;
        self
    }

    /// Largest request body accepted.
    #[must_use]
    pub fn with_max_body_bytes(mut self, max_body_bytes: usize) -> Self {
        self.max_body_bytes = max_body_bytes;
        self
    }
}

/// Largest total size of a request's headers. Real requests carry a few
/// hundred bytes; a flood of header bytes is refused before any work.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Wraps `router` (whose state is already provided) in the common layers.
pub fn with_common_layers(router: Router, limits: HttpLimits, metrics: Metrics) -> Router {
    let slots = Arc::new(Semaphore::new(limits.max_concurrency));
    let tenant_slots = TenantSlots::new(limits.max_concurrency_per_tenant);
    router
        // Read by the `Authenticated` extractor (see fairness.rs).
        .layer(Extension(tenant_slots))
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(
            limits.request_timeout,
            timeout,
        ))
        .layer(middleware::from_fn_with_state(slots, limit_concurrency))
        .layer(middleware::from_fn(limit_headers))
        // Around every layer that answers by itself (limits, timeout), so
        // that each response is counted. `Router::layer` wraps each route
        // after routing, so the matched route template is known here.
        .layer(middleware::from_fn_with_state(
            Tracking {
                metrics,
                access_log: limits.access_log,
            },
            track,
        ))
        .layer(
            TraceLayer::new_for_http()
                // tower-http logs every 5xx at ERROR: during a Redis outage
                // that is a line per request. A 503 is an answer we chose
                // (the outage is logged once by the connection layer); a
                // 500 is logged where it is made (`ApiError::internal`).
                .on_failure(DefaultOnFailure::new().level(Level::DEBUG))
                .make_span_with(crate::trace_span::request_span),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        // Marks credentials sensitive so no layer ever logs them.
        .layer(SetSensitiveRequestHeadersLayer::new([
            AUTHORIZATION,
            COOKIE,
        ]))
}

/// Answers 503 when a request takes longer than its budget: a client never
/// waits on a hung dependency.
async fn timeout(State(budget): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(budget, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            "the request did not complete in time; retry later",
        )
        .into_response(),
    }
}

/// Refuses requests whose headers exceed [`MAX_HEADER_BYTES`] (400, in the
/// JSON error shape; larger still, hyper refuses them itself).
async fn limit_headers(request: Request, next: Next) -> Response {
    let size: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if size > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "headers_too_large",
            "the request headers are too large",
        )
        .into_response();
    }
    next.run(request).await
}

/// Sheds load instead of queueing: a slow client holds a slot at most the
/// request timeout, and a full service answers at once.
async fn limit_concurrency(
    State(slots): State<Arc<Semaphore>>,
    request: Request,
    next: Next,
) -> Response {
    // Probes and scrapes stay answerable under load: an overloaded instance
    // is alive, and restarting it would only make things worse.
    let path = request.uri().path();
    if path.starts_with("/health") || path == "/metrics" {
        return next.run(request).await;
    }
    match slots.try_acquire() {
        Ok(_permit) => next.run(request).await,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "too many requests in flight; retry later",
        )
        .into_response(),
    }
}
