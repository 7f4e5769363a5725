//! Workload 10, what the connection layer's choices cost: typed `GET` and
//! `SET` throughput (64 tasks, each decoding or encoding the same 512-byte
//! document) through fred clients that differ from a pool of 4 with fred's
//! defaults by one choice each, against that pool measured in the same
//! rounds. Information only: it says where the connection layer's cost
//! lies; workload 1 holds the targets.
//!
//! What it showed (BENCHMARKS.md): of our settings only TCP nodelay costs
//! much alone (now off unless asked for; a command timeout, unresponsive
//! detection, a bounded buffer, a reconnect policy and `fail_fast` cost a
//! few per cent each); what cost 40 % of the `GET` throughput was how
//! commands were spread over the pool's connections. fred's `Pool` picks a
//! client round-robin on every internal lookup, several per command, and
//! with fred's defaults (no timeout) that is four lookups: with four clients
//! every command lands on the same one, so fred's "pool of 4" is in effect
//! one connection, which auto-pipelines best. With a command timeout one
//! lookup fewer happens, and commands spread evenly, each connection batching
//! less. `RedisConnectionManager::client` therefore sends every command
//! through one connection at a time.
//!
//! A second group starts from one client with all our settings (what
//! `redis_connection`'s `fred_config::builder` sets) and removes one at a
//! time, which measures what each costs where we use it (and adds TCP
//! nodelay, which it sets only when asked: on, it cost `SET` 0.7x its
//! throughput); and tries all of them on two clients, each key on one (two
//! router tasks, which two cores can run at once).
//!
//! The variants and their baseline alternate phase by phase, so that drift
//! on a shared machine hits both alike.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::RedisConnectionManager;
use redis_connection::fred::clients::{Client, Pool};
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::prelude::Builder;
use redis_connection::fred::types::Expiration;
use redis_connection::fred::types::config::{
    Config as FredConfig, ReconnectPolicy, ServerConfig, TcpConfig, UnresponsiveConfig,
};
use test_support::RedisServer;

use crate::drive::{Phase, saturate};
use crate::fixture::{Doc, Mode, TTL, connect, shard_key};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const TASKS: u64 = 64;
const KEYS: u64 = 1_000;
const POOL: usize = 4;
/// The command timeout a service gets by default.
const TIMEOUT: Duration = Duration::from_millis(500);

/// How a variant sends its commands.
#[derive(Clone)]
enum Sender {
    Pool(Pool),
    /// One client: the connection `RedisConnectionManager::client` gives.
    Client(Client),
    /// A pool whose calls the caller bounds with a tokio timer each.
    TokioTimeout(Pool),
    /// Two clients, each key always on the same one: two router tasks,
    /// which two cores can run at once, each still batching.
    Two(Client, Client),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Set,
}

impl Sender {
    /// One of two clients by the key's last byte: no shared counter.
    fn pick<'c>(key: &str, a: &'c Client, b: &'c Client) -> &'c Client {
        if key.as_bytes().last().is_some_and(|b| b % 2 == 0) {
            a
        } else {
            b
        }
    }

    async fn run(&self, op: Op, key: &str) -> Result<(), String> {
        match op {
            Op::Get => {
                let bytes: Option<Bytes> = match self {
                    Sender::Pool(pool) => pool.get(key).await,
                    Sender::Client(client) => client.get(key).await,
                    Sender::Two(a, b) => Sender::pick(key, a, b).get(key).await,
                    Sender::TokioTimeout(pool) => tokio::time::timeout(TIMEOUT, pool.get(key))
                        .await
                        .map_err(|_| "GET timed out")?,
                }
                .map_err(|e| format!("GET: {e}"))?;
                let bytes = bytes.ok_or("GET missed")?;
                let doc: Doc =
                    serde_json::from_slice(&bytes).map_err(|e| format!("decoding: {e}"))?;
                std::hint::black_box(doc);
                Ok(())
            }
            Op::Set => {
                let value = Bytes::from(Doc::new(1).encode());
                let ttl = Some(Expiration::PX(
                    i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX),
                ));
                match self {
                    Sender::Pool(pool) => pool.set::<(), _, _>(key, value, ttl, None, false).await,
                    Sender::Client(client) => {
                        client.set::<(), _, _>(key, value, ttl, None, false).await
                    }
                    Sender::Two(a, b) => {
                        Sender::pick(key, a, b)
                            .set::<(), _, _>(key, value, ttl, None, false)
                            .await
                    }
                    Sender::TokioTimeout(pool) => tokio::time::timeout(
                        TIMEOUT,
                        pool.set::<(), _, _>(key, value, ttl, None, false),
                    )
                    .await
                    .map_err(|_| "SET timed out")?,
                }
                .map_err(|e| format!("SET: {e}"))
            }
        }
    }
}

