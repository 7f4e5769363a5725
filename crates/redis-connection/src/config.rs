//! [`RedisConfig`]: where Redis is and how to talk to it.
//!
//! Built from code ([`RedisConfig::default`], [`RedisConfig::from_url`]) or from
//! the environment ([`RedisConfig::from_env`], see `env.rs`). Every field has a
//! default that works against a local Redis.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::reader::ConfigError;

/// Which Redis deployment to talk to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topology {
    /// One server (or a proxy in front of several, as Azure's non-clustered tiers).
    Centralized {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Redis Cluster, reached through any of its seed nodes.
    Cluster {
        /// Seed nodes (`host`, `port`); the rest are discovered.
        nodes: Vec<(String, u16)>,
    },
    /// A primary found through Redis Sentinel.
    Sentinel {
        /// Sentinel nodes (`host`, `port`).
        nodes: Vec<(String, u16)>,
        /// The monitored service's name.
        service_name: String,
    },
}

impl Topology {
    /// `host:port` of every configured node, for messages and logs.
    pub fn addresses(&self) -> Vec<String> {
        match self {
            Topology::Centralized { host, port } => vec![format!("{host}:{port}")],
            Topology::Cluster { nodes } | Topology::Sentinel { nodes, .. } => {
                nodes.iter().map(|(h, p)| format!("{h}:{p}")).collect()
            }
        }
    }
}

/// TLS settings. Present means "connect with TLS"; absent means plain TCP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// PEM file of the CA certificates to trust. When `None`, the system's
    /// trusted roots are used (right for managed services such as Azure).
    pub ca_file: Option<PathBuf>,
}

impl TlsOptions {
    /// Trusts the CA certificates in this PEM file instead of the system's roots.
    #[must_use]
    pub fn with_ca_file(mut self, ca_file: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(ca_file.into());
        self
    }
}

/// How the client reconnects: exponential backoff with jitter.
///
/// The delay before attempt `n` is `base_delay * factor^(n-1)`, capped at
/// `max_delay`, plus up to `jitter` at random so that many clients do not
/// reconnect in lockstep. The cap is also how long a recovered Redis may wait
/// for us, so it stays small by default (500 ms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconnectConfig {
    /// Attempts before giving up; 0 retries forever (the default: a service
    /// should outlive any Redis outage).
    pub max_attempts: u32,
    /// Delay before the first retry.
    pub base_delay: Duration,
    /// Largest delay between two attempts.
    pub max_delay: Duration,
    /// Growth factor of the delay.
    pub factor: u32,
    /// Largest random delay added to each wait.
    pub jitter: Duration,
}

impl Default for ReconnectConfig {
    fn default() -> Self {
        Self {
            max_attempts: 0,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_millis(500),
            factor: 2,
            jitter: Duration::from_millis(50),
        }
    }
}

/// Setters in the manner of moka's and reqwest's builders: start from
/// [`ReconnectConfig::default`] and change what differs.
impl ReconnectConfig {
    /// Attempts before giving up; 0 retries forever.
    #[must_use]
    pub fn with_max_attempts(mut self, max_attempts: u32) -> Self {
        self.max_attempts = max_attempts;
        self
    }

    /// Delay before the first retry.
    #[must_use]
    pub fn with_base_delay(mut self, base_delay: Duration) -> Self {
        self.base_delay = base_delay;
        self
    }

    /// Largest delay between two attempts.
    #[must_use]
    pub fn with_max_delay(mut self, max_delay: Duration) -> Self {
        self.max_delay = max_delay;
        self
    }

    /// Growth factor of the delay.
    #[must_use]
    pub fn with_factor(mut self, factor: u32) -> Self {
        self.factor = factor;
        self
    }

    /// Largest random delay added to each wait.
    #[must_use]
    pub fn with_jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }
}

