//! Workload 5, invalidation propagation between two cache instances (each
//! with its own connections, subscriber and L1, as two service processes
//! have): the time from `invalidate` on A to the L1 eviction on B, p50 and
//! p99, and the highest sustained rate of invalidations B applies. Targets:
//! p99 under 2 ms; at least 50 000 invalidations per second applied.
//!
//! **Latency.** B's listener bumps `invalidations_applied` right after it
//! evicted the key from its L1, so the moment that counter moves is the
//! moment of eviction. A dedicated OS thread watches it, spinning (with a
//! yield, to leave the CPU to others when they need it) only while one
//! invalidation is in flight: it is armed before the clock starts, so what
//! is measured is the propagation, with sub-microsecond resolution, not a
//! polling interval. Each eviction is then confirmed: B's `get` must miss.
//!
//! **Rate.** A offers invalidations at fixed rates, step by step (64 tasks
//! calling `invalidate` as credits arrive every millisecond, each on a
//! fresh key). A step is sustained when B applied every invalidation sent,
//! without a lag (which flushes its L1); the figure is the highest applied
//! rate of a sustained step. Stepping stops when B falls behind, or when A
//! cannot send the offered rate (95 %): higher offers would only repeat
//! it. The same steps are run
//! again with A publishing the same invalidation messages through its
//! pub/sub directly, without the `UNLINK` that `invalidate` sends first:
//! that shows how much B can apply when the sender costs less (information;
//! the target is on the cache's own `invalidate`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use redis_cache::{CacheService, Invalidations};
use shared_types::Invalidation;
use test_support::RedisServer;
use tokio::sync::{Semaphore, oneshot};

use crate::fixture::{Doc, Mode, TTL, shard_key, two_tier, wait_until};
use crate::latency::{Latencies, show};
use crate::report::{Figure, Row, Status, per_second, to_f64};

const P99_TARGET: Duration = Duration::from_millis(2);
const RATE_TARGET: f64 = 50_000.0;
const SENDERS: u64 = 64;
/// An invalidation not applied by then is lost, not late.
const LOST_AFTER: Duration = Duration::from_secs(1);

type Arm = (u64, oneshot::Sender<Option<Instant>>);

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let a = two_tier(&server).await;
    let b = two_tier(&server).await;

    let (latencies, lost) = latency(&a, &b, mode.pick(5_000, 300)).await?;
    let steps = mode.pick(
        vec![10_000, 25_000, 50_000, 75_000, 100_000, 150_000, 200_000],
        vec![10_000, 50_000],
    );
    let window = mode.pick(Duration::from_secs(2), Duration::from_millis(250));
    let (best, log) = rate(&a, &b, Sender::Invalidate, &steps, window).await?;
    let (direct, direct_log) = rate(&a, &b, Sender::Publish, &steps, window).await?;

    let p99 = latencies.p99();
    Ok(vec![
        Row::new(
            "propagation.p50",
            "5. `invalidate` on A to L1 eviction on B, p50",
            Figure::time(latencies.p50()),
        )
        .target("information (target is on p99)", Status::Info),
        Row::new(
            "propagation.p99",
            "5. `invalidate` on A to L1 eviction on B, p99",
            Figure::time(p99),
        )
        .target(
            &format!("< {}", show(P99_TARGET)),
            Status::met_if(p99 < P99_TARGET && lost == 0),
        )
        .note(format!("{}; lost {lost}", latencies.summary())),
        Row::new(
            "propagation.rate",
            "5. highest sustained rate of invalidations applied on B",
            Figure::rate(best),
        )
        .target(
            &format!(">= {RATE_TARGET:.0}/s"),
            Status::met_if(best >= RATE_TARGET),
        )
        .note(log),
        Row::new(
            "propagation.rate_publish_only",
            "5. same, A publishing the invalidation messages only (no UNLINK): B's capacity",
            Figure::rate(direct),
        )
        .target("information", Status::Info)
        .note(direct_log),
    ])
}

/// `samples` invalidations, one at a time: B holds the key in its L1, A
/// invalidates it, and the watcher thread stamps B's eviction.
async fn latency(
    a: &CacheService,
    b: &CacheService,
    samples: u64,
) -> Result<(Latencies, u64), String> {
    let (arm, armed) = mpsc::channel::<Arm>();
    let watched = b.clone();
    let watcher = std::thread::spawn(move || {
        while let Ok((seen, stamp)) = armed.recv() {
            let deadline = Instant::now() + LOST_AFTER;
            let evicted = loop {
                if watched.stats().invalidations_applied > seen {
                    break Some(Instant::now());
                }
                if Instant::now() > deadline {
                    break None;
                }
                std::hint::spin_loop();
                std::thread::yield_now();
            };
            let _ = stamp.send(evicted);
        }
    });

    let doc = Doc::new(1);
    let mut latencies = Latencies::default();
    let mut lost = 0;
    for i in 0..samples {
        let key = shard_key("prop", i);
        // B's own write puts the value in its L1 (and tells A, which
        // counts on A's side, not B's).
        b.set(&key, &doc, TTL)
            .await
            .map_err(|e| format!("set on B: {e}"))?;
        let invalidation = Invalidation::for_key(&key).ok_or("shard keys have key invalidation")?;
        let seen = b.stats().invalidations_applied;
        let (stamp, evicted) = oneshot::channel();
        arm.send((seen, stamp))
            .map_err(|_| "the watcher thread stopped")?;
        let start = Instant::now();
        a.invalidate(&invalidation)
            .await
            .map_err(|e| format!("invalidate on A: {e}"))?;
        match evicted.await.map_err(|_| "the watcher thread stopped")? {
            Some(at) => latencies.record(at.saturating_duration_since(start)),
            None => lost += 1,
        }
        // The eviction really happened: B reads through to Redis, where the
        // key is gone.
        let after: Option<Doc> = b.get(&key).await.map_err(|e| format!("get on B: {e}"))?;
        if after.is_some() {
            return Err(format!("B still served key {i} after its invalidation"));
        }
    }
    drop(arm);
    watcher.join().map_err(|_| "the watcher thread panicked")?;
    Ok((latencies, lost))
}

