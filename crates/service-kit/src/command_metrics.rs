//! `redis_command_duration_seconds`: the Redis command latency histogram
//! by family, rendered in the Prometheus text format from the connection
//! manager's [`CommandStats`] (why not through the `metrics` recorder: see
//! `redis_connection`'s `commands.rs`).

use std::fmt::Write as _;

use redis_connection::{COMMAND_LATENCY_BUCKETS, CommandStats};

/// The histogram's name.
pub(crate) const NAME: &str = "redis_command_duration_seconds";

/// The histogram as Prometheus text: `# HELP`, `# TYPE`, and for each
/// family its cumulative buckets, `_sum` and `_count`.
pub(crate) fn render(stats: &CommandStats) -> String {
    let mut out = String::with_capacity(4096);
    let _ = writeln!(
        out,
        "# HELP {NAME} Latency of the Redis commands this process sends (health-check PINGs aside), by command family: get, set, del, ttl, incr, scan, script, publish, members, transaction, server. Commands sent together each count the whole round trip"
    );
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
