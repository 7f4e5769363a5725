//! Bad input, table-driven: every case answers 400/401/403/413/415 in the
//! JSON error shape, never 500, changes nothing in Redis, and the service
//! keeps serving.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use test_support::http::{FORBIDDEN_IN_IDS, assert_error, call, send};
use test_support::{RedisServer, wait_for};

use crate::{auth_broker, doc, main_api, session};

/// Every route with ids in its path, as (method, template); `{t}` is the
/// tenant and `{id}` the second id.
const ROUTES: [(Method, &str); 7] = [
    (Method::GET, "/v1/tenants/{t}/shards/{id}/structured"),
    (Method::PUT, "/v1/tenants/{t}/shards/{id}/structured"),
    (Method::DELETE, "/v1/tenants/{t}/shards/{id}/structured"),
    (Method::GET, "/v1/tenants/{t}/users/{id}/profile"),
    (Method::PUT, "/v1/tenants/{t}/users/{id}/profile"),
    (Method::DELETE, "/v1/tenants/{t}/users/{id}/profile"),
    (Method::POST, "/v1/tenants/{t}/cache/invalidate"),
];

fn request(
    method: &Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: impl Into<Body>,
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method.clone())
        .uri(path)
        .header("authorization", format!("Bearer {token}"));
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).unwrap()
}

fn keys(redis: &RedisServer) -> Vec<String> {
    let mut keys = redis.cmd(&["KEYS", "*"]).as_strings();
    keys.sort();
    keys
}

// Every forbidden character in every id segment of every route, and ids of
// 129+ characters: 400.
#[tokio::test]
async fn bad_ids_in_every_path_segment() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let token = session(&broker, "acme", "alice", &["admin"]).await;
    let before = keys(&redis);
    let long = "x".repeat(129);
    let mut cases = 0;
    for (method, template) in &ROUTES {
        let segments: &[&str] = if template.contains("{id}") {
            &["{t}", "{id}"]
        } else {
            &["{t}"]
        };
        let mut bad_values: Vec<(String, String)> = FORBIDDEN_IN_IDS
            .iter()
            .map(|(name, enc)| ((*name).to_owned(), format!("a{enc}b")))
            .collect();
        bad_values.push(("129 characters".to_owned(), long.clone()));
        bad_values.push(("empty after decoding".to_owned(), "%20".to_owned()));
        for segment in segments {
            for (name, value) in &bad_values {
                let path = template
                    .replace(segment, value)
                    .replace("{t}", "acme")
                    .replace("{id}", "ok-1");
                let answer = send(
                    &api,
                    request(
                        method,
                        &path,
                        &token,
                        Some("application/json"),
                        doc(1).to_string(),
                    ),
                )
                .await;
                assert_error(
                    &answer,
                    StatusCode::BAD_REQUEST,
                    &format!("{method} {template} {segment} with {name}"),
                );
                cases += 1;
            }
        }
    }
    assert!(cases > 200, "only {cases} cases");
    assert_eq!(keys(&redis), before, "a bad request changed Redis");
}

