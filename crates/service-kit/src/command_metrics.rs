//! `redis_command_duration_seconds`: the Redis command latency histogram
//! by family, rendered in the Prometheus text format from the connection
//! manager's [`CommandStats`], and, when metrics are exported over OTLP,
//! recorded into the OpenTelemetry histogram of the same name, bounds and
//! labels as each command ends.
//!
//! Why not through the `metrics` recorder (and so `metrics_bridge.rs`'s
//! fan-out) as every other metric: the recorder is a service instance's
//! own, installed only around the code that renders `/metrics` and the
//! request middleware, while commands run on every task (see
//! `redis_connection`'s `commands.rs`). So the histogram lives in the
//! connection manager, and its observations are forwarded to OpenTelemetry
//! from there ([`CommandStats::forward_to`]).

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use redis_connection::{COMMAND_LATENCY_BUCKETS, CommandFamily, CommandObserver, CommandStats};

/// The histogram's name.
pub(crate) const NAME: &str = "redis_command_duration_seconds";

/// What it measures: the Prometheus `# HELP` and the OpenTelemetry
/// description.
const HELP: &str = "Latency of the Redis commands this process sends (health-check PINGs aside), by command family: get, set, del, ttl, incr, scan, script, publish, members, transaction, server. Commands sent together each count the whole round trip";

/// Has `stats`' observations recorded into the OTLP-exported histogram too,
/// when this process exports metrics (else does nothing). Every manager of
/// the process feeds the same instrument, as the other metrics of a
/// process's service instances share its meter.
pub(crate) fn export_over_otlp(stats: &CommandStats) {
    let Some((meter, _)) = crate::otel_metrics::exporting() else {
        return;
    };
    let histogram = meter
        .f64_histogram(NAME)
        .with_description(HELP)
        .with_unit("s")
        .with_boundaries(COMMAND_LATENCY_BUCKETS.to_vec())
        .build();
    let _ = stats.forward_to(Arc::new(Otlp(histogram)));
}

/// The OpenTelemetry histogram, fed observation by observation.
struct Otlp(Histogram<f64>);

impl CommandObserver for Otlp {
    fn observe(&self, family: CommandFamily, elapsed: Duration, n: u64) {
        let labels = [KeyValue::new("family", family.name())];
        let seconds = elapsed.as_secs_f64();
        for _ in 0..n {
            self.0.record(seconds, &labels);
        }
    }
}

/// The histogram as Prometheus text: `# HELP`, `# TYPE`, and for each
/// family its cumulative buckets, `_sum` and `_count`.
pub(crate) fn render(stats: &CommandStats) -> String {
    let mut out = String::with_capacity(4096);
    let _ = writeln!(out, "# HELP {NAME} {HELP}");
    let _ = writeln!(out, "# TYPE {NAME} histogram");
    for family in stats.snapshot() {
        let label = family.family.name();
        for (bound, count) in COMMAND_LATENCY_BUCKETS.iter().zip(&family.buckets) {
            let _ = writeln!(
                out,
                "{NAME}_bucket{{family=\"{label}\",le=\"{bound}\"}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "{NAME}_bucket{{family=\"{label}\",le=\"+Inf\"}} {}",
            family.count
        );
        let _ = writeln!(
            out,
            "{NAME}_sum{{family=\"{label}\"}} {}",
            family.sum_seconds
        );
        let _ = writeln!(out, "{NAME}_count{{family=\"{label}\"}} {}", family.count);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use redis_connection::CommandFamily;

    use super::*;

    // One family's series: every bucket, +Inf equal to the count, sum and
    // count; unused families are there with zeros.
    #[test]
    fn rendered_histogram_has_help_buckets_and_count() {
        let stats = CommandStats::default();
        stats.observe(CommandFamily::Publish, Duration::from_micros(300), 2);
        let text = render(&stats);
        assert!(text.starts_with(&format!("# HELP {NAME} ")));
        assert!(text.contains(&format!("# TYPE {NAME} histogram\n")));
        assert!(text.contains(&format!(
            "{NAME}_bucket{{family=\"publish\",le=\"0.00025\"}} 0\n"
        )));
        assert!(text.contains(&format!(
            "{NAME}_bucket{{family=\"publish\",le=\"0.0005\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "{NAME}_bucket{{family=\"publish\",le=\"+Inf\"}} 2\n"
        )));
        assert!(text.contains(&format!("{NAME}_count{{family=\"publish\"}} 2\n")));
        assert!(text.contains(&format!("{NAME}_count{{family=\"get\"}} 0\n")));
    }
}
