//! Type-safe invalidation messages: the seed's `pubsub.invalidate(tenant,
//! kind, id)`.
//!
//! An [`Invalidation`] from shared-types is published on its own channel with
//! a small JSON payload: its kind and ids, the publishing instance's id, and
//! a timestamp, e.g.
//! `{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"9f..","ts":1764000000000}`.
//!
//! On the receiving side anything that is not such a message (bad JSON, an
//! unknown kind, invalid ids, an oversize payload, or a payload that does
//! not match the channel it came on) is counted, logged (rate-limited) and
//! skipped: never a panic, never the end of the stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis_connection::fred::clients::Client;
use serde::{Deserialize, Serialize};
use shared_types::{ALL_INVALIDATIONS_PATTERN, Invalidation};
use tracing::warn;

use crate::error::PubSubError;
use crate::message::{PubSubEvent, PubSubMessage, Subscription};
use crate::pubsub::{PubSub, Shared};
use crate::stats::bump;

/// Largest invalidation payload accepted; real ones are well under 1 KiB.
pub const MAX_INVALIDATION_PAYLOAD: usize = 16 * 1024;

/// How often a malformed message is logged (the rest are only counted).
const MALFORMED_LOG_PERIOD: Duration = Duration::from_secs(10);

/// The payload of an invalidation channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvalidationMessage {
    /// What became stale (serialised inline: `kind` and the ids).
    #[serde(flatten)]
    pub invalidation: Invalidation,
    /// The publishing instance (see [`PubSub::instance_id`]).
    pub origin: String,
    /// When it was published, in milliseconds since the Unix epoch.
    pub ts: u64,
}

/// What an [`InvalidationFeed`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidationEvent {
    /// An invalidation from any instance (this one included: compare
    /// `origin` with [`PubSub::instance_id`]).
    Received(InvalidationMessage),
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
    last_logged: Arc<AtomicU64>,
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
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The pub/sub service it publishes through.
    pub fn pubsub(&self) -> &PubSub {
        &self.pubsub
    }

    /// Publishes `invalidation` on its channel; returns the number of
    /// receiving subscriber connections (on a cluster, those of one node
    /// only: see [`PubSub::publish`]).
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when Redis cannot take it.
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, PubSubError> {
        let (channel, payload) = message(&self.origin, invalidation)?;
        self.pubsub.publish_bytes(&channel, payload).await
    }

    /// [`invalidate`](Self::invalidate) through `client`, ordered after
    /// what the caller sent on it just before: see
    /// [`PubSub::publish_bytes_on`].
    ///
    /// # Errors
    /// As [`invalidate`](Self::invalidate).
    pub async fn invalidate_on(
        &self,
        client: &Client,
        invalidation: &Invalidation,
    ) -> Result<u64, PubSubError> {
        let (channel, payload) = message(&self.origin, invalidation)?;
        self.pubsub
            .publish_bytes_on(client, &channel, payload)
            .await
    }
}

/// The channel and payload announcing `invalidation` from `origin`.
fn message(origin: &str, invalidation: &Invalidation) -> Result<(String, Bytes), PubSubError> {
    let message = InvalidationMessage {
        invalidation: invalidation.clone(),
        origin: origin.to_owned(),
        ts: now_ms(),
    };
    let payload = serde_json::to_vec(&message).map_err(|e| PubSubError::Encode(e.to_string()))?;
    Ok((invalidation.channel(), Bytes::from(payload)))
}

impl PubSub {
    /// Publishes `invalidation` on its channel with this instance's id as
    /// its origin; returns the number of receiving subscriber connections
    /// (on a cluster, those of one node only: see [`PubSub::publish`]).
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when Redis cannot take it.
    pub async fn invalidate(&self, invalidation: &Invalidation) -> Result<u64, PubSubError> {
        let (channel, payload) = message(self.instance_id(), invalidation)?;
        self.publish_bytes(&channel, payload).await
    }

    /// A publisher of invalidations with an origin of its own (random, like
    /// [`PubSub::instance_id`], and different from it).
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
    pub async fn invalidations(&self) -> Result<InvalidationFeed, PubSubError> {
        let subscription = self.psubscribe(ALL_INVALIDATIONS_PATTERN).await?;
        Ok(InvalidationFeed {
            subscription,
            shared: self.shared().clone(),
            last_logged: Arc::new(AtomicU64::new(0)),
        })
    }
}

