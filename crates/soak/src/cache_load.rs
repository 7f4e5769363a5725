//! Part one's load: tasks mixing `get_or_load`, `get`, `set`, `invalidate`
//! and `increment` on two cache instances, every operation timed and every
//! read judged by the ledger.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_cache::{CacheError, CacheService, DEFAULT_FLEET_WAIT, LoadError};
use redis_connection::ConnectionError;
use shared_types::{Invalidation, RedisKey};

use crate::counters::CounterBook;
use crate::faults::FaultClock;
use crate::ledger::{Ledger, Verdict, Versioned};
use crate::report::Violations;
use crate::stats::{OpStats, ReadStats};

/// The command timeout of every instance (the library's default, stated).
pub(crate) const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

/// An operation slower than this is stuck: the command timeout plus 1 s of
/// slack. Operations send up to three commands one after the other (`set`:
/// SET, PUBLISH; `get_or_load`: GET+PTTL, the lease's SET NX, the write-back
/// script; the loader is instant), but the first one that times out ends
/// the operation's Redis work, and the ones before it were answered, so no
/// operation waits out more than one command timeout. The slack absorbs
/// scheduling on a loaded two-core machine. `get_or_load` may also wait for
/// the other instance's load of the same key (the fleet wait, up to
/// [`DEFAULT_FLEET_WAIT`]) before its last read, which may then be the
/// command that times out: see [`stuck_limit`].
pub(crate) const STUCK_LIMIT: Duration = Duration::from_millis(1500);

/// How long operation `op` (an index into [`OPS`]) may take before it is
/// stuck.
pub(crate) fn stuck_limit(op: usize) -> Duration {
    if OPS[op] == "get_or_load" {
        STUCK_LIMIT + DEFAULT_FLEET_WAIT
    } else {
        STUCK_LIMIT
    }
}

/// TTL of every value written: longer than any run, so nothing expires
/// from Redis mid-run and every miss is explained by a fault or a change.
pub(crate) const VALUE_TTL: Duration = Duration::from_secs(900);

/// A lag within the grace but this far beyond typical propagation is
/// worth a line on stderr (a diagnostic, not a violation).
const SUSPICIOUS_LAG: Duration = Duration::from_millis(60);

/// The operations, in report order.
pub(crate) const OPS: [&str; 5] = ["get_or_load", "get", "set", "invalidate", "increment"];

/// One cache instance of the pair.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) name: &'static str,
    pub(crate) cache: CacheService,
    /// Times its invalidation feed went down (or lagged), counted by our own
    /// subscription to the same feed.
    pub(crate) outages: Arc<AtomicU64>,
}

/// Everything the load tasks share.
#[derive(Debug)]
pub(crate) struct Load {
    pub(crate) instances: Vec<Instance>,
    pub(crate) keys: Vec<RedisKey>,
    pub(crate) invalidations: Vec<Invalidation>,
    /// Keys `0..hot` take most of the traffic; the rest exercise the L1 bound.
    pub(crate) hot: usize,
    pub(crate) ledger: Ledger,
    pub(crate) counters: CounterBook,
    pub(crate) clock: Arc<FaultClock>,
    pub(crate) stop: AtomicBool,
    pub(crate) violations: Violations,
    /// Mean pause between two operations of one task.
    pub(crate) pace: Duration,
    pub(crate) started: Instant,
}

/// A read to judge.
#[derive(Debug)]
struct Read {
    op: usize,
    instance: usize,
    key: usize,
    started: Instant,
    relaxed: bool,
}

/// What one task did.
#[derive(Debug, Clone, Default)]
pub(crate) struct TaskStats {
    pub(crate) ops: [OpStats; OPS.len()],
    pub(crate) reads: ReadStats,
}

impl TaskStats {
    pub(crate) fn merge(&mut self, other: &Self) {
        for (mine, theirs) in self.ops.iter_mut().zip(&other.ops) {
            mine.merge(theirs);
        }
        self.reads.merge(&other.reads);
    }
}