/// Everything the connection manager needs to know.
///
/// Built from [`RedisConfig::default`], [`RedisConfig::centralized`],
/// [`RedisConfig::from_url`] or [`RedisConfig::from_env`], then adjusted with
/// the `with_*` setters (the struct is `#[non_exhaustive]`, so that a new
/// field does not break callers):
///
/// ```
/// use std::time::Duration;
/// use redis_connection::{ReconnectConfig, RedisConfig};
///
/// let config = RedisConfig::centralized("redis.internal", 6380)
///     .with_pool_size(8)
///     .with_command_timeout(Duration::from_millis(250))
///     .with_reconnect(ReconnectConfig::default().with_max_delay(Duration::from_secs(1)));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// Where Redis is.
    pub topology: Topology,
    /// ACL user name (`None`: the default user).
    pub username: Option<String>,
    /// Password (or Azure access key). Never printed.
    pub password: Option<SecretString>,
    /// TLS settings; `None` for plain TCP.
    pub tls: Option<TlsOptions>,
    /// Database index (`SELECT`); must be `None` or 0 on a cluster.
    pub database: Option<u8>,
    /// Number of pooled connections for commands.
    pub pool_size: usize,
    /// Time allowed to open a connection (TCP, TLS and handshake commands).
    pub connect_timeout: Duration,
    /// Time allowed for any command, including the time it waits while Redis
    /// is unreachable. No command waits longer.
    pub command_timeout: Duration,
    /// Reconnection backoff.
    pub reconnect: ReconnectConfig,
    /// PING round trip above which health is `degraded`.
    pub health_degraded_threshold: Duration,
    /// Commands that may wait in each client's queue while Redis is
    /// unreachable; beyond this they fail at once instead of piling up.
    pub max_queued_commands: usize,
    /// Capacity of the event channels (connection events, pub/sub messages).
    /// A listener that falls further behind is told it lagged.
    pub event_capacity: usize,
    /// `TCP_NODELAY` on every connection: each command leaves in its own
    /// packet at once. Off by default (as in fred and redis-rs): the kernel
    /// then holds a small write while an earlier small one is unanswered and
    /// sends them together, so Redis reads many commands per wake-up. That
    /// was worth 1.2x to 1.5x `SET` throughput under concurrent load
    /// (BENCHMARKS.md, issue 15), and costs a command sent right behind
    /// another up to one round trip. Turn it on for a latency-bound service
    /// far from Redis.
    pub tcp_nodelay: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            topology: Topology::Centralized {
                host: "127.0.0.1".to_owned(),
                port: 6379,
            },
            username: None,
            password: None,
            tls: None,
            database: None,
            pool_size: 4,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Duration::from_millis(500),
            reconnect: ReconnectConfig::default(),
            health_degraded_threshold: Duration::from_millis(100),
            max_queued_commands: 10_000,
            event_capacity: 4096,
            tcp_nodelay: false,
        }
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("topology", &self.topology)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("tls", &self.tls)
            .field("database", &self.database)
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("reconnect", &self.reconnect)
            .field("health_degraded_threshold", &self.health_degraded_threshold)
            .field("max_queued_commands", &self.max_queued_commands)
            .field("event_capacity", &self.event_capacity)
            .field("tcp_nodelay", &self.tcp_nodelay)
            .finish()
    }
}

impl RedisConfig {
    /// A config for one server at `host:port`, other fields at their defaults.
    pub fn centralized(host: impl Into<String>, port: u16) -> Self {
        Self {
            topology: Topology::Centralized {
                host: host.into(),
                port,
            },
            ..Self::default()
        }
    }

    /// Where Redis is.
    #[must_use]
    pub fn with_topology(mut self, topology: Topology) -> Self {
        self.topology = topology;
        self
    }

    /// The ACL user name.
    #[must_use]
    pub fn with_username(mut self, username: impl Into<String>) -> Self {
        self.username = Some(username.into());
        self
    }

    /// The password (or Azure access key); never printed.
    #[must_use]
    pub fn with_password(mut self, password: impl Into<SecretString>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// TLS settings; `None` for plain TCP.
    #[must_use]
    pub fn with_tls(mut self, tls: Option<TlsOptions>) -> Self {
        self.tls = tls;
        self
    }

    /// The database index (`SELECT`); 0 on a cluster.
    #[must_use]
    pub fn with_database(mut self, database: u8) -> Self {
        self.database = Some(database);
        self
    }

    /// Number of pooled connections for commands.
    #[must_use]
    pub fn with_pool_size(mut self, pool_size: usize) -> Self {
        self.pool_size = pool_size;
        self
    }

    /// Time allowed to open a connection.
    #[must_use]
    pub fn with_connect_timeout(mut self, connect_timeout: Duration) -> Self {
        self.connect_timeout = connect_timeout;
        self
    }

    /// Time allowed for any command, waiting included.
    #[must_use]
    pub fn with_command_timeout(mut self, command_timeout: Duration) -> Self {
        self.command_timeout = command_timeout;
        self
    }

    /// Reconnection backoff.
    #[must_use]
    pub fn with_reconnect(mut self, reconnect: ReconnectConfig) -> Self {
        self.reconnect = reconnect;
        self
    }

    /// PING round trip above which health is `degraded`.
    #[must_use]
    pub fn with_health_degraded_threshold(mut self, health_degraded_threshold: Duration) -> Self {
        self.health_degraded_threshold = health_degraded_threshold;
        self
    }

    /// Commands that may wait in each client's queue while Redis is unreachable.
    #[must_use]
    pub fn with_max_queued_commands(mut self, max_queued_commands: usize) -> Self {
        self.max_queued_commands = max_queued_commands;
        self
    }

    /// Sets [`tcp_nodelay`](Self::tcp_nodelay).
    #[must_use]
    pub fn with_tcp_nodelay(mut self, tcp_nodelay: bool) -> Self {
        self.tcp_nodelay = tcp_nodelay;
        self
    }

    /// Capacity of the event channels.
    #[must_use]
    pub fn with_event_capacity(mut self, event_capacity: usize) -> Self {
        self.event_capacity = event_capacity;
        self
    }

    /// Whether this config talks to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.topology, Topology::Cluster { .. })
    }

