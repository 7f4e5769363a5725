//! OpenTelemetry traces as a collector receives them: both services run as
//! real processes and export OTLP/HTTP protobuf to a receiver inside the
//! test, which decodes them with `opentelemetry-proto`'s messages.

use std::collections::HashMap;
use std::net::TcpListener as StdListener;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use test_support::{RedisServer, ServiceProcess, wait_for};

use crate::INTERNAL;
use crate::otlp_receiver::{ReceivedSpan as Received, receiver};
use crate::procs::{PASSWORD, SHARD, metrics_text, start_with};

fn traceparent(trace: &str, span: &str) -> String {
    format!("00-{trace}-{span}-01")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const BROKER_PARENT: &str = "00f067aa0ba902b7";
const API_PARENT: &str = "00f067aa0ba902b8";

// The caller's traceparent reaches both services: auth-broker's and
// main-api's server spans are in the caller's trace, children of the
// caller's spans, with HTTP semantic-convention attributes; cache
// operations and Redis commands are their descendants with
// db.system.name=redis; no token, password or value is in any attribute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_a_real_otlp_receiver_with_parent_links_across_services() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let receiver = receiver().await;
    let spans = receiver.received.spans;
    let otel = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
        ("RUST_LOG", "info"),
    ];
    let broker = start_with("auth-broker", "AUTH_BROKER_ADDR", &redis, &otel);
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &otel);
    let client = Client::new();

    let created: serde_json::Value = client
        .post(format!("{}/v1/sessions", broker.url()))
        .bearer_auth(INTERNAL)
        .header("traceparent", traceparent(TRACE, BROKER_PARENT))
        .json(&json!({"tenant_id": "acme", "user_id": "alice", "roles": ["admin"]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let value = "a-stored-value-that-must-not-leak";
    let put = client
        .put(format!("{}{SHARD}", api.url()))
        .bearer_auth(&token)
        .header("traceparent", traceparent(TRACE, API_PARENT))
        .json(&json!({ "v": value }))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::NO_CONTENT);

    let route = "/v1/tenants/{tenant_id}/shards/{shard_id}/structured";
    let server_span = |service: &str, name: &str| {
        let spans = spans.lock().unwrap();
        spans
            .iter()
            .find(|r| r.service == service && r.span.name == name)
            .cloned()
    };
    wait_for(
        "both services' request spans",
        Duration::from_secs(20),
        || async {
            server_span("auth-broker", "POST /v1/sessions").is_some()
                && server_span("main-api", &format!("PUT {route}")).is_some()
                && spans
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|r| r.service == "main-api" && r.attribute("db.system.name").is_some())
        },
    )
    .await;

    let broker_span = server_span("auth-broker", "POST /v1/sessions").unwrap();
    assert_eq!(hex(&broker_span.span.trace_id), TRACE);
    assert_eq!(hex(&broker_span.span.parent_span_id), BROKER_PARENT);
    assert_eq!(
        broker_span.attribute("http.request.method").as_deref(),
        Some("POST")
    );
    assert_eq!(
        broker_span.attribute("http.route").as_deref(),
        Some("/v1/sessions")
    );
    assert_eq!(
        broker_span
            .attribute("http.response.status_code")
            .as_deref(),
        Some("201")
    );

    let api_span = server_span("main-api", &format!("PUT {route}")).unwrap();
    assert_eq!(
        hex(&api_span.span.trace_id),
        TRACE,
        "one trace across both services"
    );
    assert_eq!(hex(&api_span.span.parent_span_id), API_PARENT);
    assert_eq!(api_span.attribute("http.route").as_deref(), Some(route));
    assert_eq!(
        api_span.attribute("url.path").as_deref(),
        Some("/v1/tenants/acme/shards/eu-1/structured")
    );
    assert_eq!(
        api_span.attribute("http.response.status_code").as_deref(),
        Some("204")
    );

    let all = spans.lock().unwrap().clone();
    // One span per request: the request's log span is not a second one.
    let servers = all
        .iter()
        .filter(|r| r.service == "main-api" && hex(&r.span.trace_id) == TRACE)
        .filter(|r| r.span.kind == SpanKind::Server as i32)
        .count();
    assert_eq!(servers, 1, "main-api's server spans in the trace");
    assert!(!all.iter().any(|r| r.span.name == "http"));
    let by_id: HashMap<Vec<u8>, &Received> =
        all.iter().map(|r| (r.span.span_id.clone(), r)).collect();
    let descends_from_request = |r: &Received| {
        let mut parent = r.span.parent_span_id.clone();
        while let Some(p) = by_id.get(&parent) {
            if p.span.span_id == api_span.span.span_id {
                return true;
            }
            parent = p.span.parent_span_id.clone();
        }
        false
    };
    let cache_set = all
        .iter()
        .find(|r| r.service == "main-api" && r.span.name == "cache.set")
        .expect("a cache.set span");
    assert!(descends_from_request(cache_set));
    let redis_spans: Vec<&Received> = all
        .iter()
        .filter(|r| {
            r.service == "main-api" && r.attribute("db.system.name").as_deref() == Some("redis")
        })
        .filter(|r| descends_from_request(r))
        .collect();
    let operations: Vec<String> = redis_spans
        .iter()
        .filter_map(|r| r.attribute("db.operation.name"))
        .collect();
    // The PUT's write and its announcement: one script (redis-cache's
    // `coherence/atomic_write.rs`), a span of the request's.
    assert!(operations.iter().any(|o| o == "EVALSHA"), "{operations:?}");
    for span in &redis_spans {
        assert_eq!(
            Some(span.span.name.clone()),
            span.attribute("db.operation.name")
        );
    }

    // No secret or value in any attribute of any span.
    let secret_part = token.split('~').nth(1).unwrap();
    for r in &all {
        for kv in &r.span.attributes {
            let text = format!("{:?}", kv.value);
            for secret in [secret_part, INTERNAL, PASSWORD, value] {
                assert!(
                    !text.contains(secret),
                    "{} leaks in {}",
                    kv.key,
                    r.span.name
                );
            }
        }
    }
}

// A collector that accepts connections and never answers (to span and
// metric exports alike): requests are still served at once, and the spans
// that do not fit the bounded export queue are dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_collector_never_slows_or_fails_requests() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let hole = StdListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", hole.local_addr().unwrap());
    // Accepts and holds every connection, reading nothing, answering nothing.
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in hole.incoming() {
            held.push(stream);
        }
    });
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "60000"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "8"),
            // Metric exports go to the hole too, many times over the run.
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ("RUST_LOG", "info"),
        ],
    );
    let client = Client::new();
    let start = Instant::now();
    for _ in 0..60 {
        let asked = Instant::now();
        let response = client
            .request(Method::GET, format!("{}/health/live", api.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        // Generous: a request is sub-millisecond; a wait on the collector
        // would be the 60 s export timeout.
        assert!(asked.elapsed() < Duration::from_secs(2));
    }
    assert!(start.elapsed() < Duration::from_secs(20));
    wait_for(
        "dropped spans to be counted",
        Duration::from_secs(10),
        || async { dropped(&client, &api).await > 0 },
    )
    .await;
}

async fn dropped(client: &Client, api: &ServiceProcess) -> u64 {
    metrics_text(client, api)
        .await
        .lines()
        .find_map(|l| l.strip_prefix("otel_spans_dropped_total ")?.parse().ok())
        .unwrap_or(0)
}
