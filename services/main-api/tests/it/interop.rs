//! Sharing Redis with the TypeScript services (issue 21): a Node process on
//! the real ioredis client (`tests/interop/ts-service.js`, ioredis pinned by
//! `tests/interop/package-lock.json`) plays a service on the
//! `@castiel/redis-utils` package beside auth-broker and two main-api
//! instances, all real processes on one password-protected redis-server.
//!
//! Both directions: what they write and publish reaches every instance's
//! L1 within a second, whatever the payload; what we write and publish is
//! read by them with `JSON.parse`, with the TTLs of our policies, on the
//! keys and channels they build themselves.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use shared_types::TtlPolicy;
use test_support::{RedisServer, ServiceProcess, wait_for};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::procs::{PASSWORD, new_session_as, send, start};

/// The issue's bound: an invalidation published by anyone reaches every
/// instance's L1 within this.
const PROPAGATION: Duration = Duration::from_secs(1);

/// How long a Node command or a listener line may take (a generous bound
/// for a loaded 2-core machine; the commands take a fraction of a second).
const NODE_DEADLINE: Duration = Duration::from_secs(20);

/// `tests/interop/` at the workspace root.
fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/interop")
}

/// The `node_modules` holding the pinned ioredis: `npm ci` from
/// `tests/interop/package-lock.json` into the target directory, once per
/// lockfile. Test processes run in parallel (nextest runs each test in its
/// own), so the install holds a file lock.
fn node_modules() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED.get_or_init(install_ioredis).clone()
}

fn install_ioredis() -> PathBuf {
    for tool in ["node", "npm"] {
        let found = Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|out| out.status.success());
        assert!(
            found,
            "the interop tests need Node.js 18 or newer and npm on PATH ({tool} is missing): \
             install them (apt-get install nodejs npm; .ci/run does so when they are missing)"
        );
    }
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("interop-npm");
    std::fs::create_dir_all(&dir).expect("create the interop npm directory");
    let lock = std::fs::File::create(dir.join(".install-lock")).expect("the install lock file");
    lock.lock().expect("take the install lock");
    let source = interop_dir();
    let wanted =
        std::fs::read(source.join("package-lock.json")).expect("tests/interop/package-lock.json");
    let stamp = dir.join("installed-from-package-lock.json");
    let modules = dir.join("node_modules");
    let installed = std::fs::read(&stamp).is_ok_and(|had| had == wanted)
        && modules.join("ioredis/package.json").exists();
    if !installed {
        for file in ["package.json", "package-lock.json"] {
            std::fs::copy(source.join(file), dir.join(file)).expect("copy the npm manifest");
        }
        let out = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(&dir)
            .output()
            .expect("run npm ci");
        assert!(
            out.status.success(),
            "npm ci for tests/interop failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(&stamp, &wanted).expect("write the install stamp");
    }
    modules
}

/// A service on the TypeScript package, as `tests/interop/ts-service.js`
/// plays it against `redis`.
struct TsService {
    env: Vec<(&'static str, String)>,
}

impl TsService {
    fn on(redis: &RedisServer) -> Self {
        Self {
            env: vec![
                ("NODE_PATH", node_modules().display().to_string()),
                ("REDIS_HOST", "127.0.0.1".to_owned()),
                ("REDIS_PORT", redis.port().to_string()),
                ("REDIS_PASSWORD", PASSWORD.to_owned()),
            ],
        }
    }

    fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("node");
        command
            .arg(interop_dir().join("ts-service.js"))
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .kill_on_drop(true);
        command
    }

