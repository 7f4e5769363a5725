//! OpenTelemetry metrics over OTLP/HTTP (protobuf): the meter provider and
//! its periodic reader, which collects and exports every
//! `OTEL_METRIC_EXPORT_INTERVAL` from a thread of its own (cumulative
//! temporality, the SDK's default, so that a counter's exported value is
//! the same number `/metrics` shows).
//!
//! The instruments are fed by `metrics_bridge.rs`, from the recordings the
//! Prometheus exporter gets.

use std::sync::OnceLock;
use std::time::Duration;

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use crate::otel::HttpClient;
use crate::otel_config::OtelConfig;

/// The process's meter and export interval, once metrics are exported:
/// every service instance's recorder then feeds it (see [`exporting`]).
static EXPORT: OnceLock<(Meter, Duration)> = OnceLock::new();

/// The meter to feed and how often it is exported, when this process
/// exports metrics over OTLP.
pub(crate) fn exporting() -> Option<&'static (Meter, Duration)> {
    EXPORT.get()
}

/// Builds the meter provider for `config` (whose metrics endpoint is
/// `endpoint`) and makes its meter the one service instances feed.
///
/// # Errors
/// The exporter could not be built (a bad header name or value).
pub(crate) fn provider(
    config: &OtelConfig,
    endpoint: &str,
    client: &HttpClient,
) -> Result<SdkMeterProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = client
        .configure(
            opentelemetry_otlp::MetricExporter::builder().with_http(),
            config,
            endpoint,
        )
        .build()?;
    let reader = PeriodicReader::builder(exporter)
        .with_interval(config.metric_interval)
        .build();
    let provider = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    // A second call (a test building two) keeps the first meter.
    let _ = EXPORT.set((provider.meter("redis-layer"), config.metric_interval));
    Ok(provider)
}
