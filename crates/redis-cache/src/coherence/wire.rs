//! The wire format of an invalidation: the JSON payload this layer
//! publishes on an invalidation channel ([`InvalidationMessage`]), and what
//! it accepts (at most [`MAX_INVALIDATION_PAYLOAD`] bytes). The publishers
//! (`publisher.rs`, and the cache's announced writes through them) write
//! it; reading a received message (`received.rs`) parses it. This is the
//! one place the format is written down: redis-pubsub only carries the
//! bytes.
//!
//! An [`Invalidation`] from shared-types is published on its own channel
//! with a small JSON payload: its kind and ids, the publishing instance's
//! id and a timestamp for us, and the fields a TypeScript consumer of the
//! same channels reads (`tenantId`, `type`, `id`, `timestamp`), e.g.
//! `{"v":1,"kind":"shard","tenant_id":"t1","shard_id":"s1","origin":"9f..","ts":1764000000000,"tenantId":"t1","type":"shard","id":"s1","timestamp":1764000000000,"resourceType":"shard","resourceId":"s1"}`.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shared_types::Invalidation;

use redis_pubsub::PubSubError;

/// Largest invalidation payload accepted; real ones are well under 1 KiB.
pub const MAX_INVALIDATION_PAYLOAD: usize = 16 * 1024;

/// The version of the wire format this layer writes (the payload's `v`) and
/// the newest it reads. Payloads without `v` predate versions (0) and are
/// read as before.
///
/// Raise it when a change would make an older instance misread a payload.
/// An instance that receives a newer version cannot know what changed, so
/// it drops the whole tenant of the channel from its L1 (and counts it):
/// during a rolling deploy, old and new instances stay coherent at the cost
/// of some L1 misses. Adding a field is not such a change: every version
/// ignores fields it does not know.
pub const WIRE_VERSION: u32 = 1;

/// The payload of an invalidation channel, as this layer sends it.
///
/// Serialised flat with the wire format version `v` ([`WIRE_VERSION`]), the
/// invalidation's `kind` and ids, `origin` and `ts` (what another instance
/// of this layer reads), plus `tenantId`, `type`,
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
    /// The publishing instance (see [`InvalidationPublisher::origin`](crate::InvalidationPublisher::origin)).
    pub origin: String,
    /// When it was published, in milliseconds since the Unix epoch.
    pub ts: u64,
}

impl Serialize for InvalidationMessage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        /// The wire form: ours first, then the TypeScript services' fields.
        #[derive(Serialize)]
        struct Wire<'a> {
            v: u32,
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
            // The names the TypeScript package's own `invalidate()` writes;
            // its `resourceId` is absent for a whole family.
            #[serde(rename = "resourceType")]
            resource_type: &'static str,
            #[serde(rename = "resourceId", skip_serializing_if = "Option::is_none")]
            resource_id: Option<&'a str>,
        }
        let id = self.invalidation.channel_id();
        let channel_type = self.invalidation.channel_type();
        Wire {
            v: WIRE_VERSION,
            invalidation: &self.invalidation,
            origin: &self.origin,
            ts: self.ts,
            tenant_id: self.invalidation.tenant().as_str(),
            channel_type,
            resource_type: channel_type,
            resource_id: (id != "*").then_some(id.as_str()),
            id: id.clone(),
            timestamp: self.ts,
        }
        .serialize(serializer)
    }
}

/// The channel and payload announcing `invalidation` from `origin`.
pub(crate) fn message(
    origin: &str,
    invalidation: &Invalidation,
) -> Result<(String, Bytes), PubSubError> {
    let message = InvalidationMessage {
        invalidation: invalidation.clone(),
        origin: origin.to_owned(),
        ts: now_ms(),
    };
    let payload = serde_json::to_vec(&message).map_err(|e| PubSubError::Encode(e.into()))?;
    Ok((invalidation.channel(), Bytes::from(payload)))
}

/// Milliseconds since the Unix epoch, by this machine's clock.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use shared_types::{ShardId, TenantId};

    use super::*;

    /// What instances before [`WIRE_VERSION`] deserialised a payload into:
    /// the shape of `InvalidationMessage` then (flattened invalidation,
    /// origin, timestamp; unknown fields ignored).
    #[derive(Debug, Deserialize)]
    struct BeforeVersions {
        #[serde(flatten)]
        invalidation: Invalidation,
        origin: String,
        ts: u64,
    }

    fn shard() -> Invalidation {
        Invalidation::Shard {
            tenant_id: TenantId::new("t1").unwrap(),
            shard_id: ShardId::new("s1").unwrap(),
        }
    }

    // Every payload says which format it is in.
    #[test]
    fn every_payload_carries_the_wire_version() {
        let (_, payload) = message("origin-1", &shard()).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        assert_eq!(json["v"], serde_json::json!(WIRE_VERSION));
    }

    // Mixed versions, new sender and old receiver: an instance from before
    // versions reads today's payload as the same invalidation, from the
    // same origin.
    #[test]
    fn an_instance_from_before_versions_reads_todays_payload() {
        let (_, payload) = message("origin-1", &shard()).unwrap();
        let old: BeforeVersions = serde_json::from_slice(&payload).unwrap();
        assert_eq!(old.invalidation, shard());
        assert_eq!(old.origin, "origin-1");
        assert!(old.ts > 0);
    }
}

#[cfg(test)]
mod contract_tests {
    use shared_types::{Invalidation, QueryHash, TokenHash};

    use super::InvalidationMessage;
    use crate::coherence::received::tests::{message, shard};
    use crate::coherence::received::{Decoded, ReceivedInvalidation, Sender, decode};

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
}
