//! Workload 10, what the connection layer's choices cost: typed `GET` and
//! `SET` throughput (64 tasks, each decoding or encoding the same 512-byte
//! document) through fred clients that differ from a pool of 4 with fred's
//! defaults by one choice each, against that pool measured in the same
//! rounds. Information only: it says where the connection layer's cost
//! lies; workload 1 holds the targets.
//!
//! What it showed (BENCHMARKS.md): none of our settings costs much alone
//! (a command timeout, unresponsive detection, a bounded buffer, nodelay, a
//! reconnect policy, `fail_fast`); what cost 40 % of the throughput was how
//! commands were spread over the pool's connections. fred's `Pool` picks a
//! client round-robin on every internal lookup, several per command, and
//! with fred's defaults (no timeout) that is four lookups: with four clients
//! every command lands on the same one, so fred's "pool of 4" is in effect
//! one connection, which auto-pipelines best. With a command timeout one
//! lookup fewer happens, and commands spread evenly, each connection batching
//! less. `RedisConnectionManager::client` therefore sends every command
//! through one connection at a time.
//!
//! The variants and the default alternate phase by phase, so that drift on
//! a shared machine hits both alike.

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Get,
    Set,
}

impl Sender {
    async fn run(&self, op: Op, key: &str) -> Result<(), String> {
        match op {
            Op::Get => {
                let bytes: Option<Bytes> = match self {
                    Sender::Pool(pool) => pool.get(key).await,
                    Sender::Client(client) => client.get(key).await,
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
    let variants = variants(&server, &manager).await?;
    let rounds = mode.pick(5, 1);
    let window = mode.pick(Duration::from_secs(1), Duration::from_millis(200));
    let mut rows = Vec::new();
    for (op, op_name) in [(Op::Get, "GET"), (Op::Set, "SET")] {
        for variant in &variants {
            for sender in [&default, &variant.sender] {
                measure(sender, op, &keys, window / 4).await?;
            }
            let (mut base, mut ours) = (Phase::default(), Phase::default());
            for round in 0..rounds {
                let first_default = round % 2 == 0;
                for default_turn in [first_default, !first_default] {
                    if default_turn {
                        base.absorb(&measure(&default, op, &keys, window).await?);
                    } else {
                        ours.absorb(&measure(&variant.sender, op, &keys, window).await?);
                    }
                }
            }
            let ratio = ours.rate() / base.rate();
            rows.push(
                Row::new(
                    &format!(
                        "settings.{}.{}",
                        op_name.to_ascii_lowercase(),
                        variant.name.replace(' ', "_")
                    ),
                    &format!(
                        "10. typed {op_name}, {} (vs a fred pool of {POOL} with fred's defaults)",
                        variant.name
                    ),
                    Figure::rate(ours.rate()),
                )
                .baseline(Figure::rate(base.rate()), ratio)
                .target("information", Status::Info)
                .note(format!(
                    "process CPU per op {} vs {}; p99 {} vs {}",
                    show(ours.cpu_per_op()),
                    show(base.cpu_per_op()),
                    show(ours.latencies.p99()),
                    show(base.latencies.p99()),
                )),
            );
        }
    }
    Ok(rows)
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
    let single = |client: Pool| Sender::Client(client.clients()[0].clone());
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
            name: "one client with a command timeout",
            sender: single(pool(server, 1, timeout).await?),
        },
        Variant {
            name: "one client with unresponsive detection",
            sender: single(
                pool(server, 1, |b| {
                    b.with_connection_config(|c| {
                        c.unresponsive = UnresponsiveConfig {
                            max_timeout: Some(TIMEOUT * 2),
                            interval: TIMEOUT / 2,
                        };
                    });
                })
                .await?,
            ),
        },
        Variant {
            name: "one client with a bounded command buffer",
            sender: single(
                pool(server, 1, |b| {
                    b.with_connection_config(|c| c.max_command_buffer_len = 10_000);
                })
                .await?,
            ),
        },
        Variant {
            name: "one client with TCP nodelay",
            sender: single(
                pool(server, 1, |b| {
                    b.with_connection_config(|c| {
                        c.tcp = TcpConfig {
                            nodelay: Some(true),
                            ..TcpConfig::default()
                        };
                    });
                })
                .await?,
            ),
        },
        Variant {
            name: "one client with a reconnect policy",
            sender: single(
                pool(server, 1, |b| {
                    b.set_policy(ReconnectPolicy::new_exponential(0, 50, 500, 2));
                })
                .await?,
            ),
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
