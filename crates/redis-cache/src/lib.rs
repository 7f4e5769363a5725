//! A typed JSON cache over Redis, for the services of a multi-tenant platform.
//!
//! [`CacheService`] stores any `Serialize` value as JSON under a
//! [`shared_types::RedisKey`], with per-write TTLs ([`Expiry`]: a jittered
//! [`shared_types::TtlPolicy`] or a fixed duration):
//!
//! - single and bulk reads and writes (`get`, `set`, `mget`, `mset`), `delete`,
//!   `exists`, `expire`, `ttl` ([`KeyTtl`]);
//! - cache-aside loads (`get_or_load`, and `get_or_load_with` with
//!   [`LoadOptions`]: negative caching, loader timeouts, fail-safe per call
//!   or per family ([`FailSafePolicy`]), eager refresh, one load per fleet
//!   for a key hit on every instance at once);
//! - counters and atomic rate-limit windows ([`RateWindow`]);
//! - pattern deletion through the tenant's key index (`delete_pattern`,
//!   `flush_tenant`), or a page at a time for operators' tools that pace,
//!   stop and resume it ([`PurgeCursor`], `purge_step`), never `KEYS`;
//! - tenant purges as resumable jobs: their progress, their lease and the
//!   registry of running jobs ([`PurgeJobs`], from `purge_jobs`);
//! - looking at keys without their values ([`KeyInfo`], `indexed_ttls`);
//! - statistics ([`CacheStats`], [`ServerStats`]);
//! - cache coherence between instances, all of it here (redis-pubsub only
//!   carries the bytes): the versioned wire format ([`InvalidationMessage`],
//!   [`WIRE_VERSION`]), the feed of every invalidation published
//!   ([`InvalidationFeed`], [`InvalidationEvent`]), and the typed
//!   `invalidate(tenant, kind, id)` over a `PubSub` ([`Invalidations`],
//!   [`InvalidationPublisher`]).
//!
//! **When Redis is down**, reads degrade to a miss (the caller loads from its
//! source of truth; [`ReadMode::Strict`] returns the error instead), while
//! writes, deletes and counters return [`CacheError::Unavailable`]: losing
//! them silently would serve stale data. Nothing waits longer than the
//! connection manager's command timeout.
//!
//! **Values that do not decode** as the requested type are a miss: the key is
//! deleted, `decode_failures` goes up, and one warning is logged.
//!
//! **Shared with the TypeScript services** (README, "Sharing Redis with the
//! TypeScript services"): a value is stored as its JSON text, what
//! `JSON.parse` reads, under the key layouts both packages build (the lease
//! a `get_or_load` holds while it loads is a side key, never the value); a
//! two-tier cache applies every message on an invalidation channel, whoever
//! sent it and whatever its payload.
//!
//! ```no_run
//! use redis_cache::{CacheConfig, CacheService};
//! use redis_connection::{RedisConfig, RedisConnectionManager};
//! use shared_types::{RedisKey, TenantId, TtlPolicy, UserId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
//! let cache = CacheService::new(manager, CacheConfig::from_env()?);
//! let key = RedisKey::user_profile(&TenantId::new("acme")?, &UserId::new("u1")?);
//! cache.set(&key, &serde_json::json!({"name": "Ada"}), TtlPolicy::user_profile()).await?;
//! let profile: Option<serde_json::Value> = cache.get(&key).await?;
//! # Ok(())
//! # }
//! ```

mod batched;
mod coalesce;
mod codec;
mod coherence;
mod config;
mod counters;
mod delete_pattern;
mod error;
mod expiry;
mod fail_safe;
mod fleet_wait;
mod flight;
mod index;
mod index_memo;
mod inspect;
mod l1;
mod lease;
mod load;
mod load_options;
mod members;
mod mset;
mod purge_jobs;
mod purge_step;
mod read;
mod refresh;
mod service;
mod stats;
mod store;
mod throttle;
mod traced;
mod write;
mod write_back;

pub use coherence::{
    FeedStats, InvalidationEvent, InvalidationFeed, InvalidationMessage, InvalidationPublisher,
    Invalidations, MAX_INVALIDATION_PAYLOAD, ReceivedInvalidation, Sender, StreamPosition,
    Unreadable, UnreadableInvalidation, WIRE_VERSION,
};
pub use config::{CACHE_ENV_VARS, CacheConfig, L1Config, PurgeMode, ReadMode, Retention};
pub use counters::RateWindow;
pub use error::CacheError;
pub use expiry::{Expiry, KeyTtl};
pub use fail_safe::FailSafePolicy;
pub use fleet_wait::DEFAULT_FLEET_WAIT;
pub use inspect::KeyInfo;
pub use load::{LoadError, LoadOutcome};
pub use load_options::LoadOptions;
pub use purge_jobs::{Claim, FINISHED_TTL, JobProgress, JobState, LEASE_TTL, LoadedJob, PurgeJobs};
pub use purge_step::{PurgeCursor, PurgeStep};
pub use read::{CacheValue, Tier};
pub use redis_pubsub::EncodeError;
pub use service::CacheService;
pub use stats::{CacheStats, ServerStats};
