//! [`Store`]: byte-level Redis operations (the L2), cluster-aware.
//!
//! Everything here moves `Bytes` and knows nothing of types or statistics;
//! `service.rs` adds those. Commands run on the connection manager's current
//! client (one connection at a time: see `RedisConnectionManager::client`)
//! with `fail_fast`: while the pool is known to be disconnected a command
//! fails at once instead of waiting out its timeout, so a service stays
//! responsive during an outage. Every command is still bounded by the
//! manager's command timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::fred::clients::{Pipeline, WithOptions};
use redis_connection::fred::interfaces::{
    ClientLike, ClusterInterface, KeysInterface, ServerInterface,
};
use redis_connection::fred::prelude::{Client, Error as FredError};
use redis_connection::fred::types::config::{Options, Server};
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{
    ClusterHash, CustomCommand, Expiration, FromValue, InfoKind, Key, Value,
};
use redis_connection::fred::util::redis_keyslot;
use redis_connection::{
    ConnectionError, RedisConnectionManager, RedisOp, Rejection, RejectionKind,
};

use crate::batched::Batched;
use crate::error::CacheError;
use crate::index_memo::IndexMemo;

/// A value read with its remaining TTL (`None`: the key never expires).
#[derive(Debug, Clone)]
pub(crate) struct Fetched {
    pub(crate) bytes: Bytes,
    pub(crate) ttl: Option<Duration>,
}

/// Redis access for one cache instance.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    manager: RedisConnectionManager,
    /// Which keys the tenant index is known to hold (see `index_memo.rs`).
    memo: Arc<IndexMemo>,
    /// Where concurrent single-key `get`s and `set`s are sent together
    /// (`batched.rs`). `None` in the store the batches themselves use: a
    /// batch must not queue behind itself, and a store holding its own
    /// drivers would keep them (and the connections) alive for ever.
    batched: Option<Arc<Batched>>,
}

impl Store {
    pub(crate) fn new(manager: RedisConnectionManager) -> Self {
        let plain = Self {
            manager,
            memo: Arc::new(IndexMemo::new()),
            batched: None,
        };
        Self {
            batched: Some(Arc::new(Batched::new(plain.clone()))),
            ..plain
        }
    }

    /// The coalescers of single-key commands, on a single server only: on
    /// a cluster a batch's keys would span slots and nodes, so each key
    /// keeps its own command there.
    pub(crate) fn batched(&self) -> Option<&Batched> {
        self.batched.as_deref().filter(|_| !self.is_cluster())
    }

    pub(crate) fn memo(&self) -> &IndexMemo {
        &self.memo
    }

    /// The manager's current client (see `RedisConnectionManager::client`:
    /// one connection at a time), failing fast while disconnected.
    pub(crate) fn fast(&self) -> WithOptions<Client> {
        self.client().with_options(&fail_fast())
    }

    /// Runs `command` (one Redis command of `op`) timed into the command
    /// latency histogram, in a `redis` span (see `CommandStats::timed`).
    pub(crate) fn timed<F: Future>(
        &self,
        op: RedisOp,
        command: F,
    ) -> impl Future<Output = F::Output> {
        self.manager.commands().timed(op, 1, command)
    }

    /// [`timed`](Self::timed) for `n` commands of `op` sent together.
    pub(crate) fn timed_n<F: Future>(
        &self,
        op: RedisOp,
        n: usize,
        command: F,
    ) -> impl Future<Output = F::Output> {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.manager.commands().timed(op, n, command)
    }

    pub(crate) fn manager(&self) -> &RedisConnectionManager {
        &self.manager
    }

    /// Converts a fred error into ours.
    pub(crate) fn error(&self, error: &FredError) -> CacheError {
        ConnectionError::from_fred(error, self.manager.command_timeout()).into()
    }

    pub(crate) fn is_cluster(&self) -> bool {
        self.manager.config().is_cluster()
    }

    /// A connected client, for pipelines and per-node commands.
    pub(crate) fn client(&self) -> &Client {
        self.manager.client()
    }