    /// Runs one command to its end; its JSON answer.
    async fn run(&self, args: &[&str]) -> Value {
        let what = format!("ts-service.js {args:?}");
        let out = tokio::time::timeout(NODE_DEADLINE, self.command(args).output())
            .await
            .unwrap_or_else(|_| panic!("{what} took over {NODE_DEADLINE:?}"))
            .unwrap_or_else(|e| panic!("run {what}: {e}"));
        assert!(
            out.status.success(),
            "{what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("UTF-8 output");
        let line = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(line).unwrap_or_else(|e| panic!("{what} printed {stdout:?}: {e}"))
    }

    /// Starts `listen` (PSUBSCRIBE cache:invalidate:*) and waits until it
    /// is subscribed.
    async fn listen(&self) -> Listener {
        let mut child = self
            .command(&["listen"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ts-service.js listen");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut listener = Listener {
            _child: child,
            lines: BufReader::new(stdout).lines(),
        };
        let ready = listener.next_line().await;
        assert_eq!(ready["event"], "ready", "{ready}");
        listener
    }
}

/// A running `listen`: what ioredis receives, one JSON line per message.
/// Killed on drop (and it ends by itself when its stdin closes).
struct Listener {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Listener {
    async fn next_line(&mut self) -> Value {
        let line = tokio::time::timeout(NODE_DEADLINE, self.lines.next_line())
            .await
            .expect("a line from the listener in time")
            .expect("read the listener's output")
            .expect("the listener is still running");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("listen printed {line:?}: {e}"))
    }

    /// The next message ioredis received on a channel starting with
    /// `prefix` (skipping others).
    async fn next_with_prefix(&mut self, prefix: &str) -> Value {
        loop {
            let line = self.next_line().await;
            if line["channel"]
                .as_str()
                .is_some_and(|channel| channel.starts_with(prefix))
            {
                return line;
            }
        }
    }

    /// The next message ioredis received on `channel` (skipping others).
    async fn next_on(&mut self, channel: &str) -> Value {
        loop {
            let line = self.next_line().await;
            if line["channel"] == channel {
                return line;
            }
        }
    }
}

fn now_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// A message as a TypeScript consumer reads it: JSON, with `tenantId`,
/// `type`, `id` (and `resourceType`, `resourceId`) that rebuild its
/// channel, and a `timestamp` in ms (within a minute of now).
fn assert_readable_by_them(message: &Value, tenant: &str, kind: &str, id: &str) {
    let payload = &message["payload"];
    assert!(payload.is_object(), "not JSON.parse-able: {message}");
    assert_eq!(payload["tenantId"], tenant, "{message}");
    assert_eq!(payload["type"], kind, "{message}");
    assert_eq!(payload["id"], id, "{message}");
    // The names the TypeScript package's own invalidate() writes, too.
    assert_eq!(payload["resourceType"], kind, "{message}");
    if id == "*" {
        assert!(payload.get("resourceId").is_none(), "{message}");
    } else {
        assert_eq!(payload["resourceId"], id, "{message}");
    }
    assert_eq!(
        message["channel"],
        format!("cache:invalidate:{kind}:{tenant}:{id}"),
        "the fields do not name the channel: {message}"
    );
    let timestamp = payload["timestamp"].as_u64().expect("a numeric timestamp");
    assert!(
        now_ms().abs_diff(timestamp) < 60_000,
        "timestamp {timestamp} is not milliseconds of now"
    );
}

/// Redis with a password, auth-broker, two main-api instances, and an admin
/// session of tenant `t1`.
struct Stack {
    redis: RedisServer,
    broker: ServiceProcess,
    apis: [ServiceProcess; 2],
    client: Client,
    token: String,
}

impl Stack {
    async fn start() -> Self {
        // Before anything starts: without node and npm, fail at once and say so.
        node_modules();
        let redis = RedisServer::builder().password(PASSWORD).start().await;
        let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
        let apis = [
            start("main-api", "MAIN_API_ADDR", &redis),
            start("main-api", "MAIN_API_ADDR", &redis),
        ];
        let client = Client::new();
        let token = new_session_as(&client, &broker, "t1", "alice", &["admin"]).await;
        Self {
            redis,
            broker,
            apis,
            client,
            token,
        }
    }

    /// `method` on `path` of main-api instance `i`: status, x-cache, body.
    async fn call(
        &self,
        i: usize,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, String, Value) {
        let url = format!("{}{path}", self.apis[i].url());
        send(&self.client, method, url, &self.token, body).await
    }

    /// Reads `path` on both instances until each serves `expected` from
    /// its L1.
    async fn held_in_both_l1(&self, path: &str, expected: &Value) {
        for i in 0..2 {
            wait_for(
                "the value to be served from the instance's L1",
                Duration::from_secs(5),
                || async {
                    let (status, tier, body) = self.call(i, Method::GET, path, None).await;
                    assert_eq!(status, StatusCode::OK, "{body}");
                    tier == "hit-l1" && body == *expected
                },
            )
            .await;
        }
    }

    /// The `cache_*` counter `name` in instance `i`'s metrics.
    async fn counter(&self, i: usize, name: &str) -> u64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.apis[i].url()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics"))
    }
}

const SHARD: &str = "/v1/tenants/t1/shards/s1/structured";
const PROFILE: &str = "/v1/tenants/t1/users/alice/profile";

// What a TypeScript service writes under its own key layout, main-api
// serves; and each of its invalidations (its own payload, `not json`, an
// empty payload, its whole-family channel) evicts both main-api instances'
// L1 within a second.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn their_writes_are_read_and_their_invalidations_evict_every_main_api_l1() {
    let stack = Stack::start().await;
    let ts = TsService::on(&stack.redis);

