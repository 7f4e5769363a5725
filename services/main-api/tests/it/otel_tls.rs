//! OTLP over https: the receiver serves TLS with a certificate of a test
//! CA, and the service trusts that CA through the standard
//! `OTEL_EXPORTER_OTLP_CERTIFICATE`.

use std::time::Duration;

use reqwest::Client;
use test_support::tls::{write_server_files, write_unrelated_ca};
use test_support::{RedisServer, wait_for};

use crate::otlp_receiver::tls_receiver;
use crate::procs::{PASSWORD, get_live, start_with};

// Spans and metrics reach an https collector whose certificate is signed
// by the CA named in OTEL_EXPORTER_OTLP_CERTIFICATE.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_and_metrics_reach_an_https_collector_trusted_through_its_ca_file() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = write_server_files(dir.path());
    let receiver = tls_receiver(&files.server_cert, &files.server_key).await;
    assert!(receiver.url.starts_with("https://"));
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            (
                "OTEL_EXPORTER_OTLP_CERTIFICATE",
                files.ca_cert.to_str().unwrap(),
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "200"),
            ("RUST_LOG", "info"),
        ],
    );
    get_live(&Client::new(), &api, 1).await;
    let received = receiver.received;
    wait_for(
        "the request span and metrics over https",
        Duration::from_secs(20),
        || async {
            let span = received
                .spans
                .lock()
                .unwrap()
                .iter()
                .any(|r| r.service == "main-api" && r.span.name == "GET /health/live");
            span && !received.metrics.lock().unwrap().is_empty()
        },
    )
    .await;
}

// With a CA that did not sign the collector's certificate, the exporters'
// handshakes fail and nothing is delivered; requests are still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_https_collector_gets_nothing_and_requests_still_succeed() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let dir = tempfile::tempdir().unwrap();
    let files = write_server_files(dir.path());
    let wrong_ca = dir.path().join("other-ca.crt");
    write_unrelated_ca(&wrong_ca);
    let receiver = tls_receiver(&files.server_cert, &files.server_key).await;
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.as_str()),
            ("OTEL_EXPORTER_OTLP_CERTIFICATE", wrong_ca.to_str().unwrap()),
            ("OTEL_METRIC_EXPORT_INTERVAL", "100"),
            ("RUST_LOG", "info"),
        ],
    );
    get_live(&Client::new(), &api, 20).await;
    let received = receiver.received;
    wait_for(
        "the exporters' handshakes to be refused",
        Duration::from_secs(20),
        || async { received.failed_handshakes() > 0 },
    )
    .await;
    assert!(received.spans.lock().unwrap().is_empty());
    assert!(received.metrics.lock().unwrap().is_empty());
}