    /// `GET` of `key`; concurrent calls on a single server are sent
    /// together as one `MGET` (see `batched.rs`).
    pub(crate) async fn get(&self, key: &str) -> Result<Option<Bytes>, CacheError> {
        if let Some(batched) = self.batched()
            && let Ok(read) = batched.get(key).await
        {
            return read;
        }
        self.get_with(&fail_fast(), Key::from(key)).await
    }

    /// One `GET` of `key`, sent with `options`.
    pub(crate) async fn get_with(
        &self,
        options: &Options,
        key: Key,
    ) -> Result<Option<Bytes>, CacheError> {
        let client = self.client().with_options(options);
        // Awaited in place, as `set_with` (see `CommandStats::start`).
        let timer = self.manager.commands().start(RedisOp::GET, 1);
        let read = client.get(key).await;
        timer.finish();
        read.map_err(|e| self.error(&e))
    }

    /// `GET` and `PTTL` of `key` in one round trip: the value and how long
    /// Redis keeps it (`None`: no expiry), for filling the L1 without
    /// outliving Redis. Concurrent calls on a single server are sent
    /// together as one call of the GET+PTTL script (see `batched.rs`).
    pub(crate) async fn get_with_ttl(&self, key: &str) -> Result<Option<Fetched>, CacheError> {
        if let Some(batched) = self.batched()
            && let Ok(read) = batched.get_with_ttl(key).await
        {
            return read;
        }
        self.get_with_ttl_with(&fail_fast(), Key::from(key)).await
    }

    /// One `GET` and one `PTTL` of `key`, sent with `options`.
    pub(crate) async fn get_with_ttl_with(
        &self,
        options: &Options,
        key: Key,
    ) -> Result<Option<Fetched>, CacheError> {
        // Two commands sent together through one client, not a fred
        // pipeline, which would flush the socket after each (see mset.rs):
        // one write instead of two on the hottest L2 path.
        let client = self.client().with_options(options);
        let (value, ttl) = futures::join!(
            self.timed(RedisOp::GET, client.get::<Value, _>(key.clone())),
            self.timed(RedisOp::PTTL, client.pttl::<Value, _>(key))
        );
        self.fetched(value, ttl)
    }

