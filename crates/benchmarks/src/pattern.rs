//! Workload 4, pattern invalidation: `delete_pattern` removing 100 000
//! matching keys out of 1 000 000, while another client measures `GET`
//! latency on other keys the whole time. Targets: done within 2 s, and the
//! concurrent GETs' p99 under 5 ms. Beside it, what `KEYS pattern` + `DEL`
//! (the approach the project refuses) does to the same GETs.
//!
//! The other 900 000 keys are made by `DEBUG POPULATE` (512-byte values,
//! another tenant's prefix); the matching ones by pipelined `MSET`s.
//!
//! The prober is another client (its own connection and thread, as another
//! service would be) sending 5 000 GETs per second at a steady pace, each
//! timed from when it was due (see [`Prober`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_connection::fred::clients::{Client, WithOptions};
use redis_connection::fred::interfaces::{ClientLike, KeysInterface, ServerInterface};
use redis_connection::fred::types::config::Options;
use redis_connection::fred::types::{ClusterHash, CustomCommand, Key};
use shared_types::KeyPattern;
use test_support::RedisServer;

use crate::fixture::{Doc, Mode, connect, redis_only, shard_key, tenant};
use crate::latency::{Latencies, show};
use crate::report::{Figure, Row, Status};

const TIME_TARGET: Duration = Duration::from_secs(2);
const P99_TARGET: Duration = Duration::from_millis(5);
/// Prefix of the keys `DEBUG POPULATE` makes: another tenant's namespace.
const OTHERS: &str = "tenant:others:user";
/// The prober's pace: 5 000 GETs per second.
const PROBE_EVERY: Duration = Duration::from_micros(200);
/// Seeding and the refused `KEYS`/`DEL` take far longer than the command
/// timeout services use.
const SLOW_COMMAND: Duration = Duration::from_secs(120);

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let total: u64 = mode.pick(1_000_000, 100_000);
    let matching = total / 10;
    let others = total - matching;
    let server = RedisServer::builder()
        .args(["--enable-debug-command", "yes"])
        .start()
        .await;
    let manager = connect(&server).await?;
    let cache = redis_only(manager.clone());
    let admin = manager.client().with_options(&slow());
    let pattern = KeyPattern::tenant_cache(&tenant("victim"));

    let populate = CustomCommand::new_static("DEBUG", ClusterHash::Random, false);
    admin
        .custom::<(), _>(
            populate,
            vec![
                "POPULATE".to_owned(),
                others.to_string(),
                OTHERS.to_owned(),
                "512".to_owned(),
            ],
        )
        .await
        .map_err(|e| format!("DEBUG POPULATE: {e}"))?;
    seed_matching(manager.client(), matching).await?;
    expect_keys(&admin, total).await?;

    // The idle server, for reference.
    let prober = Prober::start(&server, others)?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calm = prober.finish().await?;

    let prober = Prober::start(&server, others)?;
    let start = Instant::now();
    let deleted = cache
        .delete_pattern(&pattern)
        .await
        .map_err(|e| format!("delete_pattern: {e}"))?;
    let ours_took = start.elapsed();
    let ours = prober.finish().await?;
    if deleted != matching {
        return Err(format!(
            "delete_pattern deleted {deleted} keys, expected {matching}"
        ));
    }
    expect_keys(&admin, others).await?;

    // The refused approach, on the same data.
    seed_matching(manager.client(), matching).await?;
    let prober = Prober::start(&server, others)?;
    let start = Instant::now();
    let keys_cmd = CustomCommand::new_static("KEYS", ClusterHash::Random, false);
    let found: Vec<Key> = admin
        .custom(keys_cmd, vec![pattern.as_str()])
        .await
        .map_err(|e| format!("KEYS: {e}"))?;
    let removed: u64 = admin.del(found).await.map_err(|e| format!("DEL: {e}"))?;
    let keys_took = start.elapsed();
    let refused = prober.finish().await?;
    if removed != matching {
        return Err(format!(
            "KEYS + DEL deleted {removed} keys, expected {matching}"
        ));
    }

    let scale = format!("{matching} of {total} keys");
    Ok(vec![
        Row::new(
            "pattern.time",
            &format!("4. `delete_pattern` of {scale} (beside: `KEYS` + `DEL`)"),
            Figure::time(ours_took),
        )
        .beside(Figure::time(keys_took))
        .target(
            &format!("<= {}", show(TIME_TARGET)),
            Status::met_if(ours_took <= TIME_TARGET),
        ),
        Row::new(
            "pattern.get_p99",
            "4. p99 of other clients' GETs meanwhile (beside: during `KEYS` + `DEL`)",
            Figure::time(ours.p99()),
        )
        .beside(Figure::time(refused.p99()))
        .target(
            &format!("< {}", show(P99_TARGET)),
            Status::met_if(ours.p99() < P99_TARGET),
        )
        .note(format!(
            "GETs at 5000/s timed from when due; during delete_pattern max {}; during KEYS+DEL max {}; idle p50 {} p99 {}",
            show(ours.max()),
            show(refused.max()),
            show(calm.p50()),
            show(calm.p99()),
        )),
    ])
}

