//! Counting what the load did: operations, errors by kind, latencies, and
//! the verdicts on reads. Each task keeps its own and they are merged at
//! the end, so counting costs no shared state on the hot path.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use crate::ledger::Verdict;

/// A latency histogram with about 9 % resolution (8 buckets per doubling),
/// from 1 µs to over an hour, in fixed memory.
#[derive(Debug, Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    max: Duration,
}

const SUB_BUCKETS: f64 = 8.0;
const BUCKETS: usize = 8 * 32;

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            max: Duration::ZERO,
        }
    }
}

impl Histogram {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    fn bucket(d: Duration) -> usize {
        let micros = d.as_micros().max(1) as f64;
        ((micros.log2() * SUB_BUCKETS) as usize).min(BUCKETS - 1)
    }

    pub(crate) fn record(&mut self, d: Duration) {
        self.counts[Self::bucket(d)] += 1;
        self.max = self.max.max(d);
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.max = self.max.max(other.max);
    }

    pub(crate) fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub(crate) fn max(&self) -> Duration {
        self.max
    }

    /// The upper bound of the bucket holding quantile `q` (0.0 to 1.0).
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let upper = 2f64.powf((i as f64 + 1.0) / SUB_BUCKETS);
                return Duration::from_micros(upper as u64).min(self.max);
            }
        }
        self.max
    }
}

/// One kind of operation.
#[derive(Debug, Clone, Default)]
pub(crate) struct OpStats {
    pub(crate) ok: u64,
    pub(crate) errors: BTreeMap<String, u64>,
    pub(crate) latency: Histogram,
    /// Operations slower than the stuck limit.
    pub(crate) stuck: u64,
    /// Errors while no fault was active (nor recovering).
    pub(crate) errors_outside_faults: u64,
}

impl OpStats {
    pub(crate) fn total(&self) -> u64 {
        self.ok + self.errors.values().sum::<u64>()
    }

    pub(crate) fn error(&mut self, kind: &str, during_fault: bool) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
        if !during_fault {
            self.errors_outside_faults += 1;
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.ok += other.ok;
        for (kind, n) in &other.errors {
            *self.errors.entry(kind.clone()).or_default() += n;
        }
        self.latency.merge(&other.latency);
        self.stuck += other.stuck;
        self.errors_outside_faults += other.errors_outside_faults;
    }

    /// `timeout 12, unavailable 3` or `-`.
    pub(crate) fn errors_text(&self) -> String {
        if self.errors.is_empty() {
            return "-".to_owned();
        }
        let mut text = String::new();
        for (kind, n) in &self.errors {
            if !text.is_empty() {
                text.push_str(", ");
            }
            let _ = write!(text, "{kind} {n}");
        }
        text
    }
}

/// Verdicts on reads (see `ledger.rs`).
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadStats {
    pub(crate) checked: u64,
    pub(crate) fresh: u64,
    pub(crate) lagging: u64,
    pub(crate) max_lag: Duration,
    pub(crate) failed_writes: u64,
    pub(crate) relaxed: u64,
    pub(crate) stale: u64,
    pub(crate) phantom: u64,
    /// Reads that found nothing (plain `get`, or 404).
    pub(crate) absent: u64,
}

impl ReadStats {
    pub(crate) fn record(&mut self, verdict: Verdict, relaxed: bool) {
        self.checked += 1;
        if relaxed {
            self.relaxed += 1;
        }
        match verdict {
            Verdict::Fresh => self.fresh += 1,
            Verdict::Lagging(lag) => {
                self.lagging += 1;
                // Relaxed reads may lag by the L1 TTL cap; the figure is
                // about propagation, so it counts the others only.
                if !relaxed {
                    self.max_lag = self.max_lag.max(lag);
                }
            }
            Verdict::FailedWrite => self.failed_writes += 1,
            Verdict::Phantom => self.phantom += 1,
            Verdict::Stale { .. } => self.stale += 1,
        }
    }

    pub(crate) fn merge(&mut self, other: &Self) {
        self.checked += other.checked;
        self.fresh += other.fresh;
        self.lagging += other.lagging;
        self.max_lag = self.max_lag.max(other.max_lag);
        self.failed_writes += other.failed_writes;
        self.relaxed += other.relaxed;
        self.stale += other.stale;
        self.phantom += other.phantom;
        self.absent += other.absent;
    }
}

/// Milliseconds with one decimal, for tables.
pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Quantiles land within a bucket (9 %) of the truth, and never above the max.
    #[test]
    fn histogram_quantiles_land_within_a_bucket_of_the_truth() {
        let mut h = Histogram::default();
        for i in 1..=1000u64 {
            h.record(Duration::from_micros(i * 100));
        }
        let p50 = h.quantile(0.5).as_secs_f64();
        assert!((0.050..0.055).contains(&p50), "{p50}");
        assert_eq!(h.quantile(1.0), Duration::from_millis(100));
        assert_eq!(h.count(), 1000);
        let mut other = Histogram::default();
        other.record(Duration::from_secs(2));
        h.merge(&other);
        assert_eq!(h.max(), Duration::from_secs(2));
    }
}
