//! The HTTP API in-process: every route and its error cases.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use test_support::http::{call, send};
use test_support::{RedisServer, wait_for};

use crate::{auth_broker, doc, main_api, session, tier};

const SHARD: &str = "/v1/tenants/acme/shards/eu-1/structured";
const PROFILE: &str = "/v1/tenants/acme/users/alice/profile";

// PUT, GET (from L1, then 404 after DELETE) for shards and profiles.
#[tokio::test]
async fn put_get_delete() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let token = session(&broker, "acme", "alice", &[]).await;
    for path in [SHARD, PROFILE] {
        let missing = call(&api, Method::GET, path, Some(&token), None).await;
        assert_eq!(
            (missing.status, tier(&missing)),
            (StatusCode::NOT_FOUND, "miss")
        );
        assert_eq!(missing.json["error"]["code"], "not_found");
        let put = call(&api, Method::PUT, path, Some(&token), Some(&doc(1))).await;
        assert_eq!(put.status, StatusCode::NO_CONTENT, "{}", put.text);
        let got = call(&api, Method::GET, path, Some(&token), None).await;
        assert_eq!((got.status, tier(&got)), (StatusCode::OK, "hit-l1"));
        assert_eq!(got.json, doc(1));
        assert_eq!(got.headers["content-type"], "application/json");
        let deleted = call(&api, Method::DELETE, path, Some(&token), None).await;
        assert_eq!(deleted.status, StatusCode::NO_CONTENT);
        assert_eq!(
            call(&api, Method::GET, path, Some(&token), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    let key = "tenant:acme:shard:eu-1:structured";
    call(&api, Method::PUT, SHARD, Some(&token), Some(&doc(2))).await;
    let ttl = redis.cmd(&["TTL", key]).as_int().unwrap();
    assert!(
        (810..=990).contains(&ttl),
        "shard TTL {ttl} outside 15 min ± 10 %"
    );
}

// A PUT on instance 1 is read by instance 2 from Redis, then from its L1;
// a new PUT on 1 is seen by 2 within a second.
#[tokio::test]
async fn a_put_on_one_instance_is_read_and_refreshed_on_another() {
    let redis = RedisServer::start().await;
    let (one, two) = (main_api(&redis, &[]).await, main_api(&redis, &[]).await);
    let broker = auth_broker(&redis).await;
    let token = session(&broker, "acme", "alice", &[]).await;
    call(&one, Method::PUT, SHARD, Some(&token), Some(&doc(1))).await;
    assert_eq!(
        tier(&call(&two, Method::GET, SHARD, Some(&token), None).await),
        "hit-l2"
    );
    // Instance 1's announcement of its PUT may reach 2 just after 2's first
    // read and (rightly) keep that read out of 2's L1: a later one fills it.
    wait_for(
        "instance 2 to serve from its L1",
        Duration::from_secs(1),
        || async { tier(&call(&two, Method::GET, SHARD, Some(&token), None).await) == "hit-l1" },
    )
    .await;
    call(&one, Method::PUT, SHARD, Some(&token), Some(&doc(2))).await;
    wait_for(
        "instance 2 to serve the new document",
        Duration::from_secs(1),
        || async {
            call(&two, Method::GET, SHARD, Some(&token), None)
                .await
                .json
                == doc(2)
        },
    )
    .await;
    call(&one, Method::DELETE, SHARD, Some(&token), None).await;
    wait_for(
        "instance 2 to see the delete",
        Duration::from_secs(1),
        || async {
            call(&two, Method::GET, SHARD, Some(&token), None)
                .await
                .status
                == StatusCode::NOT_FOUND
        },
    )
    .await;
}

// 401 without a valid session, 403 for another tenant, 400 for bad ids.
#[tokio::test]
async fn authentication_and_ids() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let other_tenant = session(&broker, "globex", "bob", &[]).await;
    let token = session(&broker, "acme", "alice", &[]).await;
    for bearer in [
        None,
        Some("nonsense"),
        Some(&format!("acme~{}", "A".repeat(43))[..]),
    ] {
        let answer = call(&api, Method::GET, SHARD, bearer, None).await;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
        assert_eq!(answer.json["error"]["code"], "unauthorized");
    }
    let answer = call(&api, Method::GET, SHARD, Some(&other_tenant), None).await;
    assert_eq!(
        (answer.status, answer.json["error"]["code"].as_str()),
        (StatusCode::FORBIDDEN, Some("forbidden"))
    );
    for bad in [
        "a%3Ab",
        "a%2Ab",
        "a%7Bb%7D",
        "a%20b",
        "a%5Bb",
        "%C3%A9",
        &"x".repeat(129),
    ] {
        let path = format!("/v1/tenants/acme/shards/{bad}/structured");
        let answer = call(&api, Method::GET, &path, Some(&token), None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{bad}: {}",
            answer.text
        );
        assert_eq!(answer.json["error"]["code"], "bad_request");
    }
}

// Bodies: too large 413, malformed 400, wrong content type 415.
#[tokio::test]
async fn oversize_malformed_or_mistyped_bodies_answer_413_400_415() {
    let redis = RedisServer::start().await;
    let api = main_api(&redis, &[("CACHE_MAX_VALUE_BYTES", "1024")]).await;
    let broker = auth_broker(&redis).await;
    let token = session(&broker, "acme", "alice", &[]).await;
    let big = json!({"blob": "x".repeat(2000)});
    let answer = call(&api, Method::PUT, SHARD, Some(&token), Some(&big)).await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text
    );
    assert_eq!(answer.json["error"]["code"], "payload_too_large");
    let raw = |content_type: &str, body: &'static [u8]| {
        Request::put(SHARD)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", content_type)
            .body(Body::from(body))
            .unwrap()
    };
    for body in [&b"{\"truncated\": "[..], b"not json", b"\xff\xfe{}"] {
        let answer = send(&api, raw("application/json", body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}");
    }
    let answer = send(&api, raw("text/plain", b"{}")).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.json["error"]["code"], "unsupported_media_type");
    assert_eq!(
        redis
            .cmd(&["EXISTS", "tenant:acme:shard:eu-1:structured"])
            .as_int(),
        Some(0)
    );
}

