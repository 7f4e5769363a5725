//! [`PubSubError`]: the one error type of this crate.

use std::sync::Arc;

use redis_connection::{ConnectionError, Rejection};

/// A value serde_json could not encode. Carried by
/// [`PubSubError::Encode`] (and redis-cache's `CacheError::Encode`), with
/// serde_json's error as its [`source`](std::error::Error::source); shared
/// behind an `Arc` so that the errors carrying it stay `Clone`. Two are
/// equal when they say the same.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::error::Error;
///
/// use redis_pubsub::EncodeError;
///
/// // JSON object keys must be strings.
/// let value: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
/// let error = EncodeError::from(serde_json::to_vec(&value).unwrap_err());
/// assert!(error.source().is_some_and(|e| e.is::<serde_json::Error>()));
/// ```
#[derive(Debug, Clone)]
pub struct EncodeError(Arc<serde_json::Error>);

impl From<serde_json::Error> for EncodeError {
    fn from(error: serde_json::Error) -> Self {
        Self(Arc::new(error))
    }
}

impl std::fmt::Display for EncodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for EncodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

impl PartialEq for EncodeError {
    fn eq(&self, other: &Self) -> bool {
        self.0.to_string() == other.0.to_string()
    }
}

impl Eq for EncodeError {}

/// What a pub/sub operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PubSubError {
    /// Redis cannot answer now: the message was not published, or the
    /// (un)subscription was not confirmed.
    #[error(transparent)]
    Unavailable(ConnectionError),
    /// Redis answered with an error; its [`Rejection::kind`] says which,
    /// and its source is fred's error.
    #[error(transparent)]
    Rejected(Rejection),
    /// A channel or pattern name is unusable (empty).
    #[error("invalid channel name: {0}")]
    InvalidName(&'static str),
    /// The payload could not be serialised to JSON.
    #[error("payload could not be encoded as JSON: {0}")]
    Encode(#[source] EncodeError),
    /// The pub/sub service was shut down.
    #[error("the pub/sub service is shut down")]
    Shutdown,
    /// Redis refused the first attempt to subscribe `channel` (a channel
    /// or a pattern): the ACL user has no rights on it. Nothing was kept,
    /// and nothing is retried; subscribing again helps only once the
    /// user's rights change. (A re-subscription refused later, after a
    /// reconnect, is logged and counted instead: see
    /// [`PubSubStats::refusals`](crate::PubSubStats::refusals).)
    #[error("Redis refused to subscribe to {channel}: the ACL user has no rights on it")]
    Refused {
        /// The channel or pattern refused.
        channel: String,
    },
}

impl PubSubError {
    /// Whether Redis was unavailable.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// if let Err(error) = pubsub.publish("events", &1).await {
    ///     // Redis being down is worth a retry; a bad name is not.
    ///     let retry = error.is_unavailable();
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, PubSubError::Unavailable(_))
    }
}

impl From<ConnectionError> for PubSubError {
    fn from(error: ConnectionError) -> Self {
        match error {
            ConnectionError::Rejected(rejection) => PubSubError::Rejected(rejection),
            ConnectionError::Shutdown => PubSubError::Shutdown,
            other => PubSubError::Unavailable(other),
        }
    }
}
