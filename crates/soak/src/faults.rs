//! The faults, and the thread that injects them and times the recovery.
//!
//! Faults run on a dedicated OS thread: `RedisServer`'s start and stop are
//! blocking (they poll PING with a sleep), and a blocked runtime worker on a
//! two-core machine would stall the load and skew every latency. Recovery
//! probes are async (they use the cache or HTTP) and run on the load's
//! runtime through its `Handle`, from this thread.
//!
//! **Redis answering again** is when the fault is over from Redis's side:
//! after a restart, when `start_again` returns (it polls PING every 10 ms
//! until PONG, and the AOF is loaded by then); after a pause, when a raw PING
//! answers after `SIGCONT`; after `CLIENT KILL`, at once (Redis never
//! stopped). **Recovered** is when the part's probe first succeeds (see
//! [`Harness::recovered`]). The recovery time is the gap, and must be under
//! [`RECOVERY_LIMIT`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use test_support::RedisServer;
use tokio::runtime::Handle;

/// The longest a recovery may take, from Redis answering again.
pub(crate) const RECOVERY_LIMIT: Duration = Duration::from_secs(2);

/// How long to keep probing a recovery that is already too late, to report
/// how late it was.
const PROBE_GIVE_UP: Duration = Duration::from_secs(30);

/// Between one recovery and the next fault, at least this much steady load.
const MIN_GAP: Duration = Duration::from_millis(500);

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fault {
    /// SIGKILL, stay down for `down`, start again (the AOF keeps the data).
    Kill {
        /// Time without a server.
        down: Duration,
    },
    /// SIGSTOP for the duration, then SIGCONT: connections stay open,
    /// nothing answers.
    Pause(Duration),
    /// `CLIENT KILL TYPE pubsub`: every subscriber connection is dropped.
    KillPubsub,
    /// SIGKILL, delete the AOF, start again: every key is gone.
    DataLoss,
}

/// The list: three kill+restarts, a 2 s pause, the pub/sub kill, and
/// a restart with the data gone, interleaved so that each fault follows a
/// different one. Kills differ in downtime (an immediate restart, then half
/// a second and a second with no server), to cover both "reconnect at once"
/// and "commands fail while nothing listens".
pub(crate) const PLAN: [Fault; 6] = [
    Fault::Kill {
        down: Duration::ZERO,
    },
    Fault::Pause(Duration::from_secs(2)),
    Fault::Kill {
        down: Duration::from_millis(500),
    },
    Fault::KillPubsub,
    Fault::Kill {
        down: Duration::from_secs(1),
    },
    Fault::DataLoss,
];

impl Fault {
    pub(crate) fn name(self) -> String {
        match self {
            Fault::Kill { down } => format!("kill + restart ({} ms down)", down.as_millis()),
            Fault::Pause(d) => format!("pause (SIGSTOP {} ms)", d.as_millis()),
            Fault::KillPubsub => "CLIENT KILL TYPE pubsub".to_owned(),
            Fault::DataLoss => "restart with data gone".to_owned(),
        }
    }
}

/// What a soak part lets the injector do.
pub(crate) trait Harness: Send + Sync {
    /// One recovery probe: `true` when everything serves normally again.
    /// Each attempt is bounded by the command timeouts it runs under.
    fn recovered(&self) -> BoxFuture<'_, bool>;

    /// Called with Redis up, right before its data is deleted (counters
    /// close their epoch here).
    fn before_data_loss<'a>(&'a self, redis: &'a RedisServer) -> BoxFuture<'a, ()>;

    /// Called once the empty server answers.
    fn after_data_loss(&self);
}

/// What happened to one fault.
#[derive(Debug, Clone)]
pub(crate) struct FaultRecord {
    pub(crate) fault: Fault,
    /// Since the run started.
    pub(crate) injected_at: Duration,
    /// From injection to Redis answering again.
    pub(crate) outage: Duration,
    /// From Redis answering again to the probe's success; `None` if it
    /// never succeeded within [`PROBE_GIVE_UP`].
    pub(crate) recovery: Option<Duration>,
    /// Subscriber connections `CLIENT KILL` dropped.
    pub(crate) killed_subscribers: Option<i64>,
}

impl FaultRecord {
    pub(crate) fn recovered_in_time(&self) -> bool {
        self.recovery.is_some_and(|r| r < RECOVERY_LIMIT)
    }
}

