//! Workload 6, stampede: 1 000 concurrent `get_or_load` calls on one cold
//! key, with a loader that takes 50 ms. Targets: exactly one loader call,
//! and every caller answered within 100 ms.
//!
//! The 1 000 tasks are released together by a barrier; each caller's time is
//! counted from the moment the first of them started, so a caller that was
//! scheduled late is not flattered. Several rounds, each on a new cold key;
//! the loader-call target must hold in every one of them.
//!
//! Workload 13, fleet stampede (`fleet.rs`), runs the same rounds across
//! several instances at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use redis_cache::CacheService;
use shared_types::RedisKey;
use test_support::RedisServer;
use tokio::sync::Barrier;

use crate::fixture::{Doc, Mode, TTL, shard_key, two_tier};
use crate::latency::{Latencies, show};
use crate::report::{Figure, Row, Status};

/// Concurrent callers per instance.
pub(crate) const CALLERS: usize = 1_000;
pub(crate) const LOADER_TAKES: Duration = Duration::from_millis(50);
pub(crate) const ANSWER_TARGET: Duration = Duration::from_millis(100);

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let cache = two_tier(&server).await;
    let rounds = mode.pick(20, 2);
    let mut calls_per_round = Vec::new();
    let mut latencies = Latencies::default();
    for round in 0..rounds {
        let (calls, round_latencies) = one_round(
            std::slice::from_ref(&cache),
            &shard_key("stampede", round),
            round,
        )
        .await?;
        calls_per_round.push(calls);
        latencies.merge(&round_latencies);
    }
    let worst_calls = calls_per_round.iter().copied().max().unwrap_or(0);
    let all_one = calls_per_round.iter().all(|&c| c == 1);
    let slowest = latencies.max();
    Ok(vec![
        Row::new(
            "stampede.loader_calls",
            &format!("6. loader calls for {CALLERS} concurrent `get_or_load` of one cold key (worst round)"),
            Figure::count(worst_calls),
        )
        .target("exactly 1 per round", Status::met_if(all_one))
        .note(format!("{rounds} rounds: {calls_per_round:?}")),
        Row::new(
            "stampede.slowest",
            &format!("6. slowest of the {CALLERS} callers (loader takes {})", show(LOADER_TAKES)),
            Figure::time(slowest),
        )
        .target(
            &format!("< {}", show(ANSWER_TARGET)),
            Status::met_if(slowest < ANSWER_TARGET),
        )
        .note(latencies.summary()),
    ])
}

/// One cold key, 1 000 callers on each of `caches`: (loader calls, each
/// caller's time).
pub(crate) async fn one_round(
    caches: &[CacheService],
    key: &RedisKey,
    round: u64,
) -> Result<(u64, Latencies), String> {
    let loads = Arc::new(AtomicU64::new(0));
    let barrier = Arc::new(Barrier::new(CALLERS * caches.len()));
    let handles: Vec<_> = (0..CALLERS)
        .flat_map(|_| caches.iter())
        .map(|cache| {
            let (cache, key, loads, barrier) =
                (cache.clone(), key.clone(), loads.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let start = Instant::now();
                let loader = move || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(LOADER_TAKES).await;
                    Ok::<_, Infallible>(Doc::new(round))
                };
                let doc = cache
                    .get_or_load(&key, TTL, loader)
                    .await
                    .map_err(|e| format!("get_or_load: {e}"))?;
                let answered = Instant::now();
                if doc.id != round {
                    return Err("get_or_load answered another value".to_owned());
                }
                Ok((start, answered))
            })
        })
        .collect();
    let mut times = Vec::with_capacity(handles.len());
    for handle in handles {
        times.push(handle.await.map_err(|e| format!("caller task: {e}"))??);
    }
    let first_start = times
        .iter()
        .map(|(start, _)| *start)
        .min()
        .ok_or("no callers")?;
    let mut latencies = Latencies::default();
    for (_, answered) in times {
        latencies.record(answered - first_start);
    }
    Ok((loads.load(Ordering::SeqCst), latencies))
}