// Malformed, truncated, non-UTF-8 and too-deep JSON: 400; wrong or missing
// content type: 415; bodies over the limit: 413. Nothing is stored.
#[tokio::test]
async fn bad_bodies_answer_400_415_or_413_and_store_nothing() {
    let redis = RedisServer::start().await;
    let api = main_api(&redis, &[("CACHE_MAX_VALUE_BYTES", "4096")]).await;
    let broker = auth_broker(&redis).await;
    let token = session(&broker, "acme", "alice", &["admin"]).await;
    let before = keys(&redis);
    let shard = "/v1/tenants/acme/shards/s1/structured";
    let invalidate = "/v1/tenants/acme/cache/invalidate";
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    type Case<'a> = (
        &'a str,
        Method,
        &'a str,
        Option<&'a str>,
        Vec<u8>,
        StatusCode,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "malformed",
            Method::PUT,
            shard,
            Some("application/json"),
            b"{nope".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "truncated",
            Method::PUT,
            shard,
            Some("application/json"),
            br#"{"a": [1, 2"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "non-UTF-8",
            Method::PUT,
            shard,
            Some("application/json"),
            b"\"\xff\xfe\"".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "empty",
            Method::PUT,
            shard,
            Some("application/json"),
            Vec::new(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "too deep",
            Method::PUT,
            shard,
            Some("application/json"),
            deep.into_bytes(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            Method::PUT,
            shard,
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            Method::PUT,
            shard,
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "over the limit",
            Method::PUT,
            shard,
            Some("application/json"),
            json!({"x": "y".repeat(5000)}).to_string().into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "far over the limit",
            Method::PUT,
            shard,
            Some("application/json"),
            vec![b' '; 10 << 20],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            "invalidate: malformed",
            Method::POST,
            invalidate,
            Some("application/json"),
            b"{".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: unknown kind",
            Method::POST,
            invalidate,
            Some("application/json"),
            br#"{"kind":"all"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: missing id",
            Method::POST,
            invalidate,
            Some("application/json"),
            br#"{"kind":"user"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: bad id",
            Method::POST,
            invalidate,
            Some("application/json"),
            br#"{"kind":"shard","id":"a*"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: wrong type",
            Method::POST,
            invalidate,
            Some("application/json"),
            br#"{"kind":1}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: extra field",
            Method::POST,
            invalidate,
            Some("application/json"),
            br#"{"kind":"tenant","all":true}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: an id its kind does not take",
            Method::POST,
            invalidate,
            Some("application/json"),
            br#"{"kind":"tenant","id":"eu-1"}"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "invalidate: text/plain",
            Method::POST,
            invalidate,
            Some("text/plain"),
            br#"{"kind":"tenant"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
    ];
    for (name, method, path, content_type, body, expected) in cases {
        let answer = send(&api, request(&method, path, &token, content_type, body)).await;
        assert_error(&answer, expected, name);
    }
    assert_eq!(keys(&redis), before, "a bad body changed Redis");
}

// Missing, empty, malformed, unknown, expired, revoked and other-tenant
// tokens: 401, or 403 for another tenant's valid session.
#[tokio::test]
async fn bad_tokens_answer_401_and_other_tenants_sessions_403() {
    let redis = RedisServer::start().await;
    let api = main_api(&redis, &[]).await;
    let broker = crate::auth_broker_with(&redis, &[("SESSION_TTL_SECS", "1")]).await;
    let long_lived = auth_broker(&redis).await;
    let expiring = session(&broker, "acme", "alice", &[]).await;
    let revoked = session(&long_lived, "acme", "bob", &[]).await;
    let other = session(&long_lived, "globex", "carol", &[]).await;
    assert_eq!(
        call(
            &long_lived,
            Method::DELETE,
            "/v1/sessions/current",
            Some(&revoked),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    wait_for(
        "the 1 s session to expire",
        Duration::from_secs(3),
        || async {
            call(
                &api,
                Method::GET,
                "/v1/tenants/acme/shards/s/structured",
                Some(&expiring),
                None,
            )
            .await
            .status
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
    let path = "/v1/tenants/acme/shards/s/structured";
    let unknown = format!("acme~{}", "B".repeat(43));
    let cases: Vec<(&str, Option<String>, StatusCode)> = vec![
        ("missing", None, StatusCode::UNAUTHORIZED),
        ("empty", Some(String::new()), StatusCode::UNAUTHORIZED),
        (
            "not bearer",
            Some("Basic YWxpY2U6cHc=".to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "malformed",
            Some("Bearer not-a-token".to_owned()),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "bad tenant part",
            Some(format!("Bearer a:b~{}", "A".repeat(43))),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "unknown",
            Some(format!("Bearer {unknown}")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "expired",
            Some(format!("Bearer {expiring}")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "revoked",
            Some(format!("Bearer {revoked}")),
            StatusCode::UNAUTHORIZED,
        ),
        (
            "other tenant",
            Some(format!("Bearer {other}")),
            StatusCode::FORBIDDEN,
        ),
    ];
    for (name, authorization, expected) in cases {
        let mut builder = Request::get(path);
        if let Some(value) = authorization {
            builder = builder.header("authorization", value);
        }
        let answer = send(&api, builder.body(Body::empty()).unwrap()).await;
        assert_error(&answer, expected, name);
    }
}

// Huge headers are refused in the JSON shape, and the service still serves.
#[tokio::test]
async fn huge_headers_are_refused_as_json_and_the_service_still_serves() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let token = session(&broker, "acme", "alice", &[]).await;
    let huge = "h".repeat(service_kit::MAX_HEADER_BYTES + 1);
    for (name, header, value) in [
        ("a huge custom header", "x-padding", huge.clone()),
        (
            "a huge bearer token",
            "authorization",
            format!("Bearer {huge}"),
        ),
    ] {
        let request = Request::get("/v1/tenants/acme/shards/s/structured")
            .header(header, value)
            .body(Body::empty())
            .unwrap();
        assert_error(&send(&api, request).await, StatusCode::BAD_REQUEST, name);
    }
    let answer = call(
        &api,
        Method::GET,
        "/v1/tenants/acme/shards/s/structured",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "still serving");
}
