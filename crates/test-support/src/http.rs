//! Driving an axum router in-process, the way a client would.

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;

/// A response, read whole: status, headers, and the body as JSON (`Null`
/// when empty or not JSON) and as text.
#[derive(Debug)]
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body parsed as JSON, or `Null`.
    pub json: Value,
    /// The body as text.
    pub text: String,
}

/// Sends one request to `router`: `bearer` becomes `Authorization: Bearer`,
/// and a `body` is sent as `application/json`.
///
/// # Panics
/// When the router fails (it is infallible) or the body is not readable.
pub async fn call(
    router: &Router,
    method: Method,
    path: &str,
    bearer: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut request = Request::builder().method(method).uri(path);
    if let Some(token) = bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match body {
        Some(json) => {
            request = request.header("content-type", "application/json");
            Body::from(json.to_string())
        }
        None => Body::empty(),
    };
    send(router, request.body(body).expect("a valid request")).await
}

/// Sends a request built by the caller (custom headers or raw bodies).
///
/// # Panics
/// As [`call`].
pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router
        .clone()
        .oneshot(request)
        .await
        .expect("routers are infallible");
    let (parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .expect("a readable body");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status: parts.status,
        headers: parts.headers,
        json,
        text,
    }
}
