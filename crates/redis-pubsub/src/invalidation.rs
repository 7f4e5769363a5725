//! Type-safe invalidation messages: the seed's `pubsub.invalidate(tenant,
//! kind, id)`.
//!
//! **Sending.** An [`Invalidation`] from shared-types is published on its
//! own channel with a small JSON payload ([`InvalidationMessage`]): its kind
//! and ids, the publishing instance's id and a timestamp for us, and the
//! fields a TypeScript consumer of the same channels reads (`tenantId`,
//! `type`, `id`, `timestamp`), e.g.
//! `{"v":1,"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"9f..","ts":1764000000000,"tenantId":"t1","type":"shard","id":"s1","timestamp":1764000000000,"resourceType":"shard","resourceId":"s1"}`.
//!
//! **Receiving.** The channel is authoritative: a message on a channel that
//! parses as an invalidation channel is delivered as the channel's
//! invalidation, whatever its payload (ours, the TypeScript package's, empty,
//! garbage). The payload only adds who sent it ([`Sender`]), and only when it
//! is ours, valid, and names exactly the channel's invalidation; any other
//! payload is counted as foreign (and logged, rate-limited) but never
//! stops the invalidation, nor widens or redirects it. A message on a
//! channel that does not parse names nothing: it is counted as malformed,
//! logged (rate-limited) and skipped. Never a panic, never the end of the
//! stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use shared_types::{ALL_INVALIDATIONS_PATTERN, Invalidation};
use tracing::{info, warn};

use crate::error::PubSubError;
use crate::message::{PubSubEvent, PubSubMessage, Subscription};
use crate::pubsub::PubSub;
use crate::pump::Shared;
use crate::received::{Decoded, ReceivedInvalidation, Sender, UnreadableInvalidation, decode};
use crate::stats::bump;
use crate::wire::{message, now_ms};

/// How often a malformed message, or a foreign payload, is logged (the rest
/// are only counted).
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// What an [`InvalidationFeed`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidationEvent {
    /// An invalidation from anyone: any instance of this layer (this one
    /// included: see [`ReceivedInvalidation::is_from`]) or any other client
    /// publishing on an invalidation channel.
    Received(ReceivedInvalidation),
    /// An invalidation from a newer version of this layer that this one
    /// cannot read (see [`WIRE_VERSION`](crate::WIRE_VERSION)): treat its
    /// whole tenant as changed.
    Unreadable(UnreadableInvalidation),
    /// The feed is (again) subscribed; invalidations published while it was
    /// not were lost.
    Subscribed,
    /// The subscriber connection dropped; invalidations are being lost.
    Disconnected,
    /// This feed fell behind and `missed` messages were dropped.
    Lagged {
        /// How many were dropped.
        missed: u64,
    },
}

/// Every invalidation published by any instance.
#[derive(Debug)]
pub struct InvalidationFeed {
    subscription: Subscription,
    shared: Arc<Shared>,
    /// When a malformed message was last logged (ms since the epoch).
    malformed_logged: AtomicU64,
    /// When a foreign payload was last logged (ms since the epoch).
    foreign_logged: AtomicU64,
}

/// Publishes invalidations under one origin, so that their sender can tell
/// its own messages from everyone else's. Each [`PubSub::publisher`] call
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
    /// (redis-cache's announced writes). Count each one published with
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
    /// own ([`PubSubStats`](crate::PubSubStats)'s `published`).
    pub fn record_published(&self) {
        self.pubsub.record_published();
    }
}

impl PubSub {
    /// Publishes `invalidation` on its channel with this instance's id as
    /// its origin; returns the number of receiving subscriber connections
    /// (on a cluster, those of one node only: see [`PubSub::publish`]).
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when Redis cannot take it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let tenant = Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() };
    /// let receivers = pubsub.invalidate(&tenant).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, PubSubError> {
        let (channel, payload) = message(self.instance_id(), invalidation)?;
        self.publish_bytes(&channel, payload).await
    }

    /// A publisher of invalidations with an origin of its own (random, like
    /// [`PubSub::instance_id`], and different from it).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let publisher = pubsub.publisher();
    /// let same_origin = publisher.clone();
    /// assert_eq!(publisher.origin(), same_origin.origin());
    /// # Ok(())
    /// # }
    /// ```
    pub fn publisher(&self) -> InvalidationPublisher {
        InvalidationPublisher {
            pubsub: self.clone(),
            origin: Arc::from(crate::pubsub::new_instance_id()),
        }
    }

    /// Subscribes to every invalidation channel (`cache:invalidate:*`).
    ///
    /// # Errors
    /// As [`PubSub::psubscribe`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use redis_pubsub::InvalidationEvent;
    ///
    /// let mut feed = pubsub.invalidations().await?;
    /// while let Some(event) = feed.recv().await {
    ///     if let InvalidationEvent::Received(received) = event {
    ///         let stale = received.invalidation;
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidations(&self) -> Result<InvalidationFeed, PubSubError> {
        let subscription = self.psubscribe(ALL_INVALIDATIONS_PATTERN).await?;
        Ok(InvalidationFeed {
            subscription,
            shared: self.shared().clone(),
            malformed_logged: AtomicU64::new(0),
            foreign_logged: AtomicU64::new(0),
        })
    }
}

