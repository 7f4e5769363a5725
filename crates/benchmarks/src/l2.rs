//! Workload 1, L2 throughput: typed `get` and `set` through the Redis-only
//! cache service with 64 concurrent tasks, against what a user writes by
//! hand with either client, typed the same way: raw fred with fred's
//! **default** configuration and a pool of the same size, and **redis-rs**
//! with one multiplexed connection. Each side serialises and deserialises
//! the same 512-byte struct with serde_json, as a user of either client
//! would. Targets: at least 1.0x both. Beside them, for information, raw
//! fred moving the same bytes untyped through the cache's own connection
//! (the cost of the cache itself: decoding, statistics, spans, error
//! mapping), the cache against typed fred with **one** task (what the
//! coalescer's extra task hop costs when nothing queues), and
//! `redis-benchmark` against the same server.
//!
//! The sides do not send the same commands for `get`. The baselines send
//! one command per call, as a user writes them by hand (`GET`; `SET key
//! value PX ttl`). The cache coalesces concurrent reads
//! (`redis-cache/src/batched.rs`): what queues while a batch is in flight
//! leaves as one `MGET`; a call that finds nothing in flight is sent alone
//! as the same `GET` as the baselines'. So at 64 tasks the `get` comparison
//! is of designs (batching against per-call commands), and the one-task row
//! shows what that design costs a caller alone. Its `set`s of keys the
//! tenant key index already covers (all of them here: the keys are written
//! once before measuring) are the baselines' plain `SET ... PX`, one per
//! call. Each task walks the keys from its own offset, so concurrent calls
//! ask for different keys (see [`key_of`]). Sides alternate phase by
//! phase, and the order rotates by round, so drift on a shared machine hits
//! all alike.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_cache::CacheService;
use redis_connection::fred::clients::{Client, Pool};
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::prelude::Builder;
use redis_connection::fred::types::Expiration;
use redis_connection::fred::types::config::{Config as FredConfig, ServerConfig};
use shared_types::RedisKey;
use test_support::RedisServer;

use crate::drive::{Phase, saturate};
use crate::fixture::{Doc, Mode, TTL, connect, redis_only, shard_key};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const TASKS: u64 = 64;
const KEYS: u64 = 1_000;
const TARGET: f64 = 1.0;
/// The pool size both fred sides use (the manager's default).
const POOL: usize = 4;

struct Ctx {
    /// The cache's own connection, for the untyped reference.
    ours: Client,
    cache: CacheService,
    fred: Pool,
    redis_rs: redis::aio::MultiplexedConnection,
    keys: Vec<RedisKey>,
    doc: Doc,
    bytes: Bytes,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Set,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Cache,
    Fred,
    RedisRs,
    Untyped,
}

const SIDES: [Side; 4] = [Side::Cache, Side::Fred, Side::RedisRs, Side::Untyped];

