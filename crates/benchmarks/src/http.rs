//! Workload 7, HTTP: `wrk` against main-api's authenticated
//! `GET /v1/tenants/{t}/shards/{s}/structured`, served from L1, against
//! `GET /health/live` of the same process in the same run. Target: at least
//! 0.5x the health route's requests per second; p50 and p99 printed.
//!
//! The same route is also measured on a second main-api process with
//! OpenTelemetry tracing on (every request sampled, spans exported over
//! OTLP/HTTP to a local receiver that accepts and discards them) against
//! the first, tracing off. Target: at least 0.8x.
//!
//! main-api and auth-broker run as real processes (release builds, which
//! `cargo xtask bench` makes beside this binary) on a redis-server of their
//! own. The two routes are measured alternately, so that whatever else the
//! machine does falls on both. wrk shares the two cores with main-api, as a
//! load balancer would not: the ratio, not the absolute rate, is the figure.

use std::time::Duration;

use test_support::{RedisServer, ServiceProcess, free_port};

use crate::fixture::Mode;
use crate::report::{Figure, Row, Status};
use crate::services::{self, Services};

const WORKLOAD: &str = "7. HTTP: main-api structured route (from L1) vs `/health/live`, wrk";
const TRACED: &str = "7. HTTP: structured route, tracing on (OTLP, sampled 100 %) vs off, wrk";

/// What one wrk run reported.
#[derive(Debug, Default, Clone, Copy)]
struct Wrk {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let Some(binaries) = services::binaries() else {
        return Ok(vec![skipped(
            "the main-api and auth-broker release binaries are missing (run `cargo xtask bench`)",
        )]);
    };
    if !on_path("wrk") {
        return Ok(vec![skipped("wrk is not installed (apt-get install wrk)")]);
    }
    let redis = RedisServer::start().await;
    // `Services::start` returned once each answered /health/ready.
    let services = Services::start(&redis, &binaries, &[]);
    let api = &services.api;
    let sink = otlp_sink().await?;
    let traced_addr = format!("127.0.0.1:{}", free_port());
    let mut traced_env = services::env(&redis, "MAIN_API_ADDR", &traced_addr);
    traced_env.extend([
        // Traces only: the target is tracing's cost. The base endpoint
        // would also push metrics over OTLP (see BENCHMARKS.md for that run).
        (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            format!("http://{sink}/v1/traces"),
        ),
        ("OTEL_TRACES_SAMPLER", "always_on".to_owned()),
    ]);
    let traced = ServiceProcess::start(&binaries.0, &traced_addr, &traced_env);

    let client = reqwest::Client::new();
    let token = services.session(&client, "bench", "wrk", &[]).await?;
    let path = "/v1/tenants/bench/shards/s1/structured";
    let data = format!("{}{path}", api.url());
    let traced_data = format!("{}{path}", traced.url());
    let doc = serde_json::Value::String("x".repeat(480));
    let put = client
        .put(&data)
        .bearer_auth(&token)
        .json(&serde_json::json!({"doc": doc}))
        .send()
        .await;
    if !put.is_ok_and(|r| r.status().as_u16() == 204) {
        return Err("seeding the shard failed".to_owned());
    }
    for url in [&data, &traced_data] {
        warm_l1(&client, url, &token).await?;
    }

    let window = mode.pick(8, 1);
    let rounds = mode.pick(3, 1);
    let health = format!("{}/health/live", api.url());
    let auth = format!("Authorization: Bearer {token}");
    let (mut health_runs, mut data_runs, mut traced_runs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        health_runs.push(wrk(&health, None, window).await?);
        data_runs.push(wrk(&data, Some(&auth), window).await?);
        traced_runs.push(wrk(&traced_data, Some(&auth), window).await?);
    }
    let mean = |runs: &[Wrk]| {
        let n = u32::try_from(runs.len()).unwrap_or(1);
        Wrk {
            rps: runs.iter().map(|r| r.rps).sum::<f64>() / f64::from(n),
            p50: runs.iter().map(|r| r.p50).sum::<Duration>() / n,
            p99: runs.iter().map(|r| r.p99).sum::<Duration>() / n,
        }
    };
    let (health, data, traced) = (mean(&health_runs), mean(&data_runs), mean(&traced_runs));
    let ratio = data.rps / health.rps;
    let traced_ratio = traced.rps / data.rps;
    Ok(vec![
        Row::new("http.structured", WORKLOAD, Figure::rate(data.rps))
            .baseline(Figure::rate(health.rps), ratio)
            .target(">= 0.5x health rps", Status::met_if(ratio >= 0.5))
            .note(format!(
                "wrk -t2 -c64, {rounds} x {window} s each, alternating; health p50 {:?} p99 {:?}",
                health.p50, health.p99
            )),
        Row::new(
            "http.p50",
            "7. HTTP: structured route p50 latency",
            Figure::time(data.p50),
        ),
        Row::new(
            "http.p99",
            "7. HTTP: structured route p99 latency",
            Figure::time(data.p99),
        ),
        Row::new("http.traced", TRACED, Figure::rate(traced.rps))
            .baseline(Figure::rate(data.rps), traced_ratio)
            .target(">= 0.8x tracing off", Status::met_if(traced_ratio >= 0.8))
            .note(format!(
                "same route on a second main-api exporting every span; traced p50 {:?} p99 {:?}",
                traced.p50, traced.p99
            )),
    ])
}

