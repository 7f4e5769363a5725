//! [`RedisConnectionManager`]: the pool of connections every other crate uses.

use std::sync::Arc;
use std::time::Duration;

use fred::interfaces::{ClientLike, ClusterInterface};
use fred::prelude::{Builder, Client, Pool};
use fred::types::config::Server;
use tokio::sync::{broadcast, watch};
use tracing::info;

use crate::commands::CommandStats;
use crate::config::RedisConfig;
use crate::error::ConnectionError;
use crate::health::{HealthReport, HealthStatus, assess, ping};
use crate::monitor::Slot;
use crate::outage::Role;
use crate::status::{ConnectionEvent, ConnectionStatus};
use crate::subscriber::RedisSubscriber;
use crate::supervisor::{SHUTDOWN_DEADLINE, Supervisor};

/// A pool of Redis connections with reconnection, state tracking and health
/// checks. Cheap to clone: clones share the pool.
///
/// Build it with [`connect`](Self::connect) (wait until connected) or
/// [`connect_lazy`](Self::connect_lazy) (return at once, connect in the
/// background). While Redis is unreachable every command fails within the
/// configured command timeout; when it comes back the pool reconnects by
/// itself. Dropping the last clone aborts every background task; call
/// [`shutdown`](Self::shutdown) to close connections politely first.
#[derive(Debug, Clone)]
pub struct RedisConnectionManager {
    inner: Arc<Inner>,
}

struct Inner {
    config: RedisConfig,
    builder: Builder,
    pool: Pool,
    supervisor: Supervisor,
    /// Latency of the commands sent through this manager, by family.
    commands: CommandStats,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisConnectionManager")
            .field("config", &self.config)
            .field("status", &self.supervisor.monitor.status())
            .finish_non_exhaustive()
    }
}

impl RedisConnectionManager {
    /// Connects and waits until every pooled connection is up, retrying under
    /// the configured backoff (each failed attempt is logged).
    ///
    /// # Errors
    /// - [`ConnectionError::Config`] / [`ConnectionError::Tls`] for a bad configuration;
    /// - [`ConnectionError::Auth`] at the first refusal of the credentials
    ///   (retrying would not help);
    /// - [`ConnectionError::Unavailable`] once `max_attempts` attempts failed;
    /// - [`ConnectionError::NoRuntime`] when not run by a tokio runtime.
    ///
    /// With `max_attempts == 0` it waits until Redis answers; a service that
    /// must start while Redis is down uses [`connect_lazy`](Self::connect_lazy).
    pub async fn connect(config: RedisConfig) -> Result<Self, ConnectionError> {
        let manager = Self::connect_lazy(config)?;
        if let Err(error) = manager.wait_until_connected().await {
            manager.shutdown().await;
            return Err(error);
        }
        Ok(manager)
    }

