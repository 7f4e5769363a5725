//! Workload 8, outage: Redis is killed, stays down, and comes back on the
//! same port. Targets: while it is down, the p99 time for a cache read to
//! come back is within the configured command timeout; once it is back, the
//! first successful command comes less than 1 s after the server accepts
//! connections.
//!
//! The connection settings are a service's defaults (command timeout,
//! reconnect backoff), so the figures are what a deployment would see.
//! Sixteen readers keep calling `get` (degrading to a miss) throughout;
//! only reads that started while the server was down count. "Accepts
//! connections" is stamped by a thread that tries to connect every 100 µs;
//! "first successful command" by a strict-mode `get` (which, unlike a
//! degraded one, fails while Redis is down) tried every millisecond.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_cache::{CacheConfig, CacheService, ReadMode};
use test_support::RedisServer;

use crate::fixture::{Doc, Mode, TTL, connect, redis_only, shard_key};
use crate::latency::{Latencies, show};
use crate::report::{Figure, Row, Status};

const READERS: usize = 16;
const RECOVERY_TARGET: Duration = Duration::from_secs(1);
/// Longest we wait for the server or the client to come back.
const GIVE_UP: Duration = Duration::from_secs(30);

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let mut server = RedisServer::start().await;
    let manager = connect(&server).await?;
    let timeout = manager.command_timeout();
    let cache = redis_only(manager.clone());
    let strict = CacheService::new(
        manager,
        CacheConfig::default()
            .with_l1(None)
            .with_read_mode(ReadMode::Strict),
    );
    let cycles = mode.pick(3, 1);
    let down_for = mode.pick(Duration::from_secs(3), Duration::from_secs(1));
    let mut reads = Latencies::default();
    let mut recoveries = Vec::new();
    for cycle in 0..cycles {
        let key = shard_key("outage", cycle);
        cache
            .set(&key, &Doc::new(cycle), TTL)
            .await
            .map_err(|e| format!("set before the outage: {e}"))?;
        let readers = Readers::start(&cache, &key);
        tokio::time::sleep(Duration::from_millis(100)).await;

        let stopped = Instant::now();
        server.stop().await;
        tokio::time::sleep(down_for).await;

        let addr = server.addr();
        let accepting = std::thread::spawn(move || first_accept(&addr));
        let recovered = tokio::spawn(first_success(strict.clone(), key.clone()));
        // start_again waits for PING with blocking sleeps: off the runtime.
        server = tokio::task::spawn_blocking(move || {
            futures::executor::block_on(server.start_again());
            server
        })
        .await
        .map_err(|e| format!("restarting redis-server: {e}"))?;
        let accepted = accepting
            .join()
            .map_err(|_| "the accept watcher panicked")?
            .ok_or("redis-server never accepted a connection")?;
        let succeeded = recovered
            .await
            .map_err(|e| format!("recovery probe: {e}"))?
            .ok_or("no command succeeded after the restart")?;
        recoveries.push(succeeded.saturating_duration_since(accepted));
        for (began, took) in readers.finish().await? {
            if began >= stopped && began < accepted {
                reads.record(took);
            }
        }
    }
    if reads.count() == 0 {
        return Err("no read started while Redis was down".to_owned());
    }
    let worst = recoveries.iter().copied().max().unwrap_or_default();
    let p99 = reads.p99();
    let shown: Vec<String> = recoveries.iter().map(|d| show(*d)).collect();
    Ok(vec![
        Row::new(
            "outage.read_p99",
            "8. cache `get` while Redis is down, p99",
            Figure::time(p99),
        )
        .target(
            &format!("<= command timeout ({})", show(timeout)),
            Status::met_if(p99 <= timeout),
        )
        .note(reads.summary()),
        Row::new(
            "outage.recovery",
            &format!(
                "8. first successful command after Redis accepts connections (worst of {cycles})"
            ),
            Figure::time(worst),
        )
        .target(
            &format!("< {}", show(RECOVERY_TARGET)),
            Status::met_if(worst < RECOVERY_TARGET),
        )
        .note(format!(
            "each outage {}: {}",
            show(down_for),
            shown.join(", ")
        )),
    ])
}

/// Readers calling `get` in a loop, 1 ms apart, each read timed.
struct Readers {
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(Instant, Duration)>>>,
}

impl Readers {
    fn start(cache: &CacheService, key: &shared_types::RedisKey) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..READERS)
            .map(|_| {
                let (cache, key, stop) = (cache.clone(), key.clone(), stop.clone());
                tokio::spawn(async move {
                    let mut reads = Vec::new();
                    while !stop.load(Ordering::Acquire) {
                        let began = Instant::now();
                        // Degraded reads answer a miss while Redis is down.
                        let _: Option<Doc> = cache.get(&key).await.unwrap_or_default();
                        reads.push((began, began.elapsed()));
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    reads
                })
            })
            .collect();
        Self { stop, tasks }
    }

    async fn finish(self) -> Result<Vec<(Instant, Duration)>, String> {
        self.stop.store(true, Ordering::Release);
        let mut all = Vec::new();
        for task in self.tasks {
            all.extend(task.await.map_err(|e| format!("reader: {e}"))?);
        }
        Ok(all)
    }
}

/// When `addr` first accepted a TCP connection (polled every 100 µs).
fn first_accept(addr: &str) -> Option<Instant> {
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    None
}

/// When a strict read first succeeded (tried every millisecond).
async fn first_success(cache: CacheService, key: shared_types::RedisKey) -> Option<Instant> {
    let deadline = Instant::now() + GIVE_UP;
    while Instant::now() < deadline {
        if cache.get::<Doc>(&key).await.is_ok() {
            return Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    None
}