/// Whether a fault is in progress (from injection until recovered), for
/// classifying errors and for parts that cannot observe L1 liveness.
#[derive(Debug, Default)]
pub(crate) struct FaultClock {
    active: AtomicBool,
    /// Bumped at every injection and every recovery.
    changes: AtomicU64,
}

impl FaultClock {
    /// A token to compare before and after an operation.
    pub(crate) fn mark(&self) -> (bool, u64) {
        (
            self.active.load(Ordering::SeqCst),
            self.changes.load(Ordering::SeqCst),
        )
    }

    /// Whether an operation between `before` and now overlapped a fault.
    pub(crate) fn overlapped(&self, before: (bool, u64)) -> bool {
        let now = self.mark();
        before.0 || now.0 || before.1 != now.1
    }

    fn set(&self, active: bool) {
        self.active.store(active, Ordering::SeqCst);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }
}

/// The schedule: the first fault after a warm-up, the last one a tail of
/// steady load before the end, the others evenly in between, each at least
/// [`MIN_GAP`] after the previous recovery. The load runs for the whole
/// duration; a short run whose faults take longer than planned ends a
/// little late, a tail after the last recovery.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Schedule {
    pub(crate) duration: Duration,
    pub(crate) warmup: Duration,
    pub(crate) spacing: Duration,
    pub(crate) tail: Duration,
}

impl Schedule {
    pub(crate) fn for_duration(duration: Duration) -> Self {
        let warmup = (duration / 20).max(Duration::from_secs(1));
        let tail = (duration / 10).max(Duration::from_secs(1));
        let gaps = u32::try_from(PLAN.len() - 1).unwrap_or(1);
        let spacing = duration.saturating_sub(warmup + tail) / gaps;
        Self {
            duration,
            warmup,
            spacing,
            tail,
        }
    }
}

/// Runs the plan on its own thread; the result arrives on the receiver
/// (dropped sender: the injector panicked). Gives the server back.
pub(crate) fn spawn(
    redis: RedisServer,
    harness: Arc<dyn Harness>,
    clock: Arc<FaultClock>,
    schedule: Schedule,
    started: Instant,
) -> tokio::sync::oneshot::Receiver<(RedisServer, Vec<FaultRecord>)> {
    let handle = Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("fault-injector".to_owned())
        .spawn(move || {
            let mut redis = redis;
            let mut records = Vec::new();
            let mut next = started + schedule.warmup;
            for fault in PLAN {
                sleep_until(next);
                let record = inject(&mut redis, fault, &handle, &*harness, &clock, started);
                next = (next + schedule.spacing).max(Instant::now() + MIN_GAP);
                records.push(record);
            }
            sleep_until((started + schedule.duration).max(Instant::now() + schedule.tail));
            let _ = tx.send((redis, records));
        })
        .expect("spawn the fault injector");
    rx
}

fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

fn inject(
    redis: &mut RedisServer,
    fault: Fault,
    handle: &Handle,
    harness: &dyn Harness,
    clock: &FaultClock,
    started: Instant,
) -> FaultRecord {
    let mut killed_subscribers = None;
    if fault == Fault::DataLoss {
        handle.block_on(harness.before_data_loss(redis));
    }
    clock.set(true);
    let injected = Instant::now();
    match fault {
        Fault::Kill { down } => {
            handle.block_on(redis.stop());
            std::thread::sleep(down);
            handle.block_on(redis.start_again());
        }
        Fault::Pause(duration) => {
            redis.pause();
            std::thread::sleep(duration);
            redis.resume();
            while redis.try_cmd(&["PING"]).is_err() {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Fault::KillPubsub => {
            killed_subscribers = redis.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).as_int();
        }
        Fault::DataLoss => {
            handle.block_on(redis.stop());
            let aof = redis.dir().expect("a local server").join("appendonlydir");
            std::fs::remove_dir_all(&aof).expect("delete the AOF");
            handle.block_on(redis.start_again());
        }
    }
    let answering = Instant::now();
    if fault == Fault::DataLoss {
        harness.after_data_loss();
    }
    let recovery = loop {
        if handle.block_on(harness.recovered()) {
            break Some(answering.elapsed());
        }
        if answering.elapsed() > PROBE_GIVE_UP {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    clock.set(false);
    FaultRecord {
        fault,
        injected_at: injected - started,
        outage: answering - injected,
        recovery,
        killed_subscribers,
    }
}
