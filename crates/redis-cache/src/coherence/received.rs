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

use serde::Deserialize;
use shared_types::{Invalidation, TenantId};

use redis_pubsub::PubSubMessage;

use super::wire::{MAX_INVALIDATION_PAYLOAD, WIRE_VERSION};

/// An invalidation as received: what its channel names, and who sent it
/// when the payload can say so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedInvalidation {
    /// What became stale: always the channel's invalidation, whatever the
    /// payload claims.
    pub invalidation: Invalidation,
    /// Who sent it.
    pub sender: Sender,
    /// Where the announcement stands in the invalidation stream, when the
    /// script that published it also appended it there (redis-cache's
    /// coherence); `None` for anything else (a TypeScript service's, an
    /// older instance's, a plain [`Invalidations::invalidate`](crate::Invalidations::invalidate)).
    pub position: Option<StreamPosition>,
}

/// An announcement's place in the invalidation stream: its entry id and
/// the id of the entry before it (`0-0` for the first entry of a new
/// stream). A receiver that last applied `prev` missed nothing; any other
/// `prev` is a gap, found without reading a clock.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct StreamPosition {
    /// The stream entry id (`<ms>-<seq>`, Redis's).
    #[serde(rename = "stream_id")]
    pub id: String,
    /// The id of the entry before it in the same stream.
    #[serde(rename = "stream_prev")]
    pub prev: String,
}

/// Who sent a received invalidation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// An instance of this layer: the payload is an [`InvalidationMessage`](crate::InvalidationMessage)
    /// with a valid origin, naming exactly the channel's invalidation.
    Instance {
        /// The sender's origin (see [`InvalidationPublisher::origin`](crate::InvalidationPublisher::origin)).
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
    /// use redis_cache::{ReceivedInvalidation, Sender};
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let tenant = Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() };
    /// let ours = ReceivedInvalidation {
    ///     invalidation: tenant.clone(),
    ///     sender: Sender::Instance { origin: "a1b2".to_owned(), ts: 1_700_000_000_000 },
    ///     position: None,
    /// };
    /// assert_eq!(ours.origin(), Some("a1b2"));
    /// let foreign = ReceivedInvalidation {
    ///     invalidation: tenant,
    ///     sender: Sender::Foreign { reason: "not our payload" },
    ///     position: None,
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
    /// use redis_cache::{ReceivedInvalidation, Sender};
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let ours = ReceivedInvalidation {
    ///     invalidation: Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() },
    ///     sender: Sender::Instance { origin: "a1b2".to_owned(), ts: 1_700_000_000_000 },
    ///     position: None,
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
    /// use redis_cache::{ReceivedInvalidation, Sender};
    /// use shared_types::{Invalidation, TenantId};
    ///
    /// let ours = ReceivedInvalidation {
    ///     invalidation: Invalidation::Tenant { tenant_id: TenantId::new("acme").unwrap() },
    ///     sender: Sender::Instance { origin: "a1b2".to_owned(), ts: 1_700_000_000_000 },
    ///     position: None,
    /// };
    /// assert!(ours.is_from("a1b2"));
    /// assert!(!ours.is_from("c3d4"));
    /// ```
    pub fn is_from(&self, origin: &str) -> bool {
        self.origin() == Some(origin)
    }
}

/// An invalidation this version of the layer cannot read, from a newer one
/// (during a rolling deploy, say): a payload in a newer wire format, or a
/// channel of an invalidation kind it does not know. What changed is
/// unknown, but not whose: every channel of ours names its tenant after its
/// kind (`cache:invalidate:{kind}:{tenantId}:...`), so the receiver treats
/// the whole tenant as changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableInvalidation {
    /// The tenant the channel names: everything of it is to be dropped.
    pub tenant_id: TenantId,
    /// What could not be read.
    pub reason: Unreadable,
}

/// Why an invalidation could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unreadable {
    /// The payload declares a wire format version newer than
    /// [`WIRE_VERSION`](crate::WIRE_VERSION).
    NewerVersion {
        /// The version the payload declares.
        version: u64,
    },
    /// The channel names an invalidation kind this version does not know.
    UnknownKind,
}

/// A message on an invalidation channel, as this version reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Decoded {
    /// An invalidation this version reads.
    Readable(ReceivedInvalidation),
    /// One from a newer version that it cannot read.
    Unreadable(UnreadableInvalidation),
}

/// What `message`'s channel names, and who sent it; `Err` (a fixed reason)
/// when the channel names nothing, not even a tenant.
pub(crate) fn decode(message: &PubSubMessage) -> Result<Decoded, &'static str> {
    let Ok(invalidation) = Invalidation::from_channel(&message.channel) else {
        return unknown_kind(&message.channel)
            .map(Decoded::Unreadable)
            .ok_or("not an invalidation channel");
    };
    match sender(&message.payload, &invalidation) {
        Ok((sender, position)) => Ok(Decoded::Readable(ReceivedInvalidation {
            invalidation,
            sender,
            position,
        })),
        Err(version) => Ok(Decoded::Unreadable(UnreadableInvalidation {
            tenant_id: invalidation.tenant().clone(),
            reason: Unreadable::NewerVersion { version },
        })),
    }
}

