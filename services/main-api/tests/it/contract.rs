//! The HTTP contract: the OpenAPI documents the running services serve are
//! the committed ones, and answers outside the routes keep the JSON error
//! shape the documents promise.

use axum::http::{Method, StatusCode};
use reqwest::Client;
use test_support::RedisServer;
use test_support::http::call;

use crate::procs::{PASSWORD, start};

/// The committed document of `service`.
fn committed(service: &str) -> String {
    let path = format!(
        "{}/../../docs/openapi/{service}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

// What each running service process serves at /openapi.json, without a
// token, is byte for byte the document committed under docs/openapi/
// (which `cargo xtask openapi --check` holds to the code).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_services_serve_the_committed_openapi_documents() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let client = Client::new();
    for (name, addr_var) in [
        ("main-api", "MAIN_API_ADDR"),
        ("auth-broker", "AUTH_BROKER_ADDR"),
    ] {
        let service = start(name, addr_var, &redis);
        let response = client
            .get(format!("{}/openapi.json", service.url()))
            .send()
            .await
            .expect("an HTTP answer");
        assert_eq!(response.status(), StatusCode::OK, "{name}");
        assert_eq!(
            response.headers()["content-type"],
            "application/json",
            "{name}"
        );
        let served = response.text().await.expect("a body");
        assert!(
            served == committed(name),
            "{name} serves another document than docs/openapi/{name}.json: \
             run `cargo xtask openapi` and commit it"
        );
        let document: serde_json::Value = serde_json::from_str(&served).expect("JSON");
        assert_eq!(document["openapi"], "3.1.0", "{name}");
    }
}

// The code's document is the committed one, in-process too: a change of a
// handler's annotations fails here, in the crate's own tests, as well as
// in `cargo xtask openapi --check`.
#[test]
fn the_generated_documents_equal_the_committed_files() {
    for (name, document) in [
        ("main-api", main_api::openapi()),
        ("auth-broker", auth_broker::openapi()),
    ] {
        assert!(
            service_kit::openapi::render(&document) == committed(name),
            "docs/openapi/{name}.json is stale: run `cargo xtask openapi`"
        );
    }
}

// A method a path does not have is 405 with `Allow` and the JSON error
// shape (axum's default was an empty body, which the document cannot
// describe and a client cannot parse).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_a_path_lacks_is_a_json_405_with_allow() {
    let redis = RedisServer::start().await;
    let api = crate::main_api(&redis, &[]).await;
    let broker = crate::auth_broker(&redis).await;
    for (router, method, path) in [
        (
            &api,
            Method::PATCH,
            "/v1/tenants/acme/shards/eu-1/structured",
        ),
        (&api, Method::GET, "/v1/tenants/acme/cache/invalidate"),
        (&api, Method::POST, "/openapi.json"),
        (&broker, Method::PUT, "/v1/sessions"),
        (&broker, Method::POST, "/health/live"),
    ] {
        let answer = call(router, method.clone(), path, None, None).await;
        assert_eq!(
            answer.status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        assert!(answer.headers.contains_key("allow"), "{method} {path}");
        assert_eq!(
            answer.json["error"]["code"], "method_not_allowed",
            "{method} {path}: {}",
            answer.text
        );
    }
}

// Every id the documents describe (path parameters and body fields named
// `*_id`, and invalidate's `id`) carries the id rules' pattern, which
// service-kit's unit test holds to shared-types: a client generating
// requests from the documents generates valid ids.
#[test]
fn every_documented_id_has_the_id_rules_pattern() {
    fn visit(value: &serde_json::Value, found: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                // A parameter: {"name": "tenant_id", "schema": {...}}.
                if let Some(name) = map.get("name").and_then(|n| n.as_str())
                    && name.ends_with("_id")
                {
                    found.push(map["schema"]["pattern"].as_str().unwrap_or("").to_owned());
                }
                // A body's properties.
                if let Some(props) = map.get("properties").and_then(|p| p.as_object()) {
                    for (name, schema) in props {
                        if (name.ends_with("_id") || name == "id") && name != "session_id" {
                            found.push(schema["pattern"].as_str().unwrap_or("").to_owned());
                        }
                    }
                }
                map.values().for_each(|v| visit(v, found));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| visit(v, found)),
            _ => {}
        }
    }
    for name in ["main-api", "auth-broker"] {
        let document: serde_json::Value = serde_json::from_str(&committed(name)).unwrap();
        let mut found = Vec::new();
        visit(&document, &mut found);
        assert!(found.len() >= 4, "{name}: {found:?}");
        for pattern in found {
            assert_eq!(pattern, service_kit::openapi::ID_PATTERN, "{name}");
        }
    }
}
