//! A real Prometheus server (Debian's `prometheus` package; `cargo xtask
//! test` installs it) scrapes two main-api instances and an auth-broker,
//! with the alerting rules of `deploy/prometheus/alerts.yml` loaded: what an
//! operator's monitoring sees, end to end.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use test_support::{RedisServer, ServiceProcess, free_port, wait_for};

use crate::procs::{PASSWORD, SHARD, metrics_text, new_session, send, start};

/// How long Prometheus may take to start, scrape and evaluate.
const DEADLINE: Duration = Duration::from_secs(30);

/// The repository's `deploy/` folder.
fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy")
        .join(path)
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: Child,
    url: String,
    _data: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Scrapes each `(job, address)` every second and evaluates the
    /// repository's alerting rules every second.
    fn start(targets: &[(&str, Vec<String>)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let scrape: Vec<String> = targets
            .iter()
            .map(|(job, addrs)| {
                let addrs = addrs.iter().map(|a| format!("'{a}'")).collect::<Vec<_>>();
                format!(
                    "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                    addrs.join(", ")
                )
            })
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n{}",
            deploy("prometheus/alerts.yml").display(),
            scrape.concat()
        );
        let config_file = data.path().join("prometheus.yml");
        std::fs::write(&config_file, config).unwrap();
        let addr = format!("127.0.0.1:{}", free_port());
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "run `prometheus`: install Debian's prometheus package \
                 (cargo xtask test installs it)",
            );
        Self {
            child,
            url: format!("http://{addr}"),
            _data: data,
        }
    }

    /// The `data` of an instant query; panics on a query Prometheus refuses.
    async fn query(&self, client: &Client, query: &str) -> Option<Value> {
        let response = client
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        assert_eq!(body["status"], "success", "query {query}: {body}");
        Some(body["data"]["result"].clone())
    }

    /// Waits until `query` returns at least one series.
    async fn wait_for_series(&self, client: &Client, query: &str) -> Vec<Value> {
        let found = Mutex::new(Vec::new());
        let slot = &found;
        wait_for(
            &format!("Prometheus to have {query}"),
            DEADLINE,
            || async move {
                match self.query(client, query).await {
                    Some(Value::Array(series)) if !series.is_empty() => {
                        *slot.lock().unwrap() = series;
                        true
                    }
                    _ => false,
                }
            },
        )
        .await;
        found.into_inner().unwrap()
    }
}

/// The metric names an expression uses: words of ours (`http_`, `cache_`,
/// `redis_`), a histogram's series suffixes removed.
fn metric_names(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| {
            ["http_", "cache_", "redis_"]
                .iter()
                .any(|p| w.starts_with(p))
        })
        .map(|w| {
            ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| w.strip_suffix(s))
                .unwrap_or(w)
                .to_owned()
        })
        .collect()
}

/// Every `expr` of the alerting rules and of the dashboard's panels, the
/// dashboard's variables replaced by what "all" means.
fn shipped_expressions() -> Vec<(String, String)> {
    let rules: Value =
        serde_yaml::from_str(&std::fs::read_to_string(deploy("prometheus/alerts.yml")).unwrap())
            .unwrap();
    let mut exprs: Vec<(String, String)> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["rules"].as_array().unwrap().iter())
        .map(|rule| {
            (
                format!("alert {}", rule["alert"].as_str().unwrap()),
                rule["expr"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/redis-layer-services.json")).unwrap(),
    )
    .unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"]
                .as_str()
                .unwrap()
                .replace("$__rate_interval", "1m")
                .replace("$job", ".*")
                .replace("$instance", ".*");
            exprs.push((format!("panel {}", panel["title"]), expr));
        }
    }
    exprs
}

