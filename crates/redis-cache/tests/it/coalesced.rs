//! Concurrent announced changes of single keys leave together, one script
//! call a batch (`coherence/announcer.rs`), and each caller still gets its
//! own reply, its own message on its own channel and its own stream entry;
//! a failed batch fails every caller and sends each announcement the
//! fallback way.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis_cache::{CacheError, CacheService, Expiry};
use redis_connection::RejectionKind;
use shared_types::{Invalidation, RedisKey};
use test_support::{RedisServer, Reply, wait_for};

use crate::shard_key;
use crate::two_tier::{instance, monitor_lines};

/// A shard and its key's value read when its announcement arrived.
type Read = (String, Option<String>);

const TTL: Duration = Duration::from_secs(600);

/// Changes sent at once in each test: more than one batch would need if
/// nothing coalesced, fewer than a batch holds.
const N: usize = 16;

fn keys(prefix: &str) -> Vec<RedisKey> {
    (0..N)
        .map(|i| shard_key("t", &format!("{prefix}{i}")))
        .collect()
}

/// A raw subscriber on every shard channel of tenant `t`: each message as
/// (channel, payload), in the order Redis published them.
fn subscribe(redis: &RedisServer) -> Arc<Mutex<Vec<(String, String)>>> {
    let mut connection = redis.raw_client().unwrap();
    connection
        .cmd(&["PSUBSCRIBE", "cache:invalidate:shard:t:*"])
        .unwrap();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let into = heard.clone();
    std::thread::spawn(move || {
        while let Ok(Reply::Array(Some(parts))) = connection.read_reply() {
            let (Some(channel), Some(payload)) = (
                parts.get(2).and_then(Reply::as_string),
                parts.get(3).and_then(Reply::as_string),
            ) else {
                continue;
            };
            into.lock().unwrap().push((channel, payload));
        }
    });
    heard
}

async fn heard_at_least(heard: &Mutex<Vec<(String, String)>>, n: usize) {
    wait_for("the announcements", Duration::from_secs(5), || async {
        heard.lock().unwrap().len() >= n
    })
    .await;
}

/// How many of `keys` exist in Redis.
fn existing(redis: &RedisServer, keys: &[RedisKey]) -> i64 {
    let mut command = vec!["EXISTS"];
    command.extend(keys.iter().map(RedisKey::as_str));
    redis.cmd(&command).as_int().unwrap()
}

fn channel_of(key: &RedisKey) -> String {
    let shard = key
        .as_str()
        .strip_prefix("tenant:t:shard:")
        .and_then(|k| k.strip_suffix(":structured"))
        .unwrap();
    format!("cache:invalidate:shard:t:{shard}")
}

fn field(payload: &str, name: &str) -> String {
    let json: serde_json::Value = serde_json::from_str(payload).unwrap();
    json[name].as_str().unwrap_or_default().to_owned()
}

/// Invalidates every key of `keys` from as many concurrent calls, all
/// queued before the first is sent; each call's own outcome.
async fn invalidate_all(cache: &CacheService, keys: &[RedisKey]) -> Vec<Result<u64, CacheError>> {
    let calls = keys.iter().map(|key| async move {
        let invalidation = Invalidation::for_key(key).unwrap();
        cache.invalidate(&invalidation).await
    });
    futures::future::join_all(calls).await
}

// Concurrent invalidations each get their own reply (how many keys their
// UNLINK removed), and each is published once on its own channel and
// appended to the stream, the messages in the order of the entries and
// each naming the entry before it (no gap for a receiver to find).
#[tokio::test]
async fn concurrent_invalidations_each_get_their_own_reply_message_and_stream_entry() {
    let redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    let keys = keys("inv");
    // Every other key exists: their callers must be told 1, the others 0.
    for key in keys.iter().step_by(2) {
        redis.cmd(&["SET", key.as_str(), "1"]);
    }
    let heard = subscribe(&redis);
    let sent_before = cache.stats().invalidations_sent;

    let replies = invalidate_all(&cache, &keys).await;

    let expected: Vec<Result<u64, CacheError>> =
        (0..N).map(|i| Ok(u64::from(i % 2 == 0))).collect();
    assert_eq!(replies, expected);
    assert_eq!(existing(&redis, &keys), 0);
    heard_at_least(&heard, N).await;
    let heard = heard.lock().unwrap().clone();
    let mut channels: Vec<&str> = heard.iter().map(|(c, _)| c.as_str()).collect();
    channels.sort_unstable();
    let mut wanted: Vec<String> = keys.iter().map(channel_of).collect();
    wanted.sort_unstable();
    assert_eq!(channels, wanted, "one message per key, on its own channel");
    for pair in heard.windows(2) {
        assert_eq!(
            field(&pair[1].1, "stream_prev"),
            field(&pair[0].1, "stream_id"),
            "each message names the one before it: {heard:?}"
        );
    }
    // The stream holds the same entries, in the order they were published.
    let Reply::Array(Some(entries)) = redis.cmd(&["XRANGE", "coherence:invalidations", "-", "+"])
    else {
        panic!("the stream exists");
    };
    let entries: Vec<(String, String)> = entries
        .iter()
        .map(|entry| {
            let Reply::Array(Some(parts)) = entry else {
                panic!("an entry is an array");
            };
            let fields = parts[1].as_strings();
            (parts[0].as_string().unwrap(), fields[1].clone())
        })
        .collect();
    let published: Vec<(String, String)> = heard
        .iter()
        .map(|(c, p)| (field(p, "stream_id"), c.clone()))
        .collect();
    assert_eq!(entries, published);
    assert_eq!(
        cache.stats().invalidations_sent - sent_before,
        N as u64,
        "counted per invalidation"
    );
}

