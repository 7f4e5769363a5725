//! The invalidation stream: every announcement of ours is also appended to
//! one bounded Redis Stream, by the same script that publishes it, so that
//! an instance that missed messages (a resubscribe, a lag, a gap in the
//! entry ids its messages carry) reads what it missed instead of flushing
//! its L1 (`replay.rs`).
//!
//! The script reads the stream's last entry id, appends the announcement
//! (`c`: its channel, `p`: that previous id), trims what the retention no
//! longer keeps, and publishes the payload with two fields added,
//! `stream_id` and `stream_prev`. A receiver whose last applied entry is
//! `stream_prev` missed nothing; gap detection compares ids, never clocks.
//! Because appending and publishing are one script, the order of messages
//! on the channel is the order of the entries.
//!
//! One stream for the whole deployment (`coherence:invalidations`): on a
//! single server it is written in the script that changes the key; on a
//! cluster it lives in its own slot (keys carry no hash tag, so no script
//! can hold both a key and the stream) and the announcement follows the
//! change's reply (ARCHITECTURE.md, "The invalidation stream").

use std::time::Duration;

use bytes::Bytes;
use redis_connection::RedisOp;
use redis_connection::fred::interfaces::ClientLike;
use redis_connection::fred::prelude::Client;
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use std::sync::LazyLock;

use shared_types::RedisKey;

use crate::config::Retention;
use crate::error::CacheError;
use crate::store::{Store, eval, fail_fast, millis, queued};

/// The stream's key (`coherence:invalidations`), built once: every
/// announcement names it.
pub(crate) static INVALIDATION_STREAM: LazyLock<RedisKey> =
    LazyLock::new(RedisKey::invalidation_stream);

/// The Lua function every announcement runs: append to `stream` (bounded
/// by `maxlen` entries and `window` ms of entry-id age) and publish
/// `payload` on `channel` with the entry's place in the stream. The payload
/// is our JSON object: its closing brace is replaced by the two fields.
///
/// What it costs Redis was measured, not guessed (BENCHMARKS.md, "The
/// sender's cost"), and two things are done less often than every call:
/// - Reading the previous entry's id (`XREVRANGE … COUNT 1`, the dearest
///   step) happens once per script: a script runs alone, so the entry it
///   appended last is the stream's last one for its next announcement (an
///   `mset` chunk or a batch of announcements reads it once, not per key).
///   It is not kept in a key of its own between scripts: an instance of an
///   earlier version appends without updating such a key, and a stale
///   predecessor would hide its entry from gap detection.
/// - Trimming by age (`XTRIM … MINID`, a command of its own) happens when
///   an entry opens a new millisecond or is the 64th of one (ids are
///   `<ms>-<seq>`): entries outlive the window by at most the millisecond
///   of the trim, and a clock that steps back (ids then stay on the last
///   millisecond) still trims every 64 entries. The count bound stays on
///   every `XADD` (`MAXLEN ~`, nearly free when nothing is trimmed).
///
/// A user whose ACL forbids the `PUBLISH` is refused before anything is
/// written (`NOPERM`, Redis 7's `redis.acl_check_cmd`): scripts do not
/// roll back, so a refusal at the `PUBLISH` itself would leave the stream
/// entry, and the change of a script that announces first (see
/// `atomic_write.rs`, `mset.rs`), in place with nobody told. Redis 6 has
/// no such check: there a refused `PUBLISH` fails the script after the
/// `XADD`, which replay then applies as an extra invalidation.
macro_rules! stream_fn {
    () => {
        r#"
local stream_last = nil
local function announce(stream, maxlen, window, channel, payload)
  if redis.acl_check_cmd and not redis.acl_check_cmd('PUBLISH', channel, payload) then
    error({err = 'NOPERM this user may not publish the invalidation'})
  end
  local prev = stream_last
  if not prev then
    local last = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)
    prev = '0-0'
    if last[1] then prev = last[1][1] end
  end
  local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'c', channel, 'p', prev)
  stream_last = id
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  if tonumber(seq) % 64 == 0 then
    ms = tonumber(ms)
    if ms > window then
      redis.call('XTRIM', stream, 'MINID', '~', string.format('%d', ms - window))
    end
  end
  redis.call('PUBLISH', channel, string.sub(payload, 1, -2) ..
    ',"stream_id":"' .. id .. '","stream_prev":"' .. prev .. '"}')
end
"#
    };
}
pub(crate) use stream_fn;

/// `KEYS[1]`: the stream; `ARGV`: max entries, window in ms, then
/// (channel, payload) pairs. Announcements that follow a change's reply.
const SEQUENCED_LUA: &str = concat!(
    stream_fn!(),
    r"
for i = 3, #ARGV, 2 do
  announce(KEYS[1], ARGV[1], tonumber(ARGV[2]), ARGV[i], ARGV[i + 1])
end
return (#ARGV - 2) / 2
"
);

/// `KEYS[1]`: the stream. `ARGV[1] == 'last'`: its last entry; otherwise
/// up to `ARGV[2]` entries from `ARGV[1]` (inclusive).
const READ_LUA: &str = r"
if ARGV[1] == 'last' then
  return redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
end
return redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
";

static READ: LazyLock<Script> = LazyLock::new(|| Script::from_lua(READ_LUA));

/// One entry of the stream: an announcement as replay reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) id: EntryId,
    /// The channel it was published on (what it invalidates).
    pub(crate) channel: String,
    /// The entry before it when it was appended.
    pub(crate) prev: EntryId,
}

