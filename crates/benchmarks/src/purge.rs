//! Workload 9, tenant purge: `flush_tenant` of a tenant holding 100 keys
//! among 1 000 000 keys of 1 000 tenants. Targets: at most 10 commands
//! (the work is the tenant's keys: its index pages and their UNLINKs, not a
//! walk of the keyspace) and done within 50 ms. Beside it, the same purge
//! by `SCAN` (`delete_pattern_by_scan`, `CACHE_PURGE_MODE=scan`), which is
//! what every purge cost before the tenant key index.
//!
//! The other tenants' keys are made by `DEBUG POPULATE` (one call per
//! tenant, 512-byte values, the tenant's own `tenant:{t}:shard` prefix); the
//! purged tenant's through the cache (`mset`), which keeps its index. The
//! purge reads only its own tenant's index, so whether the others are
//! indexed does not change what it does. Commands are counted by the
//! server (`INFO stats`), the counting calls excluded.

use std::time::{Duration, Instant};

use redis_cache::Expiry;
use redis_connection::fred::clients::Client;
use redis_connection::fred::interfaces::{ClientLike, ServerInterface};
use redis_connection::fred::types::{ClusterHash, CustomCommand, InfoKind};
use shared_types::KeyPattern;
use test_support::RedisServer;

use crate::fixture::{Doc, Mode, TTL, connect, connect_with, redis_only, shard_key, tenant};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const TIME_TARGET: Duration = Duration::from_millis(50);
const COMMANDS_TARGET: u64 = 10;
/// Keys of the purged tenant.
const SMALL: u64 = 100;
/// Seeding writes a million keys, far longer than a service's timeout.
const SLOW_COMMAND: Duration = Duration::from_secs(120);

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let tenants: u64 = mode.pick(1_000, 100);
    let per_tenant: u64 = 1_000;
    let server = RedisServer::builder()
        .args(["--enable-debug-command", "yes"])
        .start()
        .await;
    let cache = redis_only(connect(&server).await?);
    let admin_manager = connect_with(&server, |c| c.command_timeout = SLOW_COMMAND).await?;
    let admin = admin_manager.client().clone();

    let populate = CustomCommand::new_static("DEBUG", ClusterHash::Random, false);
    for t in 0..tenants - 1 {
        admin
            .custom::<(), _>(
                populate.clone(),
                vec![
                    "POPULATE".to_owned(),
                    per_tenant.to_string(),
                    format!("tenant:t{t}:shard"),
                    "512".to_owned(),
                ],
            )
            .await
            .map_err(|e| format!("DEBUG POPULATE: {e}"))?;
    }
    let others: u64 = admin.dbsize().await.map_err(|e| format!("DBSIZE: {e}"))?;
    let total = others + SMALL;
    let small = tenant("small");
    let seed = || async {
        let entries: Vec<_> = (0..SMALL)
            .map(|i| (shard_key("small", i), Doc::new(i), Expiry::After(TTL)))
            .collect();
        cache.mset(&entries).await.map_err(|e| format!("mset: {e}"))
    };

    seed().await?;
    let before = processed(&admin).await?;
    let start = Instant::now();
    let deleted = cache
        .flush_tenant(&small)
        .await
        .map_err(|e| format!("flush_tenant: {e}"))?;
    let ours_took = start.elapsed();
    let ours_commands = processed(&admin).await? - before - 1;
    if deleted != SMALL {
        return Err(format!(
            "flush_tenant deleted {deleted} keys, expected {SMALL}"
        ));
    }

    seed().await?;
    let before = processed(&admin).await?;
    let start = Instant::now();
    let scanned = cache
        .delete_pattern_by_scan(&KeyPattern::tenant_cache(&small))
        .await
        .map_err(|e| format!("delete_pattern_by_scan: {e}"))?;
    let scan_took = start.elapsed();
    let scan_commands = processed(&admin).await? - before - 1;
    if scanned != SMALL {
        return Err(format!(
            "the SCAN purge deleted {scanned} keys, expected {SMALL}"
        ));
    }

    let scale = format!("{SMALL} keys among {total} of {tenants} tenants");
    Ok(vec![
        Row::new(
            "purge.time",
            &format!("9. `flush_tenant` of {scale} (beside: by SCAN)"),
            Figure::time(ours_took),
        )
        .beside(Figure::time(scan_took))
        .target(
            &format!("< {}", show(TIME_TARGET)),
            Status::met_if(ours_took < TIME_TARGET),
        ),
        Row::new(
            "purge.commands",
            "9. Redis commands of that purge (beside: by SCAN)",
            Figure::count(ours_commands),
        )
        .beside(Figure::count(scan_commands))
        .target(
            &format!("<= {COMMANDS_TARGET}"),
            Status::met_if(ours_commands <= COMMANDS_TARGET),
        )
        .note("counted by the server (INFO stats), the counting calls excluded"),
    ])
}

/// `total_commands_processed` of the server.
async fn processed(admin: &Client) -> Result<u64, String> {
    let info: String = admin
        .info(Some(InfoKind::Stats))
        .await
        .map_err(|e| format!("INFO: {e}"))?;
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| "INFO stats has no total_commands_processed".to_owned())
}
