//! Metrics over OTLP: main-api runs as a real process and pushes its
//! metrics to the test's OTLP receiver; the numbers must be those of its
//! own `/metrics`.

use std::time::Duration;

use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point::Value;
use opentelemetry_proto::tonic::metrics::v1::{HistogramDataPoint, NumberDataPoint};
use reqwest::{Client, Method, StatusCode};
use test_support::{RedisServer, wait_for};

use crate::otlp_receiver::{Received, attribute, receiver};
use crate::procs::{PASSWORD, SHARD, get_live, metrics_text, new_session, send, start, start_with};

/// The labels of the series the test drives.
const SERIES: [(&str, &str); 3] = [
    ("route", "/health/live"),
    ("method", "GET"),
    ("status", "200"),
];

fn of_series(attributes: &[opentelemetry_proto::tonic::common::v1::KeyValue]) -> bool {
    SERIES
        .iter()
        .all(|(k, v)| attribute(attributes, k).as_deref() == Some(*v))
}

/// The last value received of the counter `name` for [`SERIES`].
fn last_counter(received: &Received, name: &str) -> Option<i64> {
    let metrics = received.metrics.lock().unwrap();
    metrics
        .iter()
        .filter(|m| m.service == "main-api" && m.metric.name == name)
        .filter_map(|m| match &m.metric.data {
            Some(Data::Sum(sum)) => sum.data_points.iter().find(|p| of_series(&p.attributes)),
            _ => None,
        })
        .next_back()
        .and_then(|p: &NumberDataPoint| match p.value {
            Some(Value::AsInt(n)) => Some(n),
            _ => None,
        })
}

/// The last point received of the histogram `name` for [`SERIES`].
fn last_histogram(received: &Received, name: &str) -> Option<HistogramDataPoint> {
    let metrics = received.metrics.lock().unwrap();
    metrics
        .iter()
        .filter(|m| m.service == "main-api" && m.metric.name == name)
        .filter_map(|m| match &m.metric.data {
            Some(Data::Histogram(h)) => h.data_points.iter().find(|p| of_series(&p.attributes)),
            _ => None,
        })
        .next_back()
        .cloned()
}

/// The last value received of the unlabelled gauge `name`.
fn last_gauge(received: &Received, name: &str) -> Option<f64> {
    let metrics = received.metrics.lock().unwrap();
    metrics
        .iter()
        .filter(|m| m.service == "main-api" && m.metric.name == name)
        .filter_map(|m| match &m.metric.data {
            Some(Data::Gauge(g)) => g.data_points.last(),
            _ => None,
        })
        .next_back()
        .and_then(|p| match p.value {
            Some(Value::AsDouble(v)) => Some(v),
            _ => None,
        })
}

