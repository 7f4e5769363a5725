//! The wire format of an invalidation: the JSON payload this layer
//! publishes on an invalidation channel ([`InvalidationMessage`]), and what
//! it accepts (at most [`MAX_INVALIDATION_PAYLOAD`] bytes). Publishing and
//! the feed (`invalidation.rs`) write it; reading a received message
//! (`received.rs`) parses it.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use shared_types::Invalidation;

use crate::error::PubSubError;

/// Largest invalidation payload accepted; real ones are well under 1 KiB.
pub const MAX_INVALIDATION_PAYLOAD: usize = 16 * 1024;

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
    /// The publishing instance (see [`PubSub::instance_id`](crate::PubSub::instance_id)).
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