/// The sides of the one-task comparison.
const SOLO: [Side; 2] = [Side::Cache, Side::Fred];

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let manager = connect(&server).await?;
    let doc = Doc::new(1);
    let ctx = Arc::new(Ctx {
        ours: manager.client().clone(),
        cache: redis_only(manager),
        fred: fred_default_pool(&server).await?,
        redis_rs: redis::Client::open(format!("redis://{}/", server.addr()))
            .map_err(|e| format!("redis-rs: {e}"))?
            .get_multiplexed_async_connection()
            .await
            .map_err(|e| format!("redis-rs connecting: {e}"))?,
        keys: (0..KEYS).map(|i| shard_key("bench", i)).collect(),
        bytes: Bytes::from(doc.encode()),
        doc,
    });
    for key in &ctx.keys {
        ctx.cache
            .set(key, &ctx.doc, TTL)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
    }

    let rounds = mode.pick(7, 1);
    let window = mode.pick(Duration::from_secs(1), Duration::from_millis(250));
    let mut rows = Vec::new();
    for (op, name) in [(Op::Get, "get"), (Op::Set, "set")] {
        // Warm every path (connections, allocator, branch predictors).
        for side in SIDES {
            phase(&ctx, op, side, TASKS, window / 4).await?;
        }
        let mut phases: Vec<Phase> = SIDES.iter().map(|_| Phase::default()).collect();
        for round in 0..rounds {
            for i in 0..SIDES.len() {
                let slot = (i + round) % SIDES.len();
                let measured = phase(&ctx, op, SIDES[slot], TASKS, window).await?;
                phases[slot].absorb(&measured);
            }
        }
        let [ours, fred, redis_rs, untyped] = [0, 1, 2, 3].map(|i| phases[i].clone());
        let latency = |p: &Phase| {
            format!(
                "p50 {} p99 {}",
                show(p.latencies.p50()),
                show(p.latencies.p99())
            )
        };
        for (baseline, id, label) in [
            (
                &fred,
                "fred",
                "typed raw fred, fred's default configuration, pool of 4",
            ),
            (
                &redis_rs,
                "redis_rs",
                "typed redis-rs, one multiplexed connection",
            ),
        ] {
            let ratio = ours.rate() / baseline.rate();
            rows.push(
                Row::new(
                    &format!("l2.{name}.{id}"),
                    &format!("1. L2 `{name}`, cache vs {label}, {TASKS} tasks"),
                    Figure::rate(ours.rate()),
                )
                .baseline(Figure::rate(baseline.rate()), ratio)
                .target(&format!(">= {TARGET}x"), Status::met_if(ratio >= TARGET))
                .note(format!(
                    "process CPU per op ours {} theirs {}; latency ours {}, theirs {}",
                    show(ours.cpu_per_op()),
                    show(baseline.cpu_per_op()),
                    latency(&ours),
                    latency(baseline),
                )),
            );
        }
        rows.push(
            Row::new(
                &format!("l2.{name}.untyped"),
                &format!(
                    "1. L2 `{name}`, cache vs untyped raw fred on the cache's own connection (the cost of the cache itself)"
                ),
                Figure::rate(ours.rate()),
            )
            .baseline(Figure::rate(untyped.rate()), ours.rate() / untyped.rate())
            .target("information", Status::Info)
            .note(format!(
                "process CPU per op ours {} raw {}",
                show(ours.cpu_per_op()),
                show(untyped.cpu_per_op()),
            )),
        );
        rows.push(solo(&ctx, op, name, rounds, window).await?);
    }
    rows.extend(redis_benchmark(&server, mode).await?);
    Ok(rows)
}

/// A fred pool of [`POOL`] with fred's default configuration: what a user
/// who builds one by hand gets.
async fn fred_default_pool(server: &RedisServer) -> Result<Pool, String> {
    let config = FredConfig {
        server: ServerConfig::new_centralized(server.host(), server.port()),
        ..FredConfig::default()
    };
    let pool = Builder::from_config(config)
        .build_pool(POOL)
        .map_err(|e| format!("building a fred pool: {e}"))?;
    pool.init()
        .await
        .map_err(|e| format!("connecting fred: {e}"))?;
    Ok(pool)
}

/// The cache against typed fred with one task: no batch ever forms, so
/// this is the cost of the coalescer's task hop (information).
async fn solo(
    ctx: &Arc<Ctx>,
    op: Op,
    name: &str,
    rounds: usize,
    window: Duration,
) -> Result<Row, String> {
    let mut phases: Vec<Phase> = SOLO.iter().map(|_| Phase::default()).collect();
    for round in 0..rounds {
        for i in 0..SOLO.len() {
            let slot = (i + round) % SOLO.len();
            let measured = phase(ctx, op, SOLO[slot], 1, window).await?;
            phases[slot].absorb(&measured);
        }
    }
    let [ours, fred] = [0, 1].map(|i| phases[i].clone());
    Ok(Row::new(
        &format!("l2.{name}.one_task"),
        &format!("1. L2 `{name}`, cache vs typed raw fred (default configuration), 1 task"),
        Figure::rate(ours.rate()),
    )
    .baseline(Figure::rate(fred.rate()), ours.rate() / fred.rate())
    .target("information", Status::Info)
    .note(format!(
        "latency ours p50 {} p99 {}, theirs p50 {} p99 {}; process CPU per op ours {} theirs {}",
        show(ours.latencies.p50()),
        show(ours.latencies.p99()),
        show(fred.latencies.p50()),
        show(fred.latencies.p99()),
        show(ours.cpu_per_op()),
        show(fred.cpu_per_op()),
    )))
}

