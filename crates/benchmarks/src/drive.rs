//! Load generation shared by the workloads.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::latency::Latencies;
use crate::report::per_second;

/// What one saturation phase achieved.
#[derive(Debug, Default, Clone)]
pub(crate) struct Phase {
    pub(crate) ops: u64,
    pub(crate) elapsed: Duration,
    /// CPU time this process spent meanwhile (every thread).
    pub(crate) cpu: Duration,
    pub(crate) latencies: Latencies,
}

impl Phase {
    pub(crate) fn rate(&self) -> f64 {
        per_second(self.ops, self.elapsed)
    }

    /// This process's CPU time per operation: unlike the rate, what the
    /// neighbours on a shared machine cannot move (much).
    pub(crate) fn cpu_per_op(&self) -> Duration {
        self.cpu / u32::try_from(self.ops.max(1)).unwrap_or(u32::MAX)
    }

    /// Adds another phase of the same kind (interleaved rounds).
    pub(crate) fn absorb(&mut self, other: &Phase) {
        self.ops += other.ops;
        self.elapsed += other.elapsed;
        self.cpu += other.cpu;
        self.latencies.merge(&other.latencies);
    }
}

/// Runs `tasks` closed-loop copies of `op` for `window` and counts what they
/// completed. Each call gets a sequence number unique within the phase, for
/// picking keys. Any error stops the phase: a benchmark of failing calls
/// would measure the wrong thing.
pub(crate) async fn saturate<F, Fut>(tasks: u64, window: Duration, op: F) -> Result<Phase, String>
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let cpu_before = process_cpu();
    let deadline = start + window;
    let handles: Vec<_> = (0..tasks)
        .map(|task| {
            let op = op.clone();
            tokio::spawn(async move {
                let mut latencies = Latencies::default();
                let mut ops = 0u64;
                while Instant::now() < deadline {
                    let began = Instant::now();
                    op(task * 1_000_000_000 + ops).await?;
                    latencies.record(began.elapsed());
                    ops += 1;
                }
                Ok::<_, String>((ops, latencies))
            })
        })
        .collect();
    let mut phase = Phase::default();
    for handle in handles {
        let (ops, latencies) = handle.await.map_err(|e| format!("load task: {e}"))??;
        phase.ops += ops;
        phase.latencies.merge(&latencies);
    }
    phase.elapsed = start.elapsed();
    phase.cpu = process_cpu().saturating_sub(cpu_before);
    Ok(phase)
}

/// User + system CPU time of this process so far, from `/proc/self/stat`
/// (in clock ticks of 10 ms: `USER_HZ` is 100 on Linux); zero where that
/// file does not exist.
pub(crate) fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the command name, which is in parentheses and may
    // contain spaces: state is field 3, utime 14 and stime 15.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The median of `samples` (which must not be empty).
pub(crate) fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples[samples.len() / 2]
}