/// One variant of the connection layer.
struct Variant {
    name: &'static str,
    sender: Sender,
}

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let manager = connect(&server).await?;
    let keys: Arc<Vec<String>> = Arc::new(
        (0..KEYS)
            .map(|i| shard_key("settings", i).as_str().to_owned())
            .collect(),
    );
    let seeder = Sender::Client(manager.client().clone());
    for key in keys.iter() {
        seeder.run(Op::Set, key).await?;
    }

    let default = Sender::Pool(pool(&server, POOL, |_| {}).await?);
    let groups = [
        (
            "a fred pool of 4 with fred's defaults",
            default,
            variants(&server, &manager).await?,
        ),
        (
            "one client with all our settings",
            single(&pool(&server, 1, |b| ours(b, None)).await?),
            ours_flipped(&server).await?,
        ),
    ];
    let rounds = mode.pick(5, 1);
    let window = mode.pick(Duration::from_secs(1), Duration::from_millis(200));
    let mut rows = Vec::new();
    for (op, op_name) in [(Op::Get, "GET"), (Op::Set, "SET")] {
        for (base_name, default, variants) in &groups {
            for variant in variants {
                rows.push(
                    compare(default, variant, op, &keys, rounds, window)
                        .await?
                        .row(op_name, variant.name, base_name),
                );
            }
        }
    }
    Ok(rows)
}

/// A variant against its baseline, measured in alternating phases.
struct Comparison {
    base: Phase,
    ours: Phase,
}

impl Comparison {
    fn row(&self, op_name: &str, variant: &str, base_name: &str) -> Row {
        let ratio = self.ours.rate() / self.base.rate();
        Row::new(
            &format!(
                "settings.{}.{}",
                op_name.to_ascii_lowercase(),
                variant.replace(' ', "_")
            ),
            &format!("10. typed {op_name}, {variant} (vs {base_name})"),
            Figure::rate(self.ours.rate()),
        )
        .baseline(Figure::rate(self.base.rate()), ratio)
        .target("information", Status::Info)
        .note(format!(
            "process CPU per op {} vs {}; p99 {} vs {}",
            show(self.ours.cpu_per_op()),
            show(self.base.cpu_per_op()),
            show(self.ours.latencies.p99()),
            show(self.base.latencies.p99()),
        ))
    }
}

async fn compare(
    default: &Sender,
    variant: &Variant,
    op: Op,
    keys: &Arc<Vec<String>>,
    rounds: usize,
    window: Duration,
) -> Result<Comparison, String> {
    for sender in [default, &variant.sender] {
        measure(sender, op, keys, window / 4).await?;
    }
    let (mut base, mut ours) = (Phase::default(), Phase::default());
    for round in 0..rounds {
        let first_default = round % 2 == 0;
        for default_turn in [first_default, !first_default] {
            if default_turn {
                base.absorb(&measure(default, op, keys, window).await?);
            } else {
                ours.absorb(&measure(&variant.sender, op, keys, window).await?);
            }
        }
    }
    Ok(Comparison { base, ours })
}

async fn measure(
    sender: &Sender,
    op: Op,
    keys: &Arc<Vec<String>>,
    window: Duration,
) -> Result<Phase, String> {
    let (sender, keys) = (sender.clone(), keys.clone());
    saturate(TASKS, window, move |seq| {
        let (sender, keys) = (sender.clone(), keys.clone());
        async move {
            let key = &keys[usize::try_from(seq % KEYS).unwrap_or(0)];
            sender.run(op, key).await
        }
    })
    .await
}