// Invalidation needs admin, checks kind and id, removes data, keeps sessions.
#[tokio::test]
async fn invalidation_needs_admin_removes_data_and_keeps_sessions() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let admin = session(&broker, "acme", "root", &["admin"]).await;
    let reader = session(&broker, "acme", "alice", &["reader"]).await;
    let path = "/v1/tenants/acme/cache/invalidate";
    call(&api, Method::PUT, SHARD, Some(&admin), Some(&doc(1))).await;
    call(&api, Method::PUT, PROFILE, Some(&admin), Some(&doc(2))).await;

    let answer = call(
        &api,
        Method::POST,
        path,
        Some(&reader),
        Some(&json!({"kind": "tenant"})),
    )
    .await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    for body in [
        json!({"kind": "galaxy"}),
        json!({"kind": "shard"}),
        json!({"kind": "user", "id": "a:b"}),
        json!({}),
    ] {
        let answer = call(&api, Method::POST, path, Some(&admin), Some(&body)).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
    }
    let answer = call(
        &api,
        Method::POST,
        path,
        Some(&admin),
        Some(&json!({"kind": "shard", "id": "eu-1"})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.json.clone()),
        (StatusCode::ACCEPTED, json!({"deleted": 1}))
    );
    assert_eq!(
        call(&api, Method::GET, SHARD, Some(&admin), None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    let answer = call(
        &api,
        Method::POST,
        path,
        Some(&admin),
        Some(&json!({"kind": "tenant"})),
    )
    .await;
    assert_eq!(
        (answer.status, answer.json.clone()),
        (StatusCode::ACCEPTED, json!({"deleted": 1}))
    );
    // Sessions are state, not cache: both still work.
    for token in [&admin, &reader] {
        assert_eq!(
            call(&api, Method::GET, PROFILE, Some(token), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
}

// A session revoked on auth-broker is refused by main-api within a second,
// even after main-api cached it in its L1.
#[tokio::test]
async fn revocation_reaches_main_api() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let token = session(&broker, "acme", "alice", &[]).await;
    for _ in 0..2 {
        assert_eq!(
            call(&api, Method::GET, SHARD, Some(&token), None)
                .await
                .status,
            StatusCode::NOT_FOUND
        );
    }
    assert_eq!(
        call(
            &broker,
            Method::DELETE,
            "/v1/sessions/current",
            Some(&token),
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    wait_for(
        "main-api to refuse the revoked token",
        Duration::from_secs(1),
        || async {
            call(&api, Method::GET, SHARD, Some(&token), None)
                .await
                .status
                == StatusCode::UNAUTHORIZED
        },
    )
    .await;
}

// A user of the tenant who is neither the profile's owner nor an admin can
// neither read, overwrite nor delete it (403), and it is left unchanged.
#[tokio::test]
async fn a_user_cannot_touch_another_users_profile() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let bob = session(&broker, "acme", "bob", &["reader"]).await;
    let alice = session(&broker, "acme", "alice", &["reader"]).await;
    let bobs = "/v1/tenants/acme/users/bob/profile";
    let put = call(&api, Method::PUT, bobs, Some(&bob), Some(&doc(1))).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(doc(2))),
        (Method::DELETE, None),
    ] {
        let answer = call(&api, method.clone(), bobs, Some(&alice), body.as_ref()).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{method}: {}",
            answer.text
        );
        assert_eq!(answer.json["error"]["code"], "forbidden");
    }
    let still = call(&api, Method::GET, bobs, Some(&bob), None).await;
    assert_eq!((still.status, still.json), (StatusCode::OK, doc(1)));
}

// A tenant's admin may read, overwrite and delete any profile of the tenant.
#[tokio::test]
async fn a_tenant_admin_may_manage_any_profile_of_the_tenant() {
    let redis = RedisServer::start().await;
    let (api, broker) = (main_api(&redis, &[]).await, auth_broker(&redis).await);
    let bob = session(&broker, "acme", "bob", &[]).await;
    let root = session(&broker, "acme", "root", &["admin"]).await;
    let bobs = "/v1/tenants/acme/users/bob/profile";
    call(&api, Method::PUT, bobs, Some(&bob), Some(&doc(1))).await;
    let read = call(&api, Method::GET, bobs, Some(&root), None).await;
    assert_eq!((read.status, read.json), (StatusCode::OK, doc(1)));
    let put = call(&api, Method::PUT, bobs, Some(&root), Some(&doc(2))).await;
    assert_eq!(put.status, StatusCode::NO_CONTENT);
    let deleted = call(&api, Method::DELETE, bobs, Some(&root), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = call(&api, Method::GET, bobs, Some(&bob), None).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}