impl InvalidationFeed {
    /// Whether the feed is subscribed now, read directly rather than from
    /// the events still queued: trust a cache only while this names the
    /// session the cache caught up in (see [`SubscriptionState`](crate::SubscriptionState)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let feed = pubsub.invalidations().await?;
    /// let state = feed.state().clone();
    /// let hearing_everything = state.is_subscribed();
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> &crate::SubscriptionState {
        self.subscription.state()
    }

    /// The next event, skipping (and counting) messages on channels that
    /// name no invalidation; `None` once unsubscribed or shut down.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use redis_pubsub::InvalidationEvent;
    ///
    /// let mut feed = pubsub.invalidations().await?;
    /// while let Some(event) = feed.recv().await {
    ///     match event {
    ///         InvalidationEvent::Received(received) if !received.is_from(pubsub.instance_id()) => {
    ///             let stale = received.invalidation;
    ///         }
    ///         // Invalidations were lost: drop whatever they might have covered.
    ///         InvalidationEvent::Disconnected | InvalidationEvent::Lagged { .. } => {}
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<InvalidationEvent> {
        loop {
            let event = match self.subscription.recv().await? {
                PubSubEvent::Message(message) => match decode(&message) {
                    Ok(Decoded::Readable(received)) => {
                        if let Sender::Foreign { reason } = received.sender {
                            self.foreign(&received.invalidation, reason);
                        }
                        InvalidationEvent::Received(received)
                    }
                    Ok(Decoded::Unreadable(unreadable)) => {
                        InvalidationEvent::Unreadable(unreadable)
                    }
                    Err(reason) => {
                        self.malformed(&message, reason);
                        continue;
                    }
                },
                PubSubEvent::Subscribed => InvalidationEvent::Subscribed,
                PubSubEvent::Disconnected => InvalidationEvent::Disconnected,
                PubSubEvent::Lagged { missed } => InvalidationEvent::Lagged { missed },
            };
            return Some(event);
        }
    }

    fn malformed(&self, message: &PubSubMessage, reason: &'static str) {
        bump(&self.shared.counters.malformed);
        if !due(&self.malformed_logged) {
            return;
        }
        // The channel is attacker-controlled text: log its length, not its
        // content.
        let total = self.shared.counters.malformed.load(Ordering::Relaxed);
        warn!(
            reason,
            payload_bytes = message.payload.len(),
            channel_bytes = message.channel.len(),
            malformed_total = total,
            "ignored a malformed message on an invalidation channel"
        );
    }

    /// Counts (and now and then logs) an invalidation applied although its
    /// payload is not ours: expected while the TypeScript services share
    /// Redis, so logged at info.
    fn foreign(&self, invalidation: &Invalidation, reason: &'static str) {
        bump(&self.shared.counters.foreign);
        if !due(&self.foreign_logged) {
            return;
        }
        // The channel parsed, so its ids are valid; the payload is still
        // not logged (it is anyone's text).
        let total = self.shared.counters.foreign.load(Ordering::Relaxed);
        info!(
            reason,
            cache.invalidation = invalidation.kind(),
            foreign_total = total,
            "applied an invalidation whose payload is not ours"
        );
    }
}