/// The value of `name{SERIES..., extra}` in Prometheus text.
fn scraped(text: &str, name: &str, extra: &str) -> Option<f64> {
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| {
            SERIES
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .find(|l| l.contains(extra))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

// Requests driven at main-api reach the OTLP receiver as the very numbers
// /metrics shows: the request counter of one route and status is equal on
// both paths, the latency histogram arrives with the Prometheus buckets as
// its bounds and the same count in each, and gauges read from elsewhere
// (redis_up) are pushed without anything scraping /metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_carry_the_same_numbers_as_the_prometheus_endpoint() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let receiver = receiver().await;
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                &format!("{}/v1/metrics", receiver.url),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let received = receiver.received;
    let client = Client::new();

    wait_for("redis_up=1 over OTLP", Duration::from_secs(20), || async {
        last_gauge(&received, "redis_up") == Some(1.0)
    })
    .await;

    get_live(&client, &api, 7).await;
    wait_for(
        "the request count over OTLP",
        Duration::from_secs(20),
        || async { last_counter(&received, "http_requests_total") == Some(7) },
    )
    .await;

    let text = metrics_text(&client, &api).await;
    assert_eq!(
        scraped(&text, "http_requests_total", ""),
        Some(7.0),
        "/metrics and OTLP disagree:\n{text}"
    );
    let otlp = last_histogram(&received, "http_request_duration_seconds")
        .expect("the latency histogram over OTLP");
    assert_eq!(otlp.count, 7);
    assert_eq!(
        scraped(&text, "http_request_duration_seconds_count", ""),
        Some(7.0)
    );
    // Bucket by bucket: OTLP's counts per bucket, summed up to a bound,
    // are Prometheus' cumulative bucket at that bound.
    assert!(!otlp.explicit_bounds.is_empty());
    let mut cumulative = 0;
    for (bound, in_bucket) in otlp.explicit_bounds.iter().zip(&otlp.bucket_counts) {
        cumulative += in_bucket;
        #[allow(clippy::cast_precision_loss)]
        let expected = cumulative as f64;
        assert_eq!(
            scraped(
                &text,
                "http_request_duration_seconds_bucket",
                &format!("le=\"{bound}\"")
            ),
            Some(expected),
            "bucket le={bound}"
        );
    }
}

/// The last point received of `redis_command_duration_seconds` for
/// `family`.
fn last_command_point(received: &Received, family: &str) -> Option<HistogramDataPoint> {
    let metrics = received.metrics.lock().unwrap();
    metrics
        .iter()
        .filter(|m| m.service == "main-api" && m.metric.name == "redis_command_duration_seconds")
        .filter_map(|m| match &m.metric.data {
            Some(Data::Histogram(h)) => h
                .data_points
                .iter()
                .find(|p| attribute(&p.attributes, "family").as_deref() == Some(family)),
            _ => None,
        })
        .next_back()
        .cloned()
}

/// `redis_command_duration_seconds_{suffix}{family="family"...}` in
/// Prometheus text, `extra` being more of the label set (`le`).
fn scraped_command(text: &str, suffix: &str, family: &str, extra: &str) -> Option<f64> {
    let prefix = format!("redis_command_duration_seconds_{suffix}{{family=\"{family}\"{extra}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
}

/// Whether the OTLP point and the scrape hold the same histogram: the same
/// count and sum, and bucket by bucket the same cumulative counts at the
/// same bounds.
fn same_histogram(point: &HistogramDataPoint, text: &str, family: &str) -> bool {
    #[allow(clippy::cast_precision_loss)]
    let count = point.count as f64;
    if scraped_command(text, "count", family, "") != Some(count) {
        return false;
    }
    let Some(sum) = scraped_command(text, "sum", family, "") else {
        return false;
    };
    if (point.sum.unwrap_or(f64::NAN) - sum).abs() > 1e-6 {
        return false;
    }
    let mut cumulative = 0;
    point.explicit_bounds.len() == 12
        && point
            .explicit_bounds
            .iter()
            .zip(&point.bucket_counts)
            .all(|(bound, in_bucket)| {
                cumulative += in_bucket;
                #[allow(clippy::cast_precision_loss)]
                let expected = cumulative as f64;
                scraped_command(text, "bucket", family, &format!(",le=\"{bound}\""))
                    == Some(expected)
            })
}

// The Redis command latency histogram reaches the OTLP receiver with the
// numbers /metrics shows: after reads of a missing shard (a GET and a
// PTTL each), the `get` and `ttl` families' counts, sums and buckets over
// OTLP are those of the scrape, at the same bounds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_metrics_carry_the_redis_command_latency_histogram() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let receiver = receiver().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                &format!("{}/v1/metrics", receiver.url),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
        ],
    );
    let received = receiver.received;
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    let url = format!("{}{SHARD}", api.url());
    for _ in 0..4 {
        let (status, _, _) = send(&client, Method::GET, url.clone(), &token, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    for family in ["get", "ttl"] {
        // Scraped and pushed at different moments: wait until an export
        // taken after the reads matches a scrape.
        wait_for(
            &format!("the {family} family over OTLP as on /metrics"),
            Duration::from_secs(20),
            || async {
                let text = metrics_text(&client, &api).await;
                last_command_point(&received, family)
                    .is_some_and(|p| p.count >= 4 && same_histogram(&p, &text, family))
            },
        )
        .await;
    }
}