/// Reads `url` until it is served from L1 (the first read fills it).
async fn warm_l1(client: &reqwest::Client, url: &str, token: &str) -> Result<(), String> {
    for _ in 0..50 {
        let response = client
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response
            .headers()
            .get("x-cache")
            .is_some_and(|v| v == "hit-l1")
        {
            return Ok(());
        }
    }
    Err("the shard never came from L1".to_owned())
}

/// A local OTLP/HTTP receiver that reads each request and answers 200
/// with an empty body (an empty protobuf response): the exporter's cost is
/// measured, not a collector's. Returns its address.
async fn otlp_sink() -> Result<std::net::SocketAddr, String> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| format!("binding the OTLP sink: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    // Headers, then as many body bytes as Content-Length says.
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if stream.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if stream.get_mut().write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(addr)
}

fn skipped(reason: &str) -> Row {
    Row::skipped("http.structured", WORKLOAD, ">= 0.5x health rps", reason)
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|d| d.join(program).is_file()))
}

/// Runs wrk on `url` for `seconds` and reads its summary.
async fn wrk(url: &str, header: Option<&str>, seconds: u64) -> Result<Wrk, String> {
    let mut cmd = tokio::process::Command::new("wrk");
    cmd.args(["--latency", "-t2", "-c64", &format!("-d{seconds}s")]);
    if let Some(header) = header {
        cmd.args(["-H", header]);
    }
    let output = cmd
        .arg(url)
        .output()
        .await
        .map_err(|e| format!("running wrk: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(format!("wrk failed ({}): {text}", output.status));
    }
    if text.contains("Non-2xx or 3xx responses") {
        return Err(format!("wrk saw errors: {text}"));
    }
    parse_wrk(&text).ok_or_else(|| format!("unexpected wrk output: {text}"))
}

/// Reads `Requests/sec:` and the 50% / 99% lines of wrk's output.
fn parse_wrk(text: &str) -> Option<Wrk> {
    let mut result = Wrk::default();
    let mut seen = 0;
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(rps)) => {
                result.rps = rps.parse().ok()?;
                seen += 1;
            }
            (Some("50%"), Some(latency)) => {
                result.p50 = parse_latency(latency)?;
                seen += 1;
            }
            (Some("99%"), Some(latency)) => {
                result.p99 = parse_latency(latency)?;
                seen += 1;
            }
            _ => {}
        }
    }
    (seen == 3).then_some(result)
}

/// wrk's latencies: `812.00us`, `1.23ms`, `1.01s`.
fn parse_latency(text: &str) -> Option<Duration> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return None;
    };
    let value: f64 = number.parse().ok()?;
    Some(Duration::from_secs_f64(value * scale))
}

#[cfg(test)]
mod tests {
    use super::*;

    // wrk's summary is read whatever the latency units.
    #[test]
    fn reads_wrk_output() {
        let text = "Running 1s test @ http://x\n  Latency Distribution\n     50%  812.00us\n     75%    1.10ms\n     90%    1.50ms\n     99%    3.21ms\n  12345 requests in 1.00s, 1.2MB read\nRequests/sec:  12345.67\nTransfer/sec:      1.2MB\n";
        let wrk = parse_wrk(text).unwrap();
        assert!((wrk.rps - 12345.67).abs() < 1e-6);
        assert_eq!(wrk.p50, Duration::from_micros(812));
        assert_eq!(wrk.p99, Duration::from_micros(3210));
        assert_eq!(parse_latency("1.5s"), Some(Duration::from_millis(1500)));
        assert!(parse_wrk("garbage").is_none());
    }
}
