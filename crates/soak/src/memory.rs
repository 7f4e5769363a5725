//! Memory over time: the process's RSS, each L1's size, and fred's queue of
//! commands not yet sent, sampled every 250 ms.
//!
//! **Bounded** means: every L1 stays within its configured entries; the
//! command queue drains once Redis is back (over the last second it never
//! holds more than two commands per load task: each task has one operation
//! in flight, of at most two commands sent together); and the RSS of the
//! last quarter of the run is not above [`RSS_GROWTH`] times the RSS of the
//! second eighth (after warm-up filled the L1 and the allocator's arenas)
//! plus [`RSS_SLACK`]. Everything the
//! harness itself keeps grows with time only through the ledger's failed
//! versions (a few thousand numbers), so growth beyond that is the
//! library's.

use std::time::{Duration, Instant};

use redis_cache::CacheService;
use redis_connection::fred::interfaces::MetricsInterface;

pub(crate) const SAMPLE_EVERY: Duration = Duration::from_millis(250);

/// Allowed RSS growth factor from the early to the late part of the run.
pub(crate) const RSS_GROWTH: f64 = 1.25;
/// Allowed RSS growth on top of the factor (allocator noise on small heaps).
pub(crate) const RSS_SLACK: u64 = 16 * 1024 * 1024;

/// One sample.
#[derive(Debug, Clone)]
pub(crate) struct Sample {
    pub(crate) at: Duration,
    pub(crate) rss: u64,
    pub(crate) l1: Vec<u64>,
    pub(crate) queued: usize,
}

/// This process's resident set size in bytes (Linux), 0 if unknown.
pub(crate) fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kb| kb * 1024)
}

/// Samples until `stop` says so.
pub(crate) async fn sample(
    caches: Vec<CacheService>,
    started: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        tick.tick().await;
        let queued = caches
            .iter()
            .flat_map(|cache| cache.manager().pool().clients())
            .map(MetricsInterface::command_queue_len)
            .sum();
        samples.push(Sample {
            at: started.elapsed(),
            rss: rss(),
            l1: caches.iter().map(CacheService::l1_len).collect(),
            queued,
        });
    }
    samples
}

/// The figures and the verdict on a run's samples.
#[derive(Debug, Clone, Default)]
pub(crate) struct MemoryVerdict {
    pub(crate) early_rss: u64,
    pub(crate) late_rss: u64,
    pub(crate) max_l1: Vec<u64>,
    pub(crate) max_queued: usize,
    pub(crate) final_queued: usize,
    pub(crate) problems: Vec<String>,
}

pub(crate) fn judge(samples: &[Sample], l1_bound: u64, tasks: usize) -> MemoryVerdict {
    let mut verdict = MemoryVerdict::default();
    let Some(last) = samples.last() else {
        verdict.problems.push("no memory samples".to_owned());
        return verdict;
    };
    let end = last.at;
    let max_rss = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|s| s.at >= end.mul_f64(from) && s.at <= end.mul_f64(to))
            .map(|s| s.rss)
            .max()
            .unwrap_or(0)
    };
    verdict.early_rss = max_rss(0.125, 0.25);
    verdict.late_rss = max_rss(0.75, 1.0);
    #[allow(
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let allowed = (verdict.early_rss as f64 * RSS_GROWTH) as u64 + RSS_SLACK;
    if verdict.late_rss > allowed {
        verdict.problems.push(format!(
            "RSS grew from {} MiB to {} MiB (allowed {} MiB)",
            verdict.early_rss >> 20,
            verdict.late_rss >> 20,
            allowed >> 20
        ));
    }
    let instances = last.l1.len();
    verdict.max_l1 = (0..instances)
        .map(|i| samples.iter().map(|s| s.l1[i]).max().unwrap_or(0))
        .collect();
    for (i, max) in verdict.max_l1.iter().enumerate() {
        if *max > l1_bound {
            verdict.problems.push(format!(
                "L1 of instance {i} held {max} entries (bound {l1_bound})"
            ));
        }
    }
    verdict.max_queued = samples.iter().map(|s| s.queued).max().unwrap_or(0);
    // The last second: the run ends in steady state, after the last recovery.
    let tail: Vec<usize> = samples
        .iter()
        .filter(|s| s.at + Duration::from_secs(1) >= end)
        .map(|s| s.queued)
        .collect();
    verdict.final_queued = tail.iter().copied().max().unwrap_or(0);
    if verdict.final_queued > 2 * tasks {
        verdict.problems.push(format!(
            "{} commands queued in the last second (more than 2 per task for {tasks} tasks)",
            verdict.final_queued
        ));
    }
    verdict
}
