//! Pub/sub for the Redis layer: the transport of cross-instance cache
//! invalidation.
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
//!
//! This crate is only the transport: what the messages on the invalidation
//! channels say (their wire format, the typed `invalidate(tenant, kind, id)`
//! and the feed that decodes them) is redis-cache's (its `coherence`
//! module), the one home of cache coherence.
//!
//! ```no_run
//! use redis_connection::{RedisConfig, RedisConnectionManager};
//! use redis_pubsub::{PubSub, PubSubEvent};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
//! let pubsub = PubSub::new(manager).await?;
//! let mut events = pubsub.psubscribe("events:*").await?;
//! pubsub.publish("events:signup", &serde_json::json!({"user": "u1"})).await?;
//! while let Some(event) = events.recv().await {
//!     if let PubSubEvent::Message(message) = event {
//!         println!("{} on {}", message.payload.len(), message.channel);
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod error;
mod home;
mod message;
mod pubsub;
mod pump;
mod routes;
mod state;
mod stats;

pub use error::{EncodeError, PubSubError};
pub use message::{PubSubEvent, PubSubMessage, Subscription};
pub use pubsub::{PubSub, Subscriptions};
pub use state::SubscriptionState;
pub use stats::PubSubStats;
