//! Part two: auth-broker and two main-api instances as real processes on
//! one redis-server, under HTTP load while the fault plan runs.
//!
//! Checked: no 5xx but 503, no stuck request, no stale document and no
//! revoked session accepted beyond the grace, no live session refused
//! without data loss (see `service_load.rs`), recovery within 2 s of Redis
//! answering (every readiness probe 200 again and a document written
//! through each main-api read back through the other), and at the end every
//! process alive, without a panic in its log, and exiting 0 on SIGTERM.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::{Value, json};
use test_support::{RedisServer, ServiceProcess, free_port};
use tokio::sync::Mutex;

use crate::Options;
use crate::cache_soak::{GRACE, start_redis};
use crate::faults::{self, FaultClock, Harness, Schedule};
use crate::ledger::Ledger;
use crate::report::{PartReport, Table, Violations};
use crate::service_load::{self, Endpoints, HttpLoad, HttpStats, ROUTES};
use crate::summary;

/// The services' request timeout (they answer 503 when it passes). It must
/// exceed the command timeout; the slowest route (session creation) sends
/// four commands one after another.
const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_millis(2500);
/// A request slower than the request timeout plus 1 s of slack is stuck.
const STUCK_LIMIT: Duration = Duration::from_millis(3500);
/// The services' L1 TTL cap: the documented staleness while Redis is down.
const L1_TTL_SECS: u64 = 5;
/// Documents the load reads and writes (few, so that they are contended).
const DOCUMENTS: usize = 16;

/// The three processes.
struct Processes {
    named: Vec<(&'static str, ServiceProcess)>,
}

async fn start(
    binary: &Path,
    addr_var: &'static str,
    redis_port: u16,
    internal: &str,
) -> Result<ServiceProcess, String> {
    let addr = format!("127.0.0.1:{}", free_port());
    let env: Vec<(&'static str, String)> = vec![
        (addr_var, addr.clone()),
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", redis_port.to_string()),
        ("REDIS_COMMAND_TIMEOUT_MS", "500".to_owned()),
        (
            "HTTP_REQUEST_TIMEOUT_MS",
            HTTP_REQUEST_TIMEOUT.as_millis().to_string(),
        ),
        ("CACHE_L1_TTL_SECS", L1_TTL_SECS.to_string()),
        // The load creates sessions far faster than a person would.
        ("SESSION_RATE_LIMIT", "1000000".to_owned()),
        ("INTERNAL_API_TOKEN", internal.to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ];
    if !binary.is_file() {
        return Err(format!(
            "{} is missing: cargo build --release -p auth-broker -p main-api (or pass --bin-dir)",
            binary.display()
        ));
    }
    let binary = binary.to_owned();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, String)> = env.iter().map(|(k, v)| (*k, v.clone())).collect();
        ServiceProcess::start(&binary, &addr, &env)
    })
    .await
    .map_err(|e| format!("could not start a service: {e}"))
}

async fn status(client: &reqwest::Client, url: String) -> u16 {
    client
        .get(url)
        .send()
        .await
        .map_or(0, |r| r.status().as_u16())
}

/// The recovery probe and the data-loss hooks.
struct ServiceHarness {
    load: Arc<HttpLoad>,
    probe_token: Mutex<Option<String>>,
    nonce: AtomicU64,
}

impl ServiceHarness {
    async fn attempt(&self) -> bool {
        let e = &self.load.endpoints;
        let urls = std::iter::once(&e.broker).chain(&e.apis);
        for url in urls {
            if status(&e.client, format!("{url}/health/ready")).await != 200 {
                return false;
            }
        }
        let mut probe = self.probe_token.lock().await;
        if probe.is_none() {
            *probe = e.create_session("probe").await.ok();
        }
        let Some(token) = probe.clone() else {
            return false;
        };
        for (writer, reader) in [(0, 1), (1, 0)] {
            let body = json!({"probe": self.nonce.fetch_add(1, Ordering::SeqCst)});
            let put = e
                .client
                .put(e.doc_url(writer, "probe"))
                .bearer_auth(&token)
                .json(&body);
            match put.send().await.map(|r| r.status().as_u16()) {
                Ok(204) => {}
                Ok(401) => {
                    // Redis lost the probe's session: make a new one next time.
                    *probe = None;
                    return false;
                }
                _ => return false,
            }
            let get = e.client.get(e.doc_url(reader, "probe")).bearer_auth(&token);
            let Ok(response) = get.send().await else {
                return false;
            };
            if response.status().as_u16() != 200
                || response.json::<Value>().await.ok() != Some(body)
            {
                return false;
            }
        }
        true
    }
}

