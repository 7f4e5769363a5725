//! TTLs written by each policy, observed in Redis.

use std::time::Duration;

use redis_cache::Expiry;
use shared_types::{QueryHash, RedisKey, TtlPolicy};
use test_support::RedisServer;

use crate::{cache_on, pttl, shard, tenant, user};

// Each family's policy writes a TTL within its jitter bounds, and jitter varies.
#[tokio::test]
async fn policies_within_jitter_bounds() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let t = tenant("t1");
    type KeyFor<'a> = Box<dyn Fn(usize) -> RedisKey + 'a>;
    let cases: Vec<(TtlPolicy, KeyFor<'_>)> = vec![
        (
            TtlPolicy::shard_structured(),
            Box::new(|i| RedisKey::shard_structured(&t, &shard(&format!("s{i}")))),
        ),
        (
            TtlPolicy::user_profile(),
            Box::new(|i| RedisKey::user_profile(&t, &user(&format!("u{i}")))),
        ),
        (
            TtlPolicy::acl(),
            Box::new(|i| RedisKey::acl(&t, &user(&format!("u{i}")), &shard("s"))),
        ),
        (
            TtlPolicy::vector_search(),
            Box::new(|i| RedisKey::vector_search(&t, &QueryHash::of_query(&format!("q{i}")))),
        ),
        (
            TtlPolicy::shard_structured_with(Duration::from_secs(1800)).unwrap(),
            Box::new(|i| RedisKey::shard_structured(&t, &shard(&format!("long{i}")))),
        ),
    ];
    for (policy, key_for) in cases {
        let (min, max) = policy.bounds();
        let mut seen = Vec::new();
        for i in 0..20 {
            let key = key_for(i);
            cache.set(&key, &i, policy).await.unwrap();
            let ttl = pttl(&redis, &key);
            // PTTL may have ticked down a few ms since the write.
            let lower = i64::try_from(min.as_millis()).unwrap() - 1000;
            let upper = i64::try_from(max.as_millis()).unwrap();
            assert!(
                (lower..=upper).contains(&ttl),
                "{policy:?}: ttl {ttl} outside {min:?}..={max:?}"
            );
            seen.push(ttl / 1000);
        }
        seen.sort_unstable();
        seen.dedup();
        assert!(seen.len() > 1, "{policy:?}: jitter never varied");
    }
}

// A session policy writes exactly its lifetime, without jitter.
#[tokio::test]
async fn session_policy_is_exact() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let key = RedisKey::session(&tenant("t1"), &shared_types::TokenHash::of_token("x"));
    cache.set(&key, &"s", TtlPolicy::session()).await.unwrap();
    let ttl = pttl(&redis, &key);
    assert!(
        (9 * 3_600_000 - 1000..=9 * 3_600_000).contains(&ttl),
        "{ttl}"
    );
    cache
        .set(&key, &"s", Expiry::After(Duration::from_millis(1500)))
        .await
        .unwrap();
    assert!((500..=1500).contains(&pttl(&redis, &key)));
}
