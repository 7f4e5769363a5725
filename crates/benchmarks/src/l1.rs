//! Workload 2, L1 hit: a typed `get` served from the two-tier cache's L1.
//! Targets: at least 0.5x a bare in-process map hit returning the same
//! clone (the floor, measured in the same rounds: it moves with the
//! machine as the L1 does), and p99 under 2 µs. For information, the ratio
//! to the per-task L2 hit rate (once the target: it moves with the
//! loopback's cost, ~10x between machines).
//!
//! "Per-task" means one task reading in a loop, each read waiting for the
//! previous one: the L1 rate is how many typed hits one task gets per
//! second, the L2 rate how many Redis-only `get` hits one task gets (one
//! round trip each) from the same server.
//!
//! Both rates are taken from the median time per call, because the L1 loop
//! is pure CPU and a shared machine steals CPU from it at random: a mean
//! over wall time would measure the neighbours. L1 calls are timed in
//! batches of 1 024 (so the clock read is amortised, and any bookkeeping
//! the L1 does on some reads is counted as a caller sees it); L2
//! calls one by one. L1 and L2 phases alternate. The p99 comes from a
//! separate phase that times every L1 call with `Instant` (whose own cost,
//! about 20 ns with a TSC clock, is included).

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use redis_cache::CacheService;
use shared_types::RedisKey;
use test_support::RedisServer;

use crate::drive::median;
use crate::fixture::{Doc, Mode, TTL, redis_only, shard_key, two_tier};
use crate::latency::{Latencies, show};
use crate::report::{Figure, Row, Status};

const RATIO_TARGET: f64 = 100.0;
/// Against the floor: a bare in-process map hit returning the same clone.
const FLOOR_TARGET: f64 = 0.5;
const P99_TARGET: Duration = Duration::from_micros(2);
/// Calls between two looks at the clock in the rate phases.
const BATCH: u64 = 1_024;

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let cache = two_tier(&server).await;
    let l2 = redis_only(cache.manager().clone());
    let key = shard_key("bench", 1);
    let doc = Doc::new(1);
    cache
        .set(&key, &doc, TTL)
        .await
        .map_err(|e| format!("seeding: {e}"))?;

    let rounds = mode.pick(5, 1);
    let window = mode.pick(Duration::from_secs(1), Duration::from_millis(200));
    let l1_hits_before = cache.stats().l1_hits;
    let (mut l1_batches, mut l2_calls) = (Vec::new(), Vec::new());
    // Warm-up, which also decodes the entry once so later hits clone it.
    let warm_up = l1_batches_for(&cache, &key, window / 4).await?;
    let bare = bare_map(&key, &doc);
    let mut bare_batches = bare_batches_for(&bare, &key, window / 4);
    bare_batches.clear();
    for _ in 0..rounds {
        l1_batches.extend(l1_batches_for(&cache, &key, window).await?);
        bare_batches.extend(bare_batches_for(&bare, &key, window));
        l2_calls.extend(l2_calls_for(&l2, &key, window).await?);
    }
    let latencies = l1_latencies(&cache, &key, mode.pick(2_000_000, 200_000)).await?;

    // Every L1 read must have been an L1 hit, or the rate measured Redis.
    let batches = u64::try_from(warm_up.len() + l1_batches.len()).unwrap_or(u64::MAX);
    let l1_reads = batches * BATCH + latencies.count();
    let hits = cache.stats().l1_hits - l1_hits_before;
    if hits < l1_reads {
        return Err(format!(
            "{} of {l1_reads} L1 reads were not L1 hits",
            l1_reads - hits
        ));
    }

    let l1_call = median(&mut l1_batches) / u32::try_from(BATCH).unwrap_or(1);
    let bare_call = median(&mut bare_batches) / u32::try_from(BATCH).unwrap_or(1);
    let l2_call = median(&mut l2_calls);
    let (l1, l2, floor) = (per_call(l1_call), per_call(l2_call), per_call(bare_call));
    let ratio = l1 / l2;
    let p99 = latencies.p99();
    Ok(vec![
        Row::new(
            "l1.rate",
            "2. L1 hit rate vs per-task L2 hit rate (typed `get`, 1 task)",
            Figure::rate(l1),
        )
        .baseline(Figure::rate(l2), ratio)
        .target(
            &format!("information (was >= {RATIO_TARGET:.0}x L2)"),
            Status::Info,
        )
        .note(format!(
            "median per call: L1 {} (batches of {BATCH}), L2 {}",
            show(l1_call),
            show(l2_call)
        )),
        Row::new(
            "l1.floor",
            "2. L1 hit rate vs a bare in-process map hit returning the same clone (1 task)",
            Figure::rate(l1),
        )
        .baseline(Figure::rate(floor), l1 / floor)
        .target(
            &format!(">= {FLOOR_TARGET}x the map"),
            Status::met_if(l1 / floor >= FLOOR_TARGET),
        )
        .note(format!(
            "median per call: L1 {}, map {} (a RwLock'd HashMap<String, Doc>, get + clone)",
            show(l1_call),
            show(bare_call)
        )),
        Row::new("l1.p99", "2. L1 hit latency p99", Figure::time(p99))
            .target(
                &format!("< {}", show(P99_TARGET)),
                Status::met_if(p99 < P99_TARGET),
            )
            .note(latencies.summary()),
    ])
}