impl InvalidationFeed {
    /// The next event, skipping (and counting) malformed messages; `None`
    /// once unsubscribed or shut down.
    pub async fn recv(&mut self) -> Option<InvalidationEvent> {
        loop {
            let event = match self.subscription.recv().await? {
                PubSubEvent::Message(message) => match decode(&message) {
                    Ok(decoded) => InvalidationEvent::Received(decoded),
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
        // Log at most once per period; the counter has the full story. The
        // channel is attacker-controlled text: log its length, not its content.
        let now = now_ms();
        let last = self.last_logged.load(Ordering::Relaxed);
        let period = u64::try_from(MALFORMED_LOG_PERIOD.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(last) >= period
            && self
                .last_logged
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let total = self.shared.counters.malformed.load(Ordering::Relaxed);
            warn!(
                reason,
                payload_bytes = message.payload.len(),
                channel_bytes = message.channel.len(),
                malformed_total = total,
                "ignored a malformed message on an invalidation channel"
            );
        }
    }
}

/// Decodes and checks one message; the reason is a fixed string.
fn decode(message: &PubSubMessage) -> Result<InvalidationMessage, &'static str> {
    if message.payload.len() > MAX_INVALIDATION_PAYLOAD {
        return Err("payload too large");
    }
    let decoded: InvalidationMessage =
        serde_json::from_slice(&message.payload).map_err(|_| "not an invalidation payload")?;
    if decoded.origin.is_empty() || decoded.origin.len() > 128 {
        return Err("bad origin");
    }
    match Invalidation::from_channel(&message.channel) {
        Ok(from_channel) if from_channel == decoded.invalidation => Ok(decoded),
        Ok(_) => Err("payload does not match its channel"),
        Err(_) => Err("not an invalidation channel"),
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn message(channel: &str, payload: &str) -> PubSubMessage {
        PubSubMessage {
            channel: channel.to_owned(),
            pattern: Some(ALL_INVALIDATIONS_PATTERN.to_owned()),
            payload: Bytes::from(payload.to_owned()),
        }
    }

    // The payload carries kind, ids, origin and timestamp, flat.
    #[test]
    fn payload_shape() {
        let m = InvalidationMessage {
            invalidation: Invalidation::Shard {
                tenant_id: "t1".parse().unwrap(),
                shard_id: "s1".parse().unwrap(),
            },
            origin: "abc".into(),
            ts: 42,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"abc","ts":42}"#
        );
        assert_eq!(
            decode(&message("cache:invalidate:shard:t1:s1", &json)),
            Ok(m)
        );
    }

    // Each kind of bad input is refused with its own reason.
    #[test]
    fn malformed_inputs() {
        let ok = r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"abc","ts":42}"#;
        let cases = [
            (
                "cache:invalidate:shard:t1:s1",
                "{not json",
                "not an invalidation payload",
            ),
            (
                "cache:invalidate:shard:t1:s1",
                r#"{"kind":"nope","tenant_id":"t1","origin":"a","ts":1}"#,
                "not an invalidation payload",
            ),
            (
                "cache:invalidate:shard:t1:s1",
                r#"{"kind":"shard","tenant_id":"t:1","shard_id":"s1","origin":"a","ts":1}"#,
                "not an invalidation payload",
            ),
            (
                "cache:invalidate:shard:t1:s2",
                ok,
                "payload does not match its channel",
            ),
            ("cache:invalidate:bogus", ok, "not an invalidation channel"),
            (
                "cache:invalidate:shard:t1:s1",
                r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"","ts":1}"#,
                "bad origin",
            ),
        ];
        for (channel, payload, reason) in cases {
            assert_eq!(decode(&message(channel, payload)), Err(reason), "{payload}");
        }
        let huge = format!(
            r#"{{"kind":"shard","pad":"{}"}}"#,
            "x".repeat(MAX_INVALIDATION_PAYLOAD)
        );
        assert_eq!(
            decode(&message("cache:invalidate:shard:t1:s1", &huge)),
            Err("payload too large")
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        // Any channel and any payload bytes: decoding never panics, and
        // accepts only a payload that matches its channel.
        #[test]
        fn decode_is_total(channel in ".{0,80}", payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let message = PubSubMessage { channel: channel.clone(), pattern: None, payload: Bytes::from(payload) };
            if let Ok(decoded) = decode(&message) {
                proptest::prop_assert_eq!(decoded.invalidation.channel(), channel);
            }
        }

        // Near-valid payloads (valid JSON objects with arbitrary field values)
        // never panic either.
        #[test]
        fn decode_of_json_objects(kind in "[a-z_]{0,12}", tenant in ".{0,20}", id in ".{0,20}", origin in ".{0,200}") {
            let payload = serde_json::json!({"kind": kind, "tenant_id": tenant, "shard_id": id, "user_id": id, "origin": origin, "ts": 1});
            let channel = format!("cache:invalidate:{kind}:{tenant}:{id}");
            let message = PubSubMessage { channel, pattern: None, payload: Bytes::from(payload.to_string()) };
            let _ = decode(&message);
        }
    }
}