impl Harness for ServiceHarness {
    fn recovered(&self) -> BoxFuture<'_, bool> {
        Box::pin(self.attempt())
    }

    fn before_data_loss<'a>(&'a self, _redis: &'a RedisServer) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            self.load.data_generation.fetch_add(1, Ordering::SeqCst);
        })
    }

    fn after_data_loss(&self) {
        self.load.data_generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Runs part two.
pub(crate) async fn run(options: &Options) -> Result<PartReport, String> {
    let redis = start_redis().await;
    let internal = format!(
        "soak-internal-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    );
    let broker = start(
        &options.bin_dir.join("auth-broker"),
        "AUTH_BROKER_ADDR",
        redis.port(),
        &internal,
    )
    .await?;
    let api1 = start(
        &options.bin_dir.join("main-api"),
        "MAIN_API_ADDR",
        redis.port(),
        &internal,
    )
    .await?;
    let api2 = start(
        &options.bin_dir.join("main-api"),
        "MAIN_API_ADDR",
        redis.port(),
        &internal,
    )
    .await?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let endpoints = Endpoints {
        broker: broker.url(),
        apis: vec![api1.url(), api2.url()],
        internal_token: internal,
        client,
    };
    let processes = Processes {
        named: vec![
            ("auth-broker", broker),
            ("main-api 1", api1),
            ("main-api 2", api2),
        ],
    };
    // `ServiceProcess::start` returned once each answered /health/ready.

    let started = Instant::now();
    let relaxed = Duration::from_secs(L1_TTL_SECS) + GRACE;
    let load = Arc::new(HttpLoad {
        endpoints,
        shards: (0..DOCUMENTS).map(|i| format!("doc-{i}")).collect(),
        ledger: Ledger::new(DOCUMENTS, GRACE, relaxed),
        clock: Arc::new(FaultClock::default()),
        data_generation: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        violations: Violations::new(started),
        pace: options.pace,
        stuck_limit: STUCK_LIMIT,
        started,
    });
    let tasks: Vec<_> = (0..options.http_tasks)
        .map(|id| tokio::spawn(service_load::run(load.clone(), id as u64)))
        .collect();
    let harness = Arc::new(ServiceHarness {
        load: load.clone(),
        probe_token: Mutex::new(None),
        nonce: AtomicU64::new(0),
    });
    let injector = faults::spawn(
        redis,
        harness,
        load.clock.clone(),
        Schedule::for_duration(options.duration),
        started,
    );
    let outcome = injector.await;
    load.stop.store(true, Ordering::SeqCst);
    let mut totals = HttpStats::default();
    for task in tasks {
        match task.await {
            Ok(stats) => totals.merge(&stats),
            Err(error) => load.violations.add(format!("a load task failed: {error}")),
        }
    }
    let elapsed = started.elapsed();
    let records = match outcome {
        Ok((_redis, records)) => records,
        Err(_) => {
            load.violations.add("the fault injector panicked");
            Vec::new()
        }
    };
    let mut tables = vec![overview(&totals, elapsed, options)];
    tables.push(summary::ops_table(
        &ROUTES,
        &totals.ops,
        &format!("{} ms", STUCK_LIMIT.as_millis()),
    ));
    tables.push(summary::reads_table(
        &totals.reads,
        GRACE,
        relaxed,
        "request overlapping a fault",
    ));
    tables.push(sessions_table(&totals));
    tables.push(summary::faults_table(&records, 3, &load.violations));
    tables.push(statuses_table(&totals));
    tables.push(finish(processes, &load).await);
    Ok(PartReport {
        name: "Part two: auth-broker and two main-api behind HTTP".to_owned(),
        tables,
        violations: load.violations.count(),
        violation_list: load.violations.list(),
    })
}

fn overview(totals: &HttpStats, elapsed: Duration, options: &Options) -> Table {
    let requests: u64 = totals.ops.iter().map(|o| o.total()).sum();
    let mut table = Table::new("Run", &["figure", "value"]);
    table.row(vec![
        "duration".into(),
        format!("{:.1} s", elapsed.as_secs_f64()),
    ]);
    table.row(vec!["HTTP tasks".into(), options.http_tasks.to_string()]);
    table.row(vec!["requests".into(), requests.to_string()]);
    #[allow(clippy::cast_precision_loss)]
    let rate = requests as f64 / elapsed.as_secs_f64();
    table.row(vec!["requests per second".into(), format!("{rate:.0}")]);
    table
}

fn sessions_table(totals: &HttpStats) -> Table {
    let s = &totals.sessions;
    let mut table = Table::new("Sessions", &["figure", "count"]);
    let rows = [
        ("created (201)", s.created),
        ("revoked (204)", s.revoked),
        ("revoked token refused (401)", s.revoked_refused),
        (
            "revoked token accepted within the grace",
            s.revoked_accepted_within_grace,
        ),
        (
            "**revoked token accepted after the grace**",
            s.revoked_accepted_late,
        ),
        (
            "live session refused after Redis lost its data",
            s.live_refused_after_data_loss,
        ),
        ("**live session refused otherwise**", s.live_refused),
    ];
    for (figure, n) in rows {
        table.row(vec![figure.to_owned(), n.to_string()]);
    }
    table
}

fn statuses_table(totals: &HttpStats) -> Table {
    let mut table = Table::new("HTTP statuses", &["status", "answers"]);
    for (status, n) in &totals.statuses {
        table.row(vec![status.clone(), n.to_string()]);
    }
    table
}

/// The sum of a Prometheus metric's series.
fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let base = series.split('{').next()?;
            if base == name {
                value.parse::<f64>().ok()
            } else {
                None
            }
        })
        .sum()
}