/// The error's kind, for the errors-by-kind figures.
pub(crate) fn error_kind(error: &CacheError) -> &'static str {
    match error {
        CacheError::Unavailable(ConnectionError::Timeout(_)) => "timeout",
        CacheError::Unavailable(ConnectionError::Shutdown) => "shutdown",
        CacheError::Unavailable(_) => "unavailable",
        CacheError::Rejected(_) => "rejected",
        _ => "other",
    }
}

/// One load task, until `load.stop`.
pub(crate) async fn run(load: Arc<Load>, id: u64) -> TaskStats {
    let mut stats = TaskStats::default();
    let mut rng = fastrand::Rng::with_seed(id);
    let pace_us = u64::try_from(load.pace.as_micros()).unwrap_or(u64::MAX);
    while !load.stop.load(Ordering::Relaxed) {
        let instance = rng.usize(..load.instances.len());
        let key = if rng.u8(..100) < 80 {
            rng.usize(..load.hot)
        } else {
            rng.usize(load.hot..load.keys.len())
        };
        // Read-mostly, like a cache in production: 75 % reads, 13 % changes.
        match rng.u8(..100) {
            0..55 => get_or_load(&load, instance, key, &mut stats).await,
            55..75 => get(&load, instance, key, &mut stats).await,
            75..83 => change(&load, instance, key, false, &mut stats).await,
            83..88 => change(&load, instance, key, true, &mut stats).await,
            _ => {
                let counter = rng.usize(..load.counters.keys.len());
                increment(&load, instance, counter, &mut stats).await;
            }
        }
        tokio::time::sleep(Duration::from_micros(rng.u64(0..=2 * pace_us))).await;
    }
    stats
}

impl Load {
    /// Times one operation; too slow is a violation.
    fn timed(&self, op: usize, instance: usize, took: Duration, stats: &mut TaskStats) {
        stats.ops[op].latency.record(took);
        let limit = stuck_limit(op);
        if took > limit {
            stats.ops[op].stuck += 1;
            self.violations.add(format!(
                "stuck: {} on instance {} took {} ms (limit {} ms)",
                OPS[op],
                self.instances[instance].name,
                took.as_millis(),
                limit.as_millis()
            ));
        }
    }

    fn failed(&self, op: usize, error: &CacheError, during_fault: bool, stats: &mut TaskStats) {
        let kind = error_kind(error);
        stats.ops[op].error(kind, during_fault);
        if kind == "rejected" || kind == "other" {
            // Nothing the soak sends is invalid: Redis refusing it, or an
            // encoding failure, is a misclassified outage or a bug.
            self.violations.add(format!(
                "{} failed with an unexpected error: {error}",
                OPS[op]
            ));
        }
    }

    fn judge(&self, read: &Read, value: Versioned, stats: &mut TaskStats) {
        let verdict = self
            .ledger
            .check(read.key, value, read.started, read.relaxed);
        stats.reads.record(verdict, read.relaxed);
        if let Verdict::Lagging(lag) = verdict
            && !read.relaxed
            && lag > SUSPICIOUS_LAG
        {
            eprintln!(
                "soak: note: {} on instance {} read key {} as {value:?} {} ms after a newer \
                 version was acknowledged (within the grace, far beyond propagation)",
                OPS[read.op],
                self.instances[read.instance].name,
                read.key,
                lag.as_millis()
            );
        }
        if matches!(verdict, Verdict::Stale { .. } | Verdict::Phantom) {
            self.violations.add(format!(
                "{verdict:?}: {} on instance {} read key {} ({}) as {value:?}, \
                 started at {:.3} s (relaxed: {}, L1 live now: {})",
                OPS[read.op],
                self.instances[read.instance].name,
                read.key,
                self.keys[read.key].as_str(),
                (read.started - self.started).as_secs_f64(),
                read.relaxed,
                self.instances[read.instance].cache.l1_live(),
            ));
        }
    }
}

