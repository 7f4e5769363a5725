//! What every Redis command our code sends costs: a latency histogram by
//! command family, and a trace span per command.
//!
//! The histogram is kept here, in atomics on the connection manager, rather
//! than through a `metrics` recorder: a service's recorder is its own (not a
//! global one, so that several services can share a test process) and is
//! only installed around the code that renders `/metrics`, while commands
//! run on every task. The service renders [`CommandStats::snapshot`] next to
//! its other metrics, and may have each observation forwarded as it is
//! made ([`CommandStats::forward_to`]: how the histogram also reaches
//! OpenTelemetry, whose histograms take observations, not snapshots).
//!
//! Labels are a fixed set of families (never keys, never arguments), so the
//! series count is bounded whatever the traffic.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tracing::Instrument;

/// Upper bounds (seconds) of the latency buckets: a local Redis answers in
/// tens of microseconds, a remote one in a millisecond or two, and the
/// command timeout (500 ms by default) caps the rest.
pub const COMMAND_LATENCY_BUCKETS: [f64; 12] = [
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
];

/// A group of Redis commands that cost alike: the histogram's label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CommandFamily {
    /// `GET`, `MGET`, `EXISTS`, `HGETALL`.
    Get,
    /// `SET` (with `PX`, `NX`).
    Set,
    /// `UNLINK`.
    Del,
    /// `PTTL`, `PEXPIRE`.
    Ttl,
    /// `INCRBY`.
    Incr,
    /// `SCAN`, `ZSCAN`.
    Scan,
    /// `EVAL`, `EVALSHA`, `SCRIPT LOAD`.
    Script,
    /// `PUBLISH`.
    Publish,
    /// Set members: `SADD`, `SREM`, `SMEMBERS`.
    Members,
    /// `MULTI` ... `EXEC`, counted once.
    Transaction,
    /// `DBSIZE`, `INFO`, `PING`.
    Server,
}

impl CommandFamily {
    /// Every family, in the order they are rendered.
    pub const ALL: [Self; 11] = [
        Self::Get,
        Self::Set,
        Self::Del,
        Self::Ttl,
        Self::Incr,
        Self::Scan,
        Self::Script,
        Self::Publish,
        Self::Members,
        Self::Transaction,
        Self::Server,
    ];

    /// The label value.
    pub fn name(self) -> &'static str {
        match self {
            Self::Get => "get",
            Self::Set => "set",
            Self::Del => "del",
            Self::Ttl => "ttl",
            Self::Incr => "incr",
            Self::Scan => "scan",
            Self::Script => "script",
            Self::Publish => "publish",
            Self::Members => "members",
            Self::Transaction => "transaction",
            Self::Server => "server",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// One Redis command as the histogram and the traces name it: the
/// command's name (`db.operation.name`) and its family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisOp {
    name: &'static str,
    family: CommandFamily,
}

impl RedisOp {
    /// A command `name` (as Redis spells it) of `family`.
    pub const fn new(name: &'static str, family: CommandFamily) -> Self {
        Self { name, family }
    }

    /// The command's name.
    pub fn name(self) -> &'static str {
        self.name
    }

    /// The command's family.
    pub fn family(self) -> CommandFamily {
        self.family
    }

