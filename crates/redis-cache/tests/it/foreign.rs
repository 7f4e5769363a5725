//! Invalidations from clients that are not this layer: the TypeScript
//! services (`@castiel/redis-utils` on ioredis) and `redis-cli`. Their
//! channel names what changed; whatever their payload, it is applied.

use std::time::Duration;

use redis_cache::CacheService;
use test_support::{RedisServer, wait_for};

use crate::two_tier::{TTL, pair};
use crate::{shard_key, user};

/// How long another instance may keep serving a value after its
/// invalidation was published (the issue's bound).
const PROPAGATION: Duration = Duration::from_secs(1);

/// Puts `value` in both instances' L1 under `key` (written by `a`, read
/// twice by `b`).
async fn cached_in_both(
    a: &CacheService,
    b: &CacheService,
    key: &shared_types::RedisKey,
    value: u32,
) {
    a.set(key, &value, TTL).await.unwrap();
    wait_for("B to read A's write", PROPAGATION, || async {
        b.get::<u32>(key).await.unwrap() == Some(value)
    })
    .await;
    assert_eq!(b.get::<u32>(key).await.unwrap(), Some(value));
}

// A message on an invalidation channel evicts what the channel names from
// every instance's L1 (the writer's too), whatever its payload: the
// TypeScript package's, not JSON, empty, oversize, or ours claiming
// something else.
#[tokio::test]
async fn any_payload_on_an_invalidation_channel_evicts_what_the_channel_names() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t1", "s1");
    let channel = "cache:invalidate:shard:t1:s1";
    let huge = format!("{{\"pad\":\"{}\"}}", "x".repeat(64 * 1024));
    let payloads = [
        r#"{"tenantId":"t1","type":"shard","id":"s1","timestamp":1}"#.to_owned(),
        r#"{"tenantId":"t1","resourceType":"shard","resourceId":"s1","timestamp":"2025-01-01T00:00:00.000Z"}"#.to_owned(),
        "not json".to_owned(),
        String::new(),
        huge,
        r#"{"kind":"shard","tenant_id":"t1","shard_id":"s2","origin":"x","ts":1}"#.to_owned(),
    ];
    let mut value = 1;
    cached_in_both(&a, &b, &key, value).await;
    for payload in &payloads {
        // Redis changes behind both instances' backs: without the message
        // they keep serving the old value from their L1.
        value += 1;
        redis.cmd(&["SET", key.as_str(), &value.to_string(), "KEEPTTL"]);
        for cache in [&a, &b] {
            assert_eq!(cache.get::<u32>(&key).await.unwrap(), Some(value - 1));
        }
        redis.cmd(&["PUBLISH", channel, payload]);
        for cache in [&a, &b] {
            wait_for(
                &format!("the payload {payload:.40?} to evict the key"),
                PROPAGATION,
                || async { cache.get::<u32>(&key).await.unwrap() == Some(value) },
            )
            .await;
            // Read again: the new value is what the L1 holds now.
            assert_eq!(cache.get::<u32>(&key).await.unwrap(), Some(value));
        }
    }
    for cache in [&a, &b] {
        let stats = cache.stats();
        assert_eq!((stats.foreign_payloads, stats.malformed_messages), (6, 0));
    }
}

// The channel is authoritative: a payload claiming a wider invalidation
// (the whole tenant) neither widens nor redirects what is evicted.
#[tokio::test]
async fn a_payload_claiming_another_invalidation_does_not_widen_it() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let (named, other) = (shard_key("t1", "s1"), shard_key("t1", "s2"));
    cached_in_both(&a, &b, &named, 1).await;
    cached_in_both(&a, &b, &other, 1).await;
    for key in [&named, &other] {
        redis.cmd(&["SET", key.as_str(), "2", "KEEPTTL"]);
    }
    redis.cmd(&[
        "PUBLISH",
        "cache:invalidate:shard:t1:s1",
        r#"{"kind":"tenant","tenant_id":"t1","origin":"x","ts":1}"#,
    ]);
    wait_for("the named key to be evicted", PROPAGATION, || async {
        b.get::<u32>(&named).await.unwrap() == Some(2)
    })
    .await;
    assert_eq!(
        b.get::<u32>(&other).await.unwrap(),
        Some(1),
        "a key the channel does not name was evicted"
    );
}

