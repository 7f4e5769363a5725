//! Translating [`RedisConfig`] into a fred [`Builder`], closing fred's traps.
//!
//! fred's defaults suit a batch job, not a service: no reconnect policy (a
//! dropped connection is never re-established), no command timeout (commands
//! wait forever while Redis is down) and an unbounded command queue. Every
//! client this crate builds goes through [`builder`], which sets all three.

use std::time::Duration;

use fred::prelude::Builder;
use fred::types::config::{
    Config as FredConfig, ReconnectPolicy, ServerConfig, TcpConfig, UnresponsiveConfig,
};
use secrecy::ExposeSecret;

use crate::config::{RedisConfig, Topology};
use crate::error::ConnectionError;

/// A fred builder for `config`, already validated.
pub(crate) fn builder(config: &RedisConfig) -> Result<Builder, ConnectionError> {
    config.validate()?;
    let server = match &config.topology {
        Topology::Centralized { host, port } => ServerConfig::new_centralized(host.as_str(), *port),
        Topology::Cluster { nodes } => {
            ServerConfig::new_clustered(nodes.iter().map(|(h, p)| (h.as_str(), *p)).collect())
        }
        Topology::Sentinel {
            nodes,
            service_name,
        } => ServerConfig::new_sentinel(
            nodes.iter().map(|(h, p)| (h.as_str(), *p)).collect(),
            service_name.as_str(),
        ),
    };
    let fred_config = FredConfig {
        server,
        username: config.username.clone(),
        password: config
            .password
            .as_ref()
            .map(|p| p.expose_secret().to_owned()),
        database: config.database,
        // Retry the first connection under the reconnect policy too, so that a
        // service can start while Redis is down (see manager.rs).
        fail_fast: false,
        #[cfg(feature = "tls")]
        tls: match &config.tls {
            Some(tls) => Some(crate::tls::fred_tls(tls, config.is_cluster())?),
            None => None,
        },
        ..FredConfig::default()
    };

    let mut builder = Builder::from_config(fred_config);
    builder
        .with_performance_config(|perf| {
            perf.default_command_timeout = config.command_timeout;
            perf.broadcast_channel_capacity = config.event_capacity;
        })
        .with_connection_config(|conn| {
            conn.connection_timeout = config.connect_timeout;
            // AUTH, HELLO, CLUSTER SLOTS...: bounded like the connection itself.
            conn.internal_command_timeout = config.connect_timeout;
            conn.max_command_buffer_len = config.max_queued_commands;
            conn.unresponsive = unresponsive(config.command_timeout);
            // Unset unless asked for: the OS default (Nagle on), as fred's
            // and redis-rs's defaults (see `RedisConfig::tcp_nodelay`).
            conn.tcp = TcpConfig {
                nodelay: config.tcp_nodelay.then_some(true),
                ..TcpConfig::default()
            };
        })
        .set_policy(policy(config));
    Ok(builder)
}

fn policy(config: &RedisConfig) -> ReconnectPolicy {
    let r = &config.reconnect;
    let mut policy = ReconnectPolicy::new_exponential(
        r.max_attempts,
        millis_u32(r.base_delay),
        millis_u32(r.max_delay),
        r.factor,
    );
    policy.set_jitter(millis_u32(r.jitter));
    policy
}

/// A connection that leaves a command unanswered for twice the command
/// timeout is closed and re-established. Without this, a connection whose
/// peer vanished silently (a load balancer dropping idle flows, a hung
/// server) would keep timing out every command forever.
fn unresponsive(command_timeout: Duration) -> UnresponsiveConfig {
    let max_timeout = (command_timeout * 2).max(Duration::from_millis(500));
    UnresponsiveConfig {
        max_timeout: Some(max_timeout),
        interval: (max_timeout / 4).max(Duration::from_millis(20)),
    }
}

fn millis_u32(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    // TCP_NODELAY is left to the OS unless the configuration asks for it.
    #[test]
    fn nodelay_only_when_asked_for() {
        let default = builder(&RedisConfig::default()).unwrap();
        assert_eq!(default.get_connection_config().tcp.nodelay, None);
        let asked = builder(&RedisConfig::default().with_tcp_nodelay(true)).unwrap();
        assert_eq!(asked.get_connection_config().tcp.nodelay, Some(true));
    }
}
