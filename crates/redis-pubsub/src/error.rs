//! [`PubSubError`]: the one error type of this crate.

use redis_connection::{ConnectionError, Rejection};

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
    Encode(String),
    /// The pub/sub service was shut down.
    #[error("the pub/sub service is shut down")]
    Shutdown,
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