/// How A sends an invalidation in the rate steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sender {
    /// `CacheService::invalidate`: UNLINK and PUBLISH, one round trip.
    Invalidate,
    /// `PubSub::invalidate`: the same message, PUBLISH only.
    Publish,
}

/// The offered-rate steps; returns the best sustained applied rate and a
/// log of every step.
async fn rate(
    a: &CacheService,
    b: &CacheService,
    sender: Sender,
    steps: &[u64],
    window: Duration,
) -> Result<(f64, String), String> {
    let mut best = 0.0_f64;
    let mut log = Vec::new();
    let mut next_key = 1_000_000;
    for &offered in steps {
        let before = b.stats();
        let start = Instant::now();
        let sent = offer(a, sender, offered, window, next_key).await?;
        next_key += sent + 1;
        let sent_for = start.elapsed();
        let drained = wait_until(
            "B to apply every invalidation",
            Duration::from_secs(5),
            || b.stats().invalidations_applied - before.invalidations_applied >= sent,
        )
        .await;
        let applied_in = start.elapsed();
        let after = b.stats();
        let applied = after.invalidations_applied - before.invalidations_applied;
        let flushed = after.l1_flushes - before.l1_flushes;
        let applied_rate = per_second(applied, applied_in);
        let sent_rate = per_second(sent, sent_for);
        // B kept up: it applied everything sent, without a lag (which
        // would have flushed its L1 instead).
        let kept_up = drained.is_ok() && flushed == 0;
        let saturated = sent_rate < 0.95 * to_f64(offered);
        log.push(format!(
            "offered {}k/s: sent {sent_rate:.0}/s, applied {applied_rate:.0}/s{}",
            offered / 1_000,
            if !kept_up && flushed > 0 {
                format!(" (B lagged: {flushed} L1 flushes)")
            } else if !kept_up {
                format!(" (B: {} of {sent} never applied)", sent - applied.min(sent))
            } else if saturated {
                " (A could not send faster: last step)".to_owned()
            } else {
                String::new()
            }
        ));
        if kept_up {
            best = best.max(applied_rate);
        }
        if !kept_up || saturated {
            break;
        }
    }
    Ok((best, log.join("; ")))
}

/// A sends invalidations of fresh keys at `per_second` for `window`: every
/// millisecond a batch of credits (semaphore permits), taken by `SENDERS`
/// tasks. Credits they could not use by the end of the window are dropped,
/// so a sender that cannot keep up shows as a lower sent rate. Returns how
/// many were sent.
async fn offer(
    a: &CacheService,
    sender: Sender,
    per_second: u64,
    window: Duration,
    first_key: u64,
) -> Result<u64, String> {
    let per_tick = usize::try_from(per_second / 1_000).unwrap_or(1).max(1);
    let credits = Arc::new(Semaphore::new(0));
    let next_key = Arc::new(AtomicU64::new(first_key));
    let senders: Vec<_> = (0..SENDERS)
        .map(|_| {
            let (a, credits, next_key) = (a.clone(), credits.clone(), next_key.clone());
            tokio::spawn(async move {
                let mut sent = 0u64;
                // Ends when the credits are closed at the end of the window.
                while let Ok(credit) = credits.acquire().await {
                    credit.forget();
                    let n = next_key.fetch_add(1, Ordering::Relaxed);
                    let invalidation = Invalidation::for_key(&shard_key("rate", n))
                        .ok_or("shard keys have key invalidation")?;
                    match sender {
                        Sender::Invalidate => a
                            .invalidate(&invalidation)
                            .await
                            .map(drop)
                            .map_err(|e| format!("invalidate on A: {e}"))?,
                        Sender::Publish => a
                            .pubsub()
                            .ok_or("A has no pub/sub")?
                            .invalidate(&invalidation)
                            .await
                            .map(drop)
                            .map_err(|e| format!("publish on A: {e}"))?,
                    }
                    sent += 1;
                }
                Ok::<_, String>(sent)
            })
        })
        .collect();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let deadline = Instant::now() + window;
    while Instant::now() < deadline {
        tick.tick().await;
        credits.add_permits(per_tick);
    }
    credits.close();
    let mut sent = 0;
    for sender in senders {
        sent += sender.await.map_err(|e| format!("sender task: {e}"))??;
    }
    Ok(sent)
}