/// A stream entry id, `<ms>-<seq>`, ordered as Redis orders them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub(crate) struct EntryId {
    pub(crate) ms: u64,
    pub(crate) seq: u64,
}

impl EntryId {
    /// `0-0`: before any entry (the `prev` of a new stream's first).
    pub(crate) const ZERO: EntryId = EntryId { ms: 0, seq: 0 };

    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (ms, seq) = text.split_once('-')?;
        Some(Self {
            ms: ms.parse().ok()?,
            seq: seq.parse().ok()?,
        })
    }
}

impl std::fmt::Display for EntryId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// The retention as the scripts take it: max entries, window in ms.
pub(crate) fn retention_args(retention: Retention) -> [Value; 2] {
    let window: Duration = retention.window;
    [
        Value::Integer(i64::try_from(retention.entries).unwrap_or(i64::MAX)),
        Value::Integer(millis(window).max(1)),
    ]
}

impl Store {
    /// Appends each (channel, payload) to the stream and publishes it, in
    /// one script on the stream's node: announcements that follow their
    /// change's reply (patterns, a cluster's writes, retries).
    pub(crate) async fn announce_sequenced(
        &self,
        client: &Client,
        retention: Retention,
        messages: Vec<(String, Bytes)>,
    ) -> Result<(), CacheError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut args = Vec::with_capacity(2 + messages.len() * 2);
        args.extend(retention_args(retention));
        for (channel, payload) in messages {
            args.push(Value::from(channel));
            args.push(Value::Bytes(payload));
        }
        let keys = vec![Key::from(INVALIDATION_STREAM.as_str())];
        // `EVAL`, not `EVALSHA`: an announcement sent while Redis holds
        // commands (a pause, a slow server) may time out here and still
        // run later; as `EVALSHA` of a script not loaded yet it would then
        // fail with `NOSCRIPT` where nobody retries it, and be lost.
        let fast = client.with_options(&fail_fast());
        let eval = eval::<i64>(&fast, SEQUENCED_LUA, keys, args);
        self.timed(RedisOp::EVAL, eval)
            .await
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    /// The stream's last entry id; `None` when it has no entry (never
    /// written, or gone with Redis's data).
    pub(crate) async fn stream_last(&self) -> Result<Option<EntryId>, CacheError> {
        let args = vec![Value::from("last")];
        let entries = self.read_stream(args).await?;
        Ok(entries.last().map(|entry| entry.id))
    }

    /// Up to `count` entries from `from` (inclusive), oldest first.
    pub(crate) async fn stream_from(
        &self,
        from: EntryId,
        count: u32,
    ) -> Result<Vec<Entry>, CacheError> {
        let args = vec![Value::from(from.to_string()), Value::from(i64::from(count))];
        self.read_stream(args).await
    }

    async fn read_stream(&self, args: Vec<Value>) -> Result<Vec<Entry>, CacheError> {
        let keys = vec![Key::from(INVALIDATION_STREAM.as_str())];
        // Queued, not failing fast: a replay after the subscriber came back
        // would otherwise lose its place whenever the pool is a moment
        // behind; a read is harmless to resend.
        let client = self.client();
        let reply: Value = self
            .run_script_with(client, &queued(), &READ, keys, args)
            .await?;
        Ok(entries(reply))
    }
}

/// The entries of an `XRANGE` reply; an entry that does not read (not
/// ours) is kept with an empty channel, so that replay still moves past it
/// and treats it as unknown.
fn entries(reply: Value) -> Vec<Entry> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .into_iter()
        .filter_map(|item| {
            let Value::Array(mut pair) = item else {
                return None;
            };
            if pair.len() != 2 {
                return None;
            }
            let fields = pair.pop()?;
            let id = EntryId::parse(&pair.pop()?.as_string()?)?;
            let fields: Vec<String> = match fields {
                Value::Array(fields) => fields.into_iter().filter_map(|f| f.as_string()).collect(),
                _ => Vec::new(),
            };
            let field = |name: &str| {
                fields
                    .chunks(2)
                    .find(|kv| kv.len() == 2 && kv[0] == name)
                    .map(|kv| kv[1].clone())
            };
            Some(Entry {
                id,
                channel: field("c").unwrap_or_default(),
                prev: field("p")
                    .and_then(|p| EntryId::parse(&p))
                    .unwrap_or(EntryId::ZERO),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Entry ids order as Redis's do: by milliseconds, then sequence, not
    // as text ("9-0" < "10-0").
    #[test]
    fn entry_ids_order_by_time_then_sequence() {
        let id = |t| EntryId::parse(t).unwrap();
        assert!(id("9-0") < id("10-0"));
        assert!(id("10-1") < id("10-2"));
        assert_eq!(id("0-0"), EntryId::ZERO);
        assert_eq!(id("1764000000000-3").to_string(), "1764000000000-3");
        assert_eq!(EntryId::parse("nope"), None);
    }
}
