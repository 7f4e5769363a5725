//! [`RedisCluster`]: a real Redis Cluster for one test, made of local
//! `redis-server` processes in cluster mode joined by `redis-cli --cluster create`.
//!
//! Roles and slot owners are always read live from the nodes, never cached:
//! failovers (ours, or Redis's own when a primary dies) move them around behind
//! the test's back.
//!
//! One concern a file: `builder.rs` starts the processes and creates the
//! cluster, `node.rs` is the node model, `faults.rs` injects faults and waits
//! for the cluster to converge, and `nodes_text.rs` parses `CLUSTER NODES`.
//! This file holds the handle and what a test asks of it.

mod builder;
mod faults;
mod node;
mod nodes_text;

use std::io;
use std::path::PathBuf;

use crate::resp::{RawClient, Reply};

pub use builder::RedisClusterBuilder;
use node::Member;
pub use node::{ClusterNode, NodeRole, NodeState};
use nodes_text::{NodeLine, View};

/// A real Redis Cluster for one test: `primaries * (1 + replicas_per_primary)`
/// local `redis-server` processes on free loopback ports, without persistence
/// (except each node's `nodes.conf`, so that a restarted node rejoins). All
/// are killed on drop.
///
/// Faults are the test's to inject: [`stop_node`](Self::stop_node) (a crash),
/// [`restart_node`](Self::restart_node), [`pause_node`](Self::pause_node) (a
/// hang) and [`failover`](Self::failover). Redis reacts as it would in
/// production: a primary that stays unreachable for the node timeout (1.5 s
/// unless [`RedisClusterBuilder::node_timeout`] says otherwise) is replaced by
/// its replica, or, without one, takes the whole cluster to `cluster_state:fail`.
///
/// Which replica follows which primary is redis-cli's choice (it shuffles
/// them, trying to keep a replica off its primary's host): ask
/// [`replicas_of`](Self::replicas_of) rather than assuming an order.
///
/// ```no_run
/// # async fn demo() {
/// let mut cluster = test_support::RedisCluster::start(3, 1).await;
/// let url = cluster.seed_url(); // redis-cluster://127.0.0.1:p1?node=...
/// cluster.cmd_on_key_owner("k", &["SET", "k", "v"]);
/// let old = cluster.node_for_key("k");
/// let new = cluster.failover(old).await; // its replica takes over
/// cluster.stop_node(new);
/// cluster.restart_node(new);
/// cluster.wait_until_ok().await;
/// # }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    /// In start order: the first `primaries` were created as primaries.
    members: Vec<Member>,
    cli: PathBuf,
}

impl RedisCluster {
    /// Every node's port, in start order (whatever their roles now).
    pub fn ports(&self) -> Vec<u16> {
        self.members.iter().map(Member::port).collect()
    }

    /// `redis-cluster://127.0.0.1:<p1>?node=127.0.0.1:<p2>&node=...`, naming
    /// every current primary as a seed.
    pub fn seed_url(&self) -> String {
        let primaries = self.primaries();
        let (first, rest) = primaries
            .split_first()
            .expect("a cluster always has primaries");
        let mut url = format!("redis-cluster://127.0.0.1:{first}");
        for (i, port) in rest.iter().enumerate() {
            let sep = if i == 0 { '?' } else { '&' };
            url.push_str(&format!("{sep}node=127.0.0.1:{port}"));
        }
        url
    }

    /// Every node with its current role and state, in start order.
    ///
    /// # Panics
    /// When no running node can describe a paused or stopped one.
    pub fn nodes(&self) -> Vec<ClusterNode> {
        let peer_view = self
            .reachable_ports()
            .into_iter()
            .find_map(|port| self.view(port).ok());
        self.members
            .iter()
            .map(|member| {
                let port = member.port();
                let state = member.state();
                // A running node is the authority on its own role; the others'
                // view of it can lag behind a failover.
                let own_view = (state == NodeState::Running)
                    .then(|| self.view(port).ok())
                    .flatten();
                let (view, line) = own_view
                    .as_ref()
                    .and_then(|v| Some((v, v.myself()?)))
                    .or_else(|| {
                        let v = peer_view.as_ref()?;
                        Some((v, v.node(port)?))
                    })
                    .unwrap_or_else(|| panic!("no running node can describe node {port}"));
                let role = match &line.primary_id {
                    None => NodeRole::Primary,
                    Some(id) => NodeRole::Replica {
                        primary_port: view.port_of(id).unwrap_or_else(|| {
                            panic!("node {port} replicates {id}, which nobody knows")
                        }),
                    },
                };
                ClusterNode {
                    port,
                    id: line.id.clone(),
                    role,
                    state,
                    slots: line.slot_count(),
                }
            })
            .collect()
    }