// Prometheus scrapes both services; the series an operator needs are there
// with their labels (requests by route template, the L1 gauges, the feed's
// state and delay, the pool), every metric the shipped alerts and dashboard
// use is one the services export with HELP text, every dashboard and alert
// expression is valid PromQL on real data, and every rule evaluates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_scrapes_the_services_and_the_shipped_rules_and_dashboard_hold() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start("main-api", "MAIN_API_ADDR", &redis);
    let other = start("main-api", "MAIN_API_ADDR", &redis);
    let addr = |p: &ServiceProcess| p.url().trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&[
        ("auth-broker", vec![addr(&broker)]),
        ("main-api", vec![addr(&api), addr(&other)]),
    ]);
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;

    // A value read into `api`'s L1, then changed through `other`: `api`
    // applies `other`'s invalidation (the delay gauge needs one).
    let put = |on: &ServiceProcess, v: i64| {
        send(
            &client,
            Method::PUT,
            format!("{}{SHARD}", on.url()),
            &token,
            Some(json!({"v": v})),
        )
    };
    assert_eq!(put(&api, 1).await.0, StatusCode::NO_CONTENT);
    let get = || {
        send(
            &client,
            Method::GET,
            format!("{}{SHARD}", api.url()),
            &token,
            None,
        )
    };
    wait_for("a read from the L1", DEADLINE, || async {
        get().await.1 == "hit-l1"
    })
    .await;
    assert_eq!(put(&other, 2).await.0, StatusCode::NO_CONTENT);
    wait_for(
        "the change to reach the other instance",
        DEADLINE,
        || async { get().await.2 == json!({"v": 2}) },
    )
    .await;

    let up = prometheus.wait_for_series(&client, "up == 1").await;
    wait_for("every target up", DEADLINE, || async {
        prometheus
            .query(&client, "up == 1")
            .await
            .and_then(|v| v.as_array().map(Vec::len))
            == Some(3)
    })
    .await;
    assert!(!up.is_empty());
    let puts = prometheus
        .wait_for_series(
            &client,
            r#"http_requests_total{job="main-api", method="PUT", status="204"}"#,
        )
        .await;
    assert!(
        puts.iter()
            .all(|s| s["metric"]["route"] == "/v1/tenants/{tenant_id}/shards/{shard_id}/structured"),
        "requests are labelled by route template, never the raw path: {puts:?}"
    );
    for query in [
        r#"cache_l1_entries{job="main-api"} > 0"#,
        r#"cache_invalidation_feed_live{job="main-api"} == 1"#,
        r#"cache_invalidation_delay_seconds{job="main-api"} >= 0"#,
        r#"cache_invalidation_last_applied_timestamp_seconds{job="main-api"} > 0"#,
        r#"redis_pool_connections{state="connected"} > 0"#,
        r#"redis_up{job="auth-broker"} == 1"#,
        r#"http_request_duration_seconds_count{job="auth-broker", status="201"} > 0"#,
    ] {
        prometheus.wait_for_series(&client, query).await;
    }

    // Every metric the alerts and the dashboard use is exported, with HELP.
    let mut exposition = String::new();
    for service in [&api, &broker] {
        exposition += &metrics_text(&client, service).await;
    }
    let expressions = shipped_expressions();
    assert!(expressions.len() > 15, "{expressions:?}");
    for (origin, expr) in &expressions {
        for name in metric_names(expr) {
            assert!(
                exposition.contains(&format!("# HELP {name} ")),
                "{origin} uses {name}, which the services do not export (or without HELP)"
            );
        }
        // Valid PromQL on live data (`query` asserts success).
        prometheus.query(&client, expr).await.expect("an answer");
    }

    // Every rule of alerts.yml is loaded and evaluates without error.
    let rules = Mutex::new(Vec::new());
    let slot = &rules;
    let client = &client;
    let url = format!("{}/api/v1/rules", prometheus.url);
    wait_for("every alerting rule evaluated", DEADLINE, || {
        let url = url.clone();
        async move {
            let Ok(response) = client.get(url).send().await else {
                return false;
            };
            let Ok(body) = response.json::<Value>().await else {
                return false;
            };
            let found: Vec<Value> = body["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
                .collect();
            let evaluated = !found.is_empty()
                && found
                    .iter()
                    .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z");
            *slot.lock().unwrap() = found;
            evaluated
        }
    })
    .await;
    let rules = rules.into_inner().unwrap();
    assert_eq!(rules.len(), 8, "{rules:?}");
}
