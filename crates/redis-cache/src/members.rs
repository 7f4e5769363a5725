//! Sets of members (`SADD` + `PEXPIRE` in one script, `SMEMBERS`, `SREM`): what a service keeps beside
//! its cached data, such as a user's set of session hashes. Here so that
//! services reach Redis through this crate's API and never name fred
//! (ARCHITECTURE.md, "Invariants").

use std::sync::LazyLock;
use std::time::Duration;

use redis_connection::RedisOp;
use redis_connection::fred::interfaces::SetsInterface;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use shared_types::RedisKey;

use crate::error::CacheError;
use crate::service::CacheService;

/// `SADD KEYS[1] ARGV[1]`, then `PEXPIRE KEYS[1] ARGV[2]`: a `SADD` error
/// ends the script before the `PEXPIRE`.
const ADD_MEMBER_LUA: &str = "\
redis.call('SADD', KEYS[1], ARGV[1])
return redis.call('PEXPIRE', KEYS[1], ARGV[2])";

static ADD_MEMBER: LazyLock<Script> = LazyLock::new(|| Script::from_lua(ADD_MEMBER_LUA));

impl CacheService {
    /// Adds `member` to the set at `key` and makes the set expire after
    /// `ttl` from now, atomically (one script): the set is never left
    /// without the expiry, and a refused `SADD` (the key holds another
    /// type) changes nothing, not even the key's TTL, as a `MULTI` would.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot take it, or
    /// [`CacheError::Rejected`] when `key` holds another type.
    pub async fn add_member(
        &self,
        key: &RedisKey,
        member: &str,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let result = self
            .inner
            .store
            .run_script::<i64>(
                &ADD_MEMBER,
                vec![Key::from(key.as_str())],
                vec![Value::from(member), Value::Integer(ttl_ms)],
            )
            .await
            .map(drop);
        self.counted(result)
    }

    /// The members of the set at `key` (none when it does not exist).
    ///
    /// # Errors
    /// As [`add_member`](Self::add_member).
    pub async fn members(&self, key: &RedisKey) -> Result<Vec<String>, CacheError> {
        let store = &self.inner.store;
        let fast = store.fast();
        let read = fast.smembers(key.as_str());
        let result = store
            .timed(RedisOp::SMEMBERS, read)
            .await
            .map_err(|e| store.error(&e));
        self.counted(result)
    }

    /// Removes `members` from the set at `key`; returns how many were in it.
    ///
    /// # Errors
    /// As [`add_member`](Self::add_member).
    pub async fn remove_members(
        &self,
        key: &RedisKey,
        members: Vec<String>,
    ) -> Result<u64, CacheError> {
        if members.is_empty() {
            return Ok(0);
        }
        let store = &self.inner.store;
        let fast = store.fast();
        let removal = fast.srem(key.as_str(), members);
        let result = store
            .timed(RedisOp::SREM, removal)
            .await
            .map_err(|e| store.error(&e));
        self.counted(result)
    }
}
