//! The connection manager of the Redis layer, on [fred].
//!
//! - [`RedisConfig`]: where Redis is and how to talk to it, from code,
//!   from a URL or from `REDIS_*` environment variables ([`RedisConfig::from_env`]).
//!   The password is a [`secrecy::SecretString`] and never printed.
//! - [`RedisConnectionManager`]: a pool of fred clients with exponential
//!   backoff and jitter, a command timeout and a bounded queue on every
//!   command, connection status ([`ConnectionStatus`], [`ConnectionEvent`]),
//!   health checks ([`HealthReport`]) and a graceful [`shutdown`].
//! - [`RedisSubscriber`]: a dedicated pub/sub connection with its own status.
//! - [`CommandStats`]: the latency of the commands our crates send, by
//!   [`CommandFamily`], and a `redis` trace span per command
//!   ([`CommandStats::timed`], reached through
//!   [`RedisConnectionManager::commands`]).
//! - [`ConnectionError`]: tells "Redis is unavailable" from "Redis said no".
//! - [`Env`] and [`ConfigError`]: the typed reader of environment variables
//!   that redis-cache and service-kit read their variables through too, and
//!   the one error a bad value gives ([`unknown_variables`] finds likely typos).
//!
//! fred leaves three traps open by default, all closed here: no reconnect
//! policy (a dropped connection is never re-established), no command timeout
//! (commands wait forever while Redis is down), and event listeners that die
//! silently when they lag.
//!
//! ```no_run
//! use fred::prelude::*;
//! use redis_connection::{RedisConfig, RedisConnectionManager};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
//! let _: () = manager.pool().set("greeting", "hello", None, None, false).await?;
//! let health = manager.health_check().await;
//! println!("{}", serde_json::to_string(&health)?);
//! manager.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! [`shutdown`]: RedisConnectionManager::shutdown

mod cluster_probe;
mod commands;
mod config;
mod env;
mod error;
mod fred_config;
mod health;
mod manager;
mod monitor;
mod outage;
mod reader;
mod status;
mod subscriber;
mod supervisor;
#[cfg(feature = "tls")]
mod tls;
mod url;

pub use commands::{
    COMMAND_LATENCY_BUCKETS, CommandFamily, CommandObserver, CommandStats, CommandTimer,
    FamilySnapshot, RedisOp,
};
pub use config::{ReconnectConfig, RedisConfig, TlsOptions, Topology};
pub use env::ENV_VARS;
pub use error::{ConnectionError, Rejection, RejectionKind};
pub use health::{HealthReport, HealthStatus};
pub use manager::RedisConnectionManager;
pub use reader::{ConfigError, Env, unknown_variables};
pub use status::{ConnectionEvent, ConnectionStatus};
pub use subscriber::RedisSubscriber;
pub use supervisor::SHUTDOWN_DEADLINE;

/// fred, re-exported so that dependent crates use the same version.
pub use fred;
