//! Bad input to auth-broker, table-driven: 400/401/413/415 in the JSON error
//! shape, never 500, nothing stored, and the service keeps serving.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use test_support::http::{FORBIDDEN_IN_IDS, assert_error, call, send};

use crate::{INTERNAL, TestApp};

fn post(authorization: Option<String>, content_type: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut builder = Request::post("/v1/sessions");
    if let Some(value) = authorization {
        builder = builder.header("authorization", value);
    }
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(Body::from(body)).unwrap()
}

fn internal() -> Option<String> {
    Some(format!("Bearer {INTERNAL}"))
}

// Every forbidden character (decoded, as JSON would carry it) in every id
// field, ids of 129+ characters, bad roles: 400, and nothing is stored.
#[tokio::test]
async fn bad_ids_in_session_requests() {
    let app = TestApp::start(&[]).await;
    let decoded: Vec<String> = [
        ":", "*", "?", "[", "]", "\\", "{", "}", " ", "\t", "\n", "\u{0}", "\u{1}", "\u{7f}", "é",
        "/", "%", "#",
    ]
    .iter()
    .map(|c| format!("a{c}b"))
    .chain([String::new(), "x".repeat(129), "x".repeat(1000)])
    .collect();
    for field in ["tenant_id", "user_id"] {
        for value in &decoded {
            let mut body = json!({"tenant_id": "acme", "user_id": "alice", "roles": []});
            body[field] = json!(value);
            let answer = call(
                &app.router,
                Method::POST,
                "/v1/sessions",
                Some(INTERNAL),
                Some(&body),
            )
            .await;
            assert_error(
                &answer,
                StatusCode::BAD_REQUEST,
                &format!("{field} = {value:?}"),
            );
        }
    }
    for roles in [
        json!(["a b"]),
        json!([""]),
        json!(["x".repeat(65)]),
        json!(vec!["r"; 33]),
        json!("admin"),
        json!([1]),
    ] {
        let body = json!({"tenant_id": "acme", "user_id": "alice", "roles": roles});
        let answer = call(
            &app.router,
            Method::POST,
            "/v1/sessions",
            Some(INTERNAL),
            Some(&body),
        )
        .await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            &format!("roles = {roles}"),
        );
    }
    assert_eq!(app.redis.dbsize(), 0, "a refused request stored something");
}

// Malformed, truncated and non-UTF-8 JSON, wrong content type, oversize
// bodies: 400, 415, 413.
#[tokio::test]
async fn malformed_wrongly_typed_or_oversize_bodies_answer_400_415_413() {
    let app = TestApp::start(&[]).await;
    let cases: Vec<(&str, Option<&str>, Vec<u8>, StatusCode)> = vec![
        (
            "malformed",
            Some("application/json"),
            b"{".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "truncated",
            Some("application/json"),
            br#"{"tenant_id":"acme","user_id":"#.to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "non-UTF-8",
            Some("application/json"),
            b"{\"tenant_id\":\"\xff\"}".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "not an object",
            Some("application/json"),
            b"[1,2]".to_vec(),
            StatusCode::BAD_REQUEST,
        ),
        (
            "text/plain",
            Some("text/plain"),
            br#"{"tenant_id":"acme","user_id":"a"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "no content type",
            None,
            br#"{"tenant_id":"acme","user_id":"a"}"#.to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ),
        (
            "over 16 KiB",
            Some("application/json"),
            vec![b' '; 17 * 1024],
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ];
    for (name, content_type, body, expected) in cases {
        assert_error(
            &send(&app.router, post(internal(), content_type, body)).await,
            expected,
            name,
        );
    }
    assert_eq!(app.redis.dbsize(), 0);
}

// The internal token: missing, empty, another scheme, wrong by one
// character anywhere, a prefix, a session token: all 401.
#[tokio::test]
async fn bad_internal_tokens() {
    let app = TestApp::start(&[]).await;
    let session = app.create_session("acme", "alice", &[]).await["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = json!({"tenant_id": "acme", "user_id": "alice", "roles": []})
        .to_string()
        .into_bytes();
    let mut cases: Vec<(String, Option<String>)> = vec![
        ("missing".into(), None),
        ("empty".into(), Some("Bearer ".into())),
        ("basic".into(), Some(format!("Basic {INTERNAL}"))),
        (
            "prefix".into(),
            Some(format!("Bearer {}", &INTERNAL[..INTERNAL.len() - 1])),
        ),
        ("longer".into(), Some(format!("Bearer {INTERNAL}x"))),
        ("a session token".into(), Some(format!("Bearer {session}"))),
    ];
    for position in [0, INTERNAL.len() / 2, INTERNAL.len() - 1] {
        let mut wrong: Vec<u8> = INTERNAL.bytes().collect();
        wrong[position] = if wrong[position] == b'x' { b'y' } else { b'x' };
        cases.push((
            format!("wrong at {position}"),
            Some(format!("Bearer {}", String::from_utf8(wrong).unwrap())),
        ));
    }
    for (name, authorization) in cases {
        let answer = send(
            &app.router,
            post(authorization, Some("application/json"), body.clone()),
        )
        .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, &name);
        let revoke = Request::delete("/v1/tenants/acme/users/alice/sessions")
            .body(Body::empty())
            .unwrap();
        assert_error(
            &send(&app.router, revoke).await,
            StatusCode::UNAUTHORIZED,
            &name,
        );
    }
}

// Bad ids in the revoke-all path: 400.
#[tokio::test]
async fn bad_ids_in_revoke_path() {
    let app = TestApp::start(&[]).await;
    for (name, encoded) in FORBIDDEN_IN_IDS {
        for path in [
            format!("/v1/tenants/a{encoded}b/users/alice/sessions"),
            format!("/v1/tenants/acme/users/a{encoded}b/sessions"),
        ] {
            let answer = call(&app.router, Method::DELETE, &path, Some(INTERNAL), None).await;
            assert_error(
                &answer,
                StatusCode::BAD_REQUEST,
                &format!("{name} in {path}"),
            );
        }
    }
    let answer = call(&app.router, Method::GET, "/health/live", None, None).await;
    assert_eq!(answer.status, StatusCode::OK, "still serving");
}
