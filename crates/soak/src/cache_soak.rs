//! Part one: a two-tier cache pair (two instances, each with its own
//! connection manager, subscriber and L1, as two service replicas would have)
//! on one redis-server, under load while the fault plan runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::future::BoxFuture;
use redis_cache::{CacheConfig, L1Config};
use redis_cache::{InvalidationEvent, InvalidationFeed, Invalidations};
use redis_connection::{RedisConfig, RedisConnectionManager};
use redis_pubsub::PubSub;
use shared_types::{CounterName, Invalidation, RedisKey, ShardId, TenantId};
use test_support::RedisServer;

use crate::Options;
use crate::cache_load::{self, COMMAND_TIMEOUT, Instance, Load, OPS, TaskStats, VALUE_TTL};
use crate::counters::CounterBook;
use crate::faults::{self, FaultClock, FaultRecord, Harness, Schedule};
use crate::ledger::Ledger;
use crate::memory;
use crate::report::{PartReport, Table, Violations};
use crate::stats::{Histogram, ms};

/// Keys that take 80 % of the traffic: contention, invalidation races.
const HOT_KEYS: usize = 32;
/// Keys that take the rest, many times the L1 bound, so that the bound is
/// reached and eviction runs all the time.
const COLD_KEYS: usize = 2048;
const COUNTERS: usize = 4;
/// Small enough to be reached under this load: the L1 refuses a fill when
/// anything at all was invalidated during its Redis read (one epoch for the
/// whole L1), which, at about a thousand invalidations a second, is most
/// reads; the fills that do land keep it at its bound.
const L1_MAX_ENTRIES: u64 = 128;
/// A short cap keeps the documented outage staleness (and so the relaxed
/// grace) small.
const L1_TTL_CAP: Duration = Duration::from_secs(5);
/// The pub/sub propagation allowance: another instance may serve the old
/// value this long after a change was acknowledged. Typical propagation is
/// a millisecond; 200 ms absorbs scheduling delays on a loaded two-core box.
pub(crate) const GRACE: Duration = Duration::from_millis(200);

/// The soak's Redis: the AOF keeps acknowledged writes across SIGKILL (see
/// `counters.rs`); the explicit data-loss fault deletes it.
pub(crate) async fn start_redis() -> RedisServer {
    RedisServer::builder()
        .args(["--appendonly", "yes", "--appendfsync", "always"])
        .start()
        .await
}

async fn instance(
    name: &'static str,
    redis: &RedisServer,
    propagation: Arc<std::sync::Mutex<Histogram>>,
) -> Result<Instance, String> {
    let mut config = RedisConfig::centralized("127.0.0.1", redis.port());
    config.command_timeout = COMMAND_TIMEOUT;
    let manager = RedisConnectionManager::connect(config)
        .await
        .map_err(|e| format!("connect instance {name}: {e}"))?;
    let pubsub = PubSub::new(manager.clone())
        .await
        .map_err(|e| e.to_string())?;
    let feed = pubsub.invalidations().await.map_err(|e| e.to_string())?;
    let cache_config = CacheConfig::default().with_l1(Some(
        L1Config::default()
            .with_max_entries(L1_MAX_ENTRIES)
            .with_ttl_cap(L1_TTL_CAP),
    ));
    let outages = Arc::new(AtomicU64::new(0));
    tokio::spawn(watch(feed, outages.clone(), propagation));
    let cache = test_support::fixtures::two_tier_with(manager, pubsub, cache_config).await;
    Ok(Instance {
        name,
        cache,
        outages,
    })
}