/// A channel of an invalidation kind this version does not know, whose
/// tenant is valid: `cache:invalidate:{kind}:{tenantId}[:...]` with a kind
/// made of lowercase letters. A known kind whose channel does not parse is
/// malformed, not newer, and names nothing.
fn unknown_kind(channel: &str) -> Option<UnreadableInvalidation> {
    let (kind, tenant_id) = kind_and_tenant(channel)?;
    let new_kind = !kind.is_empty()
        && kind.bytes().all(|b| b.is_ascii_lowercase())
        && !shared_types::CHANNEL_TYPES.contains(&kind);
    new_kind.then_some(UnreadableInvalidation {
        tenant_id,
        reason: Unreadable::UnknownKind,
    })
}

/// The `{kind}` and valid `{tenantId}` of a channel
/// `cache:invalidate:{kind}:{tenantId}[:...]`, whatever follows: every
/// channel of ours, of any version, names its tenant there.
pub(crate) fn kind_and_tenant(channel: &str) -> Option<(&str, TenantId)> {
    let rest = channel.strip_prefix(shared_types::CHANNEL_PREFIX)?;
    let mut parts = rest.split(':');
    let kind = parts.next()?;
    Some((kind, parts.next()?.parse().ok()?))
}

/// A payload as this version reads it: an [`InvalidationMessage`]'s fields
/// and the wire format version (absent before versions were written, and
/// then 0).
///
/// [`InvalidationMessage`]: crate::InvalidationMessage
#[derive(Deserialize)]
struct Incoming {
    #[serde(default)]
    v: u64,
    #[serde(flatten)]
    invalidation: Invalidation,
    origin: String,
    ts: u64,
    /// Added by the script that appends the announcement to the stream.
    #[serde(flatten)]
    position: Option<StreamPosition>,
}

/// Only the version of a payload that is not readable as ours: a newer
/// format may have changed every other field.
#[derive(Deserialize)]
struct VersionOnly {
    v: u64,
}

