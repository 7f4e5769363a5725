//! A real OTLP/HTTP receiver for the tests, over http or https: what the
//! services post to `/v1/traces` and `/v1/metrics`, decoded with
//! `opentelemetry-proto`'s messages and kept for the test to read.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::metrics::v1::Metric;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use reqwest::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;

/// A span as received, with the `service.name` of its resource.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedSpan {
    pub(crate) service: String,
    pub(crate) span: Span,
}

impl ReceivedSpan {
    pub(crate) fn attribute(&self, key: &str) -> Option<String> {
        attribute(&self.span.attributes, key)
    }
}

/// A metric as received, with the `service.name` of its resource; in the
/// order of arrival, so the last of a cumulative series is its value now.
#[derive(Debug, Clone)]
pub(crate) struct ReceivedMetric {
    pub(crate) service: String,
    pub(crate) metric: Metric,
}

/// An attribute's value as text.
pub(crate) fn attribute(attributes: &[KeyValue], key: &str) -> Option<String> {
    let kv = attributes.iter().find(|kv| kv.key == key)?;
    match kv.value.as_ref()?.value.as_ref()? {
        Any::StringValue(s) => Some(s.clone()),
        Any::IntValue(i) => Some(i.to_string()),
        Any::BoolValue(b) => Some(b.to_string()),
        Any::DoubleValue(d) => Some(d.to_string()),
        other => Some(format!("{other:?}")),
    }
}

/// What the receiver has been sent so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Received {
    pub(crate) spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    pub(crate) metrics: Arc<Mutex<Vec<ReceivedMetric>>>,
    /// TLS handshakes that failed (the client did not trust us).
    pub(crate) failed_handshakes: Arc<AtomicUsize>,
}

impl Received {
    pub(crate) fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::Relaxed)
    }
}

/// A running receiver: its base URL (for `OTEL_EXPORTER_OTLP_ENDPOINT`)
/// and what it received.
#[derive(Debug)]
pub(crate) struct Receiver {
    pub(crate) url: String,
    pub(crate) received: Received,
}

/// An OTLP/HTTP receiver on a free port.
pub(crate) async fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let app = app(&received);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver {
        url: format!("http://{addr}"),
        received,
    }
}

/// An OTLP/HTTP receiver over TLS on a free port, with the certificate
/// and key of these PEM files (for `127.0.0.1`).
pub(crate) async fn tls_receiver(cert: &Path, key: &Path) -> Receiver {
    let certs = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Received::default();
    let app = app(&received);
    let failed = Arc::clone(&received.failed_handshakes);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let (acceptor, app, failed) = (acceptor.clone(), app.clone(), Arc::clone(&failed));
            tokio::spawn(async move {
                // A failed handshake (e.g. a client that does not trust us)
                // is counted and ends the connection.
                let Ok(tls) = acceptor.accept(stream).await else {
                    failed.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
    Receiver {
        url: format!("https://{addr}"),
        received,
    }
}

fn app(received: &Received) -> Router {
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .with_state(received.clone())
}

async fn traces(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportTraceServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut spans = received.spans.lock().unwrap();
    for resource in request.resource_spans {
        let service = service_name(resource.resource.as_ref());
        for scope in resource.scope_spans {
            for span in scope.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    span,
                });
            }
        }
    }
    StatusCode::OK
}

async fn metrics(State(received): State<Received>, body: Bytes) -> StatusCode {
    let Ok(request) = ExportMetricsServiceRequest::decode(body) else {
        return StatusCode::BAD_REQUEST;
    };
    let mut metrics = received.metrics.lock().unwrap();
    for resource in request.resource_metrics {
        let service = service_name(resource.resource.as_ref());
        for scope in resource.scope_metrics {
            for metric in scope.metrics {
                metrics.push(ReceivedMetric {
                    service: service.clone(),
                    metric,
                });
            }
        }
    }
    StatusCode::OK
}

fn service_name(resource: Option<&opentelemetry_proto::tonic::resource::v1::Resource>) -> String {
    resource
        .and_then(|r| attribute(&r.attributes, "service.name"))
        .unwrap_or_default()
}