// Concurrent invalidations and deletes leave as one script call (MONITOR
// sees one EVALSHA for all of them, where one call each would show N), and
// inside it each key is announced (PUBLISH) and then unlinked, key after
// key: a refused PUBLISH fails the script before it changed anything, and
// subscribers hear of it only once the script has ended.
#[tokio::test]
async fn concurrent_invalidations_and_deletes_leave_as_one_script_call() {
    let redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    // The script, loaded (a NOSCRIPT reload would add calls).
    let warm = shard_key("t", "warm");
    cache.delete(&warm).await.unwrap();
    let keys = keys("del");
    let lines = monitor_lines(
        &redis,
        Box::pin(async {
            let (invalidated, deleted) = futures::join!(
                invalidate_all(&cache, &keys[..N / 2]),
                futures::future::join_all(keys[N / 2..].iter().map(|key| cache.delete(key)))
            );
            assert!(invalidated.iter().all(|r| r == &Ok(0)), "{invalidated:?}");
            assert!(deleted.iter().all(|r| r == &Ok(false)), "{deleted:?}");
        }),
    )
    .await;
    let scripts = lines
        .iter()
        .filter(|line| {
            !line.contains(" lua]") && (line.contains("\"EVALSHA\"") || line.contains("\"EVAL\""))
        })
        .count();
    assert_eq!(
        scripts,
        1,
        "{N} concurrent changes, one script call; MONITOR saw:\n{}",
        lines.join("\n")
    );
    let order: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let args: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
            let command = args.first()?.to_uppercase();
            let shard = match command.as_str() {
                "UNLINK" => args
                    .get(1)?
                    .strip_prefix("tenant:t:shard:")?
                    .strip_suffix(":structured")?,
                "PUBLISH" => args.get(1)?.strip_prefix("cache:invalidate:shard:t:")?,
                _ => return None,
            };
            Some(format!("{command} {shard}"))
        })
        .collect();
    let expected: Vec<String> = (0..N)
        .flat_map(|i| [format!("PUBLISH del{i}"), format!("UNLINK del{i}")])
        .collect();
    assert_eq!(order, expected);
}