/// Options for commands that may take as long as seeding does.
fn slow() -> Options {
    Options {
        timeout: Some(SLOW_COMMAND),
        ..Options::default()
    }
}

/// Writes the `matching` keys, `tenant:victim:shard:s{i}:structured`, with
/// 512-byte values: MSETs of 1 000 keys, all in flight at once.
async fn seed_matching(client: &Client, matching: u64) -> Result<(), String> {
    let value = Bytes::from(Doc::new(0).encode());
    let pipeline = client.pipeline();
    let queue = pipeline.with_options(&slow());
    let mut start = 0;
    while start < matching {
        let end = (start + 1_000).min(matching);
        let batch: Vec<(String, Bytes)> = (start..end)
            .map(|i| (shard_key("victim", i).as_str().to_owned(), value.clone()))
            .collect();
        queue
            .mset(batch)
            .await
            .map_err(|e| format!("queueing MSET: {e}"))?;
        start = end;
    }
    pipeline.all::<()>().await.map_err(|e| format!("MSET: {e}"))
}

async fn expect_keys(admin: &WithOptions<Client>, expected: u64) -> Result<(), String> {
    let keys: u64 = admin.dbsize().await.map_err(|e| format!("DBSIZE: {e}"))?;
    if keys == expected {
        Ok(())
    } else {
        Err(format!("the server holds {keys} keys, expected {expected}"))
    }
}

/// Another client's GETs, at a fixed rate, from its own connection and OS
/// thread. Each latency counts from the moment the GET was due, not from
/// when it was sent: when Redis stalls, the GETs that fell due meanwhile go
/// out late and carry the wait, as they would for a client with a steady
/// request rate (no coordinated omission). Waking up costs the thread some
/// tens of microseconds of timer slack, which the idle figures show.
struct Prober {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Result<Latencies, String>>,
}

impl Prober {
    fn start(server: &RedisServer, others: u64) -> Result<Self, String> {
        let mut client = server
            .raw_client()
            .map_err(|e| format!("prober connection: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut latencies = Latencies::default();
            let mut due = Instant::now();
            let mut i: u64 = 0;
            while !flag.load(Ordering::Acquire) {
                due += PROBE_EVERY;
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                // A stride through the other keys, so reads spread over them.
                let key = format!("{OTHERS}:{}", (i * 7_919) % others);
                i += 1;
                let reply = client
                    .cmd(&["GET", key.as_str()])
                    .map_err(|e| format!("probe GET: {e}"))?;
                if reply.is_nil() {
                    return Err(format!("probe GET of {key} missed"));
                }
                latencies.record(due.elapsed());
            }
            Ok(latencies)
        });
        Ok(Self { stop, thread })
    }

    async fn finish(self) -> Result<Latencies, String> {
        self.stop.store(true, Ordering::Release);
        tokio::task::spawn_blocking(move || self.thread.join())
            .await
            .map_err(|e| format!("prober: {e}"))?
            .map_err(|_| "the prober panicked".to_owned())?
    }
}