    /// The ports of the primaries that serve slots now, in start order.
    /// Includes a paused or stopped primary until a replica replaces it.
    pub fn primaries(&self) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == NodeRole::Primary && n.slots > 0)
            .map(|n| n.port)
            .collect()
    }

    /// The ports of the replicas now (running or not), in start order.
    pub fn replicas(&self) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|n| matches!(n.role, NodeRole::Replica { .. }))
            .map(|n| n.port)
            .collect()
    }

    /// The ports of the replicas of the primary on `primary_port` now.
    pub fn replicas_of(&self, primary_port: u16) -> Vec<u16> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == NodeRole::Replica { primary_port })
            .map(|n| n.port)
            .collect()
    }

    /// Runs one command on the node on `port`, on a fresh connection.
    ///
    /// # Panics
    /// When `port` is not one of the cluster's nodes, or the node cannot be
    /// reached (use [`try_node_cmd`](Self::try_node_cmd) to observe that).
    pub fn node_cmd<S: AsRef<[u8]>>(&self, port: u16, args: &[S]) -> Reply {
        self.try_node_cmd(port, args)
            .unwrap_or_else(|e| panic!("run a command on cluster node {port}: {e}"))
    }

    /// Like [`node_cmd`](Self::node_cmd), returning I/O errors. A paused node
    /// accepts the connection and fails it only after the 5 s read timeout.
    ///
    /// # Errors
    /// When the node cannot be reached or does not answer within 5 s.
    ///
    /// # Panics
    /// When `port` is not one of the cluster's nodes.
    pub fn try_node_cmd<S: AsRef<[u8]>>(&self, port: u16, args: &[S]) -> io::Result<Reply> {
        self.member(port);
        RawClient::connect(&format!("127.0.0.1:{port}"), None)?.cmd(args)
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, asked of a running node).
    pub fn key_slot(&self, key: &str) -> u16 {
        let reply = self.node_cmd(self.any_reachable(), &["CLUSTER", "KEYSLOT", key]);
        reply
            .as_int()
            .and_then(|slot| u16::try_from(slot).ok())
            .unwrap_or_else(|| panic!("CLUSTER KEYSLOT answered {reply:?}"))
    }

    /// The port of the primary serving `key`'s slot, per `CLUSTER SLOTS` on a
    /// running node.
    ///
    /// # Panics
    /// When no node serves the slot.
    pub fn node_for_key(&self, key: &str) -> u16 {
        let slot = i64::from(self.key_slot(key));
        let reply = self.node_cmd(self.any_reachable(), &["CLUSTER", "SLOTS"]);
        let Reply::Array(Some(ranges)) = &reply else {
            panic!("CLUSTER SLOTS answered {reply:?}");
        };
        // Each range is [start, end, [ip, port, id, ...] of the primary, replicas...].
        ranges
            .iter()
            .find_map(|range| {
                let Reply::Array(Some(fields)) = range else {
                    return None;
                };
                let (start, end) = (fields.first()?.as_int()?, fields.get(1)?.as_int()?);
                if !(start..=end).contains(&slot) {
                    return None;
                }
                let Reply::Array(Some(primary)) = fields.get(2)? else {
                    return None;
                };
                u16::try_from(primary.get(1)?.as_int()?).ok()
            })
            .unwrap_or_else(|| panic!("no node serves slot {slot} of {key:?}: {reply:?}"))
    }

    /// Runs one command on the primary serving `key`, behind the back of
    /// the code under test (no redirections followed).
    pub fn cmd_on_key_owner<S: AsRef<[u8]>>(&self, key: &str, args: &[S]) -> Reply {
        self.node_cmd(self.node_for_key(key), args)
    }

    /// `cluster_state` from `CLUSTER INFO` on the node on `port`: `ok` or `fail`.
    pub fn cluster_state(&self, port: u16) -> String {
        self.info_field(port, "cluster_state")
            .unwrap_or_else(|e| panic!("cluster state of node {port}: {e}"))
    }

    /// The number of keys on the running primaries (`DBSIZE` summed).
    pub fn dbsize_total(&self) -> i64 {
        self.running_primaries()
            .map(|port| {
                self.node_cmd(port, &["DBSIZE"])
                    .as_int()
                    .expect("DBSIZE is an integer")
            })
            .sum()
    }

    /// `FLUSHALL` on every running primary. Replicas follow asynchronously.
    pub fn flushall(&self) {
        for port in self.running_primaries() {
            let reply = self.node_cmd(port, &["FLUSHALL"]);
            assert_eq!(reply, Reply::Simple("OK".into()), "FLUSHALL on node {port}");
        }
    }

    fn running_primaries(&self) -> impl Iterator<Item = u16> {
        self.nodes()
            .into_iter()
            .filter(|n| n.role == NodeRole::Primary && n.state == NodeState::Running)
            .map(|n| n.port)
    }

    fn member(&self, port: u16) -> &Member {
        self.members
            .iter()
            .find(|m| m.port() == port)
            .unwrap_or_else(|| panic!("{port} is not a node of this cluster"))
    }

    fn member_mut(&mut self, port: u16) -> &mut Member {
        self.members
            .iter_mut()
            .find(|m| m.port() == port)
            .unwrap_or_else(|| panic!("{port} is not a node of this cluster"))
    }

    /// Nodes that can be asked something: running and not paused.
    fn reachable_ports(&self) -> Vec<u16> {
        self.members
            .iter()
            .filter(|m| m.state() == NodeState::Running)
            .map(Member::port)
            .collect()
    }

    fn any_reachable(&self) -> u16 {
        *self
            .reachable_ports()
            .first()
            .expect("every node of the cluster is stopped or paused")
    }

    /// The first word of `ROLE` on `port`: `master` or `slave`.
    fn role_word(&self, port: u16) -> Result<String, String> {
        let reply = self
            .try_node_cmd(port, &["ROLE"])
            .map_err(|e| format!("ROLE on node {port}: {e}"))?;
        reply
            .as_strings()
            .into_iter()
            .next()
            .ok_or_else(|| format!("ROLE on node {port} answered {reply:?}"))
    }

    /// One `field:value` line of `CLUSTER INFO` on `port`.
    fn info_field(&self, port: u16, field: &str) -> Result<String, String> {
        let reply = self
            .try_node_cmd(port, &["CLUSTER", "INFO"])
            .map_err(|e| format!("CLUSTER INFO on node {port}: {e}"))?;
        let text = reply
            .as_string()
            .ok_or_else(|| format!("CLUSTER INFO on node {port} answered {reply:?}"))?;
        text.lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
            .ok_or_else(|| format!("CLUSTER INFO on node {port} lacks {field}"))
    }

    /// `CLUSTER NODES` on `port`, parsed.
    fn view(&self, port: u16) -> Result<View, String> {
        let reply = self
            .try_node_cmd(port, &["CLUSTER", "NODES"])
            .map_err(|e| format!("CLUSTER NODES on node {port}: {e}"))?;
        let text = reply
            .as_string()
            .ok_or_else(|| format!("CLUSTER NODES on node {port} answered {reply:?}"))?;
        text.lines()
            .filter(|line| !line.trim().is_empty())
            .map(NodeLine::parse)
            .collect::<Option<Vec<_>>>()
            .map(|lines| View { lines })
            .ok_or_else(|| format!("unexpected CLUSTER NODES on node {port}: {text:?}"))
    }
}
