//! Sets of members (a user's session hashes): what services keep beside
//! their cached data, through the cache's API rather than fred.

use std::time::Duration;

use shared_types::RedisKey;
use test_support::RedisServer;

use crate::{cache_on, pttl, tenant, user};

// Members are added with the set's expiry renewed each time, read back,
// and removed by name (counting only those that were there); a key of
// another type is a typed refusal.
#[tokio::test]
async fn members_are_added_with_an_expiry_read_and_removed() {
    let redis = RedisServer::start().await;
    let cache = cache_on(&redis).await;
    let set = RedisKey::user_sessions(&tenant("t1"), &user("alice"));
    let ttl = Duration::from_secs(60);
    assert!(cache.members(&set).await.unwrap().is_empty());
    cache.add_member(&set, "a", ttl).await.unwrap();
    cache.add_member(&set, "b", ttl).await.unwrap();
    let mut members = cache.members(&set).await.unwrap();
    members.sort();
    assert_eq!(members, ["a", "b"]);
    let left = pttl(&redis, &set);
    assert!(left > 0 && left <= 60_000, "{left}");

    let removed = cache
        .remove_members(&set, vec!["a".to_owned(), "zz".to_owned()])
        .await
        .unwrap();
    assert_eq!(removed, 1);
    assert_eq!(cache.members(&set).await.unwrap(), ["b"]);
    assert_eq!(cache.remove_members(&set, Vec::new()).await.unwrap(), 0);

    redis.cmd(&["SET", set.as_str(), "not a set"]);
    let err = cache.add_member(&set, "c", ttl).await.unwrap_err();
    assert!(
        matches!(err, redis_cache::CacheError::Rejected(_)),
        "{err:?}"
    );
    assert_eq!(
        redis.cmd(&["GET", set.as_str()]).as_string().as_deref(),
        Some("not a set"),
        "a refused add changes nothing"
    );
    assert_eq!(pttl(&redis, &set), -1, "not even the key's TTL");
}
