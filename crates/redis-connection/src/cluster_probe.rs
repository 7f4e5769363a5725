//! Probing each cluster primary over a connection of its own.
//!
//! The pool cannot tell us which primaries answer: when one primary dies,
//! fred 10.1's cluster router re-syncs by connecting to every primary that
//! `CLUSTER SLOTS` names, fails on the dead one, and serves no slot until it
//! is back or replaced (see the README's Redis Cluster section). Probing
//! through the pool would then report every primary down. A short-lived
//! direct connection per primary measures the cluster itself: one primary
//! down while the others answer is `degraded`, not `unhealthy`.

use std::time::{Duration, Instant};

use fred::interfaces::ClientLike;
use fred::prelude::Builder;
use fred::types::config::{Config as FredConfig, Server, ServerConfig};

use crate::error::ConnectionError;
use crate::health::Probe;

/// PINGs `node` over a fresh connection built from `template` (credentials,
/// TLS), with no reconnect policy; everything bounded by `timeout`.
pub(crate) async fn probe(template: &FredConfig, node: Server, timeout: Duration) -> Probe {
    let config = FredConfig {
        server: ServerConfig::Centralized { server: node },
        fail_fast: true,
        ..template.clone()
    };
    let mut builder = Builder::from_config(config);
    builder
        .with_connection_config(|c| {
            c.connection_timeout = timeout;
            c.internal_command_timeout = timeout;
        })
        .with_performance_config(|p| p.default_command_timeout = timeout);
    let client = builder
        .build()
        .map_err(|e| ConnectionError::from_fred(&e, timeout))?;
    let outcome = tokio::time::timeout(timeout * 2, async {
        let task = client
            .init()
            .await
            .map_err(|e| ConnectionError::from_fred(&e, timeout))?;
        let start = Instant::now();
        let pong: Result<String, _> = client.ping(None).await;
        let latency = start.elapsed();
        let _ = client.quit().await;
        task.abort();
        pong.map(|_| latency)
            .map_err(|e| ConnectionError::from_fred(&e, timeout))
    })
    .await;
    outcome.unwrap_or(Err(ConnectionError::Timeout(timeout)))
}
