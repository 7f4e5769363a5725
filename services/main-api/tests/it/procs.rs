//! Services as real processes: starting them, and talking to them over
//! real HTTP.

use std::path::PathBuf;
use std::sync::OnceLock;

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use test_support::{RedisServer, ServiceProcess, free_port};

use crate::INTERNAL;

pub(crate) const PASSWORD: &str = "e2e-Redis/Pass+word=";
pub(crate) const SHARD: &str = "/v1/tenants/acme/shards/eu-1/structured";

/// A service binary of this workspace. main-api's is built for this test;
/// auth-broker's sits beside it when the workspace was built, else it is
/// built once here.
pub(crate) fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let path = PathBuf::from(env!("CARGO_BIN_EXE_main-api")).with_file_name(name);
    if !path.exists() {
        BUILT.get_or_init(|| {
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", name])
                .status()
                .expect("run cargo build");
            assert!(status.success(), "could not build {name}");
        });
    }
    path
}

pub(crate) fn start(name: &str, addr_var: &'static str, redis: &RedisServer) -> ServiceProcess {
    start_with(name, addr_var, redis, &[])
}

/// How a service finds the password-protected single server.
pub(crate) fn server_env(redis: &RedisServer) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", redis.port().to_string()),
        ("REDIS_PASSWORD", PASSWORD.to_owned()),
    ]
}

pub(crate) fn start_with(
    name: &str,
    addr_var: &'static str,
    redis: &RedisServer,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    start_on(name, addr_var, server_env(redis), extra)
}

/// Starts `name` with `redis_env` (how it reaches Redis) and `extra` on top
/// of the defaults.
pub(crate) fn start_on(
    name: &str,
    addr_var: &'static str,
    redis_env: Vec<(&'static str, String)>,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let addr = format!("127.0.0.1:{}", free_port());
    start_at(name, addr_var, &addr, redis_env, extra)
}

/// [`start_on`], listening on `addr`.
pub(crate) fn start_at(
    name: &str,
    addr_var: &'static str,
    addr: &str,
    redis_env: Vec<(&'static str, String)>,
    extra: &[(&str, &str)],
) -> ServiceProcess {
    let mut env = redis_env;
    env.extend([
        (addr_var, addr.to_owned()),
        ("REDIS_COMMAND_TIMEOUT_MS", "300".to_owned()),
        ("HTTP_REQUEST_TIMEOUT_MS", "2000".to_owned()),
        ("INTERNAL_API_TOKEN", INTERNAL.to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        // tower_http at debug logs each request's start, which the SIGTERM
        // test waits for; trace everything else to catch leaked secrets.
        ("RUST_LOG", "trace".to_owned()),
    ]);
    env.retain(|(k, _)| !extra.iter().any(|(e, _)| e == k));
    env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    ServiceProcess::start(&binary(name), addr, &env)
}

pub(crate) async fn send(
    client: &Client,
    method: reqwest::Method,
    url: String,
    token: &str,
    body: Option<Value>,
) -> (StatusCode, String, Value) {
    let mut request = client.request(method, url).bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("an HTTP answer");
    let status = response.status();
    let tier = response
        .headers()
        .get("x-cache")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let json = response.json().await.unwrap_or(Value::Null);
    (status, tier, json)
}

pub(crate) async fn new_session(client: &Client, broker: &ServiceProcess, user: &str) -> String {
    new_session_as(client, broker, "acme", user, &["admin"]).await
}

/// A session of `tenant`/`user` with `roles`, created on `broker`.
pub(crate) async fn new_session_as(
    client: &Client,
    broker: &ServiceProcess,
    tenant: &str,
    user: &str,
    roles: &[&str],
) -> String {
    let body = json!({"tenant_id": tenant, "user_id": user, "roles": roles});
    let (status, _, json) = send(
        client,
        reqwest::Method::POST,
        format!("{}/v1/sessions", broker.url()),
        INTERNAL,
        Some(body),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{json}");
    json["token"].as_str().unwrap().to_owned()
}

pub(crate) async fn ready_status(client: &Client, service: &ServiceProcess) -> u16 {
    client
        .get(format!("{}/health/ready", service.url()))
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// `service`'s Prometheus text from `GET /metrics`.
pub(crate) async fn metrics_text(client: &Client, service: &ServiceProcess) -> String {
    client
        .get(format!("{}/metrics", service.url()))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// `GET /health/live` on `service`, `times` times, each answered 200.
pub(crate) async fn get_live(client: &Client, service: &ServiceProcess, times: usize) {
    for _ in 0..times {
        let live = client
            .get(format!("{}/health/live", service.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(live.status(), reqwest::StatusCode::OK);
    }
}
