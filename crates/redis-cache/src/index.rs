//! The tenant key index: what makes a tenant purge cost that tenant's keys,
//! not the whole keyspace.
//!
//! **Why.** Finding a tenant's keys with `SCAN MATCH tenant:{t}:*` walks
//! every key of every tenant: purging an empty tenant among a million keys
//! took a thousand `SCAN` calls and a second, and sixteen at once timed out
//! and slowed every other tenant's writes. Hash tags would put a tenant in
//! one slot, but change every key format other clients read (and make a big
//! tenant one node's load; see ARCHITECTURE.md). So the key formats stay,
//! and beside them each tenant has one sorted set, `keyindex:tenant:{t}`,
//! whose members are its cache keys, scored by when they expire.
//!
//! **Kept with every write.** Every command that creates a cache key or
//! sets its TTL (`set`, `mset`, `expire`, a `get_or_load` lease and its
//! write-back) updates the index in the same round trip. For `set` and
//! `expire` on a single server one script does both (one command, as cheap
//! for the client as the plain write); elsewhere the index update is sent on
//! the same connection *before* the write: Redis runs them in that order, so
//! a key that exists is always indexed (a failed write leaves at most a
//! member without a key, which a purge skips). The update `ZADD`s each key
//! with its expiry (from the server's clock, so client clocks do not
//! matter), removes a few members that have expired (so the set tracks the
//! live keys without a background job), and extends the index's own TTL to
//! its longest member's, so an idle tenant's index disappears with its keys.
//! Deletes do not remove members: a concurrent write of the same key could
//! lose its member that way; a deleted key's member goes when it would have
//! expired.
//!
//! **Purging.** `ZSCAN` of the index (with `MATCH` for a narrower pattern),
//! each page's keys `UNLINK`ed (grouped by slot on a cluster). The work is
//! the tenant's keys written within their TTL, whatever the rest of the
//! keyspace holds. Every key written (and acknowledged) before the purge
//! starts is found; keys written during it may or may not be, as with
//! `SCAN`.
//!
//! **What it does not see.** Keys written by clients that do not keep the
//! index (another language's service, `redis-cli`, this layer before the
//! index existed). For those, [`crate::PurgeMode::Scan`] (or
//! `CacheService::delete_pattern_by_scan`) walks the keyspace as before.

use std::collections::BTreeMap;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_connection::RedisOp;
use redis_connection::fred::interfaces::ClientLike;
use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::config::Options;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{ClusterHash, CustomCommand, Key, Value};
use redis_connection::{Rejection, RejectionKind};
use shared_types::{KeyPattern, RedisKey};

use crate::error::CacheError;
use crate::store::{Store, fail_fast, millis, queued};

/// Keys of one tenant and the TTLs they are being written with.
type Members<'a> = Vec<(&'a str, Duration)>;

/// The Lua function every index update runs: records `members` (a flat
/// list of TTL in ms, key, TTL in ms, key, ...) in the index `idx`.
macro_rules! index_fn {
    () => {
        r"
local function index(idx, members)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local longest = 1
  for i = 1, #members, 2 do
    local ttl = tonumber(members[i])
    redis.call('ZADD', idx, 'GT', now + ttl, members[i + 1])
    if ttl > longest then longest = ttl end
  end
  local expired = redis.call('ZRANGEBYSCORE', idx, '-inf', now, 'LIMIT', 0, 16)
  if #expired > 0 then
    redis.call('ZREM', idx, unpack(expired))
  end
  if redis.call('PTTL', idx) < longest then
    redis.call('PEXPIRE', idx, longest)
  end
end
"
    };
}
/// Shared with the announced-write script (`coherence/atomic_write.rs`).
pub(crate) use index_fn;

/// `KEYS[1]`: the index; `ARGV`: pairs of (TTL in ms, key).
const INDEX_LUA: &str = concat!(index_fn!(), "index(KEYS[1], ARGV)\nreturn 1\n");