/// Whether a log line rate-limited by `last` (ms since the epoch) is due,
/// claiming it if so: at most one per [`LOG_PERIOD`], the counters have
/// the full story.
fn due(last: &AtomicU64) -> bool {
    let now = now_ms();
    let previous = last.load(Ordering::Relaxed);
    let period = u64::try_from(LOG_PERIOD.as_millis()).unwrap_or(u64::MAX);
    now.saturating_sub(previous) >= period
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use serde::Deserialize;

    use crate::wire::InvalidationMessage;
    use shared_types::{QueryHash, TokenHash};

    use super::*;

    fn message(channel: &str, payload: &str) -> PubSubMessage {
        PubSubMessage {
            channel: channel.to_owned(),
            pattern: Some(ALL_INVALIDATIONS_PATTERN.to_owned()),
            payload: Bytes::from(payload.to_owned()),
        }
    }

    fn shard(t: &str, s: &str) -> Invalidation {
        Invalidation::Shard {
            tenant_id: t.parse().unwrap(),
            shard_id: s.parse().unwrap(),
        }
    }

    // The payload carries our kind, ids, origin and timestamp, then the
    // TypeScript services' tenantId, type, id and timestamp, flat: the
    // wire contract of README, exactly.
    #[test]
    fn invalidation_payload_is_the_readme_wire_contract_exactly() {
        let m = InvalidationMessage {
            invalidation: shard("t1", "s1"),
            origin: "abc".into(),
            ts: 42,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"abc","ts":42,"tenantId":"t1","type":"shard","id":"s1","timestamp":42,"resourceType":"shard","resourceId":"s1"}"#
        );
        assert_eq!(
            decode(&message("cache:invalidate:shard:t1:s1", &json)),
            Ok(Decoded::Readable(ReceivedInvalidation {
                invalidation: m.invalidation,
                sender: Sender::Instance {
                    origin: "abc".into(),
                    ts: 42
                },
                position: None,
            }))
        );
        let tenant = InvalidationMessage {
            invalidation: Invalidation::Tenant {
                tenant_id: "t1".parse().unwrap(),
            },
            origin: "abc".into(),
            ts: 7,
        };
        assert_eq!(
            serde_json::to_string(&tenant).unwrap(),
            r#"{"v":1,"kind":"tenant","tenant_id":"t1","origin":"abc","ts":7,"tenantId":"t1","type":"tenant","id":"*","timestamp":7,"resourceType":"tenant"}"#
        );
    }

    // Every kind's payload names its channel in the TypeScript fields:
    // cache:invalidate:{type}:{tenantId}:{id} is the channel it goes on.
    #[test]
    fn typescript_fields_rebuild_the_channel() {
        let t: shared_types::TenantId = "t1".parse().unwrap();
        let (u, s): (shared_types::UserId, shared_types::ShardId) =
            ("u1".parse().unwrap(), "s1".parse().unwrap());
        let all = [
            shard("t1", "s1"),
            Invalidation::User {
                tenant_id: t.clone(),
                user_id: u.clone(),
            },
            Invalidation::ShardAll {
                tenant_id: t.clone(),
            },
            Invalidation::UserAll {
                tenant_id: t.clone(),
            },
            Invalidation::Acl {
                tenant_id: t.clone(),
            },
            Invalidation::AclUser {
                tenant_id: t.clone(),
                user_id: u.clone(),
            },
            Invalidation::AclShard {
                tenant_id: t.clone(),
                shard_id: s.clone(),
            },
            Invalidation::AclEntry {
                tenant_id: t.clone(),
                user_id: u,
                shard_id: s,
            },
            Invalidation::Vsearch {
                tenant_id: t.clone(),
            },
            Invalidation::VsearchQuery {
                tenant_id: t.clone(),
                query_hash: QueryHash::of_query("q"),
            },
            Invalidation::Tenant {
                tenant_id: t.clone(),
            },
            Invalidation::Session {
                tenant_id: t,
                session_hash: TokenHash::of_token("x"),
            },
        ];
        for invalidation in all {
            let (channel, payload) = super::message("me", &invalidation).unwrap();
            let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
            let rebuilt = format!(
                "cache:invalidate:{}:{}:{}",
                json["type"].as_str().unwrap(),
                json["tenantId"].as_str().unwrap(),
                json["id"].as_str().unwrap()
            );
            assert_eq!(rebuilt, channel);
            assert_eq!(json["timestamp"], json["ts"]);
            assert!(
                json["timestamp"].as_u64().unwrap() > 1_600_000_000_000,
                "not ms"
            );
            let Ok(Decoded::Readable(received)) =
                decode(&message(&channel, std::str::from_utf8(&payload).unwrap()))
            else {
                panic!("today's payload on {channel} is not readable");
            };
            assert_eq!(received.origin(), Some("me"));
        }
    }

    // An instance that predates the TypeScript fields decodes today's
    // payload: its message type (frozen here as it was) ignores unknown
    // fields.
    #[test]
    fn older_instances_decode_todays_payload() {
        #[derive(Debug, Deserialize)]
        struct MessageBeforeTypeScriptFields {
            #[serde(flatten)]
            invalidation: Invalidation,
            origin: String,
            ts: u64,
        }
        let (_, payload) = super::message("me", &shard("t1", "s1")).unwrap();
        let old: MessageBeforeTypeScriptFields = serde_json::from_slice(&payload).unwrap();
        assert_eq!(old.invalidation, shard("t1", "s1"));
        assert_eq!(old.origin, "me");
        assert!(old.ts > 0);
    }
}
