//! Concurrent announced changes of single keys (`invalidate` of a key,
//! `delete`, `set` and `expire` on a two-tier cache), sent together: on a
//! single server one script call per batch changes every key, appends every
//! announcement to the invalidation stream and publishes each on its own
//! channel (the [`Coalescer`] decides what leaves together).
//!
//! **Why.** One script call per change made the sender's cost per
//! invalidation one command for fred (a queue entry, a frame, a wake-up)
//! and one for Redis (a parse, a script lookup, a reply, and the stream's
//! `XREVRANGE`, which a script reads once). On a machine where sender,
//! Redis and receivers share the CPU, that cost is what receivers cannot
//! spend applying (BENCHMARKS.md, issue 17, "sustained rate").
//!
//! **What each caller keeps.** The batch script runs each key's change and
//! then its announcement, key after key, so a subscriber never hears of a
//! change before it is visible (as in the one-key script); each caller gets
//! its own reply (how many keys its `UNLINK` removed, whether its key
//! existed for an expire). A failed index update of one key (its index key
//! holding another type) fails that caller alone: it runs after the key's
//! change and announcement, as in the one-key script. A batch that fails as
//! a whole (Redis down, a timeout) gives every caller the error, and each
//! caller's `PendingAnnouncements` then sends its announcement the fallback
//! way (`announce.rs`), as after a failed one-key script. A cluster never
//! coalesces: its keys, the stream and the indexes are in different slots.

use std::time::Duration;

use tracing::Instrument;

use bytes::Bytes;
use redis_connection::ConnectionError;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use shared_types::RedisKey;
use std::sync::LazyLock;

use super::atomic_write::{Announcement, KeyChange};
use super::stream::{INVALIDATION_STREAM, retention_args, stream_fn};
use crate::coalesce::{Batch, Coalescer, Limits};
use crate::config::Retention;
use crate::error::CacheError;
use crate::index::{held, index_fn};
use crate::store::{Store, millis};

/// Requests per script and scripts in flight.
///
/// A batch of 64 runs well under a millisecond in Redis (an `UNLINK`, an
/// `XADD` and a `PUBLISH` a key), so a script never holds the server long;
/// two in flight let the next batch form while one runs, which measured
/// best on workload 5 (BENCHMARKS.md, issue 17).
pub(crate) const LIMITS: Limits = Limits {
    max_batch: 64,
    max_in_flight: 2,
};

