//! Workload 4, pattern invalidation: `delete_pattern` removing 100 000
//! matching keys out of 1 000 000, while another client measures `GET`
//! latency on other keys the whole time. Targets: done within 2 s, and the
//! concurrent GETs' p99 under 5 ms. Beside it, what `KEYS pattern` + `DEL`
//! (the approach the project refuses) does to the same GETs.
//!
//! The other 900 000 keys are made by `DEBUG POPULATE` (512-byte values,
//! another tenant's prefix); the matching ones through the cache's `mset`
//! (which keeps the tenant's key index that `delete_pattern` reads), and for
//! `KEYS` + `DEL` by pipelined `MSET`s.
//!
//! The prober is another client sending 5 000 GETs per second to the other
//! keys, open-loop and pipelined, each timed from when it was due (see
//! `probe.rs`).

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_cache::{CacheService, Expiry};
use redis_connection::fred::clients::Client;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface, ServerInterface};
use redis_connection::fred::types::{ClusterHash, CustomCommand, Key};
use shared_types::KeyPattern;
use test_support::RedisServer;

use crate::fixture::{Doc, Mode, TTL, connect, connect_with, redis_only, shard_key, tenant};
use crate::latency::show;
use crate::probe::Prober;
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
    // Seeding and the refused KEYS + DEL block the server for seconds: on a
    // connection with the default timeout fred would declare it
    // unresponsive (at twice the command timeout) and drop it.
    let admin_manager = connect_with(&server, |c| c.command_timeout = SLOW_COMMAND).await?;
    let admin = admin_manager.client().clone();
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
    seed_through(&cache, matching).await?;
    // The values, and the victim's key index.
    expect_keys(&admin, total + 1).await?;

    // The idle server, for reference.
    let prober = Prober::start(&server.addr(), PROBE_EVERY, other_key(others))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let calm = prober.finish().await?;

    let prober = Prober::start(&server.addr(), PROBE_EVERY, other_key(others))?;
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
    // The others, and the victim's key index (it expires with its members).
    expect_keys(&admin, others + 1).await?;

    // The refused approach, on the same data.
    seed_matching(&admin, matching).await?;
    expect_keys(&admin, total + 1).await?;
    let prober = Prober::start(&server.addr(), PROBE_EVERY, other_key(others))?;
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
            "GETs at 5000/s, pipelined, timed from when due; during delete_pattern max {}; during KEYS+DEL max {}; idle p50 {} p99 {}",
            show(ours.max()),
            show(refused.max()),
            show(calm.p50()),
            show(calm.p99()),
        )),
    ])
}

/// The prober's keys: a stride through the other keys, so reads spread.
fn other_key(others: u64) -> impl Fn(u64) -> String + Send + 'static {
    move |i| format!("{OTHERS}:{}", (i * 7_919) % others)
}

/// Writes the `matching` keys through the cache, in `mset`s of 1 000.
async fn seed_through(cache: &CacheService, matching: u64) -> Result<(), String> {
    let mut start = 0;
    while start < matching {
        let end = (start + 1_000).min(matching);
        let entries: Vec<_> = (start..end)
            .map(|i| (shard_key("victim", i), Doc::new(i), Expiry::After(TTL)))
            .collect();
        cache
            .mset(&entries)
            .await
            .map_err(|e| format!("mset: {e}"))?;
        start = end;
    }
    Ok(())
}

/// Writes the `matching` keys, `tenant:victim:shard:s{i}:structured`, with
/// 512-byte values: MSETs of 1 000 keys, all in flight at once.
async fn seed_matching(client: &Client, matching: u64) -> Result<(), String> {
    let value = Bytes::from(Doc::new(0).encode());
    let pipeline = client.pipeline();
    let mut start = 0;
    while start < matching {
        let end = (start + 1_000).min(matching);
        let batch: Vec<(String, Bytes)> = (start..end)
            .map(|i| (shard_key("victim", i).as_str().to_owned(), value.clone()))
            .collect();
        pipeline
            .mset(batch)
            .await
            .map_err(|e| format!("queueing MSET: {e}"))?;
        start = end;
    }
    pipeline.all::<()>().await.map_err(|e| format!("MSET: {e}"))
}

async fn expect_keys(admin: &Client, expected: u64) -> Result<(), String> {
    let keys: u64 = admin.dbsize().await.map_err(|e| format!("DBSIZE: {e}"))?;
    if keys == expected {
        Ok(())
    } else {
        Err(format!("the server holds {keys} keys, expected {expected}"))
    }
}
