//! Looking at keys without reading their values: what an operator's tool
//! (`cache-admin inspect`, `stats`, `ttl-report`) asks. Nothing here returns
//! a value, so nothing here can leak a session.

use redis_connection::fred::clients::Pipeline;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface, SortedSetsInterface};
use redis_connection::fred::types::{ClusterHash, CustomCommand, Value};
use redis_connection::{CommandFamily, RedisOp};
use shared_types::{KeyPattern, RedisKey, TenantId};

use crate::error::CacheError;
use crate::expiry::KeyTtl;
use crate::service::CacheService;
use crate::store::fail_fast;

/// The size of a sorted set (the tenant's key index, or any zset inspected).
const ZCARD: RedisOp = RedisOp::new("ZCARD", CommandFamily::Members);

/// What Redis holds under a key, without its value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct KeyInfo {
    /// Redis's type of the key (`string`, `zset`, `set`, ...), `none` when
    /// there is no such key.
    pub redis_type: String,
    /// The value's length in bytes, for a string.
    pub value_bytes: Option<u64>,
    /// The number of members, for a set or sorted set.
    pub members: Option<u64>,
    /// The remaining lifetime.
    pub ttl: KeyTtl,
}

impl CacheService {
    /// Type, size and TTL of `key`; never its value.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::RedisKey;
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// let key = RedisKey::parse("tenant:acme:shard:eu-1:structured").unwrap();
    /// let info = cache.key_info(&key).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn key_info(&self, key: &RedisKey) -> Result<KeyInfo, CacheError> {
        let store = &self.inner.store;
        let client = store.fast();
        let type_of = CustomCommand::new_static("TYPE", ClusterHash::FirstKey, false);
        let redis_type: Result<String, CacheError> = store
            .timed(
                RedisOp::new("TYPE", CommandFamily::Get),
                client.custom(type_of, vec![Value::from(key.as_str())]),
            )
            .await
            .map_err(|e| store.error(&e));
        let redis_type = self.counted(redis_type)?;
        let size = match redis_type.as_str() {
            "string" => {
                let strlen = RedisOp::new("STRLEN", CommandFamily::Get);
                store.timed(strlen, client.strlen(key.as_str())).await
            }
            "zset" => store.timed(ZCARD, client.zcard(key.as_str())).await,
            "set" => {
                let scard = CustomCommand::new_static("SCARD", ClusterHash::FirstKey, false);
                let op = RedisOp::new("SCARD", CommandFamily::Members);
                let command = client.custom(scard, vec![Value::from(key.as_str())]);
                store.timed(op, command).await
            }
            _ => Ok(0),
        };
        let size: u64 = self.counted(size.map_err(|e| store.error(&e)))?;
        let ttl = KeyTtl::from_pttl(self.counted(store.pttl(key.as_str()).await)?);
        Ok(KeyInfo {
            value_bytes: (redis_type == "string").then_some(size),
            members: matches!(redis_type.as_str(), "zset" | "set").then_some(size),
            redis_type,
            ttl,
        })
    }

    /// Members of `tenant`'s key index: its cached keys written within
    /// their TTL and half as long again (an upper bound of its live cached
    /// keys; see `index.rs`). One `ZCARD`, whatever the keyspace holds.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::TenantId;
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// let indexed = cache.tenant_indexed_keys(&TenantId::new("acme").unwrap()).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn tenant_indexed_keys(&self, tenant: &TenantId) -> Result<u64, CacheError> {
        let store = &self.inner.store;
        let index = RedisKey::tenant_index(tenant);
        let members = store
            .timed(ZCARD, store.fast().zcard(index.as_str()))
            .await
            .map_err(|e| store.error(&e));
        self.counted(members)
    }

    /// The remaining TTL of every indexed key `pattern` covers (keys gone
    /// since are [`KeyTtl::Missing`]), read a `ZSCAN` page of about `count`
    /// members at a time with their `PTTL`s pipelined: the cost is the
    /// tenant's keys.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{KeyPattern, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// let pattern = KeyPattern::tenant_cache(&TenantId::new("acme").unwrap());
    /// let ttls = cache.indexed_ttls(&pattern, 500).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn indexed_ttls(
        &self,
        pattern: &KeyPattern,
        count: u32,
    ) -> Result<Vec<KeyTtl>, CacheError> {
        let store = &self.inner.store;
        let client = store.client().clone();
        let mut ttls = Vec::new();
        let mut cursor = 0;
        loop {
            let (next, keys) =
                self.counted(store.index_page(&client, pattern, cursor, count).await)?;
            if !keys.is_empty() {
                let n = keys.len();
                let pipeline = Pipeline::from(client.with_options(&fail_fast()));
                for key in keys {
                    pipeline
                        .pttl::<(), _>(key)
                        .await
                        .map_err(|e| store.error(&e))?;
                }
                let page: Vec<i64> = store
                    .timed_n(RedisOp::PTTL, n, pipeline.all())
                    .await
                    .map_err(|e| store.error(&e))?;
                ttls.extend(page.into_iter().map(KeyTtl::from_pttl));
            }
            if next == 0 {
                return Ok(ttls);
            }
            cursor = next;
        }
    }
}
