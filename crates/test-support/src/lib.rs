//! Real Redis servers for tests. No test of this workspace talks to a fake.
//!
//! - [`RedisServer`] spawns `redis-server` (from `PATH`, or `REDIS_SERVER_BIN`)
//!   on a free loopback port, without persistence, and kills it on drop. It can
//!   be stopped and started again on the same port, paused with SIGSTOP to
//!   imitate a hung server, and queried behind the code's back with
//!   [`RedisServer::cmd`].
//! - [`RedisCluster`] runs a real Redis Cluster (3+ primaries, optional
//!   replicas; `redis-server` processes joined by `redis-cli --cluster create`),
//!   waits until every node agrees it is whole, routes raw commands to the
//!   primary owning a key, and injects faults: stop, restart (same identity),
//!   pause, and failover of a primary to its replica.
//! - [`RawClient`] is a minimal RESP2 client independent of fred, so that
//!   assertions about what Redis holds do not share the code under test's bugs.
//! - [`TcpProxy`] stands between a process and a server on loopback, and can
//!   cut or silently stall the connections it carries: a network partition
//!   of one process.
//! - [`ServiceProcess`] runs a service binary and returns once it is ready.
//! - `fixtures` (features `redis` and `cache`) builds the connection config
//!   and the two-tier cache instances the tests, benchmarks and soak share.
//! - [`wait_for`] waits for a condition with a deadline; tests never sleep and hope.
//!
//! Each test starts its own server (or cluster), so tests run in parallel
//! without sharing state, and nothing ever touches port 6379.
//!
//! ```no_run
//! # async fn demo() {
//! let redis = test_support::RedisServer::start().await;
//! assert_eq!(redis.cmd(&["PING"]).as_string().as_deref(), Some("PONG"));
//! # }
//! ```

mod cluster;
#[cfg(feature = "docker")]
mod docker;
#[cfg(feature = "redis")]
pub mod fixtures;
pub mod http;
mod logs;
mod port;
mod process;
mod proxy;
mod resp;
mod server;
mod service;
pub mod tls;
mod wait;

pub use cluster::{ClusterNode, NodeRole, NodeState, RedisCluster, RedisClusterBuilder};
pub use logs::LogCapture;
pub use port::free_port;
pub use process::{server_is_at_least, server_version};
pub use proxy::TcpProxy;
pub use resp::{RawClient, Reply};
pub use server::{RedisServer, RedisServerBuilder};
pub use service::{ServiceProcess, http_status};
pub use wait::{wait_for, wait_for_sync};

/// Installs a `tracing` subscriber that writes through the test harness's
/// capture, filtered by `RUST_LOG` (default `warn`). Safe to call from every test.
pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
}
