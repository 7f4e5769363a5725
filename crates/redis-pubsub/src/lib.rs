//! Pub/sub for the Redis layer: cross-instance cache invalidation.
//!
//! [`PubSub`] subscribes on a dedicated connection from redis-connection
//! (never a pooled one) and publishes through the pool:
//!
//! - [`PubSub::subscribe`] / [`PubSub::psubscribe`] return a [`Subscription`],
//!   a stream of [`PubSubEvent`]s: messages (with the matching pattern, which
//!   fred does not report and we compute with Redis glob rules), and the
//!   connection's life: `Subscribed` (confirmed, again after every reconnect),
//!   `Disconnected` (messages are being lost), `Lagged` (this consumer fell
//!   behind). Subscriptions survive reconnects without the caller doing
//!   anything. Events can be late or lost to a lag; [`Subscription::state`]
//!   ([`SubscriptionState`]) says whether the subscription holds *now*.
//! - [`PubSub::unsubscribe`], [`PubSub::punsubscribe`],
//!   [`PubSub::subscriptions`], [`PubSub::publish`].
//! - [`PubSub::invalidate`] publishes a typed [`shared_types::Invalidation`]
//!   on its channel ([`PubSub::publisher`] gives a sender an origin of its
//!   own, so that it can recognise its own messages); [`PubSub::invalidations`] is the [`InvalidationFeed`] of
//!   every invalidation published on an invalidation channel, by any
//!   instance or any other client (the TypeScript services): the channel
//!   says what is invalidated, the payload at most who sent it; messages on
//!   channels that name nothing are counted, logged and skipped.
//!
//! ```no_run
//! use redis_connection::{RedisConfig, RedisConnectionManager};
//! use redis_pubsub::{InvalidationEvent, PubSub};
//! use shared_types::{Invalidation, TenantId};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
//! let pubsub = PubSub::new(manager).await?;
//! let mut feed = pubsub.invalidations().await?;
//! pubsub.invalidate(&Invalidation::Tenant { tenant_id: TenantId::new("acme")? }).await?;
//! while let Some(event) = feed.recv().await {
//!     if let InvalidationEvent::Received(received) = event {
//!         println!("{} from {:?}", received.invalidation, received.origin());
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod home;
mod invalidation;
mod message;
mod pubsub;
mod pump;
mod received;
mod routes;
mod state;
mod stats;
mod wire;

pub use error::{EncodeError, PubSubError};
pub use invalidation::{InvalidationEvent, InvalidationFeed, InvalidationPublisher};
pub use message::{PubSubEvent, PubSubMessage, Subscription};
pub use pubsub::{PubSub, Subscriptions};
pub use received::{
    ReceivedInvalidation, Sender, StreamPosition, Unreadable, UnreadableInvalidation,
};
pub use state::SubscriptionState;
pub use stats::PubSubStats;
pub use wire::{InvalidationMessage, MAX_INVALIDATION_PAYLOAD, WIRE_VERSION};
