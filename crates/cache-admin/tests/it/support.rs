//! Running the built binary, and a small keyspace of three tenants.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use redis_cache::{CacheService, Expiry};
use shared_types::{RedisKey, ShardId, TenantId, TokenHash, UserId};
use test_support::RedisServer;

/// The binary under test.
pub(crate) fn admin(port: u16) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cache-admin"));
    // Only what the test sets: no REDIS_* of the machine leaks in.
    command
        .env_clear()
        .env("REDIS_HOST", "127.0.0.1")
        .env("REDIS_PORT", port.to_string())
        .stdin(Stdio::null());
    command
}

/// Runs `args` to completion.
pub(crate) fn run(port: u16, args: &[&str]) -> Output {
    admin(port).args(args).output().expect("run cache-admin")
}

/// stdout's one JSON document.
pub(crate) fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON document ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// A child's stderr, line by line, read on a thread of its own.
pub(crate) fn stderr_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Everything left on a finished child's stdout.
pub(crate) fn rest_of_stdout(child: &mut Child) -> String {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout.read_to_string(&mut out).expect("read stdout");
    }
    out
}

pub(crate) fn tenant(id: &str) -> TenantId {
    TenantId::new(id).unwrap()
}

/// The keyspace of the tests: `t1` with `shards` shard keys and 10
/// profiles, `t10` (whose id starts with `t1`) and `t2` with 20 shard keys
/// each, all written through the cache (so indexed), and a session of `t1`
/// (state, which no purge touches).
#[derive(Debug)]
pub(crate) struct Keyspace {
    pub(crate) t1: Vec<RedisKey>,
    pub(crate) others: Vec<RedisKey>,
    pub(crate) t1_session: RedisKey,
}

impl Keyspace {
    pub(crate) async fn write(cache: &CacheService, shards: usize) -> Self {
        let ttl = Expiry::After(Duration::from_secs(600));
        let shard_keys = |t: &str, n: usize| -> Vec<RedisKey> {
            (0..n)
                .map(|i| {
                    RedisKey::shard_structured(&tenant(t), &ShardId::new(format!("s{i}")).unwrap())
                })
                .collect()
        };
        let mut t1 = shard_keys("t1", shards);
        t1.extend((0..10).map(|i| {
            RedisKey::user_profile(&tenant("t1"), &UserId::new(format!("u{i}")).unwrap())
        }));
        let mut others = shard_keys("t10", 20);
        others.extend(shard_keys("t2", 20));
        for chunk in t1.chunks(100).chain(others.chunks(100)) {
            let entries: Vec<_> = chunk
                .iter()
                .map(|key| (key.clone(), serde_json::json!({"rows": 1}), ttl))
                .collect();
            cache.mset(&entries).await.expect("write the keyspace");
        }
        let t1_session = RedisKey::session(&tenant("t1"), &TokenHash::of_token("t1~secret"));
        cache
            .set(
                &t1_session,
                &serde_json::json!({"user": "SESSION-VALUE"}),
                ttl,
            )
            .await
            .expect("write a session");
        Self {
            t1,
            others,
            t1_session,
        }
    }

    /// How many of `keys` exist in `server`.
    pub(crate) fn existing(server: &RedisServer, keys: &[RedisKey]) -> usize {
        let mut args = vec!["EXISTS"];
        args.extend(keys.iter().map(RedisKey::as_str));
        let n = server.cmd(&args).as_int().expect("EXISTS answers a number");
        usize::try_from(n).unwrap()
    }
}
