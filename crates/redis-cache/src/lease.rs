//! Leases: how `get_or_load` writes a loaded value back to Redis without
//! putting back a value that a concurrent change made stale.
//!
//! **The race.** A load reads its source of truth, then writes the value to
//! Redis. If another writer (another instance, or this one) changes the
//! source and then the cache (`set`, or `UNLINK` by `delete`/`invalidate`)
//! in between, the write-back lands after the change and Redis keeps the old
//! value, for every instance, until the next change or the TTL. Checking
//! for invalidations *received* before writing back cannot close this: the
//! change's invalidation may still be on its way (or lost, while the
//! subscriber reconnects). Only Redis sees both in order.
//!
//! **The lease.** On a miss, before running the loader, the loading caller
//! claims the key: `SET key <lease> NX PX <LEASE_TTL>`, where a lease is a
//! random token that no JSON value can equal (it starts with a NUL byte).
//! Every change of the key replaces or removes the lease: a `set`, a delete,
//! an invalidation (by key or by pattern: `SCAN` finds the lease like any
//! key), from any instance or client. After the loader, one script writes
//! the value only if the key still holds this lease, so a change that
//! reached Redis during the load always wins. A change that reached Redis
//! before the claim was made to the source of truth before that, so the
//! loader, which runs after the claim, sees it.
//!
//! Readers take a lease for a miss (never for an undecodable value, which
//! they would delete). A lease lives at most [`LEASE_TTL`]: a slower loader's
//! value is returned but not cached, and a caller that vanished mid-load
//! keeps its key uncached that long. When the key is not absent (another
//! caller holds a lease) or Redis cannot take the claim, the load runs
//! without one and its value is not cached.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::types::config::Options;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Expiration, Key, SetOptions, Value};

use shared_types::RedisKey;

use crate::error::CacheError;
use crate::index::{held, is_indexed};
use crate::store::{Store, millis};

/// The longest a loader may run and still have its value cached.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(10);

/// What every lease starts with; JSON text never starts with a NUL byte.
const PREFIX: &[u8] = b"\0lease:";

/// Writes `ARGV[2]` (expiring after `ARGV[3]` ms) if `KEYS[1]` still holds
/// the lease `ARGV[1]`; deletes the key instead when `ARGV[2]` is empty (an
/// encoded value never is). Answers 1 if it did.
const SETTLE_LUA: &str = r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 1
";

/// Whether a stored value is a lease: a miss for every reader.
pub(crate) fn is_lease(bytes: &[u8]) -> bool {
    bytes.starts_with(PREFIX)
}

/// A claim on a missing key, held while its value is loaded.
#[derive(Debug)]
pub(crate) struct Lease {
    token: Bytes,
}

impl Lease {
    /// Claims `key` if it is absent; `None` if it is not, or if Redis could
    /// not take the claim (then nothing is written back). Cached data's
    /// leases are indexed first, like any value (see `index.rs`), so that a
    /// tenant purge during the load removes the lease and the loaded value
    /// is not written back over the purge.
    pub(crate) async fn claim(store: &Store, key: &RedisKey) -> Option<Self> {
        let mut token = BytesMut::with_capacity(PREFIX.len() + 32);
        token.put_slice(PREFIX);
        token.put_slice(format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..)).as_bytes());
        let token = token.freeze();
        let options = Options {
            fail_fast: true,
            ..Options::default()
        };
        let client = store.client().clone();
        let index = RedisKey::tenant_index_of(key);
        let members = [(key.as_str(), LEASE_TTL)];
        let indexed = async {
            if is_indexed(key) {
                store.index_on(&client, &index, &members).await
            } else {
                Ok(())
            }
        };
        let fast = client.with_options(&options);
        let claim = store.timed(
            RedisOp::SET,
            fast.set::<Value, _, _>(
                key.as_str(),
                token.clone(),
                Some(Expiration::PX(millis(LEASE_TTL))),
                Some(SetOptions::NX),
                false,
            ),
        );
        // join! queues the index update first.
        let (indexed, claimed) = futures::join!(indexed, claim);
        match (indexed, claimed) {
            (Ok(()), Ok(value)) if value != Value::Null => Some(Self { token }),
            _ => None,
        }
    }

    /// Writes `value` in place of the lease, unless the key changed since
    /// the claim; `Ok(false)` when it did (nothing written).
    pub(crate) async fn fulfil(
        self,
        store: &Store,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        self.settle(store, key, value, ttl).await
    }

    /// Gives the claim up (deletes the lease if it is still there), so that
    /// the key is not kept uncached for the rest of [`LEASE_TTL`].
    pub(crate) async fn release(self, store: &Store, key: &RedisKey) -> Result<bool, CacheError> {
        self.settle(store, key, Bytes::new(), Duration::ZERO).await
    }

    /// Runs the settle script; a value written back is indexed first, with
    /// its own TTL, on the same connection.
    async fn settle(
        self,
        store: &Store,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        static SETTLE: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::from_lua(SETTLE_LUA));
        let value_is_empty = value.is_empty();
        let args = vec![
            Value::Bytes(self.token),
            Value::Bytes(value),
            Value::Integer(millis(ttl).max(1)),
        ];
        let client = store.client().clone();
        let index = RedisKey::tenant_index_of(key);
        let members = [(key.as_str(), held(ttl))];
        let indexed = async {
            if is_indexed(key) && !value_is_empty {
                store.index_on(&client, &index, &members).await
            } else {
                Ok(())
            }
        };
        let settled =
            store.run_script_on::<i64>(&client, &SETTLE, vec![Key::from(key.as_str())], args);
        let (indexed, done) = futures::join!(indexed, settled);
        indexed?;
        Ok(done? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // No JSON value is a lease, and a lease is not JSON.
    #[test]
    fn leases_are_not_json() {
        for json in [&b"{}"[..], b"\"\\u0000lease:\"", b"null", b" 1"] {
            assert!(!is_lease(json));
        }
        let lease = b"\0lease:0123456789abcdef0123456789abcdef";
        assert!(is_lease(lease));
        assert!(serde_json::from_slice::<serde_json::Value>(lease).is_err());
    }
}