/// `SET KEYS[1] ARGV[1] PX ARGV[2]`, indexed in `KEYS[2]` for `ARGV[3]` ms:
/// one command on a single server, where the key and its index may share a
/// script.
const SET_LUA: &str = concat!(
    index_fn!(),
    "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])\n",
    "index(KEYS[2], {ARGV[3], KEYS[1]})\n",
    "return 1\n"
);

/// `PEXPIRE KEYS[1] ARGV[1]`, indexed in `KEYS[2]` for `ARGV[2]` ms;
/// answers PEXPIRE's reply.
const PEXPIRE_LUA: &str = concat!(
    index_fn!(),
    "local existed = redis.call('PEXPIRE', KEYS[1], ARGV[1])\n",
    "index(KEYS[2], {ARGV[2], KEYS[1]})\n",
    "return existed\n"
);

/// Many `SET key value PX ttl`, each key indexed in its tenant's index
/// when it needs it: one command for a coalesced batch of `set`s on a
/// single server (`batched.rs`). `KEYS`: the `n` keys, then the indexes;
/// `ARGV[1]`: `n`; then per key its value, then per key its TTL in ms,
/// then per key the number of its index among the indexes (0: not
/// indexed), then per key how long the index holds it in ms. The `SET`s
/// run in the order given, so a key given twice keeps its later value.
const SET_MANY_LUA: &str = concat!(
    index_fn!(),
    r"
local n = tonumber(ARGV[1])
local members = {}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[1 + i], 'PX', ARGV[1 + n + i])
  local j = tonumber(ARGV[1 + 2 * n + i])
  if j > 0 then
    local list = members[j]
    if list == nil then
      list = {}
      members[j] = list
    end
    list[#list + 1] = ARGV[1 + 3 * n + i]
    list[#list + 1] = KEYS[i]
  end
end
for j, list in pairs(members) do
  index(KEYS[n + j], list)
end
return n
"
);

static INDEX: LazyLock<Script> = LazyLock::new(|| Script::from_lua(INDEX_LUA));
static SET: LazyLock<Script> = LazyLock::new(|| Script::from_lua(SET_LUA));
static SET_MANY: LazyLock<Script> = LazyLock::new(|| Script::from_lua(SET_MANY_LUA));
static PEXPIRE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(PEXPIRE_LUA));

/// How long the index holds a key written with `ttl`: half as long again,
/// so that rewrites within that margin need no index update (see
/// `index_memo.rs`). A member outliving its key costs a purge one `UNLINK` of a
/// missing key.
pub(crate) fn held(ttl: Duration) -> Duration {
    ttl + ttl / 2
}

/// Index updates sent for a batch of writes, to remember once the writes
/// succeeded (see `index_memo.rs`).
#[derive(Debug)]
pub(crate) struct IndexReceipt<'k> {
    since: Instant,
    epoch: u64,
    recorded: Vec<(&'k RedisKey, Duration)>,
}

impl IndexReceipt<'_> {
    /// The writes succeeded: the index holds every key it recorded.
    pub(crate) fn confirm(self, store: &Store) {
        for (key, held) in self.recorded {
            store
                .memo()
                .record(key.as_str(), self.since, held, self.epoch);
        }
    }
}

/// Whether keys of `key`'s family are indexed: cached data only (state is
/// never purged with a tenant's cache).
pub(crate) fn is_indexed(key: &RedisKey) -> bool {
    key.family().is_cache()
}

impl Store {
    /// Records that `keys` (all of one tenant, each with how long the index
    /// must hold it) exist, through `client` (so that it is ordered before
    /// the writes the caller sends next on it).
    pub(crate) async fn index_on(
        &self,
        client: &Client,
        index: &RedisKey,
        keys: &[(&str, Duration)],
    ) -> Result<(), CacheError> {
        self.index_with(client, &fail_fast(), index, keys).await
    }