    /// `GET` + `PTTL` of every key, in the caller's order, in one round
    /// trip: one script call per [`MGET_CHUNK`] keys on a single server, per
    /// hash slot on a cluster (a script may only touch one slot), all sent
    /// together through one client (a fred pipeline would flush the socket
    /// after each: see `mset.rs`). The outer error is Redis being
    /// unavailable; an inner one is a refusal for that key alone
    /// (`WRONGTYPE`).
    pub(crate) async fn mget_with_ttl(
        &self,
        keys: &[&str],
    ) -> Result<Vec<Result<Option<Fetched>, CacheError>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let groups: Vec<Vec<usize>> = if self.is_cluster() {
            group_by_slot(keys).into_values().collect()
        } else {
            (0..keys.len())
                .collect::<Vec<_>>()
                .chunks(MGET_CHUNK)
                .map(<[usize]>::to_vec)
                .collect()
        };
        let client = self.client();
        let options = fail_fast();
        let calls = groups.iter().map(|group| {
            let names: Vec<Key> = group.iter().map(|&i| Key::from(keys[i])).collect();
            self.fetch_scripted(client, &options, names, 1)
        });
        let replies = futures::future::join_all(calls).await;
        let mut out: Vec<Result<Option<Fetched>, CacheError>> =
            (0..keys.len()).map(|_| Ok(None)).collect();
        for (group, reply) in groups.iter().zip(replies) {
            for (&i, fetched) in group.iter().zip(reply?) {
                out[i] = fetched;
            }
        }
        Ok(out)
    }

    /// One call of the GET+PTTL script for `keys` (all in one slot) through
    /// `client` with `options`, counted as `n` commands in the latency
    /// histogram; one entry per key, in order. The outer error is Redis
    /// being unavailable; an inner one is a refusal for that key alone
    /// (`WRONGTYPE`).
    pub(crate) async fn fetch_scripted(
        &self,
        client: &Client,
        options: &Options,
        keys: Vec<Key>,
        n: usize,
    ) -> Result<Vec<Result<Option<Fetched>, CacheError>>, CacheError> {
        let count = keys.len();
        let reply: Vec<Value> = self
            .run_script_n(client, options, &MGET_TTL, keys, Vec::new(), n)
            .await?;
        if reply.len() != 2 * count {
            return Err(CacheError::Rejected(Rejection::new(
                RejectionKind::Other,
                "a short reply to the GET+PTTL script",
            )));
        }
        // Pairs of (value or error, PTTL), in the keys' order.
        let mut pairs = reply.into_iter();
        let mut out = Vec::with_capacity(count);
        while let (Some(value), Some(ttl)) = (pairs.next(), pairs.next()) {
            out.push(fetched_from_script(value, &ttl));
        }
        Ok(out)
    }

    /// One key's `GET` and `PTTL` replies, as a [`Fetched`] (or `None`: no
    /// such key). The error is Redis being unavailable, or a refusal for
    /// that key alone (`WRONGTYPE`).
    fn fetched(
        &self,
        value: Result<Value, FredError>,
        ttl: Result<Value, FredError>,
    ) -> Result<Option<Fetched>, CacheError> {
        let value = value.map_err(|e| self.error(&e))?;
        Ok(fetched(value, ttl.ok().and_then(|t| t.as_i64())))
    }

    /// `MGET`, in the caller's order. On a cluster, keys are grouped by hash
    /// slot (a multi-key command must stay within one slot) and the groups
    /// are pipelined: one round trip per node at most.
    pub(crate) async fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Bytes>>, CacheError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        if !self.is_cluster() {
            return self
                .timed(RedisOp::MGET, self.fast().mget(keys.to_vec()))
                .await
                .map_err(|e| self.error(&e));
        }
        let groups = group_by_slot(keys);
        let pipeline = Pipeline::from(self.fast());
        for indices in groups.values() {
            let group: Vec<&str> = indices.iter().map(|&i| keys[i]).collect();
            pipeline
                .mget::<(), _>(group)
                .await
                .map_err(|e| self.error(&e))?;
        }
        let replies: Vec<Vec<Option<Bytes>>> = self
            .timed_n(RedisOp::MGET, groups.len(), pipeline.all())
            .await
            .map_err(|e| self.error(&e))?;
        let mut out = vec![None; keys.len()];
        for (indices, values) in groups.values().zip(replies) {
            for (&i, value) in indices.iter().zip(values) {
                out[i] = value;
            }
        }
        Ok(out)
    }

    /// `EVALSHA` of `script` on a pooled client, failing fast while
    /// disconnected, and loading the script after `NOSCRIPT` (first use, or
    /// Redis restarted).
    pub(crate) async fn run_script<R: FromValue>(
        &self,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, CacheError> {
        self.run_script_on(self.client(), script, keys, args).await
    }

    /// [`run_script`](Self::run_script) through `client`: the `EVALSHA` is
    /// queued on it when the future is first polled (a reload after
    /// `NOSCRIPT` goes later).
    pub(crate) async fn run_script_on<R: FromValue>(
        &self,
        client: &Client,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, CacheError> {
        self.run_script_with(client, &fail_fast(), script, keys, args)
            .await
    }

    /// [`run_script_on`](Self::run_script_on) with `options` in place of
    /// [`fail_fast`]: for the few scripts that must rather wait for the
    /// connection (see [`queued`]).
    pub(crate) async fn run_script_with<R: FromValue>(
        &self,
        client: &Client,
        options: &Options,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
    ) -> Result<R, CacheError> {
        self.run_script_n(client, options, script, keys, args, 1)
            .await
    }

    /// [`run_script_with`](Self::run_script_with) for a script that does
    /// the work of `n` single-key commands (a coalesced batch, see
    /// `batched.rs`): counted `n` times in the latency histogram, as `n`
    /// commands sent together are.
    pub(crate) async fn run_script_n<R: FromValue>(
        &self,
        client: &Client,
        options: &Options,
        script: &Script,
        keys: Vec<Key>,
        args: Vec<Value>,
        n: usize,
    ) -> Result<R, CacheError> {
        let fast = client.with_options(options);
        let first = evalsha::<R>(&fast, script, keys.clone(), args.clone());
        match self
            .timed_n(RedisOp::EVALSHA, n, first)
            .await
            .map_err(|e| self.error(&e))
        {
            Err(CacheError::Rejected(r)) if r.kind() == RejectionKind::NoScript => {
                // On the plain client: fred sends `SCRIPT LOAD` to every
                // primary of a cluster only from there. It follows a reply
                // on a live connection, and loading twice is harmless.
                self.timed(RedisOp::SCRIPT_LOAD, script.load(client))
                    .await
                    .map_err(|e| self.error(&e))?;
                let again = evalsha(&fast, script, keys, args);
                self.timed_n(RedisOp::EVALSHA, n, again)
                    .await
                    .map_err(|e| self.error(&e))
            }
            result => result,
        }
    }

    /// `UNLINK` (non-blocking delete) of `keys`; returns how many existed.
    pub(crate) async fn unlink(&self, keys: &[&str]) -> Result<u64, CacheError> {
        let keys = keys.iter().map(|k| Key::from(*k)).collect();
        self.unlink_on(self.client(), keys).await
    }

    /// `UNLINK` through `client`, grouped by hash slot on a cluster (a
    /// multi-key command must stay within one slot) and pipelined; failing
    /// fast while disconnected (a pipeline of an options wrapper carries
    /// its options: a plain `client.pipeline()` would not).
    pub(crate) async fn unlink_on(
        &self,
        client: &Client,
        keys: Vec<Key>,
    ) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let fast = client.with_options(&fail_fast());
        if !self.is_cluster() {
            return self
                .timed(RedisOp::UNLINK, fast.unlink(keys))
                .await
                .map_err(|e| self.error(&e));
        }
        let groups = keys_by_slot(keys);
        let pipeline = Pipeline::from(fast);
        let commands = groups.len();
        for group in groups {
            pipeline
                .unlink::<(), _>(group)
                .await
                .map_err(|e| self.error(&e))?;
        }
        let counts: Vec<u64> = self
            .timed_n(RedisOp::UNLINK, commands, pipeline.all())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(counts.into_iter().sum())
    }

    /// How many of `keys` exist (`EXISTS`), through `client`, grouped by
    /// hash slot on a cluster as [`unlink_on`](Self::unlink_on) is.
    pub(crate) async fn count_existing_on(
        &self,
        client: &Client,
        keys: Vec<Key>,
    ) -> Result<u64, CacheError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let fast = client.with_options(&fail_fast());
        if !self.is_cluster() {
            return self
                .timed(RedisOp::EXISTS, fast.exists(keys))
                .await
                .map_err(|e| self.error(&e));
        }
        let groups = keys_by_slot(keys);
        let pipeline = Pipeline::from(fast);
        let commands = groups.len();
        for group in groups {
            pipeline
                .exists::<(), _>(group)
                .await
                .map_err(|e| self.error(&e))?;
        }
        let counts: Vec<u64> = self
            .timed_n(RedisOp::EXISTS, commands, pipeline.all())
            .await
            .map_err(|e| self.error(&e))?;
        Ok(counts.into_iter().sum())
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool, CacheError> {
        let n: u64 = self
            .timed(RedisOp::EXISTS, self.fast().exists(key))
            .await
            .map_err(|e| self.error(&e))?;
        Ok(n > 0)
    }

    /// `SET key value PX ttl` through `client` with `options` (for a write
    /// sent on the same connection as its index update and its
    /// announcement: see `write.rs`).
    pub(crate) async fn set_with(
        &self,
        client: &Client,
        options: &Options,
        key: &str,
        value: Bytes,
        ttl: Duration,
    ) -> Result<(), CacheError> {
        let fast = client.with_options(options);
        // Awaited here rather than through `timed`: a rewrite's hot path
        // (see `CommandStats::start`).
        let timer = self.manager.commands().start(RedisOp::SET, 1);
        let written = fast
            .set::<(), _, _>(key, value, Some(px(ttl)), None, false)
            .await;
        timer.finish();
        written.map_err(|e| self.error(&e))
    }

    /// `PEXPIRE` through `client`, failing fast while disconnected (sent on
    /// the connection of its announcement: see `write.rs`).
    pub(crate) async fn pexpire_on(
        &self,
        client: &Client,
        key: &str,
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let fast = client.with_options(&fail_fast());
        self.timed(RedisOp::PEXPIRE, fast.pexpire(key, millis(ttl), None))
            .await
            .map_err(|e| self.error(&e))
    }

    pub(crate) async fn pttl(&self, key: &str) -> Result<i64, CacheError> {
        self.timed(RedisOp::PTTL, self.fast().pttl(key))
            .await
            .map_err(|e| self.error(&e))
    }

    pub(crate) async fn incr_by(&self, key: &str, by: i64) -> Result<i64, CacheError> {
        self.timed(RedisOp::INCRBY, self.fast().incr_by(key, by))
            .await
            .map_err(|e| self.error(&e))
    }

    /// The primaries to visit for keyspace-wide work: every primary of a
    /// cluster, or `[None]` (the one server).
    pub(crate) fn nodes(&self) -> Vec<Option<Server>> {
        if !self.is_cluster() {
            return vec![None];
        }
        match self.client().cached_cluster_state() {
            Some(state) => state.unique_primary_nodes().into_iter().map(Some).collect(),
            None => vec![None],
        }
    }

    /// Key count and used memory, summed over primaries.
    pub(crate) async fn server_stats(&self) -> Result<(u64, u64), CacheError> {
        let mut keys = 0;
        let mut memory = 0;
        for node in self.nodes() {
            let options = Options {
                cluster_node: node,
                fail_fast: true,
                ..Options::default()
            };
            let client = self.client().with_options(&options);
            let n: u64 = self
                .timed(RedisOp::DBSIZE, client.dbsize())
                .await
                .map_err(|e| self.error(&e))?;
            let info: String = self
                .timed(RedisOp::INFO, client.info(Some(InfoKind::Memory)))
                .await
                .map_err(|e| self.error(&e))?;
            keys += n;
            memory += info
                .lines()
                .find_map(|l| l.strip_prefix("used_memory:"))
                .and_then(|v| v.trim().parse::<u64>().ok())
                .unwrap_or(0);
        }
        Ok((keys, memory))
    }
}