    /// `GET`.
    pub const GET: Self = Self::new("GET", CommandFamily::Get);
    /// `MGET`.
    pub const MGET: Self = Self::new("MGET", CommandFamily::Get);
    /// `EXISTS`.
    pub const EXISTS: Self = Self::new("EXISTS", CommandFamily::Get);
    /// `HGETALL`.
    pub const HGETALL: Self = Self::new("HGETALL", CommandFamily::Get);
    /// `SET`.
    pub const SET: Self = Self::new("SET", CommandFamily::Set);
    /// `UNLINK`.
    pub const UNLINK: Self = Self::new("UNLINK", CommandFamily::Del);
    /// `PTTL`.
    pub const PTTL: Self = Self::new("PTTL", CommandFamily::Ttl);
    /// `PEXPIRE`.
    pub const PEXPIRE: Self = Self::new("PEXPIRE", CommandFamily::Ttl);
    /// `INCRBY`.
    pub const INCRBY: Self = Self::new("INCRBY", CommandFamily::Incr);
    /// `SCAN`.
    pub const SCAN: Self = Self::new("SCAN", CommandFamily::Scan);
    /// `ZSCAN`.
    pub const ZSCAN: Self = Self::new("ZSCAN", CommandFamily::Scan);
    /// `EVAL`.
    pub const EVAL: Self = Self::new("EVAL", CommandFamily::Script);
    /// `EVALSHA`.
    pub const EVALSHA: Self = Self::new("EVALSHA", CommandFamily::Script);
    /// `SCRIPT LOAD`.
    pub const SCRIPT_LOAD: Self = Self::new("SCRIPT LOAD", CommandFamily::Script);
    /// `PUBLISH`.
    pub const PUBLISH: Self = Self::new("PUBLISH", CommandFamily::Publish);
    /// `SADD`.
    pub const SADD: Self = Self::new("SADD", CommandFamily::Members);
    /// `SMEMBERS`.
    pub const SMEMBERS: Self = Self::new("SMEMBERS", CommandFamily::Members);
    /// `SREM`.
    pub const SREM: Self = Self::new("SREM", CommandFamily::Members);
    /// `MULTI` ... `EXEC`: one transaction.
    pub const TRANSACTION: Self = Self::new("MULTI", CommandFamily::Transaction);
    /// `DBSIZE`.
    pub const DBSIZE: Self = Self::new("DBSIZE", CommandFamily::Server);
    /// `INFO`.
    pub const INFO: Self = Self::new("INFO", CommandFamily::Server);
}

/// One family's histogram, as last read.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FamilySnapshot {
    /// The family.
    pub family: CommandFamily,
    /// Cumulative counts: `buckets[i]` commands took at most
    /// `COMMAND_LATENCY_BUCKETS[i]` seconds.
    pub buckets: Vec<u64>,
    /// Commands observed.
    pub count: u64,
    /// Their total duration, in seconds.
    pub sum_seconds: f64,
}

/// Told of every observation [`CommandStats`] makes, as it makes it.
pub trait CommandObserver: Send + Sync + 'static {
    /// `n` commands of `family` took `elapsed` each.
    fn observe(&self, family: CommandFamily, elapsed: Duration, n: u64);
}

/// Latency histograms of the commands sent through one connection manager.
///
/// Kept in `SHARDS` copies, each thread recording into one of its own
/// (summed when read): every command records three counters, and with one
/// copy the cache line holding them moved between the cores on every
/// command of a busy process.
#[derive(Debug, Default)]
pub struct CommandStats {
    shards: [Shard; SHARDS],
    forward: Forward,
}

/// Copies of the histograms: more than the worker threads a service
/// usually runs, so that most threads record into a copy of their own.
const SHARDS: usize = 8;

/// One copy of every family's histogram, on cache lines of its own.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard {
    families: [Histogram; CommandFamily::ALL.len()],
}

/// The observer observations are forwarded to, once one is set: a single
/// atomic read per command while none is.
#[derive(Default)]
struct Forward(OnceLock<Arc<dyn CommandObserver>>);

impl std::fmt::Debug for Forward {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Forward(set)"
        } else {
            "Forward(none)"
        })
    }
}

/// The copy this thread records into: threads take copies in turn.
fn shard_index() -> usize {
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
    }
    INDEX.with(|i| *i)
}

#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (not cumulative), plus one past the last bound.
    buckets: [AtomicU64; COMMAND_LATENCY_BUCKETS.len() + 1],
    count: AtomicU64,
    sum_nanos: AtomicU64,
}

