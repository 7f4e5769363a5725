//! [`Store::mset`]: many `SET … PX` writes, as few socket writes as possible.
//!
//! Redis has no multi-key `SET` with per-key TTLs (`MSET` cannot expire),
//! so a batch is many `SET key value PX ttl`. How they are sent decides the
//! cost, and fred's own pipeline is the slow way: it flushes the socket
//! after every command of a pipeline (it flushes whenever its router queue
//! is empty, and a pipeline is one entry of that queue), so 1 000 keys are
//! 1 000 `writev` calls and 1 000 wake-ups of the server
//! (BENCHMARKS.md, workload 3).
//!
//! - On a single server (standalone or sentinel) a Lua script runs the
//!   `SET`s: one `EVAL` per [`SCRIPT_CHUNK`] keys, so a batch costs a few
//!   writes. Chunks keep each script short (a script holds the server while
//!   it runs, as any command does) and are sent together.
//! - On a cluster a script may only touch keys of one hash slot, so each key
//!   is its own `SET`, all sent at once through one client: fred routes each
//!   to its node and, with its queue non-empty, feeds them to the socket
//!   without flushing after each.
//!
//! Either way every command has the manager's command timeout (on a single
//! server it also fails fast while the pool is disconnected). A key given
//! twice is written once, with its last value: chunks retried after a
//! script reload, and commands to different cluster nodes, are not ordered
//! against each other, so duplicates are removed before anything is sent.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::{Key, Value};

use crate::coherence::{INVALIDATION_STREAM, Messages, retention_args, stream_fn};
use crate::error::CacheError;
use crate::store::{Store, eval, fail_fast, millis, px};

/// Keys per script: at most about a millisecond of server time each.
pub(crate) const SCRIPT_CHUNK: usize = 250;

/// `KEYS`: the keys; `ARGV`: the values, then the TTLs in milliseconds.
const MSET_LUA: &str = "\
local n = #KEYS
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[n + i])
end
return n";

/// [`MSET_LUA`] with announcements: `KEYS`: the keys, then the
/// invalidation stream; `ARGV`: the values, the TTLs in milliseconds, the
/// stream's max entries and window in ms, then (channel, payload) pairs to
/// append and publish: the announcements of these keys, atomic with their
/// writes. Announced before the keys are written, so that a refused
/// announcement writes nothing (scripts do not roll back); subscribers
/// still hear of the writes only after them, once the script has ended.
const MSET_ANNOUNCED_LUA: &str = concat!(
    stream_fn!(),
    r"
local n = #KEYS - 1
for j = 2 * n + 3, #ARGV, 2 do
  announce(KEYS[n + 1], ARGV[2 * n + 1], tonumber(ARGV[2 * n + 2]), ARGV[j], ARGV[j + 1])
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[i], 'PX', ARGV[n + i])
end
return n"
);

impl Store {
    /// `SET key value PX ttl` for every entry (the last value of a key given
    /// twice), through `client`. On a single server, the message `messages`
    /// holds for a key is published by the script that writes it (a
    /// cluster ignores them: its writes are single commands). On failure
    /// returns the first error; entries written before it stay written.
    pub(crate) async fn mset_on(
        &self,
        client: &Client,
        entries: Vec<(&str, Bytes, Duration)>,
        messages: Option<&Messages<'_>>,
    ) -> Result<(), CacheError> {
        let entries = last_of_each_key(entries);
        if entries.is_empty() {
            return Ok(());
        }
        if self.is_cluster() {
            self.mset_each(client, entries).await
        } else {
            self.mset_scripted(client, entries, messages).await
        }
    }

    /// One `EVAL` per chunk, publishing the chunk's keys' messages. `EVAL`,
    /// not `EVALSHA`: the script is short, and one round trip even on the
    /// first use after a restart.
    async fn mset_scripted(
        &self,
        client: &Client,
        entries: Vec<(&str, Bytes, Duration)>,
        messages: Option<&Messages<'_>>,
    ) -> Result<(), CacheError> {
        let fast = client.with_options(&fail_fast());
        let chunks = entries.chunks(SCRIPT_CHUNK).map(|chunk| {
            let mut keys: Vec<Key> = chunk.iter().map(|(key, _, _)| Key::from(*key)).collect();
            let mut args: Vec<Value> = Vec::with_capacity(chunk.len() * 2);
            args.extend(
                chunk
                    .iter()
                    .map(|(_, value, _)| Value::Bytes(value.clone())),
            );
            args.extend(
                chunk
                    .iter()
                    .map(|(_, _, ttl)| Value::Integer(millis(*ttl).max(1))),
            );
            let mut script = MSET_LUA;
            if let Some(messages) = messages {
                script = MSET_ANNOUNCED_LUA;
                keys.push(Key::from(INVALIDATION_STREAM.as_str()));
                args.extend(retention_args(messages.retention));
                for (key, _, _) in chunk {
                    if let Some((channel, payload)) = messages.by_key.get(key) {
                        args.push(Value::from(channel.as_str()));
                        args.push(Value::Bytes(payload.clone()));
                    }
                }
            }
            let fast = &fast;
            async move {
                let eval = eval::<i64>(fast, script, keys, args);
                self.timed(RedisOp::EVAL, eval)
                    .await
                    .map_err(|e| self.error(&e))
            }
        });
        for written in futures::future::join_all(chunks).await {
            written?;
        }
        Ok(())
    }

    async fn mset_each(
        &self,
        client: &Client,
        entries: Vec<(&str, Bytes, Duration)>,
    ) -> Result<(), CacheError> {
        // Not `fail_fast`: right after a topology change fred replaces node
        // connections, and a batch spread over every node would fail on
        // whichever one is being replaced; queued, it waits for it (bounded
        // by the command timeout).
        let writes = entries.into_iter().map(|(key, value, ttl)| {
            self.timed(
                RedisOp::SET,
                client.set::<(), _, _>(key, value, Some(px(ttl)), None, false),
            )
        });
        for written in futures::future::join_all(writes).await {
            written.map_err(|e| self.error(&e))?;
        }
        Ok(())
    }
}

/// `entries` with each key once, holding its last value, in the order of
/// those last occurrences.
fn last_of_each_key(entries: Vec<(&str, Bytes, Duration)>) -> Vec<(&str, Bytes, Duration)> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(entries.len());
    for (i, (key, _, _)) in entries.iter().enumerate() {
        last.insert(key, i);
    }
    if last.len() == entries.len() {
        return entries;
    }
    entries
        .into_iter()
        .enumerate()
        .filter(|(i, (key, _, _))| last.get(key) == Some(i))
        .map(|(_, entry)| entry)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_keep_their_last_value() {
        let s = Duration::from_secs(1);
        let entries = vec![
            ("a", Bytes::from_static(b"1"), s),
            ("b", Bytes::from_static(b"2"), s),
            ("a", Bytes::from_static(b"3"), s * 2),
        ];
        let kept = last_of_each_key(entries);
        let kept: Vec<_> = kept.iter().map(|(k, v, t)| (*k, v.as_ref(), *t)).collect();
        assert_eq!(kept, vec![("b", &b"2"[..], s), ("a", &b"3"[..], s * 2)]);
    }

    #[test]
    fn distinct_keys_are_kept_in_order() {
        let s = Duration::from_secs(1);
        let entries: Vec<_> = ["x", "y", "z"]
            .into_iter()
            .map(|k| (k, Bytes::from_static(b"v"), s))
            .collect();
        let kept: Vec<&str> = last_of_each_key(entries)
            .iter()
            .map(|(k, _, _)| *k)
            .collect();
        assert_eq!(kept, ["x", "y", "z"]);
    }
}
