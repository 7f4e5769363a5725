//! [`Latencies`]: an HDR histogram of durations, in nanoseconds.

use std::time::Duration;

use hdrhistogram::Histogram;

/// The longest duration a histogram holds; longer ones are recorded as this.
const MAX_NANOS: u64 = 120_000_000_000;

/// Recorded durations, with percentiles to two significant digits (1 %):
/// enough for every target, and small enough (about 30 KB) that each load
/// task can keep its own histogram without the harness costing more than
/// what it measures.
#[derive(Debug, Clone)]
pub(crate) struct Latencies(Histogram<u64>);

impl Default for Latencies {
    fn default() -> Self {
        Self(Histogram::new_with_bounds(1, MAX_NANOS, 2).expect("constant, valid bounds"))
    }
}

impl Latencies {
    pub(crate) fn record(&mut self, d: Duration) {
        self.0.saturating_record(nanos(d).max(1));
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        // Cannot fail: both histograms have the same bounds.
        let _ = self.0.add(&other.0);
    }

    pub(crate) fn quantile(&self, q: f64) -> Duration {
        Duration::from_nanos(self.0.value_at_quantile(q))
    }

    pub(crate) fn p50(&self) -> Duration {
        self.quantile(0.50)
    }

    pub(crate) fn p99(&self) -> Duration {
        self.quantile(0.99)
    }

    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.0.max())
    }

    pub(crate) fn count(&self) -> u64 {
        self.0.len()
    }

    /// `p50 x, p99 y, max z (n samples)`, for notes.
    pub(crate) fn summary(&self) -> String {
        format!(
            "p50 {}, p99 {}, max {} ({} samples)",
            show(self.p50()),
            show(self.p99()),
            show(self.max()),
            self.count()
        )
    }
}

/// A duration as the table shows it.
pub(crate) fn show(d: Duration) -> String {
    crate::report::human_duration(d.as_secs_f64())
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Percentiles come out within the histogram's precision.
    #[test]
    fn p99_is_within_histogram_precision() {
        let mut l = Latencies::default();
        for us in 1..=100 {
            l.record(Duration::from_micros(us));
        }
        let p99 = l.p99().as_secs_f64() * 1e6;
        assert!((98.0..=100.0).contains(&p99), "{p99}");
        assert_eq!(l.count(), 100);
    }
}
