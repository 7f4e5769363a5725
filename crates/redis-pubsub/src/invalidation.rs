//! Type-safe invalidation messages: the seed's `pubsub.invalidate(tenant,
//! kind, id)`.
//!
//! **Sending.** An [`Invalidation`] from shared-types is published on its
//! own channel with a small JSON payload ([`InvalidationMessage`]): its kind
//! and ids, the publishing instance's id and a timestamp for us, and the
//! fields a TypeScript consumer of the same channels reads (`tenantId`,
//! `type`, `id`, `timestamp`), e.g.
//! `{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"9f..","ts":1764000000000,"tenantId":"t1","type":"shard","id":"s1","timestamp":1764000000000}`.
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
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use redis_connection::fred::clients::Client;
use serde::{Deserialize, Serialize};
use shared_types::{ALL_INVALIDATIONS_PATTERN, Invalidation};
use tracing::{info, warn};

use crate::error::PubSubError;
use crate::message::{PubSubEvent, PubSubMessage, Subscription};
use crate::pubsub::{PubSub, Shared};
use crate::stats::bump;

/// Largest invalidation payload accepted; real ones are well under 1 KiB.
pub const MAX_INVALIDATION_PAYLOAD: usize = 16 * 1024;

/// How often a malformed message, or a foreign payload, is logged (the rest
/// are only counted).
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// The payload of an invalidation channel, as this layer sends it.
///
/// Serialised flat with the invalidation's `kind` and ids, `origin` and `ts`
/// (what another instance of this layer reads), plus `tenantId`, `type`,
/// `id` and `timestamp` for the TypeScript services (see README, "Sharing
/// Redis with the TypeScript services"): `type` and `id` are
/// [`Invalidation::channel_type`] and [`Invalidation::channel_id`], so that
/// `cache:invalidate:{type}:{tenantId}:{id}` is the channel, and `timestamp`
/// equals `ts`. Deserialising ignores fields it does not know (the
/// TypeScript ones included), so instances that predate a field still read
/// the payload.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InvalidationMessage {
    /// What became stale (serialised inline: `kind` and the ids).
    #[serde(flatten)]
    pub invalidation: Invalidation,
    /// The publishing instance (see [`PubSub::instance_id`]).
    pub origin: String,
    /// When it was published, in milliseconds since the Unix epoch.
    pub ts: u64,
}

impl Serialize for InvalidationMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The wire form: ours first, then the TypeScript services' fields.
        #[derive(Serialize)]
        struct Wire<'a> {
            #[serde(flatten)]
            invalidation: &'a Invalidation,
            origin: &'a str,
            ts: u64,
            #[serde(rename = "tenantId")]
            tenant_id: &'a str,
            #[serde(rename = "type")]
            channel_type: &'static str,
            id: String,
            timestamp: u64,
        }
        Wire {
            invalidation: &self.invalidation,
            origin: &self.origin,
            ts: self.ts,
            tenant_id: self.invalidation.tenant().as_str(),
            channel_type: self.invalidation.channel_type(),
            id: self.invalidation.channel_id(),
            timestamp: self.ts,
        }
        .serialize(serializer)
    }
}

/// An invalidation as received: what its channel names, and who sent it
/// when the payload can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedInvalidation {
    /// What became stale: always the channel's invalidation, whatever the
    /// payload claims.
    pub invalidation: Invalidation,
    /// Who sent it.
    pub sender: Sender,
}

/// Who sent a received invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// An instance of this layer: the payload is an [`InvalidationMessage`]
    /// with a valid origin, naming exactly the channel's invalidation.
    Instance {
        /// The sender's origin (see [`InvalidationPublisher::origin`]).
        origin: String,
        /// When it was published, in milliseconds since the Unix epoch.
        ts: u64,
    },
    /// Anyone else, or a payload that cannot be trusted to say: a
    /// TypeScript service, `redis-cli`, an empty or garbled payload, or one
    /// of ours that names another invalidation than its channel.
    Foreign {
        /// Why the payload is not taken as ours (a fixed string).
        reason: &'static str,
    },
}

impl ReceivedInvalidation {
    /// The sender's origin, for a payload of ours.
    pub fn origin(&self) -> Option<&str> {
        match &self.sender {
            Sender::Instance { origin, .. } => Some(origin),
            Sender::Foreign { .. } => None,
        }
    }

    /// When it was published (ms since the Unix epoch), for a payload of ours.
    pub fn ts(&self) -> Option<u64> {
        match &self.sender {
            Sender::Instance { ts, .. } => Some(*ts),
            Sender::Foreign { .. } => None,
        }
    }