/// Follows the instance's invalidation feed as its cache's listener does:
/// counts outages (so reads can tell whether the L1 was trusted throughout)
/// and measures propagation (publication timestamp to arrival, in ms).
async fn watch(
    mut feed: InvalidationFeed,
    outages: Arc<AtomicU64>,
    propagation: Arc<std::sync::Mutex<Histogram>>,
) {
    while let Some(event) = feed.recv().await {
        match event {
            InvalidationEvent::Disconnected | InvalidationEvent::Lagged { .. } => {
                outages.fetch_add(1, Ordering::SeqCst);
            }
            InvalidationEvent::Received(message) => {
                // Only our instances' payloads carry a publication time.
                let Some(ts) = message.ts() else { continue };
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default();
                let sent = Duration::from_millis(ts);
                propagation
                    .lock()
                    .expect("propagation lock")
                    .record(now.saturating_sub(sent));
            }
            // Subscribed, and invalidations from newer versions (none here).
            _ => {}
        }
    }
}

/// The recovery probe and the data-loss hooks.
struct CacheHarness {
    load: Arc<Load>,
    probes: Vec<RedisKey>,
    token: AtomicU64,
}

impl Harness for CacheHarness {
    /// Recovered: each instance writes a fresh token that the *other* reads
    /// back (both pools and the invalidation path work), and both L1s are
    /// live again.
    fn recovered(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move {
            let instances = &self.load.instances;
            for (i, probe) in self.probes.iter().enumerate() {
                let (writer, reader) = (&instances[i].cache, &instances[(i + 1) % 2].cache);
                let token = self.token.fetch_add(1, Ordering::SeqCst);
                if writer.set(probe, &token, VALUE_TTL).await.is_err() {
                    return false;
                }
                if reader.get::<u64>(probe).await.ok().flatten() != Some(token) {
                    return false;
                }
            }
            instances.iter().all(|i| i.cache.l1_live())
        })
    }

    fn before_data_loss<'a>(&'a self, redis: &'a RedisServer) -> BoxFuture<'a, ()> {
        Box::pin(self.load.counters.close_epoch(redis))
    }

    fn after_data_loss(&self) {
        self.load.counters.reopen();
    }
}