// A channel that does not parse (glob characters, a bad tenant id, a
// known kind without its id, no tenant at all) names nothing: it is
// counted as malformed and evicts nothing.
#[tokio::test]
async fn a_channel_that_does_not_parse_is_counted_and_ignored() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let key = shard_key("t1", "s1");
    cached_in_both(&a, &b, &key, 1).await;
    redis.cmd(&["SET", key.as_str(), "2", "KEEPTTL"]);
    let payload = r#"{"tenantId":"t1","type":"shard","id":"s1","timestamp":1}"#;
    let channels = [
        "cache:invalidate:shard:t1:s?",
        "cache:invalidate:shard:t 1:s1",
        "cache:invalidate:shard:t1",
        "cache:invalidate:teleport",
    ];
    for channel in channels {
        redis.cmd(&["PUBLISH", channel, payload]);
    }
    wait_for("every message to be counted", PROPAGATION, || async {
        b.stats().malformed_messages == 4
    })
    .await;
    assert_eq!(b.get::<u32>(&key).await.unwrap(), Some(1), "evicted anyway");
    assert!(b.l1_live());
}

// The seed's channels without an id (`cache:invalidate:shard:{t}:*`,
// `...:user:{t}:*`, what its `invalidate(tenant, kind)` sends) evict every
// key of that family and tenant, and nothing else.
#[tokio::test]
async fn a_seed_channel_for_a_whole_family_evicts_that_family_of_the_tenant() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let shards = [shard_key("t1", "s1"), shard_key("t1", "s2")];
    let profile = shared_types::RedisKey::user_profile(&crate::tenant("t1"), &user("u1"));
    let other_tenant = shard_key("t2", "s1");
    for key in shards.iter().chain([&profile, &other_tenant]) {
        cached_in_both(&a, &b, key, 1).await;
        redis.cmd(&["SET", key.as_str(), "2", "KEEPTTL"]);
    }
    redis.cmd(&["PUBLISH", "cache:invalidate:shard:t1:*", "{}"]);
    for key in &shards {
        wait_for("every shard of t1 to be evicted", PROPAGATION, || async {
            b.get::<u32>(key).await.unwrap() == Some(2)
        })
        .await;
    }
    assert_eq!(b.get::<u32>(&profile).await.unwrap(), Some(1));
    assert_eq!(b.get::<u32>(&other_tenant).await.unwrap(), Some(1));

    redis.cmd(&["PUBLISH", "cache:invalidate:user:t1:*", "{}"]);
    wait_for("the profiles of t1 to be evicted", PROPAGATION, || async {
        b.get::<u32>(&profile).await.unwrap() == Some(2)
    })
    .await;
    assert_eq!(b.get::<u32>(&other_tenant).await.unwrap(), Some(1));
}

// Mixed versions during a rolling deploy: an invalidation from a newer
// version of this layer (a payload in a newer wire format, or a channel of
// a kind this version does not know) cannot be read, so every instance
// drops the whole tenant the channel names from its L1, and counts it.
// Other tenants keep their L1 entries.
#[tokio::test]
async fn an_invalidation_from_a_newer_version_drops_its_tenant_from_the_l1() {
    let redis = RedisServer::start().await;
    let (a, b) = pair(&redis).await;
    let t1 = [
        shard_key("t1", "s1"),
        shard_key("t1", "s2"),
        shared_types::RedisKey::user_profile(&crate::tenant("t1"), &user("u1")),
    ];
    let t2 = shard_key("t2", "s1");
    let newer = redis_cache::WIRE_VERSION + 1;
    let messages = [
        (
            "cache:invalidate:shard:t1:s1".to_owned(),
            format!(r#"{{"v":{newer},"keys":["s1"],"origin":"future","ts":1}}"#),
        ),
        ("cache:invalidate:teleport:t1:x".to_owned(), "{}".to_owned()),
    ];
    let mut value = 1;
    for key in t1.iter().chain([&t2]) {
        cached_in_both(&a, &b, key, value).await;
    }
    for (round, (channel, payload)) in messages.iter().enumerate() {
        // Redis changes behind both instances' backs, for both tenants.
        value += 1;
        for key in t1.iter().chain([&t2]) {
            redis.cmd(&["SET", key.as_str(), &value.to_string(), "KEEPTTL"]);
        }
        redis.cmd(&["PUBLISH", channel, payload]);
        for cache in [&a, &b] {
            for key in &t1 {
                wait_for(
                    &format!("{channel} to drop {key} of t1"),
                    PROPAGATION,
                    || async { cache.get::<u32>(key).await.unwrap() == Some(value) },
                )
                .await;
            }
            assert_eq!(
                cache.get::<u32>(&t2).await.unwrap(),
                Some(1),
                "another tenant was dropped"
            );
            let stats = cache.stats();
            assert_eq!(stats.invalidations_unreadable, round as u64 + 1);
            assert_eq!(stats.malformed_messages, 0);
        }
    }
}
