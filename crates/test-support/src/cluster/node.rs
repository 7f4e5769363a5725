//! The node model: what a test learns about a node ([`ClusterNode`], its
//! role and state), and what the harness keeps about each process.

use crate::process::RedisProcess;

/// A node's role, as the cluster sees it at the time of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeRole {
    /// A primary (a "master" in Redis's words).
    Primary,
    /// A replica of the primary listening on `primary_port`.
    Replica {
        /// The port of the primary this node replicates.
        primary_port: u16,
    },
}

/// Whether a node's process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NodeState {
    /// Running and answering.
    Running,
    /// Frozen by [`RedisCluster::pause_node`](super::RedisCluster::pause_node) (SIGSTOP).
    Paused,
    /// Killed by [`RedisCluster::stop_node`](super::RedisCluster::stop_node).
    Stopped,
}

/// One node of a [`RedisCluster`](super::RedisCluster), as of the call that returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's client port on 127.0.0.1 (its bus port is `port + 10000`).
    pub port: u16,
    /// The node's cluster ID; it survives [`RedisCluster::restart_node`](super::RedisCluster::restart_node).
    pub id: String,
    /// Its role. A running node reports its own; a paused or stopped one is
    /// described by a running peer.
    pub role: NodeRole,
    /// Whether its process runs.
    pub state: NodeState,
    /// How many hash slots it serves (0 for replicas, and for a stopped
    /// primary whose slots a replica took over).
    pub slots: usize,
}

impl ClusterNode {
    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// One process of the cluster, with what the harness did to it.
#[derive(Debug)]
pub(super) struct Member {
    pub(super) process: RedisProcess,
    /// SIGSTOPped: the process runs but must not be asked anything, as the
    /// question would only time out.
    pub(super) paused: bool,
}

impl Member {
    pub(super) fn port(&self) -> u16 {
        self.process.port()
    }

    pub(super) fn state(&self) -> NodeState {
        match (self.process.is_running(), self.paused) {
            (false, _) => NodeState::Stopped,
            (true, true) => NodeState::Paused,
            (true, false) => NodeState::Running,
        }
    }
}
