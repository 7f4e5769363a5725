//! Workload 10, what each connection setting costs: typed `GET` throughput
//! (64 tasks, each decoding the same 512-byte document) through fred pools
//! of 4 that differ from fred's defaults by one setting each, then by all of
//! ours (the pool `RedisConnectionManager` builds, as built, and as the
//! cache's `Store` sends through it), against a pool with fred's defaults
//! measured in the same rounds. Information only: it says where the
//! connection layer's cost lies; workload 1 holds the targets.
//!
//! Every variant and the default alternate phase by phase, so that drift on
//! a shared machine hits both alike.

use std::sync::Arc;
use std::time::Duration;

use redis_connection::RedisConnectionManager;
use redis_connection::fred::clients::{Pool, WithOptions};
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::prelude::Builder;
use redis_connection::fred::types::Expiration;
use redis_connection::fred::types::config::{
    Config as FredConfig, Options, ReconnectPolicy, ServerConfig, TcpConfig, UnresponsiveConfig,
};
use test_support::RedisServer;

use crate::drive::{Phase, saturate};
use crate::fixture::{Doc, Mode, TTL, connect, shard_key};
use crate::latency::show;
use crate::report::{Figure, Row, Status};

const TASKS: u64 = 64;
const KEYS: u64 = 1_000;
const POOL: usize = 4;

/// A way of sending commands: a plain pool, or one with per-command options.
#[derive(Clone)]
enum Sender {
    Pool(Pool),
    WithOptions(WithOptions<Pool>),
}

impl Sender {
    async fn get_doc(&self, key: &str) -> Result<(), String> {
        let bytes: Option<bytes::Bytes> = match self {
            Sender::Pool(pool) => pool.get(key).await,
            Sender::WithOptions(pool) => pool.get(key).await,
        }
        .map_err(|e| format!("GET: {e}"))?;
        let bytes = bytes.ok_or("GET missed")?;
        let doc: Doc = serde_json::from_slice(&bytes).map_err(|e| format!("decoding: {e}"))?;
        std::hint::black_box(doc);
        Ok(())
    }
}

/// One variant of the connection settings.
struct Variant {
    name: &'static str,
    sender: Sender,
}

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let manager = connect(&server).await?;
    let value = Doc::new(1).encode();
    let keys: Arc<Vec<String>> = Arc::new(
        (0..KEYS)
            .map(|i| shard_key("settings", i).as_str().to_owned())
            .collect(),
    );
    let ttl = i64::try_from(TTL.as_millis()).unwrap_or(i64::MAX);
    for key in keys.iter() {
        manager
            .pool()
            .set::<(), _, _>(key, value.clone(), Some(Expiration::PX(ttl)), None, false)
            .await
            .map_err(|e| format!("seeding: {e}"))?;
    }

    let default = Sender::Pool(pool(&server, |_| {}).await?);
    let variants = variants(&server, &manager).await?;
    let rounds = mode.pick(5, 1);
    let window = mode.pick(Duration::from_secs(1), Duration::from_millis(200));
    let mut rows = Vec::new();
    for variant in variants {
        for sender in [&default, &variant.sender] {
            measure(sender, &keys, window / 4).await?;
        }
        let (mut base, mut ours) = (Phase::default(), Phase::default());
        for round in 0..rounds {
            let first_default = round % 2 == 0;
            for default_turn in [first_default, !first_default] {
                if default_turn {
                    base.absorb(&measure(&default, &keys, window).await?);
                } else {
                    ours.absorb(&measure(&variant.sender, &keys, window).await?);
                }
            }
        }
        let ratio = ours.rate() / base.rate();
        rows.push(
            Row::new(
                &format!("settings.{}", variant.name.replace(' ', "_")),
                &format!(
                    "10. typed GET, fred pool of {POOL} with {} (vs fred's defaults)",
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
    Ok(rows)
}

async fn measure(
    sender: &Sender,
    keys: &Arc<Vec<String>>,
    window: Duration,
) -> Result<Phase, String> {
    let (sender, keys) = (sender.clone(), keys.clone());
    saturate(TASKS, window, move |seq| {
        let (sender, keys) = (sender.clone(), keys.clone());
        async move {
            let key = &keys[usize::try_from(seq % KEYS).unwrap_or(0)];
            sender.get_doc(key).await
        }
    })
    .await
}

/// Each of our settings alone, then all of them as the manager builds them.
async fn variants(
    server: &RedisServer,
    manager: &RedisConnectionManager,
) -> Result<Vec<Variant>, String> {
    let timeout = Duration::from_millis(500);
    let fail_fast = Options {
        fail_fast: true,
        ..Options::default()
    };
    Ok(vec![
        Variant {
            name: "a command timeout",
            sender: Sender::Pool(
                pool(server, |b| {
                    b.with_performance_config(|p| p.default_command_timeout = timeout);
                })
                .await?,
            ),
        },
        Variant {
            name: "unresponsive detection",
            sender: Sender::Pool(
                pool(server, |b| {
                    b.with_connection_config(|c| {
                        c.unresponsive = UnresponsiveConfig {
                            max_timeout: Some(timeout * 2),
                            interval: timeout / 2,
                        };
                    });
                })
                .await?,
            ),
        },
        Variant {
            name: "a bounded command buffer",
            sender: Sender::Pool(
                pool(server, |b| {
                    b.with_connection_config(|c| c.max_command_buffer_len = 10_000);
                })
                .await?,
            ),
        },
        Variant {
            name: "TCP nodelay",
            sender: Sender::Pool(
                pool(server, |b| {
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
            name: "a reconnect policy",
            sender: Sender::Pool(
                pool(server, |b| {
                    b.set_policy(ReconnectPolicy::new_exponential(0, 50, 500, 2));
                })
                .await?,
            ),
        },
        Variant {
            name: "fail_fast options",
            sender: Sender::WithOptions(pool(server, |_| {}).await?.with_options(&fail_fast)),
        },
        Variant {
            name: "all our settings (manager.pool())",
            sender: Sender::Pool(manager.pool().clone()),
        },
        Variant {
            name: "all our settings and fail_fast (the cache's Store)",
            sender: Sender::WithOptions(manager.pool().with_options(&fail_fast)),
        },
    ])
}

/// A connected fred pool of [`POOL`] on `server`, fred's defaults changed by `tweak`.
async fn pool(server: &RedisServer, tweak: impl FnOnce(&mut Builder)) -> Result<Pool, String> {
    let config = FredConfig {
        server: ServerConfig::new_centralized(server.host(), server.port()),
        ..FredConfig::default()
    };
    let mut builder = Builder::from_config(config);
    tweak(&mut builder);
    let pool = builder
        .build_pool(POOL)
        .map_err(|e| format!("building a fred pool: {e}"))?;
    pool.init().await.map_err(|e| format!("connecting: {e}"))?;
    Ok(pool)
}
