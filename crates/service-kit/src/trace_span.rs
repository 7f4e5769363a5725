//! The spans of each HTTP request: the log span every log line inside a
//! request carries, and, with trace export on, the server span of the
//! OpenTelemetry HTTP semantic conventions, child of the caller's W3C
//! `traceparent`.
//!
//! Why two, and why the server span is made through the OpenTelemetry API
//! rather than from the log span by tracing-opentelemetry (measured in
//! workload 7, BENCHMARKS.md "Tracing on vs off"): through the bridge, the
//! log span's fields became attributes next to their semantic-convention
//! twins (three more to convert and encode per span), each convention
//! attribute set afterwards was a subscriber and registry look-up and a
//! lock, and every poll of the request's future took the span's extension
//! lock and read the clock. Made directly, the server span is built once
//! with its attributes, and is made current (an OpenTelemetry context) at
//! each poll so that the cache-operation and Redis-command spans, which
//! tracing-opentelemetry makes, find it as their parent.

use axum::body::Body;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::{Metadata, Span};

const REQUEST_ID: &str = "x-request-id";

/// The log span's name, which trace export leaves out (see [`is_log_span`]).
const LOG_SPAN: &str = "http";

/// The request's log span. Its fields hold no path, query, header value or
/// body: the route template stands for the path, since paths hold tenant,
/// user and shard ids, and every log line inside the request carries these
/// fields. It never becomes a trace span (see [`ServerSpan`]).
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
    tracing::info_span!(LOG_SPAN, request_id = %id, method = %method, route = %route)
}

/// Whether `metadata` is the request's log span, which trace export skips:
/// the request's trace span is its [`ServerSpan`].
pub(crate) fn is_log_span(metadata: &Metadata<'_>) -> bool {
    metadata.name() == LOG_SPAN && metadata.target() == module_path!()
}

/// The OpenTelemetry server span of one request, current (as the
/// OpenTelemetry context) while the request is handled.
pub(crate) struct ServerSpan(Context);

impl ServerSpan {
    /// Starts the server span of `request` (whose route template is
    /// `route`), when traces are exported: named `METHOD route`, child of
    /// the caller's `traceparent` if it sent one, with the conventions'
    /// attributes (`url.path` without the query, and only on the trace).
    pub(crate) fn start(request: &Request, route: Option<&str>) -> Option<Self> {
        let tracer = crate::otel::tracer()?;
        let method = method_name(request.method());
        // Without a route the conventions name the span by its method.
        let name = match route {
            Some(route) => format!("{method} {route}"),
            None => method.to_owned(),
        };
        // Most requests carry no traceparent: skip the propagator for them.
        let parent = if request.headers().contains_key("traceparent") {
            TraceContextPropagator::new().extract(&Headers(request.headers()))
        } else {
            Context::new()
        };
        let mut attributes = Vec::with_capacity(5);
        attributes.push(KeyValue::new("http.request.method", method));
        if let Some(route) = route {
            attributes.push(KeyValue::new("http.route", route.to_owned()));
        }
        attributes.push(KeyValue::new("url.path", request.uri().path().to_owned()));
        attributes.push(KeyValue::new("url.scheme", "http"));
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        Some(Self(parent.with_span(span)))
    }

    /// The context to make current while the request is handled.
    pub(crate) fn context(&self) -> Context {
        self.0.clone()
    }

    /// Records the status and ends the span; a 5xx marks it an error (the
    /// server failed), a 4xx does not (the client did), as the conventions
    /// say for server spans.
    pub(crate) fn end(self, response: &Response<Body>) {
        let span = self.0.span();
        let status = response.status();
        span.set_attribute(KeyValue::new(
            "http.response.status_code",
            i64::from(status.as_u16()),
        ));
        if status.is_server_error() {
            span.set_status(Status::error(status.as_str().to_owned()));
        }
        span.end();
    }
}

/// The method as the conventions spell it: a known method's name, else
/// `_OTHER` (any token is a method to hyper; the attribute stays bounded).
fn method_name(method: &Method) -> &'static str {
    const KNOWN: [(Method, &str); 9] = [
        (Method::GET, "GET"),
        (Method::HEAD, "HEAD"),
        (Method::POST, "POST"),
        (Method::PUT, "PUT"),
        (Method::DELETE, "DELETE"),
        (Method::PATCH, "PATCH"),
        (Method::OPTIONS, "OPTIONS"),
        (Method::CONNECT, "CONNECT"),
        (Method::TRACE, "TRACE"),
    ];
    KNOWN
        .iter()
        .find(|(m, _)| m == method)
        .map_or("_OTHER", |(_, name)| name)
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

#[cfg(test)]
mod tests {
    use super::*;

    // Known methods keep their name; any other token is one bounded value.
    #[test]
    fn unknown_methods_are_named_other_on_the_trace() {
        assert_eq!(method_name(&Method::PUT), "PUT");
        assert_eq!(method_name(&Method::from_bytes(b"BREW").unwrap()), "_OTHER");
    }
}
