//! What a message on an invalidation channel says: the channel decides what
//! is invalidated, the payload at most who sent it.
//!
//! Services on the TypeScript package publish on the same channels with
//! payloads of their own (and `redis-cli` with anything): a message is
//! therefore read from its channel, and its payload is trusted to name a
//! sender only when it is ours, valid, and names exactly the channel's
//! invalidation. A payload can neither widen nor redirect what the channel
//! names, nor (unless it is ours for that very channel) make an instance
//! skip it as its own.

use shared_types::Invalidation;

use crate::message::PubSubMessage;
use crate::wire::{InvalidationMessage, MAX_INVALIDATION_PAYLOAD};

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
        /// The sender's origin (see [`crate::InvalidationPublisher::origin`]).
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
    ///
    /// # Examples
    ///
    /// ```
    /// use redis_pubsub::{ReceivedInvalidation, Sender};
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let tenant = Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() };
    /// let ours = ReceivedInvalidation {
    ///     invalidation: tenant.clone(),
    ///     sender: Sender::Instance { origin: "a1b2".to_owned(), ts: 1_700_000_000_000 },
    /// };
    /// assert_eq!(ours.origin(), Some("a1b2"));
    /// let foreign = ReceivedInvalidation {
    ///     invalidation: tenant,
    ///     sender: Sender::Foreign { reason: "not our payload" },
    /// };
    /// assert_eq!(foreign.origin(), None);
    /// ```
    pub fn origin(&self) -> Option<&str> {
        match &self.sender {
            Sender::Instance { origin, .. } => Some(origin),
            Sender::Foreign { .. } => None,
        }
    }

    /// When it was published (ms since the Unix epoch), for a payload of ours.
    ///
    /// # Examples
    ///
    /// ```
    /// use redis_pubsub::{ReceivedInvalidation, Sender};
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let ours = ReceivedInvalidation {
    ///     invalidation: Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() },
    ///     sender: Sender::Instance { origin: "a1b2".to_owned(), ts: 1_700_000_000_000 },
    /// };
    /// assert_eq!(ours.ts(), Some(1_700_000_000_000));
    /// ```
    pub fn ts(&self) -> Option<u64> {
        match &self.sender {
            Sender::Instance { ts, .. } => Some(*ts),
            Sender::Foreign { .. } => None,
        }
    }

    /// Whether `origin` sent it. Only a payload of ours can say so: a
    /// foreign payload is never anyone's own, so it is always applied.
    ///
    /// # Examples
    ///
    /// ```
    /// use redis_pubsub::{ReceivedInvalidation, Sender};
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let ours = ReceivedInvalidation {
    ///     invalidation: Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() },
    ///     sender: Sender::Instance { origin: "a1b2".to_owned(), ts: 1_700_000_000_000 },
    /// };
    /// assert!(ours.is_from("a1b2"));
    /// assert!(!ours.is_from("c3d4"));
    /// ```
    pub fn is_from(&self, origin: &str) -> bool {
        self.origin() == Some(origin)
    }
}

/// The invalidation `message`'s channel names, and who sent it; `Err` (a
/// fixed reason) when the channel names none.
pub(crate) fn decode(message: &PubSubMessage) -> Result<ReceivedInvalidation, &'static str> {
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

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use shared_types::ALL_INVALIDATIONS_PATTERN;

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
