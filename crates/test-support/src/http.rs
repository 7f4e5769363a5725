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

/// Characters an id may not contain, percent-encoded as they would arrive in
/// a URL path, with a name for test messages: the key separator, every
/// Redis glob character, hash-tag braces, whitespace, control and non-ASCII
/// characters, and URL-significant ones.
pub const FORBIDDEN_IN_IDS: [(&str, &str); 18] = [
    ("colon", "%3A"),
    ("star", "%2A"),
    ("question mark", "%3F"),
    ("open bracket", "%5B"),
    ("close bracket", "%5D"),
    ("backslash", "%5C"),
    ("open brace", "%7B"),
    ("close brace", "%7D"),
    ("space", "%20"),
    ("tab", "%09"),
    ("newline", "%0A"),
    ("NUL", "%00"),
    ("control", "%01"),
    ("DEL", "%7F"),
    ("non-ASCII", "%C3%A9"),
    ("slash", "%2F"),
    ("percent", "%25"),
    ("hash", "%23"),
];

/// Asserts `answer` is `expected` in the JSON error shape
/// `{"error": {"code", "message"}}`, and never a 500.
///
/// # Panics
/// When it is not.
pub fn assert_error(answer: &Answer, expected: StatusCode, case: &str) {
    assert_ne!(
        answer.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{case}: 500 {}",
        answer.text
    );
    assert_eq!(answer.status, expected, "{case}: {}", answer.text);
    let error = &answer.json["error"];
    assert!(
        error["code"].is_string() && error["message"].is_string(),
        "{case}: not the JSON error shape: {}",
        answer.text
    );
}
