//! Sets of members (`SADD`/`SMEMBERS`/`SREM`): what a service keeps beside
//! its cached data, such as a user's set of session hashes. Here so that
//! services reach Redis through this crate's API and never name fred
//! (ARCHITECTURE.md, "Invariants").

use std::time::Duration;

use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{KeysInterface, SetsInterface, TransactionInterface};
use shared_types::RedisKey;

use crate::error::CacheError;
use crate::service::CacheService;

impl CacheService {
    /// Adds `member` to the set at `key` and makes the set expire after
    /// `ttl` from now, in one transaction (`MULTI`, `SADD`, `PEXPIRE`,
    /// `EXEC`): the set is never left without the expiry.
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
        let store = &self.inner.store;
        let ttl_ms = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX);
        let tx = store.client().multi();
        let queued = async {
            tx.sadd::<(), _, _>(key.as_str(), member).await?;
            tx.pexpire::<(), _>(key.as_str(), ttl_ms, None).await?;
            tx.exec::<()>(true).await
        };
        let result = store
            .timed(RedisOp::TRANSACTION, queued)
            .await
            .map_err(|e| store.error(&e));
        self.counted(result)
    }

    /// The members of the set at `key` (none when it does not exist).
    ///
    /// # Errors
    /// As [`add_member`](Self::add_member).
    pub async fn members(&self, key: &RedisKey) -> Result<Vec<String>, CacheError> {
        let store = &self.inner.store;
        let read = store.client().smembers(key.as_str());
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
        let removal = store.client().srem(key.as_str(), members);
        let result = store
            .timed(RedisOp::SREM, removal)
            .await
            .map_err(|e| store.error(&e));
        self.counted(result)
    }
}
