//! A change of one key and its announcement, made atomic by Redis: one
//! script runs the `SET`, `PEXPIRE` or `UNLINK` and the `PUBLISH` that
//! tells other instances, so no subscriber can hear of the change before
//! it is visible, whatever fred does with the order of commands (the
//! earlier design queued the `PUBLISH` behind the write on one connection,
//! which a `NOSCRIPT` reload of the write's script turned around).
//!
//! The script names only the changed key (and, on a single server, the
//! tenant's key index), never the channel: `PUBLISH` touches no key, so on
//! a cluster the script is single-slot and runs on the key's primary, from
//! where Redis forwards the message to every node. On a cluster the index
//! lives in another slot and is updated by its own script, queued first on
//! the same connection (as for an unannounced write): still one round trip.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use shared_types::RedisKey;

use crate::error::CacheError;
use crate::index::{held, index_fn};
use crate::store::{Store, millis};

/// `KEYS[1]`: the key; `KEYS[2]` (optional): its tenant's index, or for an
/// `unlink` the key's load lease (`lease.rs`), removed with the key so that
/// a load in progress is not written back over the delete.
/// `ARGV`: the change (`set`, `pexpire` or `unlink`), the channel, the
/// payload, the TTL in ms, how long the index holds the key in ms, the
/// value. Answers the change's reply (1 for `set`). The `PUBLISH` comes
/// right after the change, before the index update: should the index key
/// hold another type (a stray writer), the change is still announced.
const ANNOUNCED_LUA: &str = concat!(
    index_fn!(),
    r"
local reply = 1
if ARGV[1] == 'set' then
  redis.call('SET', KEYS[1], ARGV[6], 'PX', ARGV[4])
elseif ARGV[1] == 'pexpire' then
  reply = redis.call('PEXPIRE', KEYS[1], ARGV[4])
else
  -- The key and, as KEYS[2], its load lease: one UNLINK, whose count
  -- takes a lease for a key, as when the lease was the key's value.
  reply = redis.call('UNLINK', unpack(KEYS))
end
redis.call('PUBLISH', ARGV[2], ARGV[3])
if #KEYS > 1 and ARGV[1] ~= 'unlink' then
  index(KEYS[2], {ARGV[5], KEYS[1]})
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
    fn ttl(&self) -> Option<Duration> {
        match self {
            Self::Set { ttl, .. } | Self::Expire { ttl } => Some(*ttl),
            Self::Unlink => None,
        }
    }

    fn op(&self) -> &'static str {
        match self {
            Self::Set { .. } => "set",
            Self::Expire { .. } => "pexpire",
            Self::Unlink => "unlink",
        }
    }
}

/// A message to publish with a change: its channel and payload.
#[derive(Debug)]
pub(crate) struct Announcement {
    pub(crate) channel: String,
    pub(crate) payload: Bytes,
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

    /// `change` of `key` and `announcement`'s `PUBLISH`, atomically (one
    /// script through `client`, loaded again after `NOSCRIPT`); the
    /// change's reply as [`change_on`](Self::change_on) gives it. A key of
    /// cached data the index does not cover yet is indexed: in the same
    /// script on a single server, by a script queued just before on a
    /// cluster.
    pub(crate) async fn change_announced(
        &self,
        client: &Client,
        key: &RedisKey,
        change: KeyChange,
        announcement: Announcement,
    ) -> Result<u64, CacheError> {
        let ttl = change.ttl();
        let indexed = ttl.filter(|ttl| self.needs_index(key, *ttl));
        let receipt = self.receipt();
        let ms = |d: Option<Duration>| Value::Integer(d.map_or(0, |d| millis(d).max(1)));
        let op = change.op();
        let value = match change {
            KeyChange::Set { value, .. } => Value::Bytes(value),
            KeyChange::Expire { .. } | KeyChange::Unlink => Value::Bytes(Bytes::new()),
        };
        let args = vec![
            Value::from(op),
            Value::from(announcement.channel),
            Value::Bytes(announcement.payload),
            ms(ttl),
            ms(indexed.map(held)),
            value,
        ];
        let mut keys = vec![Key::from(key.as_str())];
        if op == "unlink" {
            keys.push(Key::from(RedisKey::load_lease_of(key.as_str())));
        }
        let reply = match indexed {
            Some(ttl) if self.is_cluster() => {
                let index = RedisKey::tenant_index_of(key);
                let members = [(key.as_str(), held(ttl))];
                // join! polls (and fred queues) the index update first.
                // Boxed: a script call's future is several KB.
                let (indexed, changed) = futures::join!(
                    Box::pin(self.index_on(client, &index, &members)),
                    Box::pin(self.run_script_on::<i64>(client, &ANNOUNCED, keys, args))
                );
                let changed = changed?;
                indexed?;
                changed
            }
            Some(_) => {
                keys.push(Key::from(RedisKey::tenant_index_of(key).as_str()));
                self.run_script_on::<i64>(client, &ANNOUNCED, keys, args)
                    .await?
            }
            None => {
                self.run_script_on::<i64>(client, &ANNOUNCED, keys, args)
                    .await?
            }
        };
        if let Some(ttl) = indexed {
            self.confirm(key, ttl, &receipt);
        }
        Ok(reply.unsigned_abs())
    }
}