/// Reads each service's metrics, checks it is alive and panic-free, and
/// stops it with SIGTERM (it must exit 0).
async fn finish(processes: Processes, load: &HttpLoad) -> Table {
    let mut table = Table::new(
        "Service processes",
        &[
            "process",
            "L1 hits / L2 hits",
            "L1 flushes",
            "L1 replays",
            "cache errors",
            "alive at the end",
            "exit on SIGTERM",
        ],
    );
    let client = &load.endpoints.client;
    for (name, mut process) in processes.named {
        let text = match client
            .get(format!("{}/metrics", process.url()))
            .send()
            .await
        {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        let hits = |tier: &str| {
            text.lines()
                .find(|l| {
                    l.starts_with("cache_hits_total") && l.contains(&format!("tier=\"{tier}\""))
                })
                .and_then(|l| l.rsplit_once(' '))
                .map_or("?".to_owned(), |(_, v)| v.to_owned())
        };
        let alive = status(client, format!("{}/health/live", process.url())).await == 200;
        if !alive {
            load.violations
                .add(format!("{name} does not answer /health/live at the end"));
        }
        let logs = process.logs();
        if logs.contains("panicked") {
            load.violations.add(format!("{name} logged a panic"));
        }
        let exit = tokio::task::spawn_blocking(move || {
            let status = process.terminate(Duration::from_secs(10));
            (status.success(), status.to_string())
        })
        .await;
        let exit = match exit {
            Ok((true, text)) => text,
            Ok((false, text)) => {
                load.violations
                    .add(format!("{name} exited with {text} on SIGTERM"));
                text
            }
            Err(_) => {
                load.violations
                    .add(format!("{name} did not exit within 10 s of SIGTERM"));
                "hung".to_owned()
            }
        };
        table.row(vec![
            name.to_owned(),
            format!("{} / {}", hits("l1"), hits("l2")),
            format!("{}", metric(&text, "cache_l1_flushes_total")),
            format!("{}", metric(&text, "cache_l1_replays_total")),
            format!("{}", metric(&text, "cache_errors_total")),
            if alive { "yes" } else { "**no**" }.to_owned(),
            exit,
        ]);
    }
    table
}