async fn get_or_load(load: &Arc<Load>, instance: usize, key: usize, stats: &mut TaskStats) {
    const OP: usize = 0;
    let source = load.clone();
    let fault = load.clock.mark();
    let started = Instant::now();
    let result = load.instances[instance]
        .cache
        .get_or_load(&load.keys[key], VALUE_TTL, move || async move {
            Ok::<_, Infallible>(source.ledger.source(key))
        })
        .await;
    load.timed(OP, instance, started.elapsed(), stats);
    match result {
        Ok(value) => {
            stats.ops[OP].ok += 1;
            // get_or_load never serves an L1 that is not live: never relaxed.
            let read = Read {
                op: OP,
                instance,
                key,
                started,
                relaxed: false,
            };
            load.judge(&read, value, stats);
        }
        Err(LoadError::Cache(error)) => {
            load.failed(OP, &error, load.clock.overlapped(fault), stats);
        }
        Err(error) => {
            stats.ops[OP].error("loader", load.clock.overlapped(fault));
            load.violations.add(format!("get_or_load failed: {error}"));
        }
    }
}

async fn get(load: &Load, instance: usize, key: usize, stats: &mut TaskStats) {
    const OP: usize = 1;
    let this = &load.instances[instance];
    let fault = load.clock.mark();
    let (live, outages) = (this.cache.l1_live(), this.outages.load(Ordering::SeqCst));
    let started = Instant::now();
    let result = this.cache.get::<Versioned>(&load.keys[key]).await;
    load.timed(OP, instance, started.elapsed(), stats);
    // The documented outage rule: while the feed is down and Redis cannot
    // answer, the L1 serves what it holds, at most its TTL cap old.
    let relaxed = !live || !this.cache.l1_live() || this.outages.load(Ordering::SeqCst) != outages;
    match result {
        Ok(Some(value)) => {
            stats.ops[OP].ok += 1;
            let read = Read {
                op: OP,
                instance,
                key,
                started,
                relaxed,
            };
            load.judge(&read, value, stats);
        }
        Ok(None) => {
            stats.ops[OP].ok += 1;
            stats.reads.absent += 1;
        }
        Err(error) => load.failed(OP, &error, load.clock.overlapped(fault), stats),
    }
}

/// A `set` of a new version, or (`invalidate`) a new source-of-truth
/// version followed by an invalidation of the cached one.
async fn change(load: &Load, instance: usize, key: usize, invalidate: bool, stats: &mut TaskStats) {
    let op = if invalidate { 3 } else { 2 };
    let cache = &load.instances[instance].cache;
    let change = load.ledger.begin(key).await;
    let fault = load.clock.mark();
    let started = Instant::now();
    let result = if invalidate {
        cache.invalidate(&load.invalidations[key]).await.map(|_| ())
    } else {
        let value = Versioned {
            key,
            version: change.version,
        };
        cache.set(&load.keys[key], &value, VALUE_TTL).await
    };
    load.timed(op, instance, started.elapsed(), stats);
    load.ledger.finish(change, result.is_ok());
    match result {
        Ok(()) => stats.ops[op].ok += 1,
        Err(error) => load.failed(op, &error, load.clock.overlapped(fault), stats),
    }
}

async fn increment(load: &Load, instance: usize, counter: usize, stats: &mut TaskStats) {
    const OP: usize = 4;
    let _epoch = load.counters.enter().await;
    let fault = load.clock.mark();
    let started = Instant::now();
    let result = load.instances[instance]
        .cache
        .increment(&load.counters.keys[counter], 1)
        .await;
    load.timed(OP, instance, started.elapsed(), stats);
    load.counters.record(counter, result.is_ok());
    match result {
        Ok(_) => stats.ops[OP].ok += 1,
        Err(error) => load.failed(OP, &error, load.clock.overlapped(fault), stats),
    }
}
