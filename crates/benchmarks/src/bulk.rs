//! Workload 3, bulk: `mget` and `mset` of 1 000 keys through the
//! Redis-only cache, against 1 000 sequential `get`/`set` calls of the same
//! keys. Target: at least 20x faster.
//!
//! Bulk and sequential batches alternate; each side's figure is the median
//! batch time, which a scheduler hiccup on a shared machine does not move.
//! Beside them, in the same rounds, what fred alone does with the same bytes:
//! one `MGET` (the floor under the cache's `mget`) and a pipeline of `SET PX`
//! (the obvious fred batch write, slower than the cache's scripted `mset`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_cache::{CacheService, Expiry};
use redis_connection::fred::clients::Client;
use redis_connection::fred::interfaces::KeysInterface;
use redis_connection::fred::types::Expiration;
use shared_types::CacheKey;
use test_support::RedisServer;

use crate::drive::median;
use crate::fixture::{Doc, Mode, TTL, connect, redis_only, shard_key};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const KEYS: u64 = 1_000;
const TARGET: f64 = 20.0;

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let cache = redis_only(connect(&server).await?);
    let keys: Vec<CacheKey> = (0..KEYS).map(|i| shard_key("bulk", i)).collect();
    let entries: Vec<(CacheKey, Doc, Expiry)> = keys
        .iter()
        .zip(0..)
        .map(|(key, i)| (key.clone(), Doc::new(i), Expiry::After(TTL)))
        .collect();
    let rounds = mode.pick(25, 3);

    let pool = cache.manager().pool().clone();
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
    let mut rows = vec![row("mset", "`mset`", "`set`", &mut bulk, &mut sequential)];
    rows.push(floor(
        "mset",
        "pipelined `SET PX`",
        "what a fred pipeline gives; the cache sends Lua scripts instead",
        &mut raw,
        &mut sequential,
    ));

    let (mut bulk, mut sequential, mut raw) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (took, values) = timed_value(cache.mget::<Doc>(&keys)).await;
        let values = values.map_err(|e| format!("mget: {e}"))?;
        if values.iter().any(Option::is_none) {
            return Err("mget missed a key".to_owned());
        }
        bulk.push(took);
        sequential.push(timed(Box::pin(get_each(&cache, &keys))).await?);
        let (took, values) = timed_value(pool.mget::<Vec<Option<Bytes>>, _>(names.clone())).await;
        if values
            .map_err(|e| format!("raw MGET: {e}"))?
            .iter()
            .any(Option::is_none)
        {
            return Err("raw MGET missed a key".to_owned());
        }
        raw.push(took);
    }
    rows.push(row("mget", "`mget`", "`get`", &mut bulk, &mut sequential));
    rows.push(floor(
        "mget",
        "`MGET`",
        "the floor under the cache",
        &mut raw,
        &mut sequential,
    ));
    Ok(rows)
}

/// The reference row: fred alone, same keys, same bytes, same rounds.
fn floor(
    id: &str,
    what: &str,
    meaning: &str,
    raw: &mut [Duration],
    sequential: &mut [Duration],
) -> Row {
    let (raw, sequential) = (median(raw), median(sequential));
    let ratio = sequential.as_secs_f64() / raw.as_secs_f64();
    Row::new(
        &format!("bulk.{id}.raw_fred"),
        &format!("3. raw fred {what} of the same {KEYS} keys (reference: {meaning})"),
        Figure::time(raw),
    )
    .baseline(Figure::time(sequential), ratio)
    .target("information", Status::Info)
    .note("baseline: the cache's sequential calls")
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
        &format!(">= {TARGET:.0}x faster"),
        Status::met_if(ratio >= TARGET),
    )
    .note(format!(
        "per key: bulk {}, sequential {}",
        show(bulk / 1_000),
        show(sequential / 1_000)
    ))
}

async fn set_each(cache: &CacheService, entries: &[(CacheKey, Doc, Expiry)]) -> Result<(), String> {
    for (key, doc, expiry) in entries {
        cache
            .set(key, doc, *expiry)
            .await
            .map_err(|e| format!("set: {e}"))?;
    }
    Ok(())
}

async fn get_each(cache: &CacheService, keys: &[CacheKey]) -> Result<(), String> {
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