    /// Returns at once and connects in the background, retrying under the
    /// configured backoff. Commands issued before the first connection wait
    /// for it, at most the command timeout.
    ///
    /// # Errors
    /// Configuration errors ([`ConnectionError::Config`],
    /// [`ConnectionError::Tls`]), and [`ConnectionError::NoRuntime`] outside
    /// a tokio runtime (the manager's background tasks run on it).
    pub fn connect_lazy(config: RedisConfig) -> Result<Self, ConnectionError> {
        // fred spawns its connection tasks here and panics without a
        // runtime: a typed error says so instead.
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConnectionError::NoRuntime);
        }
        let builder = crate::fred_config::builder(&config)?;
        let pool = builder
            .build_pool(config.pool_size)
            .map_err(|e| ConnectionError::from_fred(&e, config.command_timeout))?;
        info!(
            redis.addresses = ?config.topology.addresses(),
            redis.pool_size = config.pool_size,
            redis.tls = config.tls.is_some(),
            "connecting to Redis"
        );
        let supervisor = Supervisor::start(
            Role::Pool,
            pool.clients(),
            config.event_capacity,
            config.command_timeout,
        );
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                builder,
                pool,
                supervisor,
                commands: CommandStats::default(),
            }),
        })
    }

    /// Latency histograms of the commands sent through this manager (see
    /// [`CommandStats::timed`]).
    pub fn commands(&self) -> &CommandStats {
        &self.inner.commands
    }

    /// Waits until every pooled client is connected, or fails as
    /// [`connect`](Self::connect) describes.
    async fn wait_until_connected(&self) -> Result<(), ConnectionError> {
        let monitor = &self.inner.supervisor.monitor;
        let mut changes = monitor.changes();
        loop {
            let slots = monitor.slots();
            if slots.iter().all(|s| *s == Slot::Connected) {
                return Ok(());
            }
            match monitor.last_error() {
                Some(e @ (ConnectionError::Auth { .. } | ConnectionError::Tls { .. })) => {
                    return Err(e);
                }
                Some(e @ ConnectionError::Config(_)) => return Err(e),
                _ => {}
            }
            if slots.contains(&Slot::Stopped) {
                let attempts = self.inner.config.reconnect.max_attempts;
                let last = monitor
                    .last_error()
                    .map(|e| e.to_string())
                    .unwrap_or_default();
                return Err(ConnectionError::unavailable(format!(
                    "could not connect to {} after {attempts} attempts: {last}",
                    self.inner.config.topology.addresses().join(", ")
                )));
            }
            if changes.changed().await.is_err() {
                return Err(ConnectionError::Shutdown);
            }
        }
    }

    /// The configuration this manager was built from.
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    /// The command timeout every command runs under.
    pub fn command_timeout(&self) -> Duration {
        self.inner.config.command_timeout
    }

    /// The fred pool. Pool clients must never `SUBSCRIBE`: use
    /// [`subscriber`](Self::subscriber). For commands prefer
    /// [`client`](Self::client): the pool's round-robin spreads commands over
    /// every connection, which costs throughput (see `client`).
    pub fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// The pooled client commands should go through now: the first one in
    /// the pool that is connected (the first one when none is).
    ///
    /// One connection at a time, not round-robin: fred writes the commands
    /// queued on a connection together (auto-pipelining), and Redis runs
    /// them one by one whatever the connection, so concentrating a process's
    /// commands on one connection lets each socket write and each server
    /// read carry many of them. Spreading them over the pool's four
    /// connections made every typed `GET` cost 60 % more CPU and gave 0.6x
    /// the throughput (BENCHMARKS.md, workload 10). The other connections
    /// stay connected and take over at once when this one drops.
    pub fn client(&self) -> &Client {
        let clients = self.inner.pool.clients();
        clients
            .iter()
            .find(|client| client.is_connected())
            .unwrap_or(&clients[0])
    }

    /// Builds a dedicated subscriber connection with this manager's
    /// configuration, connecting in the background.
    ///
    /// # Errors
    /// When fred cannot build the client (a configuration error).
    pub fn subscriber(&self) -> Result<RedisSubscriber, ConnectionError> {
        let client = self
            .inner
            .builder
            .build_subscriber_client()
            .map_err(|e| ConnectionError::from_fred(&e, self.command_timeout()))?;
        Ok(RedisSubscriber::start(client, &self.inner.config))
    }

    /// A number that changes whenever a pooled connection is lost or made.
    /// What a process remembers about the server's data (that a key is
    /// indexed, say) may be stale after it changed: the server may have
    /// restarted empty, or failed over. It moves when the loss is seen,
    /// which is before any command can succeed on the new connection
    /// (reconnecting waits out the backoff delay first).
    pub fn connection_epoch(&self) -> u64 {
        self.inner.supervisor.monitor.generation()
    }

    /// Connected, connecting, or disconnected (see [`ConnectionStatus`]).
    pub fn status(&self) -> ConnectionStatus {
        self.inner.supervisor.monitor.status()
    }

    /// How many of the pool's connections are up now, out of how many it
    /// keeps (the subscriber connection is not counted).
    pub fn pool_connections(&self) -> (usize, usize) {
        let clients = self.inner.pool.clients();
        let connected = clients.iter().filter(|c| c.is_connected()).count();
        (connected, clients.len())
    }

    /// Whether at least one pooled connection is up.
    pub fn is_connected(&self) -> bool {
        self.status() == ConnectionStatus::Connected
    }

    /// A receiver that sees every status change.
    pub fn watch_status(&self) -> watch::Receiver<ConnectionStatus> {
        self.inner.supervisor.monitor.watch_status()
    }

    /// Connection events of the pool's clients (connects, losses, give-ups).
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.inner.supervisor.monitor.events()
    }

    /// PINGs Redis and reports status, connectivity and latency.
    ///
    /// Every pooled connection is probed on a single server. On a cluster
    /// every primary is probed through the pool, and one the pool cannot
    /// reach over a short-lived connection of its own, so that one dead
    /// primary reads as `degraded` even while fred's router (which needs
    /// every primary to re-sync) serves nothing. Takes at most the command timeout; returns at once for
    /// connections known to be down.
    pub async fn health_check(&self) -> HealthReport {
        let config = &self.inner.config;
        let timeout = config.command_timeout;
        let monitor = &self.inner.supervisor.monitor;
        let connected = self.is_connected();
        let mut report = if config.is_cluster() {
            let primaries: Vec<Server> = match self.client().cached_cluster_state() {
                Some(state) => state.unique_primary_nodes(),
                // Never connected: the configured seeds are the best guess.
                None => config
                    .topology
                    .addresses()
                    .iter()
                    .filter_map(|a| a.rsplit_once(':'))
                    .filter_map(|(h, p)| Some(Server::new(h, p.parse().ok()?)))
                    .collect(),
            };
            // Through the pool first (what our commands see, latency
            // included); a primary the pool cannot reach is asked again over a
            // connection of its own, to tell "that node is down" from "our
            // router is stuck re-syncing" (see cluster_probe.rs).
            let client = self.client();
            let template = self.inner.builder.get_config().cloned().unwrap_or_default();
            let probes = futures::future::join_all(primaries.into_iter().map(|node| {
                let template = &template;
                async move {
                    match ping(client, Some(node.clone()), timeout).await {
                        Ok(latency) => Ok(latency),
                        Err(_) => crate::cluster_probe::probe(template, node, timeout).await,
                    }
                }
            }))
            .await;
            let down = monitor
                .slots()
                .iter()
                .filter(|s| **s != Slot::Connected)
                .count();
            assess(
                &probes,
                "cluster primaries",
                down,
                connected,
                config.health_degraded_threshold,
            )
        } else {
            let probes = futures::future::join_all(
                self.inner
                    .pool
                    .clients()
                    .iter()
                    .map(|c| ping(c, None, timeout)),
            )
            .await;
            assess(
                &probes,
                "pooled connections",
                0,
                connected,
                config.health_degraded_threshold,
            )
        };
        if report.status == HealthStatus::Unhealthy {
            // "not connected" says less than the error that disconnected us.
            if let Some(last) = monitor.last_error() {
                report.error = Some(last.to_string());
            }
        }
        report
    }

    /// Closes every connection: stops reconnecting, sends `QUIT` on each
    /// connection and waits for them to close, at most [`SHUTDOWN_DEADLINE`];
    /// whatever is left is aborted. Later commands fail as unavailable.
    pub async fn shutdown(&self) {
        info!("closing Redis connections");
        let pool = self.inner.pool.clone();
        self.inner
            .supervisor
            .shutdown(async move { pool.quit().await }, SHUTDOWN_DEADLINE)
            .await;
    }
}