/// Keys per GET+PTTL script call: a short script, like `mset`'s chunks.
const MGET_CHUNK: usize = 250;

/// `GET` and `PTTL` of every key; a key holding another type answers the
/// integer 0 in place of its value (a value is a string or nil), so one bad
/// key does not fail the others.
const MGET_TTL_LUA: &str = r"
local out = {}
for i, key in ipairs(KEYS) do
  local ok, value = pcall(redis.call, 'GET', key)
  if ok then
    out[2 * i - 1] = value
  else
    out[2 * i - 1] = 0
  end
  out[2 * i] = redis.call('PTTL', key)
end
return out
";

static MGET_TTL: std::sync::LazyLock<Script> =
    std::sync::LazyLock::new(|| Script::from_lua(MGET_TTL_LUA));

/// One key's entry of the GET+PTTL script's reply, as a [`Fetched`].
fn fetched_from_script(value: Value, ttl: &Value) -> Result<Option<Fetched>, CacheError> {
    if let Value::Integer(_) = value {
        return Err(CacheError::Rejected(Rejection::new(
            RejectionKind::WrongType,
            "WRONGTYPE Operation against a key holding the wrong kind of value",
        )));
    }
    Ok(fetched(value, ttl.as_i64()))
}

/// A GET reply and its key's PTTL (in ms) as what a read found: `-1` is no
/// TTL; a key gone between GET and PTTL, or about to expire, has a zero TTL
/// (not worth caching).
fn fetched(value: Value, pttl: Option<i64>) -> Option<Fetched> {
    let ttl = match pttl {
        Some(-1) => None,
        Some(ms) if ms > 0 => Some(Duration::from_millis(ms.unsigned_abs())),
        _ => Some(Duration::ZERO),
    };
    let bytes = match value {
        Value::Null => None,
        other => other.into_bytes(),
    };
    bytes.map(|bytes| Fetched { bytes, ttl })
}

