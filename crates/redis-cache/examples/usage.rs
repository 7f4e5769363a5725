//! The cache service in use: cache-aside for a user profile and shard data,
//! rate limiting, counters and pattern invalidation.
//!
//! Runs against the Redis named by the `REDIS_*` variables (by default
//! 127.0.0.1:6379): `cargo run -p redis-cache --example usage`. It only
//! touches keys of the tenant `example-tenant`, and removes them at the end.

// An example talks to its reader on stdout.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use redis_cache::{CacheConfig, CacheService};
use redis_connection::{RedisConfig, RedisConnectionManager};
use serde::{Deserialize, Serialize};
use shared_types::{CounterName, KeyPattern, RedisKey, ShardId, TenantId, TtlPolicy, UserId};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Profile {
    name: String,
    email: String,
}

/// Stands in for the database: the source of truth behind the cache.
async fn load_profile_from_database(user: &UserId) -> Profile {
    Profile {
        name: format!("User {user}"),
        email: format!("{user}@example.com"),
    }
}

/// Cache-aside: try the cache, fall back to the source, fill the cache.
async fn profile(
    cache: &CacheService,
    tenant: &TenantId,
    user: &UserId,
) -> Result<Profile, Box<dyn std::error::Error>> {
    let key = RedisKey::user_profile(tenant, user);
    if let Some(profile) = cache.get::<Profile>(&key).await? {
        println!("  profile of {user}: cache hit");
        return Ok(profile);
    }
    println!("  profile of {user}: cache miss, loading from the database");
    let profile = load_profile_from_database(user).await;
    // A failed write only costs a future miss: log it and carry on.
    if let Err(error) = cache.set(&key, &profile, TtlPolicy::user_profile()).await {
        println!("  could not cache the profile: {error}");
    }
    Ok(profile)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
    let cache = CacheService::new(manager.clone(), CacheConfig::from_env()?);
    let tenant = TenantId::new("example-tenant")?;
    let alice = UserId::new("alice")?;

    println!("1. cache-aside for a user profile");
    let first = profile(&cache, &tenant, &alice).await?;
    let second = profile(&cache, &tenant, &alice).await?;
    assert_eq!(first.email, second.email);

    println!("2. shard structured data, with the shard TTL policy (15 min ± 10 %)");
    let shards: Vec<ShardId> = ["eu-1", "eu-2", "us-1"]
        .iter()
        .map(|s| ShardId::new(*s))
        .collect::<Result<_, _>>()?;
    let entries: Vec<_> = shards
        .iter()
        .map(|s| {
            (
                RedisKey::shard_structured(&tenant, s),
                serde_json::json!({"shard": s.as_str(), "rows": 42}),
                cache.config().shard_ttl.into(),
            )
        })
        .collect();
    cache.mset(&entries).await?;
    let keys: Vec<_> = shards
        .iter()
        .map(|s| RedisKey::shard_structured(&tenant, s))
        .collect();
    let values: Vec<Option<serde_json::Value>> = cache.mget(&keys).await?;
    println!(
        "  mget of {} shards in one round trip: {values:?}",
        keys.len()
    );
    println!("  TTL of the first: {:?}", cache.ttl(&keys[0]).await?);

    println!("3. rate limiting: 5 logins per minute");
    let login = CounterName::new("login")?;
    let limit_key = RedisKey::rate_limit(&tenant, &alice, &login);
    for attempt in 1..=7 {
        let window = cache
            .increment_window(&limit_key, Duration::from_secs(60))
            .await?;
        let verdict = if window.count <= 5 {
            "allowed"
        } else {
            "refused"
        };
        println!(
            "  attempt {attempt}: {verdict} (count {}, resets in {:?})",
            window.count, window.resets_in
        );
    }

    println!("4. counters");
    let views = RedisKey::counter(&tenant, &CounterName::new("page-views")?);
    cache.increment(&views, 10).await?;
    println!("  page views: {}", cache.decrement(&views, 3).await?);

    println!("5. pattern invalidation");
    let acl_user = UserId::new("bob")?;
    for shard in &shards {
        cache
            .set(
                &RedisKey::acl(&tenant, &acl_user, shard),
                &true,
                TtlPolicy::acl(),
            )
            .await?;
    }
    let deleted = cache
        .delete_pattern(&KeyPattern::user_acl(&tenant, &acl_user))
        .await?;
    println!("  deleted {deleted} ACL entries of {acl_user}");
    let flushed = cache.flush_tenant(&tenant).await?;
    println!("  flushed {flushed} cached keys of {tenant} (sessions and counters stay)");

    println!("6. statistics: {:?}", cache.stats());
    println!("   server: {:?}", cache.server_stats().await?);

    // Leave nothing behind: the counters are state, so flush_tenant kept them.
    cache.delete(&limit_key).await?;
    cache.delete(&views).await?;
    manager.shutdown().await;
    Ok(())
}