async fn variants(
    server: &RedisServer,
    manager: &RedisConnectionManager,
) -> Result<Vec<Variant>, String> {
    let timeout = |b: &mut Builder| {
        b.with_performance_config(|p| p.default_command_timeout = TIMEOUT);
    };
    Ok(vec![
        Variant {
            name: "fred's defaults, a pool of 1",
            sender: Sender::Pool(pool(server, 1, |_| {}).await?),
        },
        Variant {
            name: "a pool of 4 with a command timeout",
            sender: Sender::Pool(pool(server, POOL, timeout).await?),
        },
        Variant {
            name: "a pool of 4, a tokio timeout around each call",
            sender: Sender::TokioTimeout(pool(server, POOL, |_| {}).await?),
        },
        Variant {
            name: "our settings, round-robin over the pool of 4 (manager.pool())",
            sender: Sender::Pool(manager.pool().clone()),
        },
        Variant {
            name: "our settings, one connection at a time (manager.client())",
            sender: Sender::Client(manager.client().clone()),
        },
    ])
}

/// The first client of `pool`, alone.
fn single(pool: &Pool) -> Sender {
    Sender::Client(pool.clients()[0].clone())
}

/// One of the settings `redis_connection::fred_config` makes (or, for
/// nodelay, makes when asked to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Setting {
    CommandTimeout,
    Unresponsive,
    BoundedBuffer,
    NoDelay,
    Reconnect,
}

impl Setting {
    /// Whether `RedisConfig`'s defaults have it: all but nodelay
    /// (`REDIS_TCP_NODELAY`, off by default since this workload measured
    /// it).
    fn by_default(self) -> bool {
        self != Setting::NoDelay
    }
}

/// The settings `redis_connection`'s `fred_config::builder` gives every
/// client (with the defaults of `RedisConfig`), with `flipped` the other
/// way.
fn ours(b: &mut Builder, flipped: Option<Setting>) {
    let on = |s: Setting| s.by_default() != (flipped == Some(s));
    if on(Setting::CommandTimeout) {
        b.with_performance_config(|p| p.default_command_timeout = TIMEOUT);
    }
    b.with_connection_config(|c| {
        if on(Setting::Unresponsive) {
            c.unresponsive = UnresponsiveConfig {
                max_timeout: Some(TIMEOUT * 2),
                interval: TIMEOUT / 2,
            };
        }
        if on(Setting::BoundedBuffer) {
            c.max_command_buffer_len = 10_000;
        }
        if on(Setting::NoDelay) {
            c.tcp = TcpConfig {
                nodelay: Some(true),
                ..TcpConfig::default()
            };
        }
    });
    if on(Setting::Reconnect) {
        b.set_policy(ReconnectPolicy::new_exponential(0, 50, 500, 2));
    }
}

/// Our settings with one flipped each (one less, or nodelay on), one
/// client; and all of them on two clients.
async fn ours_flipped(server: &RedisServer) -> Result<Vec<Variant>, String> {
    let mut variants = Vec::new();
    for (setting, name) in [
        (Setting::CommandTimeout, "ours without the command timeout"),
        (Setting::Unresponsive, "ours without unresponsive detection"),
        (Setting::BoundedBuffer, "ours without the bounded buffer"),
        (
            Setting::NoDelay,
            "ours with TCP nodelay (REDIS_TCP_NODELAY=true)",
        ),
        (Setting::Reconnect, "ours without the reconnect policy"),
    ] {
        variants.push(Variant {
            name,
            sender: single(&pool(server, 1, |b| ours(b, Some(setting))).await?),
        });
    }
    let two = pool(server, 2, |b| ours(b, None)).await?;
    let clients = two.clients();
    variants.push(Variant {
        name: "ours on two clients, each key on one",
        sender: Sender::Two(clients[0].clone(), clients[1].clone()),
    });
    Ok(variants)
}

/// A connected fred pool of `size` on `server`, fred's defaults changed by
/// `tweak`.
async fn pool(
    server: &RedisServer,
    size: usize,
    tweak: impl FnOnce(&mut Builder),
) -> Result<Pool, String> {
    let config = FredConfig {
        server: ServerConfig::new_centralized(server.host(), server.port()),
        ..FredConfig::default()
    };
    let mut builder = Builder::from_config(config);
    tweak(&mut builder);
    let pool = builder
        .build_pool(size)
        .map_err(|e| format!("building a fred pool: {e}"))?;
    pool.init().await.map_err(|e| format!("connecting: {e}"))?;
    Ok(pool)
}