    /// Checks every field; called by the manager before connecting.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field's environment variable.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.validate_for(cfg!(feature = "tls"))
    }

    /// [`validate`](Self::validate) for a build with (`tls_built`) or
    /// without TLS support: one function, so that the default build's unit
    /// tests cover the refusal of TLS without it, and CI needs no second
    /// build of fred's dependency tree just to run that test.
    fn validate_for(&self, tls_built: bool) -> Result<(), ConfigError> {
        let bad = |variable: &str, reason: &str| Err(ConfigError::new(variable, reason));
        if !(1..=256).contains(&self.pool_size) {
            return bad("REDIS_POOL_SIZE", "must be between 1 and 256");
        }
        if self.connect_timeout.is_zero() {
            return bad("REDIS_CONNECT_TIMEOUT_MS", "must be greater than 0");
        }
        if self.command_timeout.is_zero() {
            return bad("REDIS_COMMAND_TIMEOUT_MS", "must be greater than 0");
        }
        if self.reconnect.base_delay.is_zero() {
            return bad("REDIS_RECONNECT_BASE_DELAY_MS", "must be greater than 0");
        }
        if self.reconnect.max_delay < self.reconnect.base_delay {
            return bad(
                "REDIS_RECONNECT_MAX_DELAY_MS",
                "must be at least REDIS_RECONNECT_BASE_DELAY_MS",
            );
        }
        if self.reconnect.factor < 1 {
            return bad("reconnect.factor", "must be at least 1");
        }
        if self.health_degraded_threshold.is_zero() {
            return bad("REDIS_HEALTH_DEGRADED_MS", "must be greater than 0");
        }
        if self.is_cluster() && self.database.is_some_and(|db| db != 0) {
            return bad("REDIS_DB", "a Redis Cluster has only database 0");
        }
        if self.max_queued_commands == 0 {
            return bad("max_queued_commands", "must be greater than 0");
        }
        if self.event_capacity == 0 {
            return bad("event_capacity", "must be greater than 0");
        }
        let nodes = match &self.topology {
            Topology::Centralized { host, port } => vec![(host, *port)],
            Topology::Cluster { nodes } | Topology::Sentinel { nodes, .. } => {
                nodes.iter().map(|(h, p)| (h, *p)).collect()
            }
        };
        if nodes.is_empty() {
            return bad("REDIS_URL", "names no node");
        }
        if nodes.iter().any(|(host, _)| host.is_empty()) {
            return bad("REDIS_HOST", "must not be empty");
        }
        if nodes.iter().any(|(_, port)| *port == 0) {
            return bad("REDIS_PORT", "must be between 1 and 65535");
        }
        if self.tls.is_some() && !tls_built {
            return bad(
                "REDIS_TLS",
                "TLS was requested but this build has no TLS support \
                 (enable redis-connection's `tls` feature); refusing to connect in plain text",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_tls() -> RedisConfig {
        RedisConfig {
            tls: Some(TlsOptions::default()),
            ..RedisConfig::default()
        }
    }

    // With TLS support compiled in, a TLS config is valid.
    #[cfg(feature = "tls")]
    #[test]
    fn tls_accepted_with_feature() {
        assert!(with_tls().validate().is_ok());
    }

    // Without TLS support, asking for TLS (in code or with a rediss:// URL)
    // is a configuration error, never a silent plain-text connection.
    #[test]
    fn tls_refused_without_feature() {
        let err = with_tls().validate_for(false).unwrap_err();
        assert_eq!(err.variable, "REDIS_TLS", "{err}");
        let err = RedisConfig::from_url("rediss://example.com:6380")
            .and_then(|c| c.validate_for(false))
            .unwrap_err();
        assert!(err.to_string().contains("no TLS support"), "{err}");
        // The same configuration is fine for a build with TLS support.
        assert!(with_tls().validate_for(true).is_ok());
        #[cfg(not(feature = "tls"))]
        assert!(with_tls().validate().is_err());
    }

    // Nonsensical values are refused by validate() too, for configs built in code.
    #[test]
    fn validate_rejects_nonsense() {
        let c = RedisConfig {
            pool_size: 0,
            ..RedisConfig::default()
        };
        assert!(c.validate().is_err());
        let c = RedisConfig {
            command_timeout: Duration::ZERO,
            ..RedisConfig::default()
        };
        assert!(c.validate().is_err());
        let c = RedisConfig::centralized("", 6379);
        assert!(c.validate().is_err());
    }
}