/// `keys` grouped by cluster hash slot (one multi-key command per slot on
/// a cluster), each group in the order given, groups in slot order.
fn keys_by_slot(keys: Vec<Key>) -> Vec<Vec<Key>> {
    let mut groups: BTreeMap<u16, Vec<Key>> = BTreeMap::new();
    for key in keys {
        groups
            .entry(redis_keyslot(key.as_bytes()))
            .or_default()
            .push(key);
    }
    groups.into_values().collect()
}

/// Groups key indices by cluster hash slot, keeping each group in order.
fn group_by_slot(keys: &[&str]) -> BTreeMap<u16, Vec<usize>> {
    let mut groups: BTreeMap<u16, Vec<usize>> = BTreeMap::new();
    for (i, key) in keys.iter().enumerate() {
        let slot = redis_keyslot(key.as_bytes());
        groups.entry(slot).or_default().push(i);
    }
    groups
}

pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn px(ttl: Duration) -> Expiration {
    Expiration::PX(millis(ttl).max(1))
}

/// Options of a command that waits for a connection while the pool is
/// disconnected (bounded by the command timeout) and may be resent on the
/// next one: only for what is harmless to run twice and better late than
/// failed: the invalidation stream's reads in the background (the
/// subscriber often reconnects before the pool does), and a cluster batch's
/// index updates, queued like its `SET`s (see `mset.rs`).
pub(crate) fn queued() -> Options {
    Options::default()
}

