//! Workload 1, L2 throughput: `get` and `set` through the Redis-only cache
//! service with 64 concurrent tasks, against raw fred `GET`/`SET` of the
//! same bytes on the same pool, in the same process. Target: at least 0.9x
//! raw fred. `redis-benchmark` against the same server is printed beside as
//! what the server gives a plain client.
//!
//! Both sides send the same command: the cache writes `SET key value PX ttl`,
//! so raw fred does too, and the ratio is the cost of the cache itself
//! (JSON encoding and decoding of a typed value, statistics, tracing spans,
//! error mapping). Raw and cache phases alternate, and which goes first
//! alternates by round, so drift on a shared machine hits both alike.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_cache::CacheService;
use redis_connection::fred::clients::Pool;
use redis_connection::fred::interfaces::KeysInterface;
use redis_connection::fred::types::Expiration;
use shared_types::CacheKey;
use test_support::RedisServer;

use crate::drive::{Phase, saturate};
use crate::fixture::{Doc, Mode, TTL, connect, redis_only, shard_key};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const TASKS: u64 = 64;
const KEYS: u64 = 1_000;
const TARGET: f64 = 0.9;

struct Ctx {
    pool: Pool,
    cache: CacheService,
    keys: Vec<CacheKey>,
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
    Raw,
    Cache,
}

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let manager = connect(&server).await?;
    let doc = Doc::new(1);
    let ctx = Arc::new(Ctx {
        pool: manager.pool().clone(),
        cache: redis_only(manager),
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

    let rounds = mode.pick(6, 1);
    let window = mode.pick(Duration::from_secs(1), Duration::from_millis(250));
    let mut rows = Vec::new();
    for (op, name) in [(Op::Get, "get"), (Op::Set, "set")] {
        // Warm both paths (connections, allocator, branch predictors).
        for side in [Side::Raw, Side::Cache] {
            phase(&ctx, op, side, window / 4).await?;
        }
        let (mut raw, mut ours) = (Phase::default(), Phase::default());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Side::Raw, Side::Cache]
            } else {
                [Side::Cache, Side::Raw]
            };
            for side in order {
                let measured = phase(&ctx, op, side, window).await?;
                match side {
                    Side::Raw => raw.absorb(&measured),
                    Side::Cache => ours.absorb(&measured),
                }
            }
        }
        let ratio = ours.rate() / raw.rate();
        rows.push(
            Row::new(
                &format!("l2.{name}"),
                &format!("1. L2 `{name}`, cache vs raw fred, {TASKS} tasks"),
                Figure::rate(ours.rate()),
            )
            .baseline(Figure::rate(raw.rate()), ratio)
            .target(
                &format!(">= {TARGET}x raw fred"),
                Status::met_if(ratio >= TARGET),
            )
            .note(format!(
                "process CPU per op ours {} raw {}; latency ours p50 {} p99 {}, raw p50 {} p99 {}",
                show(ours.cpu_per_op()),
                show(raw.cpu_per_op()),
                show(ours.latencies.p50()),
                show(ours.latencies.p99()),
                show(raw.latencies.p50()),
                show(raw.latencies.p99()),
            )),
        );
    }
    rows.extend(redis_benchmark(&server, mode).await?);
    Ok(rows)
}

async fn phase(ctx: &Arc<Ctx>, op: Op, side: Side, window: Duration) -> Result<Phase, String> {
    let ctx = ctx.clone();
    saturate(TASKS, window, move |seq| {
        let ctx = ctx.clone();
        async move { one(&ctx, op, side, seq).await }
    })
    .await
}

async fn one(ctx: &Ctx, op: Op, side: Side, seq: u64) -> Result<(), String> {
    let key = &ctx.keys[usize::try_from(seq % KEYS).unwrap_or(0)];
    match (op, side) {
        (Op::Get, Side::Raw) => {
            let value: Option<Bytes> = ctx
                .pool
                .get(key.as_str())
                .await
                .map_err(|e| format!("raw GET: {e}"))?;
            value.map(drop).ok_or_else(|| "raw GET missed".to_owned())
        }
        (Op::Get, Side::Cache) => {
            let value: Option<Doc> = ctx
                .cache
                .get(key)
                .await
                .map_err(|e| format!("cache get: {e}"))?;
            value.map(drop).ok_or_else(|| "cache get missed".to_owned())
        }
        (Op::Set, Side::Raw) => {
            let ttl = i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX);
            ctx.pool
                .set::<(), _, _>(
                    key.as_str(),
                    ctx.bytes.clone(),
                    Some(Expiration::PX(ttl)),
                    None,
                    false,
                )
                .await
                .map_err(|e| format!("raw SET: {e}"))
        }
        (Op::Set, Side::Cache) => ctx
            .cache
            .set(key, &ctx.doc, TTL)
            .await
            .map_err(|e| format!("cache set: {e}")),
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