impl CommandStats {
    /// Records `n` commands of `family` that took `elapsed` (commands sent
    /// together and answered together each took the whole round trip).
    pub fn observe(&self, family: CommandFamily, elapsed: Duration, n: u64) {
        let h = &self.shards[shard_index()].families[family.index()];
        let secs = elapsed.as_secs_f64();
        let bucket = COMMAND_LATENCY_BUCKETS
            .iter()
            .position(|bound| secs <= *bound)
            .unwrap_or(COMMAND_LATENCY_BUCKETS.len());
        h.buckets[bucket].fetch_add(n, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        h.sum_nanos
            .fetch_add(nanos.saturating_mul(n), Ordering::Relaxed);
        h.count.fetch_add(n, Ordering::Relaxed);
        if let Some(observer) = self.forward.0.get() {
            observer.observe(family, elapsed, n);
        }
    }

    /// Forwards every observation from now on to `observer` too. Only the
    /// first observer set is kept; returns whether `observer` is it.
    pub fn forward_to(&self, observer: Arc<dyn CommandObserver>) -> bool {
        self.forward.0.set(observer).is_ok()
    }

    /// Every family's histogram, in [`CommandFamily::ALL`]'s order; families
    /// never used are included (all zero), so a dashboard sees each series
    /// from the start.
    pub fn snapshot(&self) -> Vec<FamilySnapshot> {
        CommandFamily::ALL
            .iter()
            .map(|&family| {
                let copies = self.shards.iter().map(|s| &s.families[family.index()]);
                let sum = |read: &dyn Fn(&Histogram) -> u64| {
                    copies.clone().map(read).fold(0_u64, u64::wrapping_add)
                };
                let mut running = 0;
                let buckets = (0..COMMAND_LATENCY_BUCKETS.len())
                    .map(|i| {
                        running += sum(&|h| h.buckets[i].load(Ordering::Relaxed));
                        running
                    })
                    .collect();
                #[allow(clippy::cast_precision_loss)]
                let sum_seconds = sum(&|h| h.sum_nanos.load(Ordering::Relaxed)) as f64 / 1e9;
                FamilySnapshot {
                    family,
                    buckets,
                    count: sum(&|h| h.count.load(Ordering::Relaxed)),
                    sum_seconds,
                }
            })
            .collect()
    }

    /// Runs `command` (a fred future that sends one command of `op`, or
    /// `n` of them sent together) in a `redis` span and records its latency.
    ///
    /// The span (target `redis`, level DEBUG) carries only the operation's
    /// name and `db.system.name`: never a key (keys name tenants and
    /// sessions) or a value. A command dropped before its reply (its
    /// caller gave up) is not recorded.
    ///
    /// Not an `async fn`: its state would hold `command` twice (before and
    /// after wrapping it), and fred's command futures are large; this adds
    /// a span and an `Instant` to the caller's future. The clock starts
    /// here, right before the caller first polls (and so sends) it.
    pub fn timed<F: Future>(
        &self,
        op: RedisOp,
        n: u64,
        command: F,
    ) -> impl Future<Output = F::Output> {
        let start = Instant::now();
        command
            .instrument(command_span(op))
            .inspect(move |_| self.observe(op.family, start.elapsed(), n))
    }

    /// [`timed`](Self::timed) for a command its caller awaits itself:
    /// the span and the clock start here, and
    /// [`CommandTimer::finish`] records the latency once the reply is in
    /// (a timer dropped unfinished, its caller having given up, records
    /// nothing). For the hottest paths: wrapping a fred future (several KB)
    /// moves it into the wrapper and the wrapper into its awaiting frame,
    /// where a fred call awaited directly is built in place. The span is
    /// the same as `timed`'s, with the same parent; it is not entered while
    /// fred runs (fred emits no spans of its own), so it carries the
    /// command's start and end but no busy time.
    pub fn start(&self, op: RedisOp, n: u64) -> CommandTimer<'_> {
        CommandTimer {
            stats: self,
            family: op.family,
            n,
            span: command_span(op),
            start: Instant::now(),
        }
    }
}

/// The span of one command of `op` (see [`CommandStats::timed`]).
fn command_span(op: RedisOp) -> tracing::Span {
    tracing::debug_span!(
        target: "redis",
        "redis",
        otel.name = op.name,
        otel.kind = "client",
        db.system.name = "redis",
        db.operation.name = op.name,
    )
}

/// One command (or `n` sent together) being timed: see
/// [`CommandStats::start`].
#[derive(Debug)]
#[must_use = "a timer records nothing until it is finished"]
pub struct CommandTimer<'a> {
    stats: &'a CommandStats,
    family: CommandFamily,
    n: u64,
    /// Closed when the timer is finished or dropped.
    span: tracing::Span,
    start: Instant,
}

