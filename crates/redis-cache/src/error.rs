//! [`CacheError`]: the one error type of this crate.

use redis_connection::{ConnectionError, Rejection, RejectionKind};

/// What a cache operation can fail with.
///
/// Reads degrade to a miss by default when Redis is unavailable (see
/// [`crate::ReadMode`]); writes, deletes, invalidations and counters return
/// [`CacheError::Unavailable`] instead, because losing them silently would
/// serve stale data or break a rate limit.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// Redis cannot answer now (down, unreachable, too slow): retry later or
    /// fall back to the source of truth.
    #[error(transparent)]
    Unavailable(ConnectionError),
    /// Redis answered with an error (a counter on a non-integer, say); its
    /// [`Rejection::kind`] says which, and its source is fred's error.
    #[error(transparent)]
    Rejected(Rejection),
    /// The encoded value exceeds the configured maximum; nothing was sent.
    #[error("value of {size} bytes exceeds the {max}-byte limit")]
    ValueTooLarge {
        /// Encoded size in bytes.
        size: usize,
        /// The configured limit (`CACHE_MAX_VALUE_BYTES`).
        max: usize,
    },
    /// Fail-safe (serving a stale value) was asked for keys that must
    /// never be served stale: sessions, ACL decisions, other state.
    /// Nothing was sent.
    #[error("keys of the {family} family are never served stale")]
    StaleNotAllowed {
        /// The family's name.
        family: &'static str,
    },
    /// An option was given a value outside its range; nothing was sent.
    #[error("{option}: {reason}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What the value must be.
        reason: &'static str,
    },
    /// The value could not be serialised to JSON; nothing was sent.
    #[error("value could not be encoded as JSON: {0}")]
    Encode(#[source] redis_pubsub::EncodeError),
}

impl CacheError {
    /// Whether the failure is Redis being unavailable (as opposed to a bad
    /// value or a refused command).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// if let Err(error) = cache.set(&key, &"value", Duration::from_secs(60)).await {
    ///     // Redis being down is worth a retry; a refused value is not.
    ///     let retry = error.is_unavailable();
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, CacheError::Unavailable(_))
    }

    /// The refusal, when Redis (or this layer) answered no.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            CacheError::Rejected(rejection) => Some(rejection),
            _ => None,
        }
    }
}

impl From<redis_pubsub::PubSubError> for CacheError {
    fn from(error: redis_pubsub::PubSubError) -> Self {
        use redis_pubsub::PubSubError;
        match error {
            PubSubError::Unavailable(e) => CacheError::Unavailable(e),
            PubSubError::Shutdown => CacheError::Unavailable(ConnectionError::Shutdown),
            PubSubError::Rejected(rejection) => CacheError::Rejected(rejection),
            PubSubError::InvalidName(reason) => {
                CacheError::Rejected(Rejection::new(RejectionKind::Other, reason))
            }
            PubSubError::Encode(message) => CacheError::Encode(message),
            refused @ PubSubError::Refused { .. } => CacheError::Rejected(Rejection::new(
                RejectionKind::NoPermission,
                refused.to_string(),
            )),
            // A variant added later: unavailability is the safe reading
            // (writes fail, reads degrade), and it keeps the message.
            other => CacheError::Unavailable(ConnectionError::Unavailable {
                reason: other.to_string(),
                cause: None,
            }),
        }
    }
}

impl From<ConnectionError> for CacheError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::Rejected(rejection) => CacheError::Rejected(rejection),
            other => CacheError::Unavailable(other),
        }
    }
}