fn ids(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

/// Runs part one.
pub(crate) async fn run(options: &Options) -> Result<PartReport, String> {
    let redis = start_redis().await;
    let propagation = Arc::new(std::sync::Mutex::new(Histogram::default()));
    let a = instance("A", &redis, propagation.clone()).await?;
    let b = instance("B", &redis, propagation.clone()).await?;
    let tenant = TenantId::new("soak").map_err(|e| e.to_string())?;
    let shard = |id: &str| ShardId::new(id).map(|s| RedisKey::shard_structured(&tenant, &s));
    let mut names = ids("hot", HOT_KEYS);
    names.extend(ids("cold", COLD_KEYS));
    let keys: Vec<RedisKey> = names
        .iter()
        .map(|n| shard(n))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let invalidations = keys
        .iter()
        .map(|k| Invalidation::for_key(k).ok_or("shard keys have an invalidation"))
        .collect::<Result<_, _>>()?;
    let counter_keys = ids("soak", COUNTERS)
        .iter()
        .map(|n| CounterName::new(n.as_str()).map(|c| RedisKey::counter(&tenant, &c)))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let probes = vec![
        shard("probe-a").map_err(|e| e.to_string())?,
        shard("probe-b").map_err(|e| e.to_string())?,
    ];

    let started = Instant::now();
    let load = Arc::new(Load {
        instances: vec![a, b],
        ledger: Ledger::new(keys.len(), GRACE, L1_TTL_CAP + GRACE),
        keys,
        invalidations,
        hot: HOT_KEYS,
        counters: CounterBook::new(counter_keys),
        clock: Arc::new(FaultClock::default()),
        stop: AtomicBool::new(false),
        violations: Violations::new(started),
        pace: options.pace,
        started,
    });
    let stop_sampling = Arc::new(AtomicBool::new(false));
    let caches = load.instances.iter().map(|i| i.cache.clone()).collect();
    let sampler = tokio::spawn(memory::sample(caches, started, stop_sampling.clone()));
    let tasks: Vec<_> = (0..options.tasks)
        .map(|id| tokio::spawn(cache_load::run(load.clone(), id as u64)))
        .collect();
    let harness = Arc::new(CacheHarness {
        load: load.clone(),
        probes,
        token: AtomicU64::new(1),
    });
    let injector = faults::spawn(
        redis,
        harness,
        load.clock.clone(),
        Schedule::for_duration(options.duration),
        started,
    );
    let outcome = injector.await;
    load.stop.store(true, Ordering::SeqCst);
    let mut totals = TaskStats::default();
    for task in tasks {
        match task.await {
            Ok(stats) => totals.merge(&stats),
            Err(error) => load.violations.add(format!("a load task failed: {error}")),
        }
    }
    let elapsed = started.elapsed();
    stop_sampling.store(true, Ordering::SeqCst);
    let samples = sampler.await.unwrap_or_default();
    let Ok((redis, records)) = outcome else {
        load.violations.add("the fault injector panicked");
        return Ok(report(
            &load,
            &totals,
            &[],
            &samples,
            elapsed,
            options,
            &propagation,
        ));
    };
    // The last epoch ends now (every task has stopped, so the raw reads
    // block no one).
    load.counters.close_epoch(&redis).await;
    load.counters.reopen();
    let report = report(
        &load,
        &totals,
        &records,
        &samples,
        elapsed,
        options,
        &propagation,
    );
    for instance in &load.instances {
        if let Some(pubsub) = instance.cache.pubsub() {
            pubsub.shutdown().await;
        }
        instance.cache.manager().shutdown().await;
    }
    drop(redis);
    Ok(report)
}

fn report(
    load: &Load,
    totals: &TaskStats,
    records: &[FaultRecord],
    samples: &[memory::Sample],
    elapsed: Duration,
    options: &Options,
    propagation: &std::sync::Mutex<Histogram>,
) -> PartReport {
    let mut tables = Vec::new();
    let total_ops: u64 = totals.ops.iter().map(|o| o.total()).sum();
    let mut overview = Table::new("Run", &["figure", "value"]);
    overview.row(vec![
        "duration".into(),
        format!("{:.1} s", elapsed.as_secs_f64()),
    ]);
    overview.row(vec!["load tasks".into(), options.tasks.to_string()]);
    overview.row(vec!["operations".into(), total_ops.to_string()]);
    #[allow(clippy::cast_precision_loss)]
    let rate = total_ops as f64 / elapsed.as_secs_f64();
    overview.row(vec!["operations per second".into(), format!("{rate:.0}")]);
    tables.push(overview);

    tables.push(crate::summary::ops_table(
        &OPS,
        &totals.ops,
        &format!(
            "{} ms, get_or_load {} ms",
            cache_load::STUCK_LIMIT.as_millis(),
            cache_load::stuck_limit(0).as_millis()
        ),
    ));
    tables.push(crate::summary::reads_table(
        &totals.reads,
        GRACE,
        L1_TTL_CAP + GRACE,
        "plain get while the L1 was not live",
    ));
    tables.push(crate::summary::faults_table(records, 2, &load.violations));
    tables.push(crate::summary::counters_table(
        &load.counters.checks(),
        &load.violations,
    ));
    tables.push(crate::summary::instances_table(&load.instances));
    tables.push(crate::summary::memory_table(
        samples,
        L1_MAX_ENTRIES,
        options.tasks,
        &load.violations,
    ));
    let propagation = propagation.lock().expect("propagation lock");
    let mut pubsub = Table::new(
        "Pub/sub propagation (publication timestamp to arrival; the max includes \
         PUBLISHes held by the paused server)",
        &["p50", "p99", "max", "messages"],
    );
    pubsub.row(vec![
        ms(propagation.quantile(0.5)),
        ms(propagation.quantile(0.99)),
        ms(propagation.max()),
        propagation.count().to_string(),
    ]);
    tables.push(pubsub);
    PartReport {
        name: "Part one: two-tier cache pair".to_owned(),
        tables,
        violations: load.violations.count(),
        violation_list: load.violations.list(),
    }
}
