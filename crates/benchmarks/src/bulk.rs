//! Workload 3, bulk: `mget` and `mset` of 1 000 keys through the
//! Redis-only cache, against 1 000 sequential `get`/`set` calls of the same
//! keys. Target: at least 20x faster.
//!
//! Bulk and sequential batches alternate; each side's figure is the median
//! batch time, which a scheduler hiccup on a shared machine does not move.

use std::time::{Duration, Instant};

use redis_cache::{CacheService, Expiry};
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

    // mset first: it also seeds what the reads read.
    let (mut bulk, mut sequential) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        bulk.push(
            timed(Box::pin(cache.mset(&entries)))
                .await
                .map_err(|e| format!("mset: {e}"))?,
        );
        sequential.push(timed(Box::pin(set_each(&cache, &entries))).await?);
    }
    let mut rows = vec![row("mset", "`mset`", "`set`", &mut bulk, &mut sequential)];

    let (mut bulk, mut sequential) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (took, values) = timed_value(cache.mget::<Doc>(&keys)).await;
        let values = values.map_err(|e| format!("mget: {e}"))?;
        if values.iter().any(Option::is_none) {
            return Err("mget missed a key".to_owned());
        }
        bulk.push(took);
        sequential.push(timed(Box::pin(get_each(&cache, &keys))).await?);
    }
    rows.push(row("mget", "`mget`", "`get`", &mut bulk, &mut sequential));
    Ok(rows)
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
