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
//! claims the key: `SET {key}:lease <token> NX PX <LEASE_TTL>`, a random
//! token in a side key ([`RedisKey::load_lease_of`]) whose hash tag is the
//! whole key, so it lives in the key's cluster slot. The key itself stays
//! absent: every value any client reads under a cache key (`GET`, `EXISTS`,
//! the TypeScript services, `redis-cli`) is the cached JSON or nothing.
//! After the loader, one script (both keys, one slot, one round trip)
//! writes the value only if the side key still holds this token *and* the
//! key is still absent, and removes the lease.
//!
//! **What wins over a load.** A change that reached Redis during the load:
//! - a `set` (from any client): the key exists at settle time, so the
//!   loaded value is dropped and the newer one stays;
//! - a `delete` or `invalidate` by key from any instance of this layer: the
//!   delete removes the key and its lease in one script
//!   (`coherence/atomic_write.rs`), so the token is gone at settle time;
//! - a pattern invalidation or tenant purge: the lease's key was indexed
//!   when it was claimed, so an index purge finds it and removes its lease
//!   with it; a purge by `SCAN` also scans for the leases of the pattern
//!   ([`shared_types::KeyPattern::load_leases`]).
//!
//! A change that reached Redis before the claim was made to the source of
//! truth before that, so the loader, which runs after the claim, sees it.
//!
//! **The price of an invisible lease.** A raw `DEL` of the key by a client
//! that does not know the side key (the TypeScript package, `redis-cli`)
//! while the key is absent leaves no trace in Redis, so it cannot stop the
//! write-back (when the lease was the key's value, the `DEL` removed it).
//! On a two-tier instance the invalidation such a client publishes still
//! does, when it arrives before the write-back: the load's value is then
//! not cached (`load.rs` checks the L1's epoch). Another client's `SET`
//! always wins.
//!
//! Readers take a lease for a miss (never for an undecodable value, which
//! they would delete). A lease lives at most [`LEASE_TTL`]: a slower loader's
//! value is returned but not cached, and a caller that vanished mid-load
//! keeps its key uncached that long. When another instance holds the lease,
//! the load waits for its value, within a bound (`fleet_wait.rs`); past the
//! bound, or when Redis cannot take the claim, the load runs without one and
//! its value is not cached. Instances of older versions stored the lease *as the key's
//! value*, starting with a NUL byte; readers still take such a value for a
//! miss ([`is_lease`]) while both versions run.

use std::time::Duration;

use bytes::Bytes;
use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::config::Options;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Expiration, Key, SetOptions, Value};

use shared_types::RedisKey;

use crate::error::CacheError;
use crate::index::{held, is_indexed};
use crate::store::{Store, millis};

/// The longest a loader may run and still have its value cached.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(10);

/// What an older version's lease, stored as the key's value, starts with;
/// JSON text never starts with a NUL byte.
const PREFIX: &[u8] = b"\0lease:";

/// `KEYS[1]`: the key; `KEYS[2]`: its lease; `KEYS[3]`: its waiters' flag
/// (`fleet_wait.rs`). If the lease still holds `ARGV[1]`, removes it and,
/// unless `ARGV[2]` is empty (a release: an encoded value never is),
/// writes `ARGV[2]` (expiring after `ARGV[3]` ms) where the key is still
/// absent, or still holds `ARGV[4]` (a value a fail-safe load found past
/// its logical expiry; empty otherwise) with at most `ARGV[5]` ms left.
/// Answers 0 if it did nothing, 1 if it wrote (or released), 2 if it did
/// and another instance waits for it (the flag, removed here, said so).
const SETTLE_LUA: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then
  return 0
end
redis.call('DEL', KEYS[2])
local done = 1 + redis.call('DEL', KEYS[3])
if ARGV[2] == '' then
  return done