    /// [`index_on`](Self::index_on) sent with `options`.
    async fn index_with(
        &self,
        client: &Client,
        options: &Options,
        index: &RedisKey,
        keys: &[(&str, Duration)],
    ) -> Result<(), CacheError> {
        if keys.is_empty() {
            return Ok(());
        }
        let mut args = Vec::with_capacity(keys.len() * 2);
        for (key, ttl) in keys {
            args.push(Value::Integer(millis(*ttl).max(1)));
            args.push(Value::from(*key));
        }
        let index = vec![Key::from(index.as_str())];
        self.run_script_with::<i64>(client, options, &INDEX, index, args)
            .await
            .map(drop)
    }

    /// Indexes keys of any tenants (each with the TTL it is being written
    /// with), one call per tenant, through `client`; keys whose family is
    /// not indexed, or that the index already covers, are skipped. Returns
    /// a receipt to [`confirm`](IndexReceipt::confirm) once the writes are
    /// done.
    pub(crate) async fn index_many_on<'k>(
        &self,
        client: &Client,
        keys: &[(&'k RedisKey, Duration)],
    ) -> Result<IndexReceipt<'k>, CacheError> {
        let receipt = self.receipt();
        let mut recorded = Vec::new();
        let mut by_tenant: BTreeMap<&str, (RedisKey, Members<'_>)> = BTreeMap::new();
        for (key, ttl) in keys.iter().filter(|(key, ttl)| self.needs_index(key, *ttl)) {
            by_tenant
                .entry(key.tenant_str())
                .or_insert_with(|| (RedisKey::tenant_index_of(key), Vec::new()))
                .1
                .push((key.as_str(), held(*ttl)));
            recorded.push((*key, held(*ttl)));
        }
        // On a cluster queued like the batch's `SET`s (see `mset.rs`): a
        // batch spread over every node would otherwise fail on whichever
        // node fred is replacing after a topology change. An index update
        // is harmless to resend.
        let options = if self.is_cluster() {
            queued()
        } else {
            fail_fast()
        };
        let calls = by_tenant
            .values()
            .map(|(index, members)| self.index_with(client, &options, index, members));
        for result in futures::future::join_all(calls).await {
            result?;
        }
        Ok(IndexReceipt {
            recorded,
            ..receipt
        })
    }

    /// Whether a write of `key` for `ttl` must update the index.
    pub(crate) fn needs_index(&self, key: &RedisKey, ttl: Duration) -> bool {
        is_indexed(key)
            && !self
                .memo()
                .covers(key.as_str(), ttl, self.manager().connection_epoch())
    }

    pub(crate) fn receipt<'k>(&self) -> IndexReceipt<'k> {
        IndexReceipt {
            since: Instant::now(),
            epoch: self.manager().connection_epoch(),
            recorded: Vec::new(),
        }
    }

    /// `SET key value PX ttl`, indexed for cached data unless the index
    /// already covers the key: on a single server one script does both; on
    /// a cluster the index update (another slot) is queued first on
    /// `client`. Unannounced: a change other instances must hear of goes
    /// through `coherence/atomic_write.rs`.
    ///
    /// On a single server, concurrent calls whose keys need an index update
    /// are sent together as one script
    /// ([`set_many_indexed`](Self::set_many_indexed), see
    /// `batched.rs`) on the store's current connection, not necessarily
    /// `client`'s: nothing sent after it on a single server relies on
    /// sharing its connection (only the cluster path queues an index
    /// update before it, and an announcement after it, on `client`).
    pub(crate) async fn set_indexed_on(
        &self,
        client: &Client,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        // Only a write that must update the index is coalesced (into one
        // SET+index script for the batch). A rewrite the index already
        // covers is a plain `SET` sent from the caller's own task: sent
        // through the coalescer as one `SET` per key, it cost more client
        // CPU than it saved (a driver task hop and reply fan-out per key,
        // nothing shared), and run from a script it cost Redis twice a
        // native `SET` (BENCHMARKS.md, issue 15).
        if !self.needs_index(key, ttl) {
            return self
                .set_with(client, &fail_fast(), key.as_str(), value, ttl)
                .await;
        }
        if let Some(batched) = self.batched()
            && let Ok(written) = batched.set(key, value.clone(), ttl).await
        {
            return written;
        }
        self.set_indexed_with(client, &fail_fast(), key, value, ttl)
            .await
    }

    /// One [`set_indexed_on`](Self::set_indexed_on), never coalesced, sent
    /// with `options`.
    pub(crate) async fn set_indexed_with(
        &self,
        client: &Client,
        options: &Options,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        if !self.needs_index(key, ttl) {
            return self
                .set_with(client, options, key.as_str(), value, ttl)
                .await;
        }
        let receipt = self.receipt();
        let index = RedisKey::tenant_index_of(key);
        if self.is_cluster() {
            let members = [(key.as_str(), held(ttl))];
            // join! polls (and fred queues) the index update first. Boxed: a
            // script call's future (with its reload path) is several KB.
            let (indexed, written) = futures::join!(
                Box::pin(self.index_with(client, options, &index, &members)),
                self.set_with(client, options, key.as_str(), value, ttl)
            );
            written.and(indexed)?;
        } else {
            let args = vec![
                Value::Bytes(value),
                Value::Integer(millis(ttl).max(1)),
                Value::Integer(millis(held(ttl)).max(1)),
            ];
            let keys = vec![Key::from(key.as_str()), Key::from(index.as_str())];
            self.run_script_with::<i64>(client, options, &SET, keys, args)
                .await?;
        }
        self.confirm(key, ttl, &receipt);
        Ok(())
    }

    /// `SET key value PX ttl` of every entry, in order (a key given twice
    /// keeps its later value), each indexed as
    /// [`set_indexed_on`](Self::set_indexed_on) indexes it, in one script
    /// call through `client` with `options`: a single server only (the
    /// keys span slots). One outcome for all; counted as one command per
    /// entry in the latency histogram.
    pub(crate) async fn set_many_indexed(
        &self,
        client: &Client,
        options: &Options,
        entries: &[(RedisKey, Bytes, Duration)],
    ) -> Result<(), CacheError> {
        let n = entries.len();
        // Taken before anything is sent: the memo's deadlines are lower
        // bounds (see `index_memo.rs`).
        let receipt = self.receipt();
        let indexed: Vec<bool> = entries
            .iter()
            .map(|(key, _, ttl)| self.needs_index(key, *ttl))
            .collect();
        let mut keys: Vec<Key> = Vec::with_capacity(n + 1);
        keys.extend(entries.iter().map(|(key, _, _)| Key::from(key.as_str())));
        let values = entries
            .iter()
            .map(|(_, value, _)| Value::Bytes(value.clone()));
        let ttls = entries
            .iter()
            .map(|(_, _, ttl)| Value::Integer(millis(*ttl).max(1)));
        let mut args: Vec<Value> = Vec::with_capacity(4 * n + 1);
        args.push(Value::Integer(i64::try_from(n).unwrap_or(i64::MAX)));
        args.extend(values);
        args.extend(ttls);
        // Each indexed key's tenant index, numbered in order of first use.
        let mut indexes: Vec<RedisKey> = Vec::new();
        for ((key, _, _), &needed) in entries.iter().zip(&indexed) {
            let number = if needed {
                let index = RedisKey::tenant_index_of(key);
                let at = match indexes.iter().position(|known| *known == index) {
                    Some(at) => at,
                    None => {
                        indexes.push(index);
                        indexes.len() - 1
                    }
                };
                i64::try_from(at + 1).unwrap_or(i64::MAX)
            } else {
                0
            };
            args.push(Value::Integer(number));
        }
        args.extend(entries.iter().zip(&indexed).map(|((_, _, ttl), &needed)| {
            Value::Integer(if needed { millis(held(*ttl)).max(1) } else { 0 })
        }));
        keys.extend(indexes.iter().map(|index| Key::from(index.as_str())));
        self.run_script_n::<i64>(client, options, &SET_MANY, keys, args, n)
            .await?;
        for ((key, _, ttl), needed) in entries.iter().zip(indexed) {
            if needed {
                self.confirm(key, *ttl, &receipt);
            }
        }
        Ok(())
    }

    /// `PEXPIRE key ttl` through `client`, indexed for cached data as
    /// [`set_indexed_on`](Self::set_indexed_on) does; whether the key
    /// exists.
    pub(crate) async fn pexpire_indexed_on(
        &self,
        client: &Client,
        key: &RedisKey,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        if !self.needs_index(key, ttl) {
            return self.pexpire_on(client, key.as_str(), ttl).await;
        }
        let receipt = self.receipt();
        let index = RedisKey::tenant_index_of(key);
        let existed = if self.is_cluster() {
            let members = [(key.as_str(), held(ttl))];
            let (indexed, existed) = futures::join!(
                Box::pin(self.index_on(client, &index, &members)),
                self.pexpire_on(client, key.as_str(), ttl)
            );
            indexed?;
            existed?
        } else {
            let args = vec![
                Value::Integer(millis(ttl).max(1)),
                Value::Integer(millis(held(ttl)).max(1)),
            ];
            let keys = vec![Key::from(key.as_str()), Key::from(index.as_str())];
            self.run_script_on::<i64>(client, &PEXPIRE, keys, args)
                .await?
                == 1
        };
        self.confirm(key, ttl, &receipt);
        Ok(existed)
    }

    /// Remembers that the index holds `key` (written for `ttl`).
    pub(crate) fn confirm(&self, key: &RedisKey, ttl: Duration, receipt: &IndexReceipt<'_>) {
        self.memo()
            .record(key.as_str(), receipt.since, held(ttl), receipt.epoch);
    }

    /// Deletes every indexed key matching `pattern` (all of one tenant);
    /// returns how many existed. `count` is the `ZSCAN` page size hint.
    pub(crate) async fn delete_indexed(
        &self,
        pattern: &KeyPattern,
        count: u32,
    ) -> Result<u64, CacheError> {
        let client = self.client().clone();
        let mut cursor = 0;
        let mut deleted = 0;
        loop {
            let (next, keys) = self.index_page(&client, pattern, cursor, count).await?;
            deleted += self.unlink_with_leases_on(&client, keys).await?;
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }

    /// One `ZSCAN` page of the tenant's key index from `cursor`: the next
    /// cursor (0 at the end) and the members matching `pattern`. A small
    /// index (Redis's listpack encoding, up to 128 members by default) comes
    /// whole in one page, whatever `count` says.
    pub(crate) async fn index_page(
        &self,
        client: &Client,
        pattern: &KeyPattern,
        cursor: u64,
        count: u32,
    ) -> Result<(u64, Vec<Key>), CacheError> {
        let index = RedisKey::tenant_index(pattern.tenant());
        let zscan = CustomCommand::new_static("ZSCAN", ClusterHash::FirstKey, false);
        let args: Vec<Value> = vec![
            index.as_str().into(),
            cursor.to_string().into(),
            "MATCH".into(),
            pattern.as_str().into(),
            "COUNT".into(),
            Value::Integer(i64::from(count)),
        ];
        let (next, page): (String, Vec<Value>) = self
            .timed(
                RedisOp::ZSCAN,
                client.with_options(&fail_fast()).custom(zscan, args),
            )
            .await
            .map_err(|e| self.error(&e))?;
        // Redis's cursors are unsigned 64-bit integers in decimal.
        let next = next.parse::<u64>().map_err(|_| {
            CacheError::Rejected(Rejection::new(
                RejectionKind::Other,
                "ZSCAN answered a cursor that is not a number",
            ))
        })?;
        // Members and scores alternate.
        let keys = page
            .into_iter()
            .step_by(2)
            .filter_map(|member| member.into_bytes().map(Key::from))
            .collect();
        Ok((next, keys))
    }
}