/// `KEYS[1]`: the invalidation stream, then for each change its key and,
/// when the change says so, a second key: for an `unlink` the key's load
/// lease (removed with it, counted as `UNLINK` counts), for a `set` or
/// `pexpire` the tenant's index. `ARGV[1..2]`: the stream's max entries
/// and window in ms; then 7 a change: the op (`set`, `pexpire`, `unlink`),
/// the channel, the payload, the TTL in ms, how long the index holds the
/// key in ms, the value, and how many keys it names (1 or 2). Answers one
/// reply a change, in order: the change's reply as a number, or the error
/// of its index update as text.
const BATCH_LUA: &str = concat!(
    index_fn!(),
    stream_fn!(),
    r"
local replies = {}
local k = 2
local n = (#ARGV - 2) / 7
for i = 1, n do
  local a = 2 + (i - 1) * 7
  local op, key, second = ARGV[a + 1], KEYS[k], nil
  if ARGV[a + 7] == '2' then
    second = KEYS[k + 1]
    k = k + 2
  else
    k = k + 1
  end
  -- Announced first: a refused PUBLISH (ACL) fails the script before it
  -- changed anything, and subscribers hear of it only once the script ends.
  announce(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[a + 2], ARGV[a + 3])
  local reply = 1
  if op == 'set' then
    redis.call('SET', key, ARGV[a + 6], 'PX', ARGV[a + 4])
  elseif op == 'pexpire' then
    reply = redis.call('PEXPIRE', key, ARGV[a + 4])
  elseif second then
    reply = redis.call('UNLINK', key, second)
  else
    reply = redis.call('UNLINK', key)
  end
  if second and op ~= 'unlink' then
    -- Caught: a stray index key fails its own caller, not the batch.
    local ok, err = pcall(index, second, {ARGV[a + 5], key})
    if not ok then
      reply = type(err) == 'table' and err.err or tostring(err)
    end
  end
  replies[i] = reply
end
return replies
"
);

static BATCH: LazyLock<Script> = LazyLock::new(|| Script::from_lua(BATCH_LUA));

/// One caller's announced change.
#[derive(Debug, Clone)]
pub(crate) struct Announced {
    pub(crate) key: RedisKey,
    pub(crate) change: KeyChange,
    pub(crate) channel: String,
    pub(crate) payload: Bytes,
    /// The caller's span: the batch's script is traced under its first
    /// caller's (a lone change's script stays a span of its request, as
    /// before coalescing; a span cannot have many parents).
    pub(crate) span: tracing::Span,
}

/// Sends batches of [`Announced`] changes as one script each.
#[derive(Debug)]
pub(crate) struct AnnounceBatch {
    store: Store,
    retention: Retention,
}

/// The coalescer of one cache's announced changes.
pub(crate) type Announcer = Coalescer<AnnounceBatch>;

/// An announcer for `store` (`None` on a cluster, which never coalesces).
pub(crate) fn announcer(store: &Store, retention: Retention) -> Option<Announcer> {
    (!store.is_cluster()).then(|| {
        Coalescer::new(
            AnnounceBatch {
                store: store.clone(),
                retention,
            },
            LIMITS,
        )
    })
}

impl Announced {
    /// `announcement`'s channel and payload with `change` of `key`.
    pub(crate) fn new(key: &RedisKey, change: KeyChange, announcement: &Announcement) -> Self {
        Self {
            key: key.clone(),
            change,
            channel: announcement.channel.clone(),
            payload: announcement.payload.clone(),
            span: tracing::Span::current(),
        }
    }
}

impl Batch for AnnounceBatch {
    type Request = Announced;
    type Reply = Result<u64, CacheError>;

    async fn run(&self, requests: Vec<Announced>) -> Vec<Result<u64, CacheError>> {
        self.store.changes_announced(requests, self.retention).await
    }
}

impl Store {
    /// Every change of `changes` with its announcement, in one script (on a
    /// single server: the keys, the stream and the indexes in one place);
    /// one reply a change, as `change_on` gives it, or the error of the
    /// whole call for each.
    async fn changes_announced(
        &self,
        changes: Vec<Announced>,
        retention: Retention,
    ) -> Vec<Result<u64, CacheError>> {
        let n = changes.len();
        let receipt = self.receipt();
        let ms = |d: Option<Duration>| Value::Integer(d.map_or(0, |d| millis(d).max(1)));
        let mut keys = Vec::with_capacity(1 + 2 * n);
        keys.push(Key::from(INVALIDATION_STREAM.as_str()));
        let mut args = Vec::with_capacity(2 + 7 * n);
        args.extend(retention_args(retention));
        // Which changes put their key in the index: confirmed once done.
        let mut indexed: Vec<Option<Duration>> = Vec::with_capacity(n);
        for Announced {
            key,
            change,
            channel,
            payload,
            ..
        } in &changes
        {
            let ttl = change.ttl();
            let index = ttl.filter(|ttl| self.needs_index(key, *ttl));
            keys.push(Key::from(key.as_str()));
            let second = match change {
                KeyChange::Unlink => Some(RedisKey::load_lease_of(key.as_str())),
                _ => index.map(|_| RedisKey::tenant_index_of(key).as_str().to_owned()),
            };
            let named = if let Some(second) = second {
                keys.push(Key::from(second));
                2
            } else {
                1
            };
            let value = match change {
                KeyChange::Set { value, .. } => Value::Bytes(value.clone()),
                KeyChange::Expire { .. } | KeyChange::Unlink => Value::Bytes(Bytes::new()),
            };
            args.extend([
                Value::from(change.op()),
                Value::from(channel.as_str()),
                Value::Bytes(payload.clone()),
                ms(ttl),
                ms(index.map(held)),
                value,
                Value::Integer(named),
            ]);
            indexed.push(index);
        }
        let client = self.client().clone();
        let parent = changes
            .first()
            .map_or_else(tracing::Span::none, |first| first.span.clone());
        let replies = match self
            .run_script_on::<Vec<Value>>(&client, &BATCH, keys, args)
            .instrument(parent)
            .await
        {
            Ok(replies) if replies.len() == n => replies,
            Ok(replies) => {
                let error = ConnectionError::from_server_reply(&format!(
                    "ERR the batch script answered {} replies for {n} changes",
                    replies.len()
                ));
                return (0..n).map(|_| Err(error.clone().into())).collect();
            }
            Err(error) => return (0..n).map(|_| Err(error.clone())).collect(),
        };
        replies
            .into_iter()
            .zip(changes.iter().zip(indexed))
            .map(|(reply, (Announced { key, .. }, index))| match reply {
                Value::Integer(count) => {
                    if let Some(ttl) = index {
                        self.confirm(key, ttl, &receipt);
                    }
                    Ok(count.unsigned_abs())
                }
                other => {
                    let text = other.as_string().unwrap_or_default();
                    Err(ConnectionError::from_server_reply(&text).into())
                }
            })
            .collect()
    }
}