    /// Whether `origin` sent it. Only a payload of ours can say so: a
    /// foreign payload is never anyone's own, so it is always applied.
    pub fn is_from(&self, origin: &str) -> bool {
        self.origin() == Some(origin)
    }
}

/// What an [`InvalidationFeed`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InvalidationEvent {
    /// An invalidation from anyone: any instance of this layer (this one
    /// included: see [`ReceivedInvalidation::is_from`]) or any other client
    /// publishing on an invalidation channel.
    Received(ReceivedInvalidation),
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
            malformed_logged: AtomicU64::new(0),
            foreign_logged: AtomicU64::new(0),
        })
    }
}

impl InvalidationFeed {
    /// The next event, skipping (and counting) messages on channels that
    /// name no invalidation; `None` once unsubscribed or shut down.
    pub async fn recv(&mut self) -> Option<InvalidationEvent> {
        loop {
            let event = match self.subscription.recv().await? {
                PubSubEvent::Message(message) => match decode(&message) {
                    Ok(received) => {
                        if let Sender::Foreign { reason } = received.sender {
                            self.foreign(&received.invalidation, reason);
                        }
                        InvalidationEvent::Received(received)
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

/// The invalidation `message`'s channel names, and who sent it; `Err` (a
/// fixed reason) when the channel names none.
fn decode(message: &PubSubMessage) -> Result<ReceivedInvalidation, &'static str> {
    let invalidation =
        Invalidation::from_channel(&message.channel).map_err(|_| "not an invalidation channel")?;
    let sender = sender(&message.payload, &invalidation);
    Ok(ReceivedInvalidation {
        invalidation,
        sender,
    })
}

/// Who sent `payload`, published on `channel`'s channel: an instance of
/// ours only when the payload is ours, valid, and names exactly `channel`.
fn sender(payload: &[u8], channel: &Invalidation) -> Sender {
    let foreign = |reason| Sender::Foreign { reason };
    if payload.len() > MAX_INVALIDATION_PAYLOAD {
        return foreign("payload too large");
    }
    let Ok(ours) = serde_json::from_slice::<InvalidationMessage>(payload) else {
        return foreign(foreign_kind(payload));
    };
    if ours.origin.is_empty() || ours.origin.len() > 128 {
        return foreign("bad origin");
    }
    if ours.invalidation != *channel {
        return foreign("payload does not match its channel");
    }
    Sender::Instance {
        origin: ours.origin,
        ts: ours.ts,
    }
}

/// What a payload that is not ours looks like, for the log.
fn foreign_kind(payload: &[u8]) -> &'static str {
    if payload.is_empty() {
        return "empty payload";
    }
    match serde_json::from_slice::<serde_json::Value>(payload) {
        Ok(serde_json::Value::Object(fields)) if fields.contains_key("tenantId") => {
            "a TypeScript-package payload"
        }
        Ok(_) => "JSON that is not an invalidation payload",
        Err(_) => "not JSON",
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

    fn foreign(invalidation: Invalidation, reason: &'static str) -> ReceivedInvalidation {
        ReceivedInvalidation {
            invalidation,
            sender: Sender::Foreign { reason },
        }
    }

    // The payload carries our kind, ids, origin and timestamp, then the
    // TypeScript services' tenantId, type, id and timestamp, flat: the
    // wire contract of README, exactly.
    #[test]
    fn payload_shape() {
        let m = InvalidationMessage {
            invalidation: shard("t1", "s1"),
            origin: "abc".into(),
            ts: 42,
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"abc","ts":42,"tenantId":"t1","type":"shard","id":"s1","timestamp":42}"#
        );
        assert_eq!(
            decode(&message("cache:invalidate:shard:t1:s1", &json)),
            Ok(ReceivedInvalidation {
                invalidation: m.invalidation,
                sender: Sender::Instance {
                    origin: "abc".into(),
                    ts: 42
                }
            })
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
            r#"{"kind":"tenant","tenant_id":"t1","origin":"abc","ts":7,"tenantId":"t1","type":"tenant","id":"*","timestamp":7}"#
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
            assert_eq!(
                decode(&message(&channel, std::str::from_utf8(&payload).unwrap()))
                    .unwrap()
                    .origin(),
                Some("me")
            );
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

    // A channel that names an invalidation is delivered as that
    // invalidation whatever the payload; a payload that is not ours (or
    // not valid, or naming something else) makes it foreign, never dropped.
    #[test]
    fn the_channel_decides_what_is_invalidated() {
        let channel = "cache:invalidate:shard:t1:s1";
        let s1 = || shard("t1", "s1");
        let cases = [
            (
                r#"{"tenantId":"t1","type":"shard","id":"s1","timestamp":1}"#,
                "a TypeScript-package payload",
            ),
            ("not json", "not JSON"),
            ("", "empty payload"),
            ("[1,2]", "JSON that is not an invalidation payload"),
            (
                r#"{"kind":"nope","tenant_id":"t1","origin":"a","ts":1}"#,
                "JSON that is not an invalidation payload",
            ),
            (
                r#"{"kind":"shard","tenant_id":"t:1","shard_id":"s1","origin":"a","ts":1}"#,
                "JSON that is not an invalidation payload",
            ),
            (
                r#"{"kind":"shard","tenant_id":"t1","shard_id":"s2","origin":"a","ts":1}"#,
                "payload does not match its channel",
            ),
            (
                r#"{"kind":"tenant","tenant_id":"t1","origin":"a","ts":1}"#,
                "payload does not match its channel",
            ),
            (
                r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"","ts":1}"#,
                "bad origin",
            ),
        ];
        for (payload, reason) in cases {
            assert_eq!(
                decode(&message(channel, payload)),
                Ok(foreign(s1(), reason)),
                "{payload}"
            );
        }
        let huge = format!(
            r#"{{"kind":"shard","pad":"{}"}}"#,
            "x".repeat(MAX_INVALIDATION_PAYLOAD)
        );
        assert_eq!(
            decode(&message(channel, &huge)),
            Ok(foreign(s1(), "payload too large"))
        );
    }

    // A foreign payload is nobody's own: not even a payload of ours that
    // carries our origin but names another invalidation than its channel.
    #[test]
    fn only_a_valid_payload_of_ours_has_an_origin() {
        let mismatched =
            r#"{"kind":"shard","tenant_id":"t1","shard_id":"s2","origin":"me","ts":1}"#;
        let received = decode(&message("cache:invalidate:shard:t1:s1", mismatched)).unwrap();
        assert!(!received.is_from("me"));
        assert_eq!(received.origin(), None);
        assert_eq!(received.ts(), None);
        let matched = r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"me","ts":1}"#;
        let received = decode(&message("cache:invalidate:shard:t1:s1", matched)).unwrap();
        assert!(received.is_from("me"));
        assert!(!received.is_from("someone else"));
    }

    // A channel that does not parse names nothing, whatever the payload.
    #[test]
    fn channels_that_do_not_parse_are_refused() {
        let ours = r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"abc","ts":42}"#;
        for channel in [
            "cache:invalidate:bogus",
            "cache:invalidate:shard:t1:s?",
            "cache:invalidate:shard:t 1:s1",
            "cache:invalidate:shard:t1",
            "cache:invalidate:teleport:t1:s1",
            "elsewhere:shard:t1:s1",
        ] {
            assert_eq!(
                decode(&message(channel, ours)),
                Err("not an invalidation channel"),
                "{channel}"
            );
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]

        // Any channel and any payload bytes: decoding never panics, delivers
        // exactly the channel's invalidation, and names a sender only for a
        // payload that names that same invalidation.
        #[test]
        fn decode_is_total(channel in ".{0,80}", payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let message = PubSubMessage { channel: channel.clone(), pattern: None, payload: Bytes::from(payload.clone()) };
            match decode(&message) {
                Ok(received) => {
                    proptest::prop_assert_eq!(received.invalidation.channel(), channel);
                    if received.origin().is_some() {
                        let ours: InvalidationMessage = serde_json::from_slice(&payload).unwrap();
                        proptest::prop_assert_eq!(ours.invalidation, received.invalidation);
                    }
                }
                Err(reason) => proptest::prop_assert_eq!(reason, "not an invalidation channel"),
            }
        }

        // Near-valid payloads (valid JSON objects with arbitrary field values)
        // never panic either, and never redirect the invalidation.
        #[test]
        fn decode_of_json_objects(kind in "[a-z_]{0,12}", tenant in ".{0,20}", id in ".{0,20}", origin in ".{0,200}") {
            let payload = serde_json::json!({"kind": kind, "tenant_id": tenant, "shard_id": id, "user_id": id, "origin": origin, "ts": 1});
            let channel = "cache:invalidate:shard:t1:s1".to_owned();
            let message = PubSubMessage { channel, pattern: None, payload: Bytes::from(payload.to_string()) };
            let received = decode(&message).unwrap();
            proptest::prop_assert_eq!(received.invalidation, shard("t1", "s1"));
        }
    }
}