async fn phase(
    ctx: &Arc<Ctx>,
    op: Op,
    side: Side,
    tasks: u64,
    window: Duration,
) -> Result<Phase, String> {
    let ctx = ctx.clone();
    saturate(tasks, window, move |seq| {
        let ctx = ctx.clone();
        async move { one(&ctx, op, side, seq).await }
    })
    .await
}

/// The key index of call `seq` (`task * 10^9 + call`, see `saturate`):
/// each task walks the keys in order from its own offset, the tasks spread
/// evenly over them. Walking them all from key 0 in step (as `seq % KEYS`
/// did) made the 64 tasks ask for the same few keys at once, so a
/// coalesced batch repeated keys, which flatters a side that sends a
/// repeated key once.
fn key_of(seq: u64) -> u64 {
    let (task, call) = (seq / 1_000_000_000, seq % 1_000_000_000);
    (call + task * (KEYS / TASKS)) % KEYS
}

async fn one(ctx: &Ctx, op: Op, side: Side, seq: u64) -> Result<(), String> {
    let key = &ctx.keys[usize::try_from(key_of(seq)).unwrap_or(0)];
    let ttl = i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX);
    let decode = |bytes: &[u8]| {
        serde_json::from_slice::<Doc>(bytes)
            .map(drop)
            .map_err(|e| format!("decoding: {e}"))
    };
    let encode = || Bytes::from(serde_json::to_vec(&ctx.doc).expect("a Doc always encodes"));
    match (op, side) {
        (Op::Get, Side::Cache) => {
            let value: Option<Doc> = ctx
                .cache
                .get(key)
                .await
                .map_err(|e| format!("cache get: {e}"))?;
            value.map(drop).ok_or_else(|| "cache get missed".to_owned())
        }
        (Op::Get, Side::Fred) => {
            let value: Option<Bytes> = ctx
                .fred
                .get(key.as_str())
                .await
                .map_err(|e| format!("fred GET: {e}"))?;
            decode(&value.ok_or("fred GET missed")?)
        }
        (Op::Get, Side::RedisRs) => {
            let value: Option<Vec<u8>> = redis::cmd("GET")
                .arg(key.as_str())
                .query_async(&mut ctx.redis_rs.clone())
                .await
                .map_err(|e| format!("redis-rs GET: {e}"))?;
            decode(&value.ok_or("redis-rs GET missed")?)
        }
        (Op::Get, Side::Untyped) => {
            let value: Option<Bytes> = ctx
                .ours
                .get(key.as_str())
                .await
                .map_err(|e| format!("raw GET: {e}"))?;
            value.map(drop).ok_or_else(|| "raw GET missed".to_owned())
        }
        (Op::Set, Side::Cache) => ctx
            .cache
            .set(key, &ctx.doc, TTL)
            .await
            .map_err(|e| format!("cache set: {e}")),
        (Op::Set, Side::Fred) => ctx
            .fred
            .set::<(), _, _>(
                key.as_str(),
                encode(),
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .map_err(|e| format!("fred SET: {e}")),
        (Op::Set, Side::RedisRs) => redis::cmd("SET")
            .arg(key.as_str())
            .arg(encode().as_ref())
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(&mut ctx.redis_rs.clone())
            .await
            .map_err(|e| format!("redis-rs SET: {e}")),
        (Op::Set, Side::Untyped) => ctx
            .ours
            .set::<(), _, _>(
                key.as_str(),
                ctx.bytes.clone(),
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .map_err(|e| format!("raw SET: {e}")),
    }
}

/// `redis-benchmark -t get,set -c 50 -d 512` against the same server, when
/// it is installed: the reference for what the server gives a plain C
/// client. Information only.
async fn redis_benchmark(server: &RedisServer, mode: Mode) -> Result<Vec<Row>, String> {
    let requests = mode.pick(200_000, 20_000).to_string();
    let port = server.port().to_string();
    let host = server.host();
    let args = [
        "-h", &host, "-p", &port, "-t", "get,set", "-c", "50", "-d", "512", "-n", &requests,
        "--csv",
    ];
    let output = match tokio::process::Command::new("redis-benchmark")
        .args(args)
        .output()
        .await
    {
        Ok(output) if output.status.success() => output,
        Ok(output) => {
            return Err(format!(
                "redis-benchmark failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(vec![Row::skipped(
                "l2.redis_benchmark",
                "1. `redis-benchmark` (reference)",
                "information",
                "redis-benchmark not installed",
            )]);
        }
        Err(e) => return Err(format!("running redis-benchmark: {e}")),
    };
    let csv = String::from_utf8_lossy(&output.stdout);
    let parsed = parse_csv(&csv);
    if parsed.len() != 2 {
        return Err(format!("unexpected redis-benchmark output: {csv}"));
    }
    Ok(parsed
        .into_iter()
        .map(|line| {
            Row::new(
                &format!("l2.redis_benchmark.{}", line.test.to_ascii_lowercase()),
                &format!(
                    "1. `redis-benchmark -t {} -c 50 -d 512` (reference)",
                    line.test.to_ascii_lowercase()
                ),
                Figure::rate(line.rps),
            )
            .target("information", Status::Info)
            .note(format!(
                "latency p50 {} ms p99 {} ms",
                line.p50_ms, line.p99_ms
            ))
        })
        .collect())
}