    // Their keys are ours: what they write, we read.
    ts.run(&["set", "shard", "t1", "s1", r#"{"v":1}"#, "900"])
        .await;
    ts.run(&["set", "user", "t1", "alice", r#"{"name":"Alice"}"#, "3600"])
        .await;
    stack.held_in_both_l1(SHARD, &json!({"v": 1})).await;
    stack
        .held_in_both_l1(PROFILE, &json!({"name": "Alice"}))
        .await;

    let channel = "cache:invalidate:shard:t1:s1";
    let invalidations: [(&str, Vec<&str>); 4] = [
        (
            "their invalidate(tenant, 'shard', id)",
            vec!["invalidate", "shard", "t1", "s1"],
        ),
        (
            "a payload that is not JSON",
            vec!["publish", channel, "not json"],
        ),
        ("an empty payload", vec!["publish", channel, ""]),
        (
            "their invalidate(tenant, 'shard') of every shard",
            vec!["invalidate", "shard", "t1"],
        ),
    ];
    for (round, (what, invalidation)) in (2..).zip(&invalidations) {
        let new = json!({ "v": round });
        ts.run(&["set", "shard", "t1", "s1", &new.to_string(), "900"])
            .await;
        // Until told, each instance serves the copy in its L1.
        for i in 0..2 {
            let (_, tier, body) = stack.call(i, Method::GET, SHARD, None).await;
            assert_eq!((tier.as_str(), body), ("hit-l1", json!({ "v": round - 1 })));
        }
        let published = ts.run(invalidation).await;
        assert!(
            published["receivers"].as_u64().unwrap() >= 2,
            "both main-api instances subscribe: {published}"
        );
        wait_for(
            &format!("{what} to reach both main-api instances"),
            PROPAGATION,
            || async {
                let (_, _, one) = stack.call(0, Method::GET, SHARD, None).await;
                let (_, _, two) = stack.call(1, Method::GET, SHARD, None).await;
                one == new && two == new
            },
        )
        .await;
        stack.held_in_both_l1(SHARD, &new).await;
    }
    for i in 0..2 {
        assert_eq!(
            stack.counter(i, "cache_foreign_payloads_total").await,
            4,
            "every payload of theirs counted as foreign"
        );
        assert_eq!(stack.counter(i, "cache_malformed_messages_total").await, 0);
    }
    // The profile was named by none of the channels: still in both L1s.
    stack
        .held_in_both_l1(PROFILE, &json!({"name": "Alice"}))
        .await;
}

// What main-api writes, a TypeScript service reads with JSON.parse under
// the keys it builds itself, with the TTL of our policies; nothing but
// such JSON strings lives under the tenant's keys; and every invalidation
// we publish (writes, deletes, admin purges, a session revocation) reaches
// its PSUBSCRIBE with the tenantId, type, id and timestamp it looks for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_writes_and_invalidations_are_readable_by_a_typescript_service() {
    let stack = Stack::start().await;
    let ts = TsService::on(&stack.redis);
    let mut heard = ts.listen().await;

    let shard = json!({"rows": [1, 2, 3], "name": "é ü \" \\ \u{1F600}", "n": 1.5});
    let (status, _, _) = stack.call(0, Method::PUT, SHARD, Some(shard.clone())).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let message = heard.next_on("cache:invalidate:shard:t1:s1").await;
    assert_readable_by_them(&message, "t1", "shard", "s1");

    let profile = json!({"name": "Alice"});
    let (status, _, _) = stack
        .call(1, Method::PUT, PROFILE, Some(profile.clone()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let message = heard.next_on("cache:invalidate:user:t1:alice").await;
    assert_readable_by_them(&message, "t1", "user", "alice");

    // They read our values, with the TTLs of our policies (ms, read a
    // moment after the write).
    let read = [
        (["shard", "t1", "s1"], &shard, TtlPolicy::shard_structured()),
        (["user", "t1", "alice"], &profile, TtlPolicy::user_profile()),
    ];
    for (ids, value, policy) in read {
        let mut args = vec!["get"];
        args.extend(ids);
        let seen = ts.run(&args).await;
        assert_eq!(seen["type"], "string", "{seen}");
        assert_eq!(&seen["value"], value, "{seen}");
        let (min, max) = policy.bounds();
        let pttl = u128::from(seen["pttl"].as_u64().expect("a TTL"));
        assert!(
            pttl + 30_000 >= min.as_millis() && pttl <= max.as_millis(),
            "TTL {pttl} ms outside {min:?}..={max:?}: {seen}"
        );
    }
    // Under the tenant's keys: those two JSON strings, nothing else (the
    // key index and the sessions live outside tenant:{t}:).
    let scan = ts.run(&["scan", "t1"]).await;
    let keys = scan["keys"].as_array().unwrap();
    let names: Vec<&str> = keys.iter().map(|k| k["key"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "tenant:t1:shard:s1:structured",
            "tenant:t1:user:alice:profile"
        ]
    );
    for key in keys {
        assert_eq!(
            (&key["type"], &key["json"]),
            (&json!("string"), &json!(true)),
            "{key}"
        );
    }
    assert_eq!(
        stack
            .redis
            .cmd(&["TYPE", "keyindex:tenant:t1"])
            .as_string()
            .as_deref(),
        Some("zset")
    );

    // Deletes, admin purges and revocations are announced in their terms.
    let (status, _, _) = stack.call(0, Method::DELETE, SHARD, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let message = heard.next_on("cache:invalidate:shard:t1:s1").await;
    assert_readable_by_them(&message, "t1", "shard", "s1");
    assert_eq!(ts.run(&["get", "shard", "t1", "s1"]).await["type"], "none");

    let purges = [
        (json!({"kind": "tenant"}), "tenant"),
        (json!({"kind": "acl"}), "acl"),
        (json!({"kind": "vsearch"}), "vsearch"),
    ];
    for (body, kind) in purges {
        let (status, _, answer) = stack
            .call(
                1,
                Method::POST,
                "/v1/tenants/t1/cache/invalidate",
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{answer}");
        let message = heard
            .next_on(&format!("cache:invalidate:{kind}:t1:*"))
            .await;
        assert_readable_by_them(&message, "t1", kind, "*");
    }
    assert_eq!(
        ts.run(&["get", "user", "t1", "alice"]).await["type"],
        "none"
    );

    let (status, _, _) = send(
        &stack.client,
        Method::DELETE,
        format!("{}/v1/sessions/current", stack.broker.url()),
        &stack.token,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let revoked = heard.next_with_prefix("cache:invalidate:session:t1:").await;
    let hash = revoked["channel"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(hash.len(), 64, "a SHA-256, never the token: {revoked}");
    assert_readable_by_them(&revoked, "t1", "session", &hash);
    assert!(
        !revoked
            .to_string()
            .contains(stack.token.rsplit('~').next().unwrap())
    );
}
