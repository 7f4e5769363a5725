//! Structured logs (`LOG_FORMAT=json|pretty`, filtered by `RUST_LOG`) and,
//! when an OTLP endpoint is set, OpenTelemetry traces (see `otel.rs`) and
//! metrics (see `otel_metrics.rs`).
//!
//! The two have separate filters: `RUST_LOG` decides what is logged, while
//! traces always get the cache-operation and Redis-command spans (DEBUG,
//! targets `redis_cache` and `redis`), whatever the log level. The HTTP
//! request's server span is made by `trace_span.rs` through the
//! OpenTelemetry API, not from the request's log span, which traces skip.
//! Without an endpoint no span beyond the logs' is made.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use redis_connection::ConfigError;
use tracing::{Level, Metadata};
use tracing_subscriber::filter::{EnvFilter, FilterFn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry};

use crate::otel_config::OtelConfig;

/// Keeps the tracer and meter providers alive; on drop, sends what is
/// queued (for at most a second each: an unreachable collector must not
/// hold up an exit).
#[derive(Debug, Default)]
#[must_use = "dropping it stops trace and metric export"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
    meters: Option<SdkMeterProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown_with_timeout(Duration::from_secs(1));
        }
        if let Some(meters) = self.meters.take() {
            // The meter provider's shutdown ignores its timeout (it waits up
            // to 5 s for the last export): wait for it on a thread, a second
            // at most.
            let (done, finished) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = meters.shutdown();
                let _ = done.send(());
            });
            let _ = finished.recv_timeout(Duration::from_secs(1));
        }
    }
}

/// Installs the global subscriber with logs only. `format` is `json` or
/// `pretty`; the filter comes from `RUST_LOG` (default `info`). Safe to
/// call twice.
pub fn init(format: &str) {
    install(format, None);
}

/// Installs the global subscriber: logs as [`init`] does, plus trace export
/// when `otel` has a traces endpoint; and starts metric export when it has
/// a metrics endpoint (service instances made afterwards feed it).
///
/// # Errors
/// The certificate file is bad, or an OTLP exporter could not be built
/// (e.g. a header that is not a valid HTTP header). The message never holds
/// a header's value.
pub fn init_with(format: &str, otel: &OtelConfig) -> Result<Telemetry, ConfigError> {
    if otel.traces_endpoint.is_none() && otel.metrics_endpoint.is_none() {
        install(format, None);
        return Ok(Telemetry::default());
    }
    let client = crate::otel::HttpClient::new(otel)?;
    // The exporters' errors may quote a header value: only the variables
    // to check are named.
    let unbuildable = |_| {
        ConfigError::new(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "the OTLP exporter could not be built (check the headers and the endpoint)",
        )
    };
    let provider = match &otel.traces_endpoint {
        Some(endpoint) => {
            Some(crate::otel::provider(otel, endpoint, &client).map_err(unbuildable)?)
        }
        None => None,
    };
    let meters = match &otel.metrics_endpoint {
        Some(endpoint) => {
            Some(crate::otel_metrics::provider(otel, endpoint, &client).map_err(unbuildable)?)
        }
        None => None,
    };
    install(format, provider.as_ref());
    Ok(Telemetry { provider, meters })
}

fn install(format: &str, provider: Option<&SdkTracerProvider>) {
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = EnvFilter::try_new(with_quiet_fred(&directives))
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_fred("info")));
    let fmt = tracing_subscriber::fmt::layer();
    let logs = if format == "json" {
        fmt.json()
            .flatten_event(true)
            .with_current_span(true)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let traces = provider.map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(crate::otel::TRACER_NAME))
            .with_location(false)
            .with_threads(false)
            // Per-span work nobody reads (measured in workload 7, see
            // BENCHMARKS.md): busy/idle times are two clock reads and an
            // extension lock at every poll of the request's future, and two
            // attributes to encode; the target is one more attribute; and
            // activating the OpenTelemetry context at every poll serves
            // OpenTelemetry-native instrumentation, of which we have none
            // (parents come from the tracing span tree).
            .with_tracked_inactivity(false)
            .with_target(false)
            .with_context_activation(false)
            .with_filter(FilterFn::new(|metadata: &Metadata<'_>| traced(metadata)))
    });
    let _ = Registry::default().with(logs).with(traces).try_init();
}

/// What traces carry through tracing-opentelemetry: spans at INFO and
/// above but the request's log span (the request's trace span is made
/// directly, see `trace_span.rs`), and the DEBUG spans of cache operations
/// and Redis commands; events (log lines) only at WARN and above, as span
/// events of the cache-operation or Redis-command span they happen in.
fn traced(metadata: &Metadata<'_>) -> bool {
    if crate::trace_span::is_log_span(metadata) {
        false
    } else if metadata.is_span() {
        *metadata.level() <= Level::INFO
            || metadata.target() == "redis"
            || metadata.target().starts_with("redis_cache")
    } else {
        *metadata.level() <= Level::WARN
    }
}

/// `directives` (default `info`), with fred's own log lines limited to
/// errors unless they name fred. fred logs a WARN per connection for every
/// connection it loses; redis-connection's monitor reports the same events
/// once per outage (see `redis_connection`'s outage log), so at the default
/// level an outage would otherwise be a burst of duplicate warnings.
fn with_quiet_fred(directives: &str) -> String {
    let directives = if directives.trim().is_empty() {
        "info"
    } else {
        directives
    };
    if directives.contains("fred") {
        directives.to_owned()
    } else {
        format!("{directives},fred=error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fred_is_quieted_unless_the_directives_name_it() {
        assert_eq!(with_quiet_fred(""), "info,fred=error");
        assert_eq!(with_quiet_fred("debug"), "debug,fred=error");
        assert_eq!(with_quiet_fred("info,fred=debug"), "info,fred=debug");
    }
}
