//! The seed's typed `pubsub.invalidate(tenant, kind, id)`, kept as a thin
//! API over the wire format (`wire.rs`): [`Invalidations`] gives a
//! [`PubSub`] (the transport) `invalidate`, `publisher` and
//! `invalidations`, and [`InvalidationPublisher`] sends under an origin of
//! its own. A [`CacheService`](crate::CacheService) announces its changes
//! through the same encoding, inside the scripts that make them.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use redis_pubsub::{PubSub, PubSubError};
use shared_types::{ALL_INVALIDATIONS_PATTERN, Invalidation};

use super::feed::InvalidationFeed;
use super::wire::message;

/// Invalidations over a [`PubSub`]: publish one, make a publisher with an
/// origin of its own, or follow every invalidation published. Import it to
/// call these as methods of a `PubSub`.
///
/// # Examples
///
/// ```no_run
/// # use redis_pubsub::{PubSub, PubSubError};
/// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
/// use redis_cache::Invalidations;
/// use shared_types::{Invalidation, TenantId};
///
/// let mut feed = pubsub.invalidations().await?;
/// let tenant = Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() };
/// let receivers = pubsub.invalidate(&tenant).await?;
/// # Ok(())
/// # }
/// ```
pub trait Invalidations {
    /// Publishes `invalidation` on its channel with this instance's id
    /// ([`PubSub::instance_id`]) as its origin; returns the number of
    /// receiving subscriber connections (on a cluster, those of one node
    /// only: see [`PubSub::publish`]).
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when Redis cannot take it.
    fn invalidate(
        &self,
        invalidation: &Invalidation,
    ) -> impl Future<Output = Result<u64, PubSubError>> + Send;

    /// A publisher of invalidations with an origin of its own (random, like
    /// [`PubSub::instance_id`], and different from it).
    fn publisher(&self) -> InvalidationPublisher;

    /// Subscribes to every invalidation channel (`cache:invalidate:*`).
    ///
    /// # Errors
    /// As [`PubSub::psubscribe`].
    fn invalidations(&self) -> impl Future<Output = Result<InvalidationFeed, PubSubError>> + Send;
}

impl Invalidations for PubSub {
    async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, PubSubError> {
        let (channel, payload) = message(self.instance_id(), invalidation)?;
        self.publish_bytes(&channel, payload).await
    }

    fn publisher(&self) -> InvalidationPublisher {
        InvalidationPublisher {
            pubsub: self.clone(),
            origin: Arc::from(new_origin()),
        }
    }

    async fn invalidations(&self) -> Result<InvalidationFeed, PubSubError> {
        let subscription = self.psubscribe(ALL_INVALIDATIONS_PATTERN).await?;
        Ok(InvalidationFeed::new(subscription))
    }
}

/// 128 random bits as hex, as [`PubSub::instance_id`]. Not a secret: it
/// only has to be unique.
fn new_origin() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}

/// Publishes invalidations under one origin, so that their sender can tell
/// its own messages from everyone else's. Each [`Invalidations::publisher`] call
/// makes a new origin: two caches sharing one [`PubSub`] each see the
/// other's invalidations. Cheap to clone (clones share the origin).
#[derive(Debug, Clone)]
pub struct InvalidationPublisher {
    pubsub: PubSub,
    origin: Arc<str>,
}

impl InvalidationPublisher {
    /// The origin carried by every message this publisher sends.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let publisher = pubsub.publisher();
    /// assert_ne!(publisher.origin(), pubsub.instance_id());
    /// # Ok(())
    /// # }
    /// ```
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The pub/sub service it publishes through.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let publisher = pubsub.publisher();
    /// let stats = publisher.pubsub().stats();
    /// # Ok(())
    /// # }
    /// ```
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Publishes `invalidation` on its channel; returns the number of
    /// receiving subscriber connections (on a cluster, those of one node
    /// only: see [`PubSub::publish`]).
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when Redis cannot take it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let publisher = pubsub.publisher();
    /// let tenant = Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() };
    /// let receivers = publisher.invalidate(&tenant).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, PubSubError> {
        let (channel, payload) = message(&self.origin, invalidation)?;
        self.pubsub.publish_bytes(&channel, payload).await
    }

    /// The channel and payload [`invalidate`](Self::invalidate) would
    /// publish for `invalidation`, for a caller that publishes them inside
    /// the script that makes the change, so that Redis runs both at once
    /// (the cache's announced writes). Count each one published with
    /// [`record_published`](Self::record_published).
    ///
    /// # Errors
    /// [`PubSubError::Shutdown`] after [`PubSub::shutdown`];
    /// [`PubSubError::Encode`] when the payload cannot be built.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let publisher = pubsub.publisher();
    /// let tenant = Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() };
    /// let (channel, payload) = publisher.encode(&tenant)?;
    /// assert_eq!(channel, "cache:invalidate:tenant:acme");
    /// # Ok(())
    /// # }
    /// ```
    pub fn encode(&self, invalidation: &Invalidation) -> Result<(String, Bytes), PubSubError> {
        self.pubsub.check_running()?;
        message(&self.origin, invalidation)
    }

    /// Counts one message published through [`encode`](Self::encode)'s
    /// channel and payload, as [`invalidate`](Self::invalidate) counts its
    /// own ([`PubSubStats`](redis_pubsub::PubSubStats)'s `published`).
    pub fn record_published(&self) {
        self.pubsub.record_published();
    }
}