/// `EVALSHA` of `script` through `client`, keeping `client`'s options.
///
/// Not fred's `evalsha` (nor its `eval`): fred 10 implements `LuaInterface`
/// for a plain `Client` but not for `WithOptions<Client>`, so
/// `fast.evalsha(..)` derefs to the plain client and silently drops the
/// options. Every script then neither failed fast (a Redis-only `set`,
/// which is a script, waited out the whole command timeout during a known
/// outage) nor stayed unretried (see [`fail_fast`]). A custom command goes
/// through the options wrapper's own `ClientLike`, which applies them.
pub(crate) fn evalsha<R: FromValue>(
    client: &WithOptions<Client>,
    script: &Script,
    keys: Vec<Key>,
    args: Vec<Value>,
) -> impl Future<Output = Result<R, FredError>> {
    let sha = Value::from(script.sha1().clone());
    scripted(client, "EVALSHA", sha, keys, args)
}

/// `EVAL` of `lua` through `client`, keeping `client`'s options (see
/// [`evalsha`] for why not fred's own).
pub(crate) fn eval<R: FromValue>(
    client: &WithOptions<Client>,
    lua: &str,
    keys: Vec<Key>,
    args: Vec<Value>,
) -> impl Future<Output = Result<R, FredError>> {
    scripted(client, "EVAL", Value::from(lua), keys, args)
}

/// `command` (`EVAL` or `EVALSHA`) of `script` as a custom command, routed
/// by its first key's slot as fred routes a script (our scripts' keys
/// share one slot).
fn scripted<R: FromValue>(
    client: &WithOptions<Client>,
    command: &'static str,
    script: Value,
    keys: Vec<Key>,
    args: Vec<Value>,
) -> impl Future<Output = Result<R, FredError>> {
    let hash = keys.first().map_or(ClusterHash::Random, |key| {
        ClusterHash::Custom(redis_keyslot(key.as_bytes()))
    });
    let command = CustomCommand::new_static(command, hash, false);
    let mut line: Vec<Value> = Vec::with_capacity(2 + keys.len() + args.len());
    line.push(script);
    line.push(Value::Integer(
        i64::try_from(keys.len()).unwrap_or(i64::MAX),
    ));
    line.extend(keys.into_iter().map(Value::from));
    line.extend(args);
    client.custom(command, line)
}

/// Options of a command that fails at once while the pool is known to be
/// disconnected, instead of waiting out its timeout.
///
/// fred's `fail_fast` also means "never retried": a command whose
/// connection drops before its reply fails, where a plain one is sent again
/// on the next connection. Our writes rely on that: a rewrite that skips the
/// tenant index (its memo read before the loss) must not land on a server
/// that restarted empty, and an `INCRBY` Redis may have run must not run
/// twice. A check of our own before sending (the connected client, read
/// anyway) was tried as a cheaper fail-fast and broke exactly that
/// (`purge::rewrites_skip_the_index_until_a_reconnection`); it was not
/// measurably faster either (BENCHMARKS.md, issue 15).
pub(crate) fn fail_fast() -> Options {
    Options {
        fail_fast: true,
        ..Options::default()
    }
}
