//! What the cache does when Redis's ACL refuses part of its work: a write
//! whose announcement may not be published changes nothing.

use redis_cache::{CacheService, Expiry};
use redis_connection::RejectionKind;
use test_support::RedisServer;
use test_support::fixtures::{self, redis_config};

use crate::shard_key;
use crate::two_tier::TTL;

/// The stream every announcement is appended to.
const STREAM: &str = "coherence:invalidations";

/// A two-tier instance on `redis` that authenticates as `user`.
async fn as_user(redis: &RedisServer, user: &str, password: &str) -> CacheService {
    let mut config = redis_config(redis);
    config.username = Some(user.to_owned());
    config.password = Some(password.to_owned().into());
    fixtures::two_tier(config, fixtures::two_tier_config()).await
}

/// The raw JSON Redis holds under `key`, read behind the cache's back.
fn raw(redis: &RedisServer, key: &str) -> Option<String> {
    redis.cmd(&["GET", key]).as_string()
}

// A user whose ACL forbids PUBLISH: `set`, `delete` and `mset` are refused
// as a whole with a typed no-permission error, every key keeps its old
// value, and the invalidation stream gets no entry (a refused announcement
// must not leave a written change nobody hears of).
#[tokio::test]
async fn a_write_whose_announcement_is_refused_changes_nothing() {
    if !test_support::server_is_at_least(7, 0, "redis.acl_check_cmd in scripts") {
        return;
    }
    let redis = RedisServer::builder()
        .acl_user_with_rules("writer", "writer-pass", &["~*", "&*", "+@all", "-publish"])
        .start()
        .await;
    let (key, other) = (shard_key("t", "k"), shard_key("t", "other"));
    redis.cmd(&["SET", key.as_str(), r#""old""#]);
    redis.cmd(&["SET", other.as_str(), r#""other""#]);
    let cache = as_user(&redis, "writer", "writer-pass").await;

    let refused = cache.set(&key, &"new", TTL).await.unwrap_err();
    assert_eq!(raw(&redis, key.as_str()).as_deref(), Some(r#""old""#));
    assert_eq!(redis.cmd(&["XLEN", STREAM]).as_int(), Some(0));
    assert_eq!(
        refused.rejection().map(|r| r.kind()),
        Some(RejectionKind::NoPermission),
        "{refused:?}"
    );
    let refused = cache.delete(&key).await.unwrap_err();
    assert_eq!(
        refused.rejection().map(|r| r.kind()),
        Some(RejectionKind::NoPermission),
        "{refused:?}"
    );
    let ttl = Expiry::After(TTL);
    let refused = cache
        .mset(&[(key.clone(), "new", ttl), (other.clone(), "new", ttl)])
        .await
        .unwrap_err();
    assert_eq!(
        refused.rejection().map(|r| r.kind()),
        Some(RejectionKind::NoPermission),
        "{refused:?}"
    );

    assert_eq!(raw(&redis, key.as_str()).as_deref(), Some(r#""old""#));
    assert_eq!(raw(&redis, other.as_str()).as_deref(), Some(r#""other""#));
    assert_eq!(redis.cmd(&["XLEN", STREAM]).as_int(), Some(0));
    // Nor does this instance serve anything but what Redis holds.
    assert_eq!(
        cache.get::<String>(&key).await.unwrap().as_deref(),
        Some("old")
    );
}

// An ACL user that may not subscribe to the invalidation channels: the
// two-tier cache does not start (a typed no-permission error) rather than
// run with an L1 it could never trust.
#[tokio::test]
async fn a_cache_whose_invalidation_feed_is_refused_does_not_start() {
    if !test_support::server_is_at_least(7, 0, "channel permissions in ACL rules") {
        return;
    }
    let redis = RedisServer::builder()
        .acl_user_with_rules("deaf", "deaf-pass", &["~*", "resetchannels", "+@all"])
        .start()
        .await;
    let mut config = redis_config(&redis);
    config.username = Some("deaf".to_owned());
    config.password = Some("deaf-pass".to_owned().into());
    let manager = redis_connection::RedisConnectionManager::connect(config)
        .await
        .unwrap();
    let pubsub = redis_pubsub::PubSub::new(manager.clone()).await.unwrap();
    let refused = CacheService::two_tier(manager, fixtures::two_tier_config(), pubsub)
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(
        refused.rejection().map(|r| r.kind()),
        Some(RejectionKind::NoPermission),
        "{refused:?}"
    );
}

// A user whose ACL forbids the write itself (`SET`, run inside the write's
// script): the same typed no-permission refusal (Redis 7.0 words it as a
// plain `ERR`), and the key keeps its value.
#[tokio::test]
async fn a_write_the_acl_forbids_inside_its_script_is_a_typed_refusal() {
    let redis = RedisServer::builder()
        .acl_user_with_rules("reader", "reader-pass", &["~*", "&*", "+@all", "-set"])
        .start()
        .await;
    let key = shard_key("t", "k");
    redis.cmd(&["SETEX", key.as_str(), "600", r#""old""#]);
    let cache = as_user(&redis, "reader", "reader-pass").await;
    let refused = cache.set(&key, &"new", TTL).await.unwrap_err();
    assert_eq!(
        refused.rejection().map(|r| r.kind()),
        Some(RejectionKind::NoPermission),
        "{refused:?}"
    );
    assert_eq!(raw(&redis, key.as_str()).as_deref(), Some(r#""old""#));
}