/// Typed L1 hits from one task for about `window`, timed in batches.
async fn l1_batches_for(
    cache: &CacheService,
    key: &RedisKey,
    window: Duration,
) -> Result<Vec<Duration>, String> {
    let start = Instant::now();
    let mut batches = Vec::new();
    while start.elapsed() < window {
        let began = Instant::now();
        for _ in 0..BATCH {
            let value: Option<Doc> = cache.get(key).await.map_err(|e| format!("L1 get: {e}"))?;
            black_box(value).ok_or("L1 get missed")?;
        }
        batches.push(began.elapsed());
    }
    Ok(batches)
}

/// The floor under an L1 hit: a map behind a read lock, holding the decoded
/// value, each hit a lookup and a clone (what the L1 cannot avoid).
fn bare_map(key: &RedisKey, doc: &Doc) -> RwLock<HashMap<String, Doc>> {
    RwLock::new(HashMap::from([(key.as_str().to_owned(), doc.clone())]))
}

/// Bare map hits from one task for about `window`, timed in batches.
fn bare_batches_for(
    map: &RwLock<HashMap<String, Doc>>,
    key: &RedisKey,
    window: Duration,
) -> Vec<Duration> {
    let start = Instant::now();
    let mut batches = Vec::new();
    while start.elapsed() < window {
        let began = Instant::now();
        for _ in 0..BATCH {
            let value = map
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .get(black_box(key.as_str()))
                .cloned();
            black_box(value);
        }
        batches.push(began.elapsed());
    }
    batches
}

/// Redis-only typed hits from one task for about `window`, each timed.
async fn l2_calls_for(
    cache: &CacheService,
    key: &RedisKey,
    window: Duration,
) -> Result<Vec<Duration>, String> {
    let start = Instant::now();
    let mut calls = Vec::new();
    while start.elapsed() < window {
        let began = Instant::now();
        let value: Option<Doc> = cache.get(key).await.map_err(|e| format!("L2 get: {e}"))?;
        calls.push(began.elapsed());
        black_box(value).ok_or("L2 get missed")?;
    }
    Ok(calls)
}

/// Calls per second at `per_call` each.
fn per_call(per_call: Duration) -> f64 {
    1.0 / per_call.as_secs_f64().max(f64::MIN_POSITIVE)
}

/// `samples` L1 hits, each timed.
async fn l1_latencies(
    cache: &CacheService,
    key: &RedisKey,
    samples: u64,
) -> Result<Latencies, String> {
    let mut latencies = Latencies::default();
    for _ in 0..samples {
        let began = Instant::now();
        let value: Option<Doc> = cache.get(key).await.map_err(|e| format!("L1 get: {e}"))?;
        let took = began.elapsed();
        black_box(value).ok_or("L1 get missed")?;
        latencies.record(took);
    }
    Ok(latencies)
}
