//! Measures the hash-tag decision recorded in ARCHITECTURE.md ("Redis
//! Cluster"): should a tenant's keys share one hash slot
//! (`tenant:{t1}:shard:s1:structured`) or spread over all of them
//! (`tenant:t1:shard:s1:structured`, what shared-types builds)?
//!
//! For each layout it starts a fresh local 3-primary cluster (test-support's
//! `RedisCluster`, so it needs `redis-server` and `redis-cli`), writes 50 000
//! keys of 10 other tenants (always spread) and 100 000 keys of tenant `t1`
//! in that layout, prints how `t1`'s keys spread over the primaries, and
//! times `CacheService::flush_tenant` (our SCAN + UNLINK over every primary).
//! Three rounds per layout:
//!
//! ```sh
//! cargo run -p redis-cache --example cluster_hash_tags
//! ```
//!
//! RedisKey cannot hold braces (ids are validated), so the tagged keys are
//! written as `tenant:t1:{t1}:shard:s<n>:structured`: the slot comes from the
//! first `{...}` exactly as for `tenant:{t1}:...`, and `flush_tenant`'s
//! pattern `tenant:t1:*` matches them, so the deletion runs unchanged.

// A measurement program: printing its numbers is the point.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use redis_cache::{CacheConfig, CacheService};
use redis_connection::fred::interfaces::KeysInterface;
use redis_connection::fred::types::Expiration;
use redis_connection::{RedisConfig, RedisConnectionManager};
use shared_types::TenantId;
use test_support::RedisCluster;

const TENANT_KEYS: usize = 100_000;
const OTHER_TENANTS: usize = 10;
const KEYS_PER_OTHER_TENANT: usize = 5_000;
const ROUNDS: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Spread,
    HashTag,
}

impl Layout {
    fn key(self, tenant: &str, n: usize) -> String {
        match self {
            Layout::Spread => format!("tenant:{tenant}:shard:s{n}:structured"),
            Layout::HashTag => format!("tenant:{tenant}:{{{tenant}}}:shard:s{n}:structured"),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!(
        "tenant t1: {TENANT_KEYS} keys; background: {} keys of {OTHER_TENANTS} other tenants; \
         3 primaries; SCAN COUNT {}",
        OTHER_TENANTS * KEYS_PER_OTHER_TENANT,
        CacheConfig::default().scan_count
    );
    for layout in [Layout::Spread, Layout::HashTag] {
        let mut times = Vec::new();
        for round in 1..=ROUNDS {
            let (spread, took) = measure(layout).await?;
            if round == 1 {
                println!("{layout:?}: t1's keys per primary: {spread:?}");
            }
            times.push(took);
        }
        times.sort();
        println!(
            "{layout:?}: flush_tenant(t1) took {:?} (min {:?}, max {:?}, {ROUNDS} rounds)",
            times[ROUNDS / 2],
            times[0],
            times[ROUNDS - 1]
        );
    }
    Ok(())
}

/// One round: a fresh cluster, the keys, and one timed flush. Returns how
/// many of t1's keys each primary held, and the flush time.
async fn measure(layout: Layout) -> Result<(Vec<i64>, Duration), Box<dyn std::error::Error>> {
    let cluster = RedisCluster::start(3, 0).await;
    let manager =
        RedisConnectionManager::connect(RedisConfig::from_url(&cluster.seed_url())?).await?;
    let cache = CacheService::new(manager.clone(), CacheConfig::default().with_l1(None));
    for t in 0..OTHER_TENANTS {
        let tenant = format!("other{t}");
        let keys = (0..KEYS_PER_OTHER_TENANT).map(|n| Layout::Spread.key(&tenant, n));
        write(&manager, keys).await?;
    }
    let before = dbsizes(&cluster);
    write(&manager, (0..TENANT_KEYS).map(|n| layout.key("t1", n))).await?;
    let spread: Vec<i64> = dbsizes(&cluster)
        .iter()
        .zip(&before)
        .map(|(after, before)| after - before)
        .collect();

    let start = Instant::now();
    let deleted = cache.flush_tenant(&TenantId::new("t1")?).await?;
    let took = start.elapsed();
    assert_eq!(deleted, TENANT_KEYS as u64, "every key of t1 deleted");
    assert_eq!(
        cluster.dbsize_total(),
        (OTHER_TENANTS * KEYS_PER_OTHER_TENANT) as i64,
        "nothing else deleted"
    );
    manager.shutdown().await;
    Ok((spread, took))
}

/// `SET key 1 EX 3600` for every key, pipelined in batches (fred routes each
/// command to its slot's primary).
async fn write(
    manager: &RedisConnectionManager,
    keys: impl Iterator<Item = String>,
) -> Result<(), Box<dyn std::error::Error>> {
    let keys: Vec<String> = keys.collect();
    for batch in keys.chunks(5_000) {
        let pipeline = manager.client().pipeline();
        for key in batch {
            pipeline
                .set::<(), _, _>(key.as_str(), 1, Some(Expiration::EX(3600)), None, false)
                .await?;
        }
        for result in pipeline.try_all::<()>().await {
            result?;
        }
    }
    Ok(())
}

/// DBSIZE of each primary, in start order.
fn dbsizes(cluster: &RedisCluster) -> Vec<i64> {
    cluster
        .primaries()
        .into_iter()
        .map(|port| cluster.node_cmd(port, &["DBSIZE"]).as_int().unwrap_or(0))
        .collect()
}