impl CommandTimer<'_> {
    /// Records the command's latency (its reply, or its error, is in).
    pub fn finish(self) {
        self.stats
            .observe(self.family, self.start.elapsed(), self.n);
        drop(self.span);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each observation lands in the first bucket whose bound it does not
    // exceed, and buckets read cumulatively.
    #[test]
    fn observations_fill_cumulative_buckets_by_family() {
        let stats = CommandStats::default();
        stats.observe(CommandFamily::Get, Duration::from_micros(40), 1);
        stats.observe(CommandFamily::Get, Duration::from_millis(2), 2);
        stats.observe(CommandFamily::Get, Duration::from_secs(2), 1);
        let get = stats
            .snapshot()
            .into_iter()
            .find(|s| s.family == CommandFamily::Get)
            .unwrap();
        assert_eq!(get.count, 4);
        assert_eq!(get.buckets[0], 1);
        assert_eq!(get.buckets[4], 1, "1 ms bound");
        assert_eq!(get.buckets[5], 3, "2.5 ms bound");
        assert_eq!(*get.buckets.last().unwrap(), 3, "2 s is past every bound");
        assert!((get.sum_seconds - 2.00404).abs() < 1e-6);
        let set = &stats.snapshot()[1];
        assert_eq!((set.family, set.count), (CommandFamily::Set, 0));
    }

    /// Remembers what it was told.
    #[derive(Default)]
    struct Seen(std::sync::Mutex<Vec<(CommandFamily, Duration, u64)>>);

    impl CommandObserver for Seen {
        fn observe(&self, family: CommandFamily, elapsed: Duration, n: u64) {
            self.0.lock().unwrap().push((family, elapsed, n));
        }
    }

    // Observations made after an observer is set reach it as they are, and
    // only the first observer set is kept.
    #[test]
    fn observations_are_forwarded_to_the_first_observer() {
        let stats = CommandStats::default();
        stats.observe(CommandFamily::Get, Duration::from_micros(40), 1);
        let seen = Arc::new(Seen::default());
        assert!(stats.forward_to(seen.clone()));
        assert!(!stats.forward_to(Arc::new(Seen::default())));
        stats.observe(CommandFamily::Publish, Duration::from_micros(300), 2);
        assert_eq!(
            *seen.0.lock().unwrap(),
            [(CommandFamily::Publish, Duration::from_micros(300), 2)]
        );
        assert_eq!(stats.snapshot()[0].count, 1, "the histogram still counts");
    }

    // A finished timer records its commands once, in its op's family; one
    // dropped unfinished (its caller gave up) records nothing.
    #[test]
    fn a_timer_records_when_finished_and_only_then() {
        let stats = CommandStats::default();
        let seen = Arc::new(Seen::default());
        stats.forward_to(seen.clone());
        drop(stats.start(RedisOp::SET, 1));
        assert!(seen.0.lock().unwrap().is_empty());
        let timer = stats.start(RedisOp::MGET, 3);
        std::thread::sleep(Duration::from_millis(2));
        timer.finish();
        let seen = seen.0.lock().unwrap();
        assert_eq!(seen.len(), 1);
        let (family, elapsed, n) = seen[0];
        assert_eq!((family, n), (CommandFamily::Get, 3));
        assert!(elapsed >= Duration::from_millis(2), "{elapsed:?}");
        let get = &stats.snapshot()[0];
        assert_eq!((get.family, get.count), (CommandFamily::Get, 3));
        assert_eq!(stats.snapshot()[1].count, 0, "the dropped SET");
    }

    // Threads record into copies of their own; a snapshot sums them all.
    #[test]
    fn observations_from_many_threads_are_all_counted() {
        let stats = CommandStats::default();
        std::thread::scope(|scope| {
            for _ in 0..(SHARDS + 3) {
                scope.spawn(|| {
                    for _ in 0..100 {
                        stats.observe(CommandFamily::Set, Duration::from_micros(200), 2);
                    }
                });
            }
        });
        let set = &stats.snapshot()[1];
        let expected = u64::try_from((SHARDS + 3) * 200).unwrap();
        assert_eq!(set.count, expected);
        assert_eq!(set.buckets[2], expected, "0.25 ms bound");
        assert!((set.sum_seconds - 0.0002 * expected as f64).abs() < 1e-6);
    }
}