// Concurrent sets, expires and deletes of a two-tier cache are coalesced
// too, and a subscriber reading a key the moment its announcement arrives
// finds the change done (the batch script changes each key before
// announcing it); the sets index their keys in the same script.
#[tokio::test]
async fn concurrent_sets_expires_and_deletes_are_visible_when_announced() {
    let redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    let keys = keys("set");
    // (shard, its value when its announcement arrived)
    let seen: Arc<Mutex<Vec<Read>>> = Arc::default();
    // A second raw connection reads each key as soon as it is announced.
    let mut reader = redis.raw_client().unwrap();
    let mut announcements = redis.raw_client().unwrap();
    announcements
        .cmd(&["PSUBSCRIBE", "cache:invalidate:shard:t:*"])
        .unwrap();
    let into = seen.clone();
    std::thread::spawn(move || {
        while let Ok(Reply::Array(Some(parts))) = announcements.read_reply() {
            let Some(channel) = parts.get(2).and_then(Reply::as_string) else {
                continue;
            };
            let shard = channel.trim_start_matches("cache:invalidate:shard:t:");
            let key = shard_key("t", shard);
            let value = reader.cmd(&["GET", key.as_str()]).unwrap().as_string();
            into.lock().unwrap().push((shard.to_owned(), value));
        }
    });
    let read_after = |phases: usize| {
        let seen = seen.clone();
        async move {
            wait_for("the reads", Duration::from_secs(5), || async {
                seen.lock().unwrap().len() >= phases * N
            })
            .await;
        }
    };

    let sets = keys.iter().enumerate().map(|(i, key)| {
        let cache = &cache;
        async move { cache.set(key, &(i as u64), TTL).await }
    });
    for written in futures::future::join_all(sets).await {
        written.unwrap();
    }
    read_after(1).await;
    for key in &keys {
        let indexed = redis.cmd(&["ZSCORE", "keyindex:tenant:t", key.as_str()]);
        assert!(!indexed.is_nil(), "{key:?} indexed");
    }
    let expires = keys.iter().map(|key| cache.expire(key, TTL * 2));
    for existed in futures::future::join_all(expires).await {
        assert!(existed.unwrap());
    }
    read_after(2).await;
    for key in &keys {
        let left = redis.cmd(&["PTTL", key.as_str()]).as_int().unwrap();
        assert!(
            left > i64::try_from(TTL.as_millis()).unwrap(),
            "{key:?}: {left} ms"
        );
    }
    let deletes = keys.iter().map(|key| cache.delete(key));
    for existed in futures::future::join_all(deletes).await {
        assert!(existed.unwrap());
    }
    read_after(3).await;

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3 * N, "one announcement per change: {seen:?}");
    for (at, (shard, value)) in seen.iter().enumerate() {
        let i: usize = shard.trim_start_matches("set").parse().unwrap();
        // Sets and expires leave the value; deletes leave nothing.
        let expected = (at < 2 * N).then(|| i.to_string());
        assert_eq!(value, &expected, "{shard}, announcement {at}: {seen:?}");
    }
}

// A batch that fails as a whole (here: the ACL user may not run EVALSHA)
// gives every caller the typed error, and each caller's announcement then
// goes out the fallback way, on its own channel, once.
#[tokio::test]
async fn a_failed_batch_fails_every_caller_and_sends_each_announcement_the_fallback_way() {
    let redis = RedisServer::builder()
        .acl_user_with_rules("svc", "svc-pass", &["~*", "&*", "+@all", "-evalsha"])
        .start()
        .await;
    let cache = instance(&redis, |config| {
        config.username = Some("svc".into());
        config.password = Some("svc-pass".to_owned().into());
    })
    .await;
    let keys = keys("fail");
    for key in &keys {
        redis.cmd(&["SET", key.as_str(), "1"]);
    }
    let heard = subscribe(&redis);
    let replies = invalidate_all(&cache, &keys).await;
    for reply in &replies {
        let kind = reply
            .as_ref()
            .err()
            .and_then(|e| e.rejection())
            .map(|r| r.kind());
        assert_eq!(kind, Some(RejectionKind::NoPermission), "{replies:?}");
    }
    heard_at_least(&heard, N).await;
    let heard = heard.lock().unwrap().clone();
    let mut channels: Vec<&str> = heard.iter().map(|(c, _)| c.as_str()).collect();
    channels.sort_unstable();
    let mut wanted: Vec<String> = keys.iter().map(channel_of).collect();
    wanted.sort_unstable();
    assert_eq!(channels, wanted, "each announcement once, the fallback way");
    // The batch never ran: the keys are still there.
    assert_eq!(existing(&redis, &keys), N as i64);
}

// With Redis gone, concurrent invalidations each fail as unavailable (none
// hangs on the coalescer), and once Redis is back the next ones go through.
#[tokio::test]
async fn concurrent_invalidations_fail_as_unavailable_while_redis_is_down() {
    let mut redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    let keys = keys("down");
    redis.stop().await;
    let replies = invalidate_all(&cache, &keys).await;
    for reply in &replies {
        assert!(
            reply.as_ref().is_err_and(CacheError::is_unavailable),
            "{replies:?}"
        );
    }
    redis.start_again().await;
    wait_for(
        "the invalidations to go through again",
        Duration::from_secs(10),
        || async {
            invalidate_all(&cache, &keys)
                .await
                .iter()
                .all(Result::is_ok)
        },
    )
    .await;
}