/// Who sent `payload`, published on `channel`'s channel: an instance of
/// ours only when the payload is ours, valid, and names exactly `channel`.
/// `Err(version)` when the payload declares a newer wire format. A
/// payload of ours also gives its place in the stream, if it has one.
fn sender(payload: &[u8], channel: &Invalidation) -> Result<(Sender, Option<StreamPosition>), u64> {
    let foreign = |reason| Ok((Sender::Foreign { reason }, None));
    if payload.len() > MAX_INVALIDATION_PAYLOAD {
        return foreign("payload too large");
    }
    let Ok(ours) = serde_json::from_slice::<Incoming>(payload) else {
        // Rare (a TypeScript service's payload, garbage, or a newer
        // format): only then is the payload parsed a second time.
        return match serde_json::from_slice::<VersionOnly>(payload) {
            Ok(VersionOnly { v }) if v > u64::from(WIRE_VERSION) => Err(v),
            _ => foreign(foreign_kind(payload)),
        };
    };
    if ours.v > u64::from(WIRE_VERSION) {
        return Err(ours.v);
    }
    if ours.origin.is_empty() || ours.origin.len() > 128 {
        return foreign("bad origin");
    }
    if ours.invalidation != *channel {
        return foreign("payload does not match its channel");
    }
    Ok((
        Sender::Instance {
            origin: ours.origin,
            ts: ours.ts,
        },
        ours.position,
    ))
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
pub(crate) mod tests {
    use bytes::Bytes;
    use shared_types::ALL_INVALIDATIONS_PATTERN;

    use super::*;
    use crate::coherence::wire::InvalidationMessage;

    /// A message on `channel`, as the invalidation pattern delivers it.
    pub(crate) fn message(channel: &str, payload: &str) -> PubSubMessage {
        PubSubMessage {
            channel: channel.to_owned(),
            pattern: Some(ALL_INVALIDATIONS_PATTERN.to_owned()),
            payload: Bytes::from(payload.to_owned()),
        }
    }

    pub(crate) fn shard(t: &str, s: &str) -> Invalidation {
        Invalidation::Shard {
            tenant_id: t.parse().unwrap(),
            shard_id: s.parse().unwrap(),
        }
    }

    /// `decode`, for a message this version reads.
    fn readable(message: &PubSubMessage) -> Result<ReceivedInvalidation, &'static str> {
        match decode(message)? {
            Decoded::Readable(received) => Ok(received),
            Decoded::Unreadable(unreadable) => panic!("unreadable: {unreadable:?}"),
        }
    }

    // The script that appends an announcement to the invalidation stream
    // adds the entry's id and its predecessor's to our payload: a receiver
    // reads them as the message's place in the stream; a payload without
    // them (an older sender's) has none.
    #[test]
    fn a_payload_with_stream_fields_gives_its_place_in_the_stream() {
        let mut json = serde_json::to_string(&InvalidationMessage {
            invalidation: shard("t1", "s1"),
            origin: "abc".into(),
            ts: 42,
        })
        .unwrap();
        let plain = readable(&message("cache:invalidate:shard:t1:s1", &json)).unwrap();
        assert_eq!(plain.position, None);
        json.pop();
        json.push_str(r#","stream_id":"17-2","stream_prev":"17-1"}"#);
        let sequenced = readable(&message("cache:invalidate:shard:t1:s1", &json)).unwrap();
        assert_eq!(sequenced.origin(), Some("abc"));
        assert_eq!(
            sequenced.position,
            Some(StreamPosition {
                id: "17-2".into(),
                prev: "17-1".into()
            })
        );
    }

    fn foreign(invalidation: Invalidation, reason: &'static str) -> ReceivedInvalidation {
        ReceivedInvalidation {
            invalidation,
            sender: Sender::Foreign { reason },
            position: None,
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
                readable(&message(channel, payload)),
                Ok(foreign(s1(), reason)),
                "{payload}"
            );
        }
        let huge = format!(
            r#"{{"kind":"shard","pad":"{}"}}"#,
            "x".repeat(MAX_INVALIDATION_PAYLOAD)
        );
        assert_eq!(
            readable(&message(channel, &huge)),
            Ok(foreign(s1(), "payload too large"))
        );
    }

    // A foreign payload is nobody's own: not even a payload of ours that
    // carries our origin but names another invalidation than its channel.
    #[test]
    fn only_a_valid_payload_of_ours_has_an_origin() {
        let mismatched =
            r#"{"kind":"shard","tenant_id":"t1","shard_id":"s2","origin":"me","ts":1}"#;
        let received = readable(&message("cache:invalidate:shard:t1:s1", mismatched)).unwrap();
        assert!(!received.is_from("me"));
        assert_eq!(received.origin(), None);
        assert_eq!(received.ts(), None);
        let matched = r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"me","ts":1}"#;
        let received = readable(&message("cache:invalidate:shard:t1:s1", matched)).unwrap();
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
            "cache:invalidate:teleport:t 1:s1",
            "cache:invalidate:Teleport:t1:s1",
            "cache:invalidate:teleport",
            "elsewhere:teleport:t1:s1",
            "elsewhere:shard:t1:s1",
        ] {
            assert_eq!(
                decode(&message(channel, ours)),
                Err("not an invalidation channel"),
                "{channel}"
            );
        }
    }

    fn unreadable(tenant: &str, reason: Unreadable) -> Decoded {
        Decoded::Unreadable(UnreadableInvalidation {
            tenant_id: tenant.parse().unwrap(),
            reason,
        })
    }

    // Mixed versions, old sender and new receiver: a payload without `v`
    // (what instances wrote before versions) is read as ours, as before.
    #[test]
    fn a_payload_without_a_version_is_read_as_before() {
        let old = r#"{"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"me","ts":7}"#;
        let received = readable(&message("cache:invalidate:shard:t1:s1", old)).unwrap();
        assert!(received.is_from("me"));
        assert_eq!(received.ts(), Some(7));
    }

    // A payload in a newer format than this version writes is not read as
    // ours nor as foreign: its whole tenant is unreadable, whether the rest
    // of the payload still parses or not.
    #[test]
    fn a_newer_wire_version_makes_its_tenant_unreadable() {
        let newer = WIRE_VERSION + 1;
        let payloads = [
            format!(
                r#"{{"v":{newer},"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"me","ts":7}}"#
            ),
            format!(r#"{{"v":{newer},"keys":["a","b"],"from":"me"}}"#),
        ];
        for payload in payloads {
            assert_eq!(
                decode(&message("cache:invalidate:shard:t1:s1", &payload)),
                Ok(unreadable(
                    "t1",
                    Unreadable::NewerVersion {
                        version: u64::from(newer)
                    }
                )),
                "{payload}"
            );
        }
        // This version's own, and older ones, are read.
        for v in 0..=WIRE_VERSION {
            let payload = format!(
                r#"{{"v":{v},"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"me","ts":7}}"#
            );
            let received = readable(&message("cache:invalidate:shard:t1:s1", &payload)).unwrap();
            assert!(received.is_from("me"), "{payload}");
        }
    }

    // A channel of a kind this version does not know, with a valid tenant,
    // comes from a newer version: its tenant is unreadable. A known kind
    // whose channel does not parse stays malformed.
    #[test]
    fn a_channel_of_an_unknown_kind_makes_its_tenant_unreadable() {
        for channel in [
            "cache:invalidate:teleport:t1:s1",
            "cache:invalidate:document:t1:x:y:z",
            "cache:invalidate:teleport:t1",
        ] {
            assert_eq!(
                decode(&message(channel, "{}")),
                Ok(unreadable("t1", Unreadable::UnknownKind)),
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
                Ok(Decoded::Unreadable(unreadable)) => {
                    proptest::prop_assert!(channel.contains(unreadable.tenant_id.as_str()));
                }
                Ok(Decoded::Readable(received)) => {
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
            let received = readable(&message).unwrap();
            proptest::prop_assert_eq!(received.invalidation, shard("t1", "s1"));
        }
    }
}
