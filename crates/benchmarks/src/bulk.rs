//! Workload 3, bulk: `mget` and `mset` of 1 000 keys through the
//! Redis-only cache, against what fred alone does with the same keys in the
//! same rounds (the floor, which moves with the machine as the cache does):
//! `mget` at least 0.8x one raw `MGET` decoding the same documents, `mset`
//! at least 1.0x a fred pipeline of `SET PX` (the obvious fred batch write).
//! For information, the ratio to 1 000 sequential `get`/`set` calls (once
//! the target: it moves ~10x with the loopback's cost between machines).
//!
//! A two-tier cache's `mget` of keys its L1 does not hold (fresh keys each
//! round) reads each key's value and TTL (to bound the L1 entry), one GET+PTTL
//! script call per 250 keys sent together: for information, against one raw
//! `MGET` of the same keys.
//!
//! The sides alternate; each side's figure is the median batch time, which
//! a scheduler hiccup on a shared machine does not move.

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_cache::{CacheService, Expiry};
use redis_connection::fred::clients::Client;
use redis_connection::fred::interfaces::KeysInterface;
use redis_connection::fred::types::Expiration;
use shared_types::RedisKey;
use test_support::RedisServer;

use crate::drive::median;
use crate::fixture::{Doc, Mode, TTL, connect, redis_only, shard_key};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const KEYS: u64 = 1_000;
/// The former target against sequential calls, kept as information.
const SEQUENTIAL: f64 = 20.0;
const MGET_FLOOR: f64 = 0.8;
const MSET_FLOOR: f64 = 1.0;

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let cache = redis_only(connect(&server).await?);
    let keys: Vec<RedisKey> = (0..KEYS).map(|i| shard_key("bulk", i)).collect();
    let entries: Vec<(RedisKey, Doc, Expiry)> = keys
        .iter()
        .zip(0..)
        .map(|(key, i)| (key.clone(), Doc::new(i), Expiry::After(TTL)))
        .collect();
    let rounds = mode.pick(25, 3);

    let client = cache.manager().client().clone();
    let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
    let value = Bytes::from(Doc::new(0).encode());

    // mset first: it also seeds what the reads read.
    let (mut bulk, mut sequential, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        bulk.push(
            timed(Box::pin(cache.mset(&entries)))
                .await
                .map_err(|e| format!("mset: {e}"))?,
        );
        sequential.push(timed(Box::pin(set_each(&cache, &entries))).await?);
        raw.push(timed(Box::pin(raw_pipeline(&client, &names, &value))).await?);
    }
    let mut rows = vec![floor(
        "mset",
        "`mset`",
        "a raw fred pipeline of `SET PX` (the obvious fred batch write)",
        MSET_FLOOR,
        &mut bulk,
        &mut raw,
    )];
    rows.push(row("mset", "`mset`", "`set`", &mut bulk, &mut sequential));

    let (mut bulk, mut sequential, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (took, values) = timed_value(cache.mget::<Doc>(&keys)).await;
        let values = values.map_err(|e| format!("mget: {e}"))?;
        if values.iter().any(Option::is_none) {
            return Err("mget missed a key".to_owned());
        }
        bulk.push(took);
        sequential.push(timed(Box::pin(get_each(&cache, &keys))).await?);
        let (took, values) = timed_value(raw_mget(&client, &names)).await;
        values?;
        raw.push(took);
    }
    rows.push(floor(
        "mget",
        "`mget`",
        "one raw fred `MGET`, each document decoded",
        MGET_FLOOR,
        &mut bulk,
        &mut raw,
    ));
    rows.push(row("mget", "`mget`", "`get`", &mut bulk, &mut sequential));
    rows.push(two_tier_mget(&server, &cache, &client, rounds).await?);
    Ok(rows)
}

/// A two-tier `mget` of keys its L1 misses (a fresh set each round, written
/// through the Redis-only `cache` first) against one raw `MGET` of them.
async fn two_tier_mget(
    server: &RedisServer,
    cache: &CacheService,
    client: &Client,
    rounds: usize,
) -> Result<Row, String> {
    let two_tier = crate::fixture::two_tier(server).await;
    let (mut ours, mut raw) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let tenant = format!("bulk-l1-{round}");
        let keys: Vec<RedisKey> = (0..KEYS).map(|i| shard_key(&tenant, i)).collect();
        let entries: Vec<(RedisKey, Doc, Expiry)> = keys
            .iter()
            .zip(0..)
            .map(|(key, i)| (key.clone(), Doc::new(i), Expiry::After(TTL)))
            .collect();
        cache
            .mset(&entries)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
        let names: Vec<String> = keys.iter().map(|k| k.as_str().to_owned()).collect();
        let (took, values) = timed_value(raw_mget(client, &names)).await;
        values?;
        raw.push(took);
        let (took, values) = timed_value(two_tier.mget::<Doc>(&keys)).await;
        let values = values.map_err(|e| format!("two-tier mget: {e}"))?;
        if values.iter().any(Option::is_none) {
            return Err("two-tier mget missed a key".to_owned());
        }
        ours.push(took);
    }
    let (ours, raw) = (median(&mut ours), median(&mut raw));
    Ok(Row::new(
        "bulk.mget.two_tier",
        &format!(
            "3. two-tier `mget` of {KEYS} keys the L1 misses (GET+PTTL script) vs one raw fred `MGET`, each document decoded (median batch time)"
        ),
        Figure::time(ours),
    )
    .baseline(Figure::time(raw), raw.as_secs_f64() / ours.as_secs_f64())
    .target("information", Status::Info))
}

