//! Workload 12, replay after a subscriber outage: B's subscriber is cut
//! for about 2 s (its connection killed, its reconnect delay 2 s) while A
//! sends 10 000 invalidations; B must be coherent again within 1 s of
//! re-subscribing, by replaying the invalidation stream, without flushing
//! its L1. Target: < 1 s, no flush, no stale read.
//!
//! B holds 2 000 keys in its L1: 1 000 that A changes during the outage
//! (among its 10 000 invalidations) and 1 000 that nobody touches. "Coherent
//! again" is B trusting its L1 again with every missed invalidation
//! applied (the listener turns the L1 live only after the replay). The
//! moment of re-subscribing is stamped on the server: a thread polls
//! `CLIENT LIST TYPE pubsub` every millisecond until B's subscriber is
//! back. Afterwards B must serve every changed key's new value and every
//! untouched key from its L1.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_cache::CacheConfig;
use shared_types::{Invalidation, RedisKey};
use test_support::RedisServer;
use test_support::fixtures::{self, redis_config};

use crate::fixture::{Doc, Mode, TTL, shard_key, two_tier, wait_until};
use crate::report::{Figure, Row, Status};

/// How many invalidations A has in flight during B's outage.
const SENDERS: usize = 64;

const TARGET: Duration = Duration::from_secs(1);
const OUTAGE: Duration = Duration::from_secs(2);

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let a = two_tier(&server).await;
    let mut config = redis_config(&server);
    config.reconnect.base_delay = OUTAGE;
    config.reconnect.max_delay = OUTAGE;
    let b = fixtures::two_tier(config, CacheConfig::default()).await;
    let (sent, held) = (mode.pick(10_000, 1_000), mode.pick(1_000, 100));

    let changed: Vec<RedisKey> = (0..held).map(|i| shard_key("changed", i)).collect();
    let kept: Vec<RedisKey> = (0..held).map(|i| shard_key("kept", i)).collect();
    let (old, new) = (Doc::new(1), Doc::new(2));
    for key in changed.iter().chain(&kept) {
        b.set(key, &old, TTL).await.map_err(|e| e.to_string())?;
    }

    let pubsub_clients = |client: &mut test_support::RawClient| {
        client
            .cmd(&["CLIENT", "LIST", "TYPE", "pubsub"])
            .ok()
            .and_then(|reply| reply.as_string())
            .map_or(0, |list| list.lines().count())
    };
    let mut watcher = server.raw_client().map_err(|e| e.to_string())?;
    let subscribers = pubsub_clients(&mut watcher);
    let killed = server.cmd(&["CLIENT", "KILL", "TYPE", "pubsub"]).as_int();
    if killed.unwrap_or(0) < 2 {
        return Err(format!(
            "killed {killed:?} subscribers, expected A's and B's"
        ));
    }
    wait_until("B to notice", Duration::from_secs(2), || !b.l1_live()).await?;
    // Stamps B's subscriber coming back (A's comes back at once, B's after
    // its reconnect delay).
    let back = Arc::new(std::sync::Mutex::new(None));
    let stop = Arc::new(AtomicBool::new(false));
    let stamper = {
        let (back, stop) = (back.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if pubsub_clients(&mut watcher) >= subscribers {
                    *back.lock().unwrap() = Some(Instant::now());
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };

    let before = b.stats();
    let outage_start = Instant::now();
    // Sent 64 at a time: one at a time, a loaded machine (or the
    // stream script's round trip) took longer than B's outage, and B heard
    // the last ones live instead of replaying them.
    for chunk in changed.chunks(SENDERS) {
        let writes: Vec<_> = chunk.iter().map(|key| a.set(key, &new, TTL)).collect();
        for written in futures::future::join_all(writes).await {
            written.map_err(|e| e.to_string())?;
        }
    }
    let others = (0..(sent - held))
        .map(|i| {
            Invalidation::for_key(&shard_key("other", i)).ok_or("shard keys have key invalidation")
        })
        .collect::<Result<Vec<_>, _>>()?;
    for chunk in others.chunks(SENDERS) {
        let sends: Vec<_> = chunk.iter().map(|inv| a.invalidate(inv)).collect();
        for sent in futures::future::join_all(sends).await {
            sent.map_err(|e| e.to_string())?;
        }
    }
    let sending = outage_start.elapsed();
    let coherent = wait_until("B to be live again", Duration::from_secs(10), || {
        b.l1_live()
    })
    .await;
    let live_at = Instant::now();
    stop.store(true, Ordering::Relaxed);
    stamper.join().map_err(|_| "the stamper thread panicked")?;
    coherent?;
    let back_at = back
        .lock()
        .unwrap()
        .ok_or("B's subscriber was never seen back")?;
    let recovery = live_at.saturating_duration_since(back_at);

    let after = b.stats();
    let replayed = after.invalidations_replayed - before.invalidations_replayed;
    let flushes = after.l1_flushes - before.l1_flushes;
    let mut stale = 0;
    for key in &changed {
        if b.get::<Doc>(key).await.map_err(|e| e.to_string())? != Some(new.clone()) {
            stale += 1;
        }
    }
    let hits = b.stats().l1_hits;
    for key in &kept {
        b.get::<Doc>(key).await.map_err(|e| e.to_string())?;
    }
    let kept_in_l1 = b.stats().l1_hits - hits;
    let met = recovery < TARGET && flushes == 0 && stale == 0 && replayed >= sent;
    Ok(vec![
        Row::new(
            "replay.recovery",
            "12. subscriber back to L1 coherent again, after a 2 s outage with 10 000 invalidations missed",
            Figure::time(recovery),
        )
        .target(&format!("< {TARGET:?}, no flush"), Status::met_if(met))
        .note(format!(
            "sent {sent} in {sending:?}; replayed {replayed}; L1 flushes {flushes}; stale reads {stale}; untouched keys still in L1 {kept_in_l1}/{held}"
        )),
    ])
}
