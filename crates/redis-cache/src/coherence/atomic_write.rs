//! A change of one key and its announcement, made atomic by Redis: one
//! script runs the `SET`, `PEXPIRE` or `UNLINK` and the `PUBLISH` that
//! tells other instances, so no subscriber can hear of the change before
//! it is visible, whatever fred does with the order of commands (the
//! earlier design queued the `PUBLISH` behind the write on one connection,
//! which a `NOSCRIPT` reload of the write's script turned around).
//!
//! The script also appends the announcement to the invalidation stream
//! (`stream.rs`), which names a key of its own. On a single server the
//! script names the changed key, the stream and the tenant's key index,
//! and all of it is one step. On a cluster the key, the stream and the
//! index are in different slots (keys carry no hash tag) and no script can
//! hold them: the change runs as an unannounced write (its index update
//! queued first, one round trip), and the announcement (stream and
//! `PUBLISH`, one script on the stream's node) follows its reply, as for a
//! pattern. Subscribers still never hear of a change before it is visible;
//! what the cluster gives up is atomicity (a process that dies between the
//! two leaves the change unannounced) and one round trip.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use shared_types::RedisKey;

use super::stream::{INVALIDATION_STREAM, retention_args, stream_fn};
use crate::config::Retention;
use crate::error::CacheError;
use crate::index::{held, index_fn};
use crate::store::{Store, millis};

/// `KEYS[1]`: the key; `KEYS[2]`: the invalidation stream; `KEYS[3]`
/// (optional): the key's tenant's index, or for an `unlink` the key's load
/// lease (`lease.rs`), removed with the key so that a load in progress is
/// not written back over the delete. `ARGV`: the change (`set`, `pexpire`
/// or `unlink`), the channel, the payload, the TTL in ms, how long the
/// index holds the key in ms, the value, the stream's max entries and
/// window in ms. Answers the change's reply (1 for `set`). The
/// announcement (append to the stream, `PUBLISH`) comes first: scripts do
/// not roll back, so an announcement Redis refuses (a user whose ACL
/// forbids `PUBLISH`) must fail before the change, not after it, and a
/// script's `PUBLISH` reaches subscribers only once the script has ended,
/// so nobody hears of the change before it is visible. The index update
/// comes last: should the index key hold another type (a stray writer),
/// the change is still made and announced.
const ANNOUNCED_LUA: &str = concat!(
    index_fn!(),
    stream_fn!(),
    r"
announce(KEYS[2], ARGV[7], tonumber(ARGV[8]), ARGV[2], ARGV[3])
local reply = 1
if ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[4])
elseif ARGV[1] == 'pexpire' then
  reply = redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  -- The key and, as KEYS[3], its load lease: one UNLINK, whose count
  -- takes a lease for a key, as when the lease was the key's value.
  if #KEYS > 2 then
    reply = redis.call('UNLINK', KEYS[1], KEYS[3])
  else
    reply = redis.call('UNLINK', KEYS[1])
  end
end
if #KEYS > 2 and ARGV[1] ~= 'unlink' then
  index(KEYS[3], {ARGV[5], KEYS[1]})
end
return reply
"
);

static ANNOUNCED: LazyLock<Script> = LazyLock::new(|| Script::from_lua(ANNOUNCED_LUA));

/// A change of one key.
#[derive(Debug, Clone)]
pub(crate) enum KeyChange {
    /// `SET key value PX ttl`.
    Set { value: Bytes, ttl: Duration },
    /// `PEXPIRE key ttl`.
    Expire { ttl: Duration },
    /// `UNLINK key`.
    Unlink,
}

impl KeyChange {
    /// The TTL the change gives the key, for the tenant index.
    pub(super) fn ttl(&self) -> Option<Duration> {
        match self {
            Self::Set { ttl, .. } | Self::Expire { ttl } => Some(*ttl),
            Self::Unlink => None,
        }
    }

    pub(super) fn op(&self) -> &'static str {
        match self {
            Self::Set { .. } => "set",
            Self::Expire { .. } => "pexpire",
            Self::Unlink => "unlink",
        }
    }
}

/// A message to publish with a change: its channel and payload, and how
/// much of the invalidation stream it keeps.
#[derive(Debug)]
pub(crate) struct Announcement {
    pub(crate) channel: String,
    pub(crate) payload: Bytes,
    pub(crate) retention: Retention,
}

impl Store {
    /// `change` of `key` without an announcement, through `client`; its
    /// reply as a number (1 for a set, whether the key existed for an
    /// expire, how many keys were deleted for an unlink).
    pub(crate) async fn change_on(
        &self,
        client: &Client,
        key: &RedisKey,
        change: KeyChange,
    ) -> Result<u64, CacheError> {
        match change {
            KeyChange::Set { value, ttl } => {
                self.set_indexed_on(client, key, value, ttl).await?;
                Ok(1)
            }
            KeyChange::Expire { ttl } => {
                Ok(u64::from(self.pexpire_indexed_on(client, key, ttl).await?))
            }
            KeyChange::Unlink => {
                self.unlink_with_leases_on(client, vec![Key::from(key.as_str())])
                    .await
            }
        }
    }

    /// `change` of `key` and `announcement` (appended to the invalidation
    /// stream and published), atomically on a single server (one script
    /// through `client`, loaded again after `NOSCRIPT`); the change's reply
    /// as [`change_on`](Self::change_on) gives it. On a cluster the stream
    /// is in another slot than the key: the announcement follows the
    /// change's reply. A key of cached data the index does not cover yet is
    /// indexed: in the same script on a single server, as
    /// [`change_on`](Self::change_on) does on a cluster.
    pub(crate) async fn change_announced(
        &self,
        client: &Client,
        key: &RedisKey,
        change: KeyChange,
        announcement: Announcement,
    ) -> Result<u64, CacheError> {
        if self.is_cluster() {
            let reply = self.change_on(client, key, change).await?;
            let Announcement {
                channel,
                payload,
                retention,
            } = announcement;
            self.announce_sequenced(client, retention, vec![(channel, payload)])
                .await?;
            return Ok(reply);
        }
        let ttl = change.ttl();
        let indexed = ttl.filter(|ttl| self.needs_index(key, *ttl));
        let receipt = self.receipt();
        let ms = |d: Option<Duration>| Value::Integer(d.map_or(0, |d| millis(d).max(1)));
        let op = change.op();
        let value = match change {
            KeyChange::Set { value, .. } => Value::Bytes(value),
            KeyChange::Expire { .. } | KeyChange::Unlink => Value::Bytes(Bytes::new()),
        };
        let [maxlen, window] = retention_args(announcement.retention);
        let args = vec![
            Value::from(op),
            Value::from(announcement.channel),
            Value::Bytes(announcement.payload),
            ms(ttl),
            ms(indexed.map(held)),
            value,
            maxlen,
            window,
        ];
        let mut keys = vec![
            Key::from(key.as_str()),
            Key::from(INVALIDATION_STREAM.as_str()),
        ];
        if op == "unlink" {
            keys.push(Key::from(RedisKey::load_lease_of(key.as_str())));
        } else if indexed.is_some() {
            keys.push(Key::from(RedisKey::tenant_index_of(key).as_str()));
        }
        let reply = self
            .run_script_on::<i64>(client, &ANNOUNCED, keys, args)
            .await?;
        if let Some(ttl) = indexed {
            self.confirm(key, ttl, &receipt);
        }
        Ok(reply.unsigned_abs())
    }
}
