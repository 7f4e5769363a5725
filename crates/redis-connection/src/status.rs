//! Connection status and events, as other crates observe them.

use serde::Serialize;

/// Whether a client (or the pool as a whole) can talk to Redis now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ConnectionStatus {
    /// Never connected yet; the first connection is being established.
    Connecting,
    /// Connected: commands can be served. For the pool, at least one client
    /// is connected (see [`crate::HealthReport`] for a partial outage).
    Connected,
    /// Connected before, not now; reconnecting in the background unless the
    /// reconnect policy gave up or the manager was shut down.
    Disconnected,
}

impl ConnectionStatus {
    /// The lowercase name (`connected`).
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Connecting => "connecting",
            ConnectionStatus::Connected => "connected",
            ConnectionStatus::Disconnected => "disconnected",
        }
    }
}

/// Something that happened to one of the connections.
///
/// Delivered on a `tokio::sync::broadcast` channel: a listener that falls
/// behind receives `RecvError::Lagged` from its receiver and must assume that
/// anything may have happened meanwhile (the pub/sub crate flushes its L1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// A connection to `server` was established: the first time
    /// (`reconnect == false`) or again after a loss.
    Connected {
        /// `host:port` of the server.
        server: String,
        /// Whether this client had been connected before.
        reconnect: bool,
    },
    /// A connection was lost, or an attempt to open one failed.
    Disconnected {
        /// What went wrong (never holds credentials).
        error: String,
    },
    /// A connection left a command unanswered too long and is being replaced.
    Unresponsive {
        /// `host:port` of the server.
        server: String,
    },
    /// The reconnect policy gave up: this client will not reconnect.
    GaveUp {
        /// The last error.
        error: String,
    },
    /// Our own listener on fred's events fell behind and missed `missed`
    /// events; the status was re-read from fred, but intermediate events
    /// (a disconnect and reconnect, say) may have been lost.
    Missed {
        /// How many events were dropped.
        missed: u64,
    },
}