/// The target row: the cache against fred alone, same keys, same rounds;
/// the ratio is how fast the cache is relative to fred (raw time over ours).
fn floor(
    id: &str,
    ours_name: &str,
    what: &str,
    target: f64,
    bulk: &mut [Duration],
    raw: &mut [Duration],
) -> Row {
    let (bulk, raw) = (median(bulk), median(raw));
    let ratio = raw.as_secs_f64() / bulk.as_secs_f64();
    Row::new(
        &format!("bulk.{id}.floor"),
        &format!("3. {ours_name} of {KEYS} keys vs {what} (median batch time)"),
        Figure::time(bulk),
    )
    .baseline(Figure::time(raw), ratio)
    .target(
        &format!(">= {target}x fred"),
        Status::met_if(ratio >= target),
    )
}

/// One `MGET` of `names` through fred, each document decoded as a user of
/// fred would.
async fn raw_mget(client: &Client, names: &[String]) -> Result<(), String> {
    let values: Vec<Option<Bytes>> = client
        .mget(names.to_vec())
        .await
        .map_err(|e| format!("raw MGET: {e}"))?;
    for value in values {
        let bytes = value.ok_or("raw MGET missed a key")?;
        let doc: Doc = serde_json::from_slice(&bytes).map_err(|e| format!("decoding: {e}"))?;
        black_box(doc);
    }
    Ok(())
}

/// `SET key value PX ttl` for every key, in one fred pipeline: the obvious
/// way to write a batch with fred, which the cache's `mset` does not take
/// (`redis-cache/src/mset.rs` says why).
async fn raw_pipeline(client: &Client, names: &[String], value: &Bytes) -> Result<(), String> {
    let ttl = i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX);
    let pipeline = client.pipeline();
    for name in names {
        pipeline
            .set::<(), _, _>(
                name.as_str(),
                value.clone(),
                Some(Expiration::PX(ttl)),
                None,
                false,
            )
            .await
            .map_err(|e| format!("queueing SET: {e}"))?;
    }
    for result in pipeline.try_all::<()>().await {
        result.map_err(|e| format!("raw SET: {e}"))?;
    }
    Ok(())
}

fn row(
    id: &str,
    bulk_name: &str,
    single_name: &str,
    bulk: &mut [Duration],
    sequential: &mut [Duration],
) -> Row {
    let (bulk, sequential) = (median(bulk), median(sequential));
    let ratio = sequential.as_secs_f64() / bulk.as_secs_f64();
    Row::new(
        &format!("bulk.{id}"),
        &format!(
            "3. {bulk_name} of {KEYS} keys vs {KEYS} sequential {single_name} (median batch time)"
        ),
        Figure::time(bulk),
    )
    .baseline(Figure::time(sequential), ratio)
    .target(
        &format!("information (was >= {SEQUENTIAL:.0}x faster)"),
        Status::Info,
    )
    .note(format!(
        "per key: bulk {}, sequential {}",
        show(bulk / 1_000),
        show(sequential / 1_000)
    ))
}

async fn set_each(cache: &CacheService, entries: &[(RedisKey, Doc, Expiry)]) -> Result<(), String> {
    for (key, doc, expiry) in entries {
        cache
            .set(key, doc, *expiry)
            .await
            .map_err(|e| format!("set: {e}"))?;
    }
    Ok(())
}

async fn get_each(cache: &CacheService, keys: &[RedisKey]) -> Result<(), String> {
    for key in keys {
        let value: Option<Doc> = cache.get(key).await.map_err(|e| format!("get: {e}"))?;
        value.ok_or("get missed")?;
    }
    Ok(())
}

async fn timed<E>(work: impl Future<Output = Result<(), E>>) -> Result<Duration, E> {
    let (took, result) = timed_value(work).await;
    result.map(|()| took)
}

async fn timed_value<T>(work: impl Future<Output = T>) -> (Duration, T) {
    let start = Instant::now();
    let value = work.await;
    (start.elapsed(), value)
}
