//! Every write path during an outage fred already knows about: each fails
//! as unavailable at once, not after the command timeout.

use std::future::Future;
use std::time::{Duration, Instant};

use redis_cache::{CacheConfig, CacheError, CacheService, Expiry, ReadMode};
use redis_connection::RedisConnectionManager;
use shared_types::{CounterName, Invalidation, KeyPattern, RedisKey};
use test_support::{RedisServer, wait_for};

use crate::{shard_key, tenant, user};

/// The command timeout these tests give the manager: long, so that a path
/// that waits it out cannot pass for one that failed fast.
const TIMEOUT: Duration = Duration::from_secs(10);

/// What "at once" means here: a fifth of the timeout, far above fred's own
/// check (no round trip) even on a loaded machine.
const FAST: Duration = Duration::from_secs(2);

/// The steps that did not fail fast (or did not fail as unavailable).
#[derive(Default)]
struct Slow(Vec<String>);

impl Slow {
    /// Runs `step`, and records it unless it failed as unavailable within
    /// [`FAST`].
    async fn check<T: std::fmt::Debug, F: Future<Output = Result<T, CacheError>>>(
        &mut self,
        what: &str,
        step: F,
    ) {
        // Boxed: a write's future is large, and this one holds it.
        let step = Box::pin(step);
        let start = Instant::now();
        // Given up on at twice the bound: a step that waits out the timeout
        // is reported without costing the whole timeout.
        let Ok(result) = tokio::time::timeout(FAST * 2, step).await else {
            self.0
                .push(format!("{what}: still waiting after {:?}", FAST * 2));
            return;
        };
        let took = start.elapsed();
        let unavailable = matches!(&result, Err(e) if e.is_unavailable());
        if !unavailable || took >= FAST {
            self.0.push(format!("{what}: {result:?} after {took:?}"));
        }
    }

    fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "with a {TIMEOUT:?} command timeout and every pooled connection down:\n{}",
            self.0.join("\n")
        );
    }
}

/// A manager on `redis` with the long [`TIMEOUT`].
async fn manager_on(redis: &RedisServer) -> RedisConnectionManager {
    let mut config = crate::redis_config(redis);
    config.command_timeout = TIMEOUT;
    RedisConnectionManager::connect(config).await.unwrap()
}

/// Stops `redis` and waits until fred sees every pooled connection down
/// (fred's fail-fast check reads its own connection state, which may
/// follow the loss later than the manager's status does).
async fn stop_and_wait_until_known(redis: &mut RedisServer, manager: &RedisConnectionManager) {
    redis.stop().await;
    wait_for(
        "every pooled connection to be down",
        Duration::from_secs(10),
        || async { manager.pool_connections().0 == 0 },
    )
    .await;
}

