//! The span of each HTTP request: what every log line inside a request
//! carries, and, with trace export on, the server span of the OpenTelemetry
//! HTTP semantic conventions, child of the caller's W3C `traceparent`.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderMap;
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::Status;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

const REQUEST_ID: &str = "x-request-id";

/// The request's span. Its fields hold no path, query, header value or
/// body: the route template stands for the path, since paths hold tenant,
/// user and shard ids, and every log line inside the request carries these
/// fields.
///
/// With export on, the span is also the OpenTelemetry server span: named
/// `METHOD route`, child of the caller's `traceparent`, with the semantic
/// conventions' attributes set on the trace only (`url.path`, without the
/// query, never reaches a log line). With export off it is the plain log
/// span, and reads no `traceparent`.
pub(crate) fn request_span(request: &Request) -> Span {
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str);
    let method = request.method().as_str();
    if !crate::otel::enabled() {
        return tracing::info_span!("http", request_id = %id, method = %method, route = %route);
    }
    // `otel.*` are tracing-opentelemetry's names for the span's name and
    // kind; without a route the conventions name the span by its method.
    let name = if route == "unmatched" {
        method.to_owned()
    } else {
        format!("{method} {route}")
    };
    let span = tracing::info_span!(
        "http",
        request_id = %id,
        method = %method,
        route = %route,
        otel.name = %name,
        otel.kind = "server",
    );
    // Most requests carry no traceparent: skip the propagator (and the
    // span's extension lock that setting a parent takes) for them.
    if request.headers().contains_key("traceparent") {
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(parent);
    }
    span.set_attribute("http.request.method", method.to_owned());
    span.set_attribute("http.route", route.to_owned());
    span.set_attribute("url.path", request.uri().path().to_owned());
    span.set_attribute("url.scheme", "http");
    span
}

/// Records the status on the request's span (export on); a 5xx marks it an
/// error (the server failed), a 4xx does not (the client did), as the
/// conventions say for server spans.
pub(crate) fn record_response(response: &Response<Body>, _latency: Duration, span: &Span) {
    if !crate::otel::enabled() {
        return;
    }
    let status = response.status();
    span.set_attribute("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.set_status(Status::error(status.as_str().to_owned()));
    }
}

/// Request headers as the propagator reads them.
struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(axum::http::HeaderName::as_str).collect()
    }
}
