//! OpenTelemetry traces over OTLP/HTTP (protobuf): the tracer provider,
//! its bounded export queue, and the count of spans it dropped.
//!
//! Spans are handed to the SDK's batch processor, which exports from a
//! thread of its own: a request never waits for the collector. Its queue
//! is bounded (`OTEL_BSP_MAX_QUEUE_SIZE`); the SDK drops spans beyond it
//! but only says so in its own logs, so [`Counted`] keeps its own tally of
//! the spans between the request path and the exporter and drops (and
//! counts, `otel_spans_dropped_total`) those that would overflow, before
//! the SDK's queue could.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, Span, SpanData,
    SpanExporter, SpanProcessor,
};
use redis_connection::ConfigError;
use secrecy::ExposeSecret;

use crate::otel_config::{OtelConfig, SamplerChoice};

/// Spans dropped because the export queue was full (process-wide: the
/// tracer provider is one per process).
static DROPPED: AtomicU64 = AtomicU64::new(0);

/// The tracer, once spans are exported: the HTTP layer starts each
/// request's server span with it (see `trace_span.rs`), and does nothing
/// for traces while there is none.
static TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// Spans dropped so far because the export queue was full.
pub(crate) fn dropped_spans() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// The tracer of this process's exported traces, if it exports any.
pub(crate) fn tracer() -> Option<&'static SdkTracer> {
    TRACER.get()
}

/// The instrumentation scope of every span of ours.
pub(crate) const TRACER_NAME: &str = "redis-layer";

/// Largest batch per export request.
const MAX_EXPORT_BATCH: usize = 512;

/// How often a partial batch is sent.
const SCHEDULED_DELAY: Duration = Duration::from_millis(500);

/// The HTTP client both exporters use: with TLS (see `otlp_client.rs`)
/// in a build with the `otlp-tls` feature, else the exporter's own.
#[derive(Debug, Clone)]
pub(crate) struct HttpClient(#[cfg(feature = "otlp-tls")] otlp_reqwest::blocking::Client);

impl HttpClient {
    /// The client for `config`'s endpoints.
    ///
    /// # Errors
    /// The TLS settings are bad (see `otlp_client.rs`).
    pub(crate) fn new(config: &OtelConfig) -> Result<Self, ConfigError> {
        #[cfg(feature = "otlp-tls")]
        return Ok(Self(crate::otlp_client::client(config)?));
        #[cfg(not(feature = "otlp-tls"))]
        {
            let _ = config;
            Ok(Self())
        }
    }

    /// `builder` set up as every OTLP exporter of ours is: this client,
    /// `endpoint`, the timeout and the headers of `config`.
    pub(crate) fn configure<B: WithExportConfig + WithHttpConfig>(
        &self,
        builder: B,
        config: &OtelConfig,
        endpoint: &str,
    ) -> B {
        let headers = config
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
            .collect();
        let builder = builder
            .with_endpoint(endpoint)
            .with_timeout(config.timeout)
            .with_headers(headers);
        #[cfg(feature = "otlp-tls")]
        return builder.with_http_client(self.0.clone());
        #[cfg(not(feature = "otlp-tls"))]
        builder
    }
}

/// Builds the tracer provider for `config` (whose traces endpoint is
/// `endpoint`).
///
/// # Errors
/// The exporter could not be built (a bad header name or value).
pub(crate) fn provider(
    config: &OtelConfig,
    endpoint: &str,
    client: &HttpClient,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = client
        .configure(
            opentelemetry_otlp::SpanExporter::builder().with_http(),
            config,
            endpoint,
        )
        .build()?;
    let in_queue = Arc::new(AtomicUsize::new(0));
    let batch = BatchSpanProcessor::builder(Leaving {
        inner: exporter,
        in_queue: Arc::clone(&in_queue),
    })
    .with_batch_config(
        BatchConfigBuilder::default()
            .with_max_queue_size(config.max_queue)
            .with_max_export_batch_size(MAX_EXPORT_BATCH.min(config.max_queue))
            .with_scheduled_delay(SCHEDULED_DELAY)
            .build(),
    )
    .build();
    let processor = Counted {
        inner: batch,
        in_queue,
        max_queue: config.max_queue,
    };
    let provider = SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(sampler(config.sampler))
        .with_resource(
            Resource::builder()
                .with_service_name(config.service_name.clone())
                .build(),
        )
        .build();
    // A second call (a test building two) keeps the first tracer.
    let _ = TRACER.set(provider.tracer(TRACER_NAME));
    Ok(provider)
}

fn sampler(choice: SamplerChoice) -> Sampler {
    match choice {
        SamplerChoice::AlwaysOn => Sampler::AlwaysOn,
        SamplerChoice::AlwaysOff => Sampler::AlwaysOff,
        SamplerChoice::Ratio(r) => Sampler::TraceIdRatioBased(r),
        SamplerChoice::ParentBasedAlwaysOff => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        SamplerChoice::ParentBasedRatio(r) => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r)))
        }
        SamplerChoice::ParentBasedAlwaysOn => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
    }
}

/// The batch processor, behind a count of the spans handed to it and not
/// yet taken by its exporter: at `max_queue` a span is dropped and counted
/// here (the SDK's queue, of the same size, then never overflows).
#[derive(Debug)]
struct Counted {
    inner: BatchSpanProcessor,
    in_queue: Arc<AtomicUsize>,
    max_queue: usize,
}

impl SpanProcessor for Counted {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, span: SpanData) {
        let taken = self
            .in_queue
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_queue).then_some(n + 1)
            });
        if taken.is_ok() {
            self.inner.on_end(span);
        } else {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The OTLP exporter, telling [`Counted`] when spans leave the queue.
#[derive(Debug)]
struct Leaving {
    inner: opentelemetry_otlp::SpanExporter,
    in_queue: Arc<AtomicUsize>,
}

impl SpanExporter for Leaving {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        // Out of the queue now, whatever the export's outcome.
        self.in_queue.fetch_sub(batch.len(), Ordering::AcqRel);
        self.inner.export(batch).await
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