// Every write of a Redis-only cache and of a two-tier one (set of a key the
// tenant index already covers and of one it does not, delete, expire, mset,
// a key's and a pattern's invalidation, a tenant flush, counters, sets of
// members), and the reads beside them (members, the operators' reads),
// fails as unavailable well within a fraction of a long timeout.
#[tokio::test]
async fn every_write_fails_fast_during_a_known_outage() {
    let mut redis = RedisServer::start().await;
    let manager = manager_on(&redis).await;
    let strict = CacheConfig::default()
        .with_l1(None)
        .with_read_mode(ReadMode::Strict);
    let cache = CacheService::new(manager.clone(), strict);
    let pubsub = redis_pubsub::PubSub::new(manager.clone()).await.unwrap();
    let two_tier = test_support::fixtures::two_tier_with(
        manager.clone(),
        pubsub,
        test_support::fixtures::two_tier_config().with_read_mode(ReadMode::Strict),
    )
    .await;
    let t = tenant("t");
    let (indexed, fresh) = (shard_key("t", "indexed"), shard_key("t", "fresh"));
    let minute = Duration::from_secs(60);
    // Indexed before the outage: a rewrite skips the index update.
    cache.set(&indexed, &1, minute).await.unwrap();
    two_tier.set(&indexed, &1, minute).await.unwrap();
    let counter = RedisKey::counter(&t, &CounterName::new("c").unwrap());
    let members = RedisKey::user_sessions(&t, &user("u"));

    stop_and_wait_until_known(&mut redis, &manager).await;
    let mut slow = Slow::default();
    let batch = [
        (indexed.clone(), 2, Expiry::After(minute)),
        (fresh.clone(), 2, Expiry::After(minute)),
    ];
    let pattern = KeyPattern::tenant_acl(&t);
    for (name, c) in [("redis-only", &cache), ("two-tier", &two_tier)] {
        let step = |what: &str| format!("{name} {what}");
        slow.check(&step("set (indexed)"), c.set(&indexed, &2, minute))
            .await;
        slow.check(&step("set (not indexed)"), c.set(&fresh, &2, minute))
            .await;
        slow.check(&step("delete"), c.delete(&indexed)).await;
        slow.check(&step("expire (indexed)"), c.expire(&indexed, minute))
            .await;
        slow.check(&step("expire (not indexed)"), c.expire(&fresh, minute))
            .await;
        slow.check(&step("mset"), c.mset(&batch)).await;
        let key_change = Invalidation::for_key(&indexed).unwrap();
        slow.check(&step("invalidate (key)"), c.invalidate(&key_change))
            .await;
        slow.check(&step("delete_pattern"), c.delete_pattern(&pattern))
            .await;
        slow.check(
            &step("delete_pattern_by_scan"),
            c.delete_pattern_by_scan(&pattern),
        )
        .await;
        slow.check(&step("flush_tenant"), c.flush_tenant(&t)).await;
        slow.check(&step("increment"), c.increment(&counter, 1))
            .await;
        slow.check(&step("decrement"), c.decrement(&counter, 1))
            .await;
        slow.check(
            &step("increment_window"),
            c.increment_window(&counter, minute),
        )
        .await;
        slow.check(&step("add_member"), c.add_member(&members, "m", minute))
            .await;
        slow.check(
            &step("remove_members"),
            c.remove_members(&members, vec!["m".to_owned()]),
        )
        .await;
        slow.check(&step("members"), c.members(&members)).await;
        // The operators' reads (cache-admin) too.
        slow.check(&step("key_info"), c.key_info(&indexed)).await;
        slow.check(&step("tenant_indexed_keys"), c.tenant_indexed_keys(&t))
            .await;
        slow.check(&step("indexed_ttls"), c.indexed_ttls(&pattern, 100))
            .await;
    }
    slow.assert_none();
}

// A get_or_load whose Redis goes away while its loader runs returns the
// loaded value at once: the write-back (under the load lease) fails fast,
// on a Redis-only cache and on a two-tier one.
#[tokio::test]
async fn a_write_back_fails_fast_when_the_outage_began_during_the_load() {
    let mut redis = RedisServer::start().await;
    let manager = manager_on(&redis).await;
    let redis_only = CacheService::new(manager.clone(), CacheConfig::default().with_l1(None));
    let pubsub = redis_pubsub::PubSub::new(manager.clone()).await.unwrap();
    let two_tier = test_support::fixtures::two_tier_with(
        manager.clone(),
        pubsub,
        test_support::fixtures::two_tier_config(),
    )
    .await;
    // Each load claims its lease, then waits in its loader for the outage.
    let mut loads = Vec::new();
    for (name, cache) in [("redis-only", redis_only), ("two-tier", two_tier)] {
        let key = shard_key("t", name);
        let (started, loading) = tokio::sync::oneshot::channel::<()>();
        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let errors_before = cache.stats().errors;
        let load = tokio::spawn({
            let cache = cache.clone();
            async move {
                let loader = move || async move {
                    started.send(()).unwrap();
                    released.await.unwrap();
                    Ok::<u32, std::io::Error>(5)
                };
                cache
                    .get_or_load(&key, Duration::from_secs(60), loader)
                    .await
            }
        });
        loading.await.unwrap();
        loads.push((name, cache, errors_before, release, load));
    }

    stop_and_wait_until_known(&mut redis, &manager).await;
    let mut slow = Vec::new();
    for (name, cache, errors_before, release, load) in loads {
        let start = Instant::now();
        release.send(()).unwrap();
        let loaded = load.await.unwrap();
        let took = start.elapsed();
        assert_eq!(loaded.unwrap(), 5, "{name}: the loaded value");
        // The write-back was tried, in the outage, and failed.
        assert!(
            cache.stats().errors > errors_before,
            "{name}: no write-back error"
        );
        if took >= FAST {
            slow.push(format!("{name} get_or_load write-back: {took:?}"));
        }
    }
    assert!(slow.is_empty(), "with a {TIMEOUT:?} timeout: {slow:?}");
}