end
local current = redis.call('GET', KEYS[1])
if current then
  if current ~= ARGV[4] or redis.call('PTTL', KEYS[1]) > tonumber(ARGV[5]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return done
";

/// `KEYS[1]`: a lease; `KEYS[2]`: its waiters' flag (`fleet_wait.rs`).
/// Sets the flag for as long as the lease lives, and answers the lease's
/// remaining time in ms (negative: no lease).
const WATCH_LUA: &str = r"
local left = redis.call('PTTL', KEYS[1])
if left > 0 then
  redis.call('SET', KEYS[2], '1', 'PX', left)
end
return left
";

/// Whether a stored value is an older version's lease: a miss for every
/// reader.
pub(crate) fn is_lease(bytes: &[u8]) -> bool {
    bytes.starts_with(PREFIX)
}

/// A claim on a missing key, held while its value is loaded.
#[derive(Debug)]
pub(crate) struct Lease {
    token: Bytes,
}

impl Lease {
    /// Claims `key` (which the caller found absent); `None` if another
    /// caller holds its lease, or if Redis could not take the claim (then
    /// nothing is written back). For cached data the key is indexed first,
    /// like any value (see `index.rs`), so that a tenant purge during the
    /// load finds it and removes its lease, and the loaded value is not
    /// written back over the purge.
    pub(crate) async fn claim(store: &Store, key: &RedisKey) -> Option<Self> {
        let token = Bytes::from(format!(
            "{:016x}{:016x}",
            fastrand::u64(..),
            fastrand::u64(..)
        ));
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
        // The claim waits for the index's reply: a purge that can see the
        // lease must find its key in the index. Sending both at once was
        // not enough: an index script Redis had to reload (NOSCRIPT) ran
        // after the claim, and a purge in between missed the lease. A cold
        // load pays one round trip more, beside its loader.
        if indexed.await.is_err() {
            return None;
        }
        let fast = client.with_options(&options);
        let claimed = store
            .timed(
                RedisOp::SET,
                fast.set::<Value, _, _>(
                    RedisKey::load_lease_of(key.as_str()),
                    token.clone(),
                    Some(Expiration::PX(millis(LEASE_TTL))),
                    Some(SetOptions::NX),
                    false,
                ),
            )
            .await;
        match claimed {
            Ok(value) if value != Value::Null => Some(Self { token }),
            _ => None,
        }
    }

    /// Writes `value` and removes the lease, unless the key changed since
    /// the claim; [`Settled::Refused`] when it did (nothing written). `replacing`:
    /// the value the load found past its logical expiry (fail-safe) and how
    /// much of its TTL is its stale window; the write replaces it only if
    /// the key still holds it, still in that window (a `set` meanwhile
    /// gave it a new TTL).
    pub(crate) async fn fulfil(
        self,
        store: &Store,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
        replacing: Option<(Bytes, Duration)>,
    ) -> Result<Settled, CacheError> {
        self.settle(store, key, value, ttl, replacing).await
    }

    /// Gives the claim up (deletes the lease if it is still this one), so
    /// that the key is not kept uncached for the rest of [`LEASE_TTL`].
    pub(crate) async fn release(
        self,
        store: &Store,
        key: &RedisKey,
    ) -> Result<Settled, CacheError> {
        self.settle(store, key, Bytes::new(), Duration::ZERO, None)
            .await
    }

    /// Runs the settle script; a value written back is indexed first, with
    /// its own TTL, on the same connection.
    async fn settle(
        self,
        store: &Store,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
        replacing: Option<(Bytes, Duration)>,
    ) -> Result<Settled, CacheError> {
        static SETTLE: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::from_lua(SETTLE_LUA));
        let value_is_empty = value.is_empty();
        let mut args = vec![
            Value::Bytes(self.token),
            Value::Bytes(value),
            Value::Integer(millis(ttl).max(1)),
        ];
        let (expected, window) = replacing.unwrap_or_default();
        args.extend([Value::Bytes(expected), Value::Integer(millis(window))]);
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
        let keys = vec![
            Key::from(key.as_str()),
            Key::from(RedisKey::load_lease_of(key.as_str())),
            Key::from(waiters_flag_of(key)),
        ];
        let settled = store.run_script_on::<i64>(&client, &SETTLE, keys, args);
        let (indexed, done) = futures::join!(indexed, settled);
        indexed?;
        Ok(match done? {
            0 => Settled::Refused,
            1 => Settled::Done,
            _ => Settled::Awaited,
        })
    }
}

/// How a lease was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Settled {
    /// The key changed since the claim (or the lease expired): nothing done.
    Refused,
    /// Written (or released).
    Done,
    /// Written (or released), and another instance waits for it: announce
    /// the key so that it reads Redis again (`fleet_wait.rs`).
    Awaited,
}

impl Settled {
    /// Whether the value was written (or the lease released).
    pub(crate) fn done(self) -> bool {
        self != Settled::Refused
    }
}

/// The side key by which instances waiting for a lease's holder ask it to
/// announce its write-back (`fleet_wait.rs`). It starts with the lease's
/// key, so it shares its hash tag and cluster slot.
pub(crate) fn waiters_flag_of(key: &RedisKey) -> String {
    let mut flag = RedisKey::load_lease_of(key.as_str());
    flag.push_str(":waited");
    flag
}

impl Store {
    /// Sets `key`'s waiters' flag while its lease lives (`fleet_wait.rs`);
    /// the lease's remaining time in ms (negative: no lease).
    pub(crate) async fn watch_lease(&self, key: &RedisKey) -> Result<i64, CacheError> {
        static WATCH: std::sync::LazyLock<Script> =
            std::sync::LazyLock::new(|| Script::from_lua(WATCH_LUA));
        let keys = vec![
            Key::from(RedisKey::load_lease_of(key.as_str())),
            Key::from(waiters_flag_of(key)),
        ];
        let client = self.client().clone();
        self.run_script_on::<i64>(&client, &WATCH, keys, Vec::new())
            .await
    }

    /// `UNLINK` of `keys` and of their leases (see the module docs), both
    /// through `client`, sent together: one round trip. Answers how many
    /// of `keys` existed; a lease is not a key and is not counted. Every
    /// deletion that makes keys stale (a delete, an invalidation, a purge)
    /// takes this path, so that a load in progress is not written back
    /// over it.
    pub(crate) async fn unlink_with_leases_on(
        &self,
        client: &Client,
        keys: Vec<Key>,
    ) -> Result<u64, CacheError> {
        let leases = keys
            .iter()
            .filter_map(|key| key.as_str())
            .map(|key| Key::from(RedisKey::load_lease_of(key)))
            .collect();
        // Boxed: an unlink's future is large on a cluster (a pipeline per
        // slot), and two side by side would grow every purge's future.
        let (deleted, leases) = futures::join!(
            Box::pin(self.unlink_on(client, keys)),
            Box::pin(self.unlink_on(client, leases))
        );
        leases?;
        deleted
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
