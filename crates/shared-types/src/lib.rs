//! The vocabulary every crate of the Redis layer agrees on.
//!
//! - **Ids** ([`TenantId`], [`UserId`], [`ShardId`], [`CounterName`]):
//!   validated newtypes; 1 to 128 characters of `A-Z a-z 0-9 - _ . @ +`.
//!   Anything that could change a key's meaning (`:`, glob characters, hash-tag
//!   braces, whitespace, control or non-ASCII characters) is refused with a
//!   [`ValidationError`] naming the field.
//! - **Keys** ([`RedisKey`]): built only by per-family builders, so that no
//!   caller concatenates strings into Redis keys. [`KeyFamily`] says whether a
//!   key is cache (`tenant:{t}:...`) or state (`auth:`, `ratelimit:`, `counter:`).
//! - **Patterns** ([`KeyPattern`]): globs for group invalidation, scoped to one
//!   tenant; [`glob_match`] implements Redis's matcher in-process.
//! - **TTL policies** ([`TtlPolicy`]): per-family lifetimes with jitter.
//! - **Invalidations** ([`Invalidation`]): what became stale, its pub/sub
//!   channel (`cache:invalidate:...`), and its [`Scope`].
//!
//! ```
//! use shared_types::{RedisKey, Invalidation, KeyFamily, Scope, ShardId, TenantId};
//!
//! let tenant: TenantId = "acme".parse()?;
//! let shard: ShardId = "eu-1".parse()?;
//! let key = RedisKey::shard_structured(&tenant, &shard);
//! assert_eq!(key.as_str(), "tenant:acme:shard:eu-1:structured");
//! assert_eq!(key.family(), KeyFamily::ShardStructured);
//!
//! let inv = Invalidation::for_key(&key).unwrap();
//! assert_eq!(inv.channel(), "cache:invalidate:shard:acme:eu-1");
//! assert_eq!(Invalidation::from_channel(&inv.channel())?, inv);
//! assert_eq!(inv.scope(), Scope::Key(key));
//!
//! assert!("acme:evil".parse::<TenantId>().is_err());
//! # Ok::<(), shared_types::ValidationError>(())
//! ```

mod digest;
mod error;
mod glob;
mod id;
mod invalidation;
mod key;
mod key_parse;
mod pattern;
mod ttl;

pub use digest::{QueryHash, TokenHash};
pub use error::{IdRejection, ValidationError};
pub use glob::{glob_match, glob_match_bytes};
pub use id::{CounterName, JobId, MAX_ID_LEN, ShardId, TenantId, UserId, validate as validate_id};
pub use invalidation::{
    ALL_INVALIDATIONS_PATTERN, CHANNEL_PREFIX, CHANNEL_TYPES, Invalidation, Scope,
};
pub use key::{KeyFamily, RedisKey};

/// The former name of [`RedisKey`], which also names state that is not
/// cache (sessions, rate windows).
#[deprecated(note = "renamed to `RedisKey`")]
pub type CacheKey = RedisKey;
pub use pattern::KeyPattern;
pub use ttl::{DEFAULT_JITTER_PERCENT, SHARD_TTL_RANGE, TtlPolicy};