// Callers that stop waiting once their changes are queued do not withdraw
// them: the batch still runs (every key is deleted), and every
// announcement still reaches its channel (from the batch, and again from
// each caller's pending announcement, sent from a task of its own).
#[tokio::test]
async fn callers_that_stop_waiting_still_have_their_changes_made_and_announced() {
    let redis = RedisServer::start().await;
    let cache = instance(&redis, |_| {}).await;
    let keys = keys("gone");
    for key in &keys {
        redis.cmd(&["SET", key.as_str(), "1"]);
    }
    let heard = subscribe(&redis);
    let invalidations: Vec<Invalidation> = keys
        .iter()
        .map(|key| Invalidation::for_key(key).unwrap())
        .collect();
    let mut calls: Vec<_> = invalidations
        .iter()
        .map(|invalidation| Box::pin(cache.invalidate(invalidation)))
        .collect();
    for call in &mut calls {
        // Polled once: queued for the coalescer, none sent yet.
        assert!(futures::poll!(call).is_pending());
    }
    drop(calls);
    wait_for(
        "the batch to delete every key",
        Duration::from_secs(5),
        || async { existing(&redis, &keys) == 0 },
    )
    .await;
    let wanted: Vec<String> = keys.iter().map(channel_of).collect();
    wait_for(
        "every key's announcement",
        Duration::from_secs(5),
        || async {
            let heard = heard.lock().unwrap();
            wanted
                .iter()
                .all(|channel| heard.iter().any(|(c, _)| c == channel))
        },
    )
    .await;
}

// A lone announced change on a frozen server (SIGSTOP) fails as
// unavailable within about one command timeout (lib.rs: nothing waits
// longer), not its script's timeout and then its fallback announcement's;
// the announcement still goes out, from a task of its own, once the server
// answers again. Single-key changes and `mset` alike.
#[tokio::test]
async fn a_lone_change_on_a_frozen_server_fails_within_one_command_timeout() {
    fails_within_one_timeout_and_is_announced(|cache, key| async move {
        let invalidation = Invalidation::for_key(&key).unwrap();
        cache.invalidate(&invalidation).await.map(drop)
    })
    .await;
}

#[tokio::test]
async fn an_mset_on_a_frozen_server_fails_within_one_command_timeout() {
    fails_within_one_timeout_and_is_announced(|cache, key| async move {
        cache.mset(&[(key, 2, Expiry::from(TTL))]).await
    })
    .await;
}

/// Runs `change` of one key on a frozen two-tier instance (2 s command
/// timeout) and checks it fails as unavailable within 1.5 timeouts and is
/// announced once the server is resumed.
async fn fails_within_one_timeout_and_is_announced<F, Fut>(change: F)
where
    F: FnOnce(CacheService, RedisKey) -> Fut,
    Fut: Future<Output = Result<(), CacheError>>,
{
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(2);
    let cache = instance(&redis, |config| config.command_timeout = timeout).await;
    let key = shard_key("t", "lone");
    redis.cmd(&["SET", key.as_str(), "1"]);
    let heard = subscribe(&redis);
    redis.pause();
    let start = Instant::now();
    let failed = change(cache, key).await;
    let took = start.elapsed();
    redis.resume();
    assert!(
        failed.as_ref().is_err_and(CacheError::is_unavailable),
        "{failed:?}"
    );
    assert!(
        took < timeout * 3 / 2,
        "the change failed only after {took:?}"
    );
    heard_at_least(&heard, 1).await;
}

// A change queued behind batches in flight on a frozen server (SIGSTOP:
// nothing answers) fails as unavailable within about its own command
// timeout, as a lone change does; not after the batch ahead of it as well.
#[tokio::test]
async fn a_change_queued_behind_batches_in_flight_waits_no_longer_than_a_lone_change() {
    let redis = RedisServer::start().await;
    let timeout = Duration::from_secs(2);
    let cache = instance(&redis, |config| config.command_timeout = timeout).await;
    let keys = keys("frozen");
    let invalidations: Vec<Invalidation> = keys
        .iter()
        .map(|key| Invalidation::for_key(key).unwrap())
        .collect();
    redis.pause();
    let start = Instant::now();
    // Two batches in flight (the most the announcer sends at once), then
    // the last change, queued behind them.
    let mut ahead: Vec<_> = invalidations[..2]
        .iter()
        .map(|invalidation| Box::pin(cache.invalidate(invalidation)))
        .collect();
    for call in &mut ahead {
        assert!(futures::poll!(call).is_pending());
        // The driver takes it alone into a batch of its own.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }
    let last = cache.invalidate(&invalidations[2]);
    let (ahead, (last, took)) = futures::join!(futures::future::join_all(ahead), async {
        let failed = last.await;
        (failed, start.elapsed())
    });
    redis.resume();
    for reply in ahead.iter().chain([&last]) {
        assert!(
            reply.as_ref().is_err_and(CacheError::is_unavailable),
            "{reply:?}"
        );
    }
    assert!(
        took < timeout * 3,
        "the queued change failed only after {took:?}"
    );
}
