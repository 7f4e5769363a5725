//! The session API, its error cases, and what Redis holds.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use serde_json::json;
use test_support::wait_for;

use crate::{INTERNAL, TestApp};

fn token(session: &serde_json::Value) -> String {
    session["token"].as_str().unwrap().to_owned()
}

// Creating a session returns the documented shape; the token carries 256
// bits, and Redis holds only its hash: no key or value contains the token.
#[tokio::test]
async fn create_and_read() {
    let app = TestApp::start(&[]).await;
    let created = app
        .create_session("acme", "alice", &["reader", "admin"])
        .await;
    let token = token(&created);
    for field in [
        "token",
        "session_id",
        "tenant_id",
        "user_id",
        "roles",
        "expires_at",
    ] {
        assert!(!created[field].is_null(), "missing {field}: {created}");
    }
    assert_eq!(created["tenant_id"], "acme");
    assert_eq!(created["roles"], json!(["reader", "admin"]));
    let expires = time::OffsetDateTime::parse(
        created["expires_at"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let lifetime = expires - time::OffsetDateTime::now_utc();
    assert!(lifetime > time::Duration::hours(8) && lifetime <= time::Duration::hours(9));
    let secret = token.split_once('~').unwrap().1;
    assert!(
        secret.len() >= 43,
        "a 256-bit secret encodes to 43 base64url characters"
    );

    let (status, _, current) = app
        .call(Method::GET, "/v1/sessions/current", Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(current["user_id"], "alice");
    assert!(
        current.get("token").is_none(),
        "the token is shown only once"
    );

    let keys = app.redis.cmd(&["KEYS", "*"]).as_strings();
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(!key.contains(secret), "token in key {key}");
        let value = match app.redis.cmd(&["TYPE", key]).as_string().as_deref() {
            Some("string") => app.redis.cmd(&["GET", key]).as_string().unwrap_or_default(),
            Some("set") => app.redis.cmd(&["SMEMBERS", key]).as_strings().join(","),
            _ => String::new(),
        };
        assert!(!value.contains(secret), "token in the value of {key}");
    }
}

// Bad bodies and ids are 400; the internal token is required, exactly.
#[tokio::test]
async fn bad_session_requests_are_400_and_need_the_internal_token() {
    let app = TestApp::start(&[]).await;
    let cases = [
        json!({"tenant_id": "ac:me", "user_id": "u", "roles": []}),
        json!({"tenant_id": "acme", "user_id": "u*", "roles": []}),
        json!({"tenant_id": "acme", "user_id": "x".repeat(129), "roles": []}),
        json!({"tenant_id": "acme", "user_id": "u", "roles": ["bad role"]}),
        json!({"tenant_id": "acme"}),
        json!({"tenant_id": "acme", "user_id": "u", "roles": [], "extra": 1}),
    ];
    for body in cases {
        let (status, _, json) = app
            .call(
                Method::POST,
                "/v1/sessions",
                Some(INTERNAL),
                Some(body.clone()),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} -> {json}");
        assert_eq!(json["error"]["code"], "bad_request");
    }
    let body = json!({"tenant_id": "acme", "user_id": "u", "roles": []});
    let mut off_by_one = INTERNAL.to_owned();
    off_by_one.pop();
    off_by_one.push('X');
    for bearer in [None, Some(""), Some(off_by_one.as_str()), Some("short")] {
        let (status, _, json) = app
            .call(Method::POST, "/v1/sessions", bearer, Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert_eq!(json["error"]["code"], "unauthorized");
    }
}

// More than SESSION_RATE_LIMIT creations in the window: 429 with Retry-After.
#[tokio::test]
async fn creation_is_rate_limited() {
    let app = TestApp::start(&[
        ("SESSION_RATE_LIMIT", "3"),
        ("SESSION_RATE_WINDOW_SECS", "60"),
    ])
    .await;
    for _ in 0..3 {
        app.create_session("acme", "bob", &[]).await;
    }
    let body = json!({"tenant_id": "acme", "user_id": "bob", "roles": []});
    let (status, headers, json) = app
        .call(Method::POST, "/v1/sessions", Some(INTERNAL), Some(body))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(json["error"]["code"], "rate_limited");
    let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Another user of the same tenant is not limited.
    app.create_session("acme", "carol", &[]).await;
}

// Missing, malformed, unknown, revoked and expired tokens are all 401.
#[tokio::test]
async fn bad_tokens_are_401() {
    let app = TestApp::start(&[("SESSION_TTL_SECS", "1")]).await;
    let expiring = token(&app.create_session("acme", "u1", &[]).await);
    let good = token(&app.create_session("acme", "u2", &[]).await);
    let unknown = format!("acme~{}", "A".repeat(43));
    for bearer in [
        None,
        Some(""),
        Some("garbage"),
        Some("acme~short"),
        Some(unknown.as_str()),
    ] {
        let (status, _, json) = app
            .call(Method::GET, "/v1/sessions/current", bearer, None)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{bearer:?}");
        assert_eq!(json["error"]["code"], "unauthorized");
    }
    let (status, _, _) = app
        .call(Method::DELETE, "/v1/sessions/current", Some(&good), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _, _) = app
        .call(Method::GET, "/v1/sessions/current", Some(&good), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "revoked");

    wait_for(
        "the 1 s session to expire",
        Duration::from_secs(3),
        || async {
            app.call(Method::GET, "/v1/sessions/current", Some(&expiring), None)
                .await
                .0
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
}

// Revoking a user's sessions revokes them all and says how many.
#[tokio::test]
async fn revoke_all_of_a_user() {
    let app = TestApp::start(&[]).await;
    let a = token(&app.create_session("acme", "dave", &[]).await);
    let b = token(&app.create_session("acme", "dave", &[]).await);
    let other = token(&app.create_session("acme", "erin", &[]).await);
    let path = "/v1/tenants/acme/users/dave/sessions";
    let (status, _, _) = app.call(Method::DELETE, path, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, json) = app.call(Method::DELETE, path, Some(INTERNAL), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json, json!({"revoked": 2}));
    for t in [&a, &b] {
        assert_eq!(
            app.call(Method::GET, "/v1/sessions/current", Some(t), None)
                .await
                .0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        app.call(Method::GET, "/v1/sessions/current", Some(&other), None)
            .await
            .0,
        StatusCode::OK
    );
    let (status, _, json) = app
        .call(
            Method::DELETE,
            "/v1/tenants/ac:me/users/dave/sessions",
            Some(INTERNAL),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{json}");
}

// Health and metrics routes answer in the documented shapes.
#[tokio::test]
async fn health_and_metrics() {
    let app = TestApp::start(&[]).await;
    let (status, _, json) = app.call(Method::GET, "/health/live", None, None).await;
    assert_eq!((status, json), (StatusCode::OK, json!({"status": "ok"})));
    let (status, _, json) = app.call(Method::GET, "/health/ready", None, None).await;
    assert_eq!(
        (status, json),
        (StatusCode::OK, json!({"status": "ok", "redis": "healthy"}))
    );
    app.create_session("acme", "m", &[]).await;
    let response = test_support::http::call(&app.router, Method::GET, "/metrics", None, None)
        .await
        .text;
    for name in [
        "http_requests_total",
        "http_request_duration_seconds_bucket",
        "cache_hits_total",
        "cache_misses_total",
        "cache_invalidations_total",
        "cache_l1_flushes_total",
        "cache_l1_replays_total",
        "cache_l1_bytes",
        "cache_l1_entries",
        "cache_l1_evictions_total{cause=\"tenant_share\"}",
        "redis_up 1",
    ] {
        assert!(
            response.contains(name),
            "{name} missing from /metrics:\n{response}"
        );
    }
    assert!(response.contains(r#"route="/v1/sessions""#), "{response}");
    let _ = &app.platform;
}

// The pub/sub counters reach /metrics: none at start; one resubscription
// once Redis restarted and the invalidation feed came back.
#[tokio::test]
async fn pubsub_resubscriptions_and_refusals_are_on_metrics() {
    let mut app = TestApp::start(&[]).await;
    let metrics = async |app: &TestApp| {
        test_support::http::call(&app.router, Method::GET, "/metrics", None, None)
            .await
            .text
    };
    wait_for("the invalidation feed", Duration::from_secs(5), || async {
        app.platform.cache.stats().invalidation_feed_live
    })
    .await;
    let before = metrics(&app).await;
    for line in ["pubsub_resubscriptions_total 0", "pubsub_refusals_total 0"] {
        assert!(
            before.lines().any(|l| l == line),
            "{line} missing:\n{before}"
        );
    }

    app.redis.restart().await;
    wait_for(
        "a resubscription on /metrics",
        Duration::from_secs(10),
        || async {
            metrics(&app)
                .await
                .lines()
                .any(|l| l == "pubsub_resubscriptions_total 1")
        },
    )
    .await;
    assert!(
        metrics(&app)
            .await
            .lines()
            .any(|l| l == "pubsub_refusals_total 0")
    );
}

// 300 rounds of a session creation racing a revoke-all of the same user:
// afterwards each created session is either live and in the user's set
// (revoke-all ran first and did not count it) or revoked and counted, never
// live but untracked; and a later revoke-all counts exactly the live ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creation_and_revoke_all_leave_no_untracked_live_session() {
    let app = std::sync::Arc::new(TestApp::start(&[("SESSION_RATE_LIMIT", "1000000")]).await);
    let users: Vec<_> = (0..10)
        .map(|u| {
            let app = app.clone();
            tokio::spawn(async move {
                let mut broken = Vec::new();
                for round in 0..30 {
                    if let Some(what) = race_once(&app, &format!("user-{u}")).await {
                        broken.push(format!("user-{u} round {round}: {what}"));
                    }
                }
                broken
            })
        })
        .collect();
    let mut broken = Vec::new();
    for user in users {
        broken.extend(user.await.unwrap());
    }
    assert!(
        broken.is_empty(),
        "{} of 300 rounds broken: {broken:#?}",
        broken.len()
    );
}

/// One creation racing one revoke-all; what went wrong, if anything. Leaves
/// the user without sessions.
async fn race_once(app: &TestApp, user: &str) -> Option<String> {
    let revoke_all = format!("/v1/tenants/acme/users/{user}/sessions");
    let body = json!({"tenant_id": "acme", "user_id": user, "roles": []});
    let (created, revoked) = tokio::join!(
        app.call(Method::POST, "/v1/sessions", Some(INTERNAL), Some(body)),
        app.call(Method::DELETE, &revoke_all, Some(INTERNAL), None),
    );
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.2);
    assert_eq!(revoked.0, StatusCode::OK, "{}", revoked.2);
    let token = token(&created.2);
    let counted = revoked.2["revoked"].as_u64().unwrap();
    let live = app
        .call(Method::GET, "/v1/sessions/current", Some(&token), None)
        .await
        .0
        == StatusCode::OK;
    let set = format!("auth:tenant:acme:user:{user}:sessions");
    let hash = created.2["session_id"].as_str().unwrap();
    let tracked = app.redis.cmd(&["SISMEMBER", &set, hash]).as_int() == Some(1);
    let verdict = match (live, tracked, counted) {
        (true, true, 0) | (false, false, 1) => None,
        other => Some(format!("(live, in the set, counted) = {other:?}")),
    };
    // A later revoke-all revokes exactly what is live.
    let (_, _, again) = app
        .call(Method::DELETE, &revoke_all, Some(INTERNAL), None)
        .await;
    let expected = u64::from(live);
    if again["revoked"].as_u64() != Some(expected) {
        return Some(format!(
            "a later revoke-all answered {again} with {expected} live session(s)"
        ));
    }
    verdict
}

/// The key formats README.md's key table documents under `auth:`, as globs
/// (`{t}` and the like become `*`).
fn documented_auth_keys() -> Vec<String> {
    const README: &str = include_str!("../../../../README.md");
    README
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| {
            let key = l.split('|').nth(2)?.trim().strip_prefix('`')?;
            let key = key.strip_suffix('`')?;
            key.starts_with("auth:").then(|| {
                let mut glob = String::new();
                let mut in_braces = false;
                for c in key.chars() {
                    match c {
                        '{' => in_braces = true,
                        '}' => {
                            in_braces = false;
                            glob.push('*');
                        }
                        _ if !in_braces => glob.push(c),
                        _ => {}
                    }
                }
                glob
            })
        })
        .collect()
}

// Every `auth:` key family README documents is really written by the
// session lifecycle (create, use, revoke one), and every `auth:` key
// written is documented: the docs promise no key nothing uses.
#[tokio::test]
async fn every_documented_auth_key_is_written_and_every_written_one_documented() {
    let app = TestApp::start(&[]).await;
    let documented = documented_auth_keys();
    assert!(
        documented.len() >= 2,
        "no auth keys found in README: {documented:?}"
    );
    let kept = token(&app.create_session("acme", "dave", &[]).await);
    let gone = token(&app.create_session("acme", "dave", &[]).await);
    for t in [&kept, &gone] {
        let (status, _, _) = app
            .call(Method::GET, "/v1/sessions/current", Some(t), None)
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = app
        .call(Method::DELETE, "/v1/sessions/current", Some(&gone), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let keys = app.redis.cmd(&["KEYS", "auth:*"]).as_strings();
    for glob in &documented {
        assert!(
            keys.iter().any(|k| shared_types::glob_match(glob, k)),
            "README documents {glob}, which nothing wrote (keys: {keys:?})"
        );
    }
    for key in &keys {
        assert!(
            documented.iter().any(|g| shared_types::glob_match(g, key)),
            "{key} is not documented in README"
        );
    }
}