#[derive(Debug, PartialEq)]
struct CsvLine {
    test: String,
    rps: f64,
    p50_ms: String,
    p99_ms: String,
}

/// Reads `redis-benchmark --csv` (7.x): a header, then one quoted line per
/// test: test, rps, avg, min, p50, p95, p99, max.
fn parse_csv(csv: &str) -> Vec<CsvLine> {
    csv.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
            Some(CsvLine {
                test: (*fields.first()?).to_owned(),
                rps: fields.get(1)?.parse().ok()?,
                p50_ms: (*fields.get(4)?).to_owned(),
                p99_ms: (*fields.get(6)?).to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_start_spread_over_the_keys_and_walk_them_in_order() {
        let at = |task: u64, call: u64| key_of(task * 1_000_000_000 + call);
        let starts: std::collections::HashSet<u64> = (0..TASKS).map(|t| at(t, 0)).collect();
        assert_eq!(
            starts.len(),
            usize::try_from(TASKS).unwrap(),
            "every task starts elsewhere"
        );
        assert_eq!(at(3, 1), at(3, 0) + 1);
        assert!((0..5 * KEYS).all(|call| at(TASKS - 1, call) < KEYS));
    }

    // redis-benchmark 7.0's CSV is read by column position.
    #[test]
    fn reads_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\",\"p50_latency_ms\",\"p95_latency_ms\",\"p99_latency_ms\",\"max_latency_ms\"\n\
                   \"SET\",\"97087.38\",\"0.287\",\"0.080\",\"0.271\",\"0.407\",\"0.551\",\"1.303\"\n\
                   \"GET\",\"99502.48\",\"0.280\",\"0.072\",\"0.263\",\"0.399\",\"0.527\",\"0.871\"\n";
        let lines = parse_csv(csv);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1].test, "GET");
        assert!((lines[1].rps - 99_502.48).abs() < 1e-6);
        assert_eq!(
            (lines[0].p50_ms.as_str(), lines[0].p99_ms.as_str()),
            ("0.271", "0.551")
        );
    }
}
