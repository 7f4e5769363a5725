//! [`RedisCluster`]: a real Redis Cluster for one test, made of local
//! `redis-server` processes in cluster mode joined by `redis-cli --cluster create`.
//!
//! Roles and slot owners are always read live from the nodes, never cached:
//! failovers (ours, or Redis's own when a primary dies) move them around behind
//! the test's back.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::port::free_cluster_port;
use crate::process::{RedisProcess, find_binary, find_on_path};
use crate::resp::{RawClient, Reply};

/// Hash slots in every Redis Cluster.
const SLOTS: usize = 16_384;

/// Whole-cluster attempts: `redis-cli --cluster create` can still fail after
/// every node came up (a node died, a port was grabbed meanwhile), and a fresh
/// set of nodes is the simplest cure.
const START_ATTEMPTS: usize = 3;

/// Ports tried per node when another test grabs ours (or its bus port,
/// `port + 10000`) between the check and redis-server's bind.
const SPAWN_ATTEMPTS: usize = 5;

/// `redis-cli --cluster create` waits for the nodes to meet without a limit
/// of its own, so we give it one.
const CREATE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a cluster may take to (re)converge, and a failover to complete.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// `cluster-node-timeout` unless the builder says otherwise. Short, so that
/// failure detection and automatic failover take seconds, not the default 15 s;
/// not shorter, so that a loaded 2-core CI box does not see false failures.
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(1500);

/// Polling period of the waits. Each poll opens a few connections per node,
/// so it is coarser than [`crate::wait_for`]'s.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Redis abandons a manual failover that has not completed after 5 s
/// (`CLUSTER_MF_TIMEOUT`); past that, asking again is the only way forward.
const MANUAL_FAILOVER_RETRY: Duration = Duration::from_secs(6);

/// Options for [`RedisCluster`]: shape, node timeout and extra arguments.
#[derive(Debug, Clone)]
pub struct RedisClusterBuilder {
    primaries: usize,
    replicas_per_primary: usize,
    node_timeout: Duration,
    args: Vec<String>,
}

impl RedisClusterBuilder {
    /// `cluster-node-timeout`: how long a node may be unreachable before it is
    /// considered failing (and, for a primary with a replica, replaced).
    /// Default 1.5 s.
    pub fn node_timeout(mut self, timeout: Duration) -> Self {
        self.node_timeout = timeout;
        self
    }

    /// Appends raw `redis-server` arguments for every node (`["--maxmemory", "10mb"]`).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Starts the nodes, creates the cluster and waits until it is
    /// [ok](RedisCluster::wait_until_ok).
    ///
    /// # Panics
    /// With fewer than 3 primaries (`redis-cli --cluster create` refuses them),
    /// without a local `redis-server` and `redis-cli`, or when the cluster
    /// cannot be created after a few attempts.
    pub async fn start(self) -> RedisCluster {
        assert!(
            self.primaries >= 3,
            "redis-cli --cluster create needs at least 3 primaries, not {}",
            self.primaries
        );
        let server = find_binary().unwrap_or_else(|| {
            panic!(
                "RedisCluster needs a local redis-server (on PATH or in REDIS_SERVER_BIN); \
                 there is no Docker fallback for clusters"
            )
        });
        let cli = find_cli(&server).unwrap_or_else(|| {
            panic!(
                "RedisCluster needs redis-cli next to {}, on PATH or in REDIS_CLI_BIN",
                server.display()
            )
        });
        let mut errors = Vec::new();
        for _ in 0..START_ATTEMPTS {
            match self.try_start(&server, &cli).await {
                Ok(cluster) => {
                    cluster.wait_until_ok().await;
                    return cluster;
                }
                Err(e) => errors.push(e),
            }
        }
        panic!(
            "could not create a {}x{} Redis Cluster after {START_ATTEMPTS} attempts:\n{}",
            self.primaries,
            1 + self.replicas_per_primary,
            errors.join("\n")
        );
    }

    async fn try_start(&self, server: &Path, cli: &Path) -> Result<RedisCluster, String> {
        let count = self.primaries * (1 + self.replicas_per_primary);
        let mut members = Vec::with_capacity(count);
        for _ in 0..count {
            members.push(Member {
                process: self.spawn_node(server)?,
                paused: false,
            });
        }
        let cluster = RedisCluster {
            members,
            cli: cli.to_owned(),
        };
        cluster.create(self.replicas_per_primary).await?;
        Ok(cluster)
    }

    /// Starts one cluster-mode redis-server on a free port.
    fn spawn_node(&self, server: &Path) -> Result<RedisProcess, String> {
        let mut last_error = String::new();
        for _ in 0..SPAWN_ATTEMPTS {
            let mut process = RedisProcess::new(server, free_cluster_port(), Vec::new(), None)
                .map_err(|e| format!("create a node directory: {e}"))?;
            // The node's identity and view of the cluster live in nodes.conf;
            // it must survive restart_node, hence the node's own directory.
            let nodes_conf = process.dir().join("nodes.conf").display().to_string();
            let node_timeout = self.node_timeout.as_millis().to_string();
            process.push_args(
                [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &nodes_conf,
                    "--cluster-node-timeout",
                    &node_timeout,
                    // Without it a fresh node does not know its own address
                    // until a peer tells it; with it, CLUSTER NODES and
                    // redirections name 127.0.0.1 from the start.
                    "--cluster-announce-ip",
                    "127.0.0.1",
                    // The default 5 s delay would hold up every full sync: a
                    // replica's first one and a restarted node's.
                    "--repl-diskless-sync-delay",
                    "0",
                    // A replica whose primary was paused or down for long would
                    // otherwise refuse to be promoted, as its data is "too old".
                    "--cluster-replica-validity-factor",
                    "0",
                ]
                .map(str::to_owned),
            );
            process.push_args(self.args.iter().cloned());
            match process.launch() {
                Ok(()) => return Ok(process),
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(format!(
            "no cluster node started after {SPAWN_ATTEMPTS} ports: {last_error}"
        ))
    }
}

/// Finds `redis-cli`: `REDIS_CLI_BIN`, else next to `redis-server` (so that a
/// `REDIS_SERVER_BIN` build brings its own), else `PATH`.
fn find_cli(server: &Path) -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("REDIS_CLI_BIN") {
        let bin = PathBuf::from(bin);
        return bin.is_file().then_some(bin);
    }
    let sibling = server.with_file_name("redis-cli");
    if sibling.is_file() {
        return Some(sibling);
    }
    find_on_path("redis-cli")
}

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
    /// Frozen by [`RedisCluster::pause_node`] (SIGSTOP).
    Paused,
    /// Killed by [`RedisCluster::stop_node`].
    Stopped,
}

/// One node of a [`RedisCluster`], as of the call that returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNode {
    /// The node's client port on 127.0.0.1 (its bus port is `port + 10000`).
    pub port: u16,
    /// The node's cluster ID; it survives [`RedisCluster::restart_node`].
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
struct Member {
    process: RedisProcess,
    /// SIGSTOPped: the process runs but must not be asked anything, as the
    /// question would only time out.
    paused: bool,
}

impl Member {
    fn port(&self) -> u16 {
        self.process.port()
    }

    fn state(&self) -> NodeState {
        match (self.process.is_running(), self.paused) {
            (false, _) => NodeState::Stopped,
            (true, true) => NodeState::Paused,
            (true, false) => NodeState::Running,
        }
    }
}

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
    /// Starts a cluster of `primaries` primaries (at least 3), each with
    /// `replicas_per_primary` replicas, and waits until it is
    /// [ok](Self::wait_until_ok).
    ///
    /// # Panics
    /// See [`RedisClusterBuilder::start`].
    pub async fn start(primaries: usize, replicas_per_primary: usize) -> Self {
        Self::builder(primaries, replicas_per_primary).start().await
    }

    /// Options for a cluster with another node timeout or extra arguments.
    pub fn builder(primaries: usize, replicas_per_primary: usize) -> RedisClusterBuilder {
        RedisClusterBuilder {
            primaries,
            replicas_per_primary,
            node_timeout: DEFAULT_NODE_TIMEOUT,
            args: Vec::new(),
        }
    }

    /// Runs `redis-cli --cluster create` over all members.
    async fn create(&self, replicas_per_primary: usize) -> Result<(), String> {
        let mut cmd = tokio::process::Command::new(&self.cli);
        cmd.args(["--cluster", "create"])
            .args(
                self.members
                    .iter()
                    .map(|m| format!("127.0.0.1:{}", m.port())),
            )
            .args(["--cluster-replicas", &replicas_per_primary.to_string()])
            // Otherwise it asks for "yes" on stdin.
            .arg("--cluster-yes")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let output = tokio::time::timeout(CREATE_TIMEOUT, cmd.output())
            .await
            .map_err(|_| format!("redis-cli --cluster create took over {CREATE_TIMEOUT:?}"))?
            .map_err(|e| format!("run {}: {e}", self.cli.display()))?;
        if output.status.success() {
            return Ok(());
        }
        let out = String::from_utf8_lossy(&output.stdout);
        let err = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = out.lines().chain(err.lines()).rev().take(10).collect();
        Err(format!(
            "redis-cli --cluster create exited with {}: {}",
            output.status,
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }

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

    /// Kills the node on `port` (SIGKILL, like a crash). Its data is gone; its
    /// `nodes.conf` stays for [`restart_node`](Self::restart_node).
    pub fn stop_node(&mut self, port: u16) {
        let member = self.member_mut(port);
        member.process.kill();
        member.paused = false;
    }

    /// Starts the node on `port` again, killing it first if it still runs, on
    /// the same port and with the same `nodes.conf`, so it rejoins with its
    /// old identity. Returns once it answers PING: call
    /// [`wait_until_ok`](Self::wait_until_ok) to wait for it to rejoin.
    ///
    /// A restarted node is empty (no persistence). A primary whose replica
    /// took over meanwhile comes back as that replica's replica; one restarted
    /// within the node timeout is still the primary, and its replica then
    /// resyncs from it and loses the data too, as in production.
    ///
    /// # Panics
    /// When the port was taken meanwhile or the node does not come up.
    pub fn restart_node(&mut self, port: u16) {
        let member = self.member_mut(port);
        member.process.kill();
        member.paused = false;
        if let Err(e) = member.process.launch() {
            panic!("restart cluster node {port}: {e}");
        }
    }

    /// Freezes the node on `port` (SIGSTOP): connections stay open, nothing
    /// answers, and after the node timeout its peers flag it as failing.
    ///
    /// # Panics
    /// When the node is stopped.
    pub fn pause_node(&mut self, port: u16) {
        let member = self.member_mut(port);
        member.process.signal(Signal::SIGSTOP);
        member.paused = true;
    }

    /// Thaws a node frozen by [`pause_node`](Self::pause_node) (SIGCONT).
    ///
    /// # Panics
    /// When the node is stopped.
    pub fn resume_node(&mut self, port: u16) {
        let member = self.member_mut(port);
        member.process.signal(Signal::SIGCONT);
        member.paused = false;
    }

    /// Promotes a replica of the primary on `primary_port` and waits until it
    /// reports itself primary and the cluster is [ok](Self::wait_until_ok).
    /// Returns the new primary's port.
    ///
    /// A running primary hands over with a coordinated `CLUSTER FAILOVER`
    /// (no acknowledged write is lost; the old primary becomes a replica). A
    /// paused or stopped one cannot take part, so the replica is promoted with
    /// `CLUSTER FAILOVER FORCE`, which needs a majority of primaries to vote.
    ///
    /// # Panics
    /// When `primary_port` is not a primary, has no running replica (also when
    /// Redis's automatic failover already replaced a dead primary), or the
    /// failover does not complete within 30 s.
    pub async fn failover(&self, primary_port: u16) -> u16 {
        let nodes = self.nodes();
        let primary = nodes
            .iter()
            .find(|n| n.port == primary_port)
            .unwrap_or_else(|| panic!("{primary_port} is not a node of this cluster"));
        assert_eq!(
            primary.role,
            NodeRole::Primary,
            "node {primary_port} is not a primary"
        );
        let replica = nodes
            .iter()
            .find(|n| n.role == NodeRole::Replica { primary_port } && n.state == NodeState::Running)
            .unwrap_or_else(|| panic!("primary {primary_port} has no running replica to promote"))
            .port;
        let mut force = primary.state != NodeState::Running;
        let mut asked: Option<Instant> = None;
        let what = format!("replica {replica} to take over from primary {primary_port}");
        self.wait_until(&what, CONVERGE_TIMEOUT, |cluster| {
            if cluster.role_word(replica)? == "master" {
                return Ok(());
            }
            if asked.is_none_or(|at| at.elapsed() >= MANUAL_FAILOVER_RETRY) {
                let command: &[&str] = if force {
                    &["CLUSTER", "FAILOVER", "FORCE"]
                } else {
                    &["CLUSTER", "FAILOVER"]
                };
                match cluster.try_node_cmd(replica, command) {
                    Ok(Reply::Simple(_)) => asked = Some(Instant::now()),
                    Ok(Reply::Error(e)) => {
                        // "Master is down or failed, please use CLUSTER
                        // FAILOVER FORCE": the replica already flagged a
                        // primary we thought was fine (it was paused, say).
                        force |= e.contains("FORCE");
                        return Err(format!("{command:?} on node {replica}: {e}"));
                    }
                    Ok(other) => return Err(format!("{command:?} answered {other:?}")),
                    Err(e) => return Err(format!("{command:?} on node {replica}: {e}")),
                }
            }
            Err(format!("node {replica} is not a primary yet"))
        })
        .await;
        self.wait_until_ok().await;
        replica
    }

    /// Waits (up to 30 s) until the cluster is whole again, as seen from every
    /// running, unpaused node:
    /// - `CLUSTER INFO` says `cluster_state:ok`;
    /// - `CLUSTER NODES` lists exactly this cluster's nodes, flags none of the
    ///   running ones as failing, assigns all 16384 slots to running
    ///   primaries, and gives the running nodes their roles, the same way on
    ///   every node;
    /// - a replica's `ROLE` shows its replication link to its primary up.
    ///
    /// # Panics
    /// On timeout, saying which condition failed last, with each node's log tail.
    pub async fn wait_until_ok(&self) {
        self.wait_until("the cluster to be ok", CONVERGE_TIMEOUT, Self::check_ok)
            .await;
    }

    /// One round of [`wait_until_ok`](Self::wait_until_ok)'s checks: the
    /// first one to fail, as text.
    fn check_ok(&self) -> Result<(), String> {
        let all: BTreeSet<u16> = self.members.iter().map(Member::port).collect();
        let live = self.reachable_ports();
        if live.is_empty() {
            return Err("no node is running".to_owned());
        }
        // The first node's view, which every other one must match.
        let mut agreed: Option<(u16, Topology)> = None;
        for &port in &live {
            let state = self.info_field(port, "cluster_state")?;
            if state != "ok" {
                return Err(format!("node {port} says cluster_state:{state}"));
            }
            let view = self.view(port)?;
            let known: BTreeSet<u16> = view.lines.iter().map(|l| l.port).collect();
            if known != all {
                return Err(format!("node {port} knows nodes {known:?}, not {all:?}"));
            }
            if let Some(line) = view
                .lines
                .iter()
                .find(|l| live.contains(&l.port) && l.is_unhealthy())
            {
                return Err(format!(
                    "node {port} flags node {} as {}",
                    line.port,
                    line.flags.join(",")
                ));
            }
            let topology = view.topology(&live)?;
            if let Some(slot) = topology.owners.iter().position(|&owner| owner == 0) {
                return Err(format!("node {port} sees slot {slot} unassigned"));
            }
            if let Some(owner) = topology.owners.iter().find(|owner| !live.contains(owner)) {
                return Err(format!(
                    "node {port} sees slots served by node {owner}, which is not running"
                ));
            }
            match &agreed {
                None => agreed = Some((port, topology)),
                Some((first, first_topology)) if *first_topology != topology => {
                    return Err(format!(
                        "nodes {first} and {port} disagree: {first_topology:?} vs {topology:?}"
                    ));
                }
                Some(_) => {}
            }
            let myself = view
                .myself()
                .ok_or_else(|| format!("node {port} has no myself line"))?;
            if let Some(id) = &myself.primary_id {
                let primary = view
                    .port_of(id)
                    .ok_or_else(|| format!("node {port} replicates unknown node {id}"))?;
                // ROLE of a replica: [slave, ip, primary port, link state, offset].
                let role = self
                    .try_node_cmd(port, &["ROLE"])
                    .map_err(|e| e.to_string())?;
                let role = role.as_strings();
                let in_sync = role.first().is_some_and(|r| r == "slave")
                    && role.get(2).is_some_and(|p| *p == primary.to_string())
                    && role.get(3).is_some_and(|s| s == "connected");
                if !in_sync {
                    return Err(format!(
                        "replica {port} is not in sync with primary {primary}: ROLE {role:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Polls `check` until it succeeds; panics after `timeout` with its last
    /// complaint and every node's log tail. Sleeps asynchronously between
    /// polls, so that the test's other tasks (a client under test) keep running.
    async fn wait_until(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut(&Self) -> Result<(), String>,
    ) {
        let start = Instant::now();
        loop {
            let Err(reason) = check(self) else {
                return;
            };
            if start.elapsed() >= timeout {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("  node {}: {}", m.port(), m.process.log_tail(3)))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}: {reason}\n{}",
                    logs.join("\n")
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
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

/// One node's `CLUSTER NODES`: its view of the whole cluster.
#[derive(Debug)]
struct View {
    lines: Vec<NodeLine>,
}

impl View {
    fn myself(&self) -> Option<&NodeLine> {
        self.lines.iter().find(|l| l.has_flag("myself"))
    }

    fn node(&self, port: u16) -> Option<&NodeLine> {
        self.lines.iter().find(|l| l.port == port)
    }

    fn port_of(&self, id: &str) -> Option<u16> {
        self.lines.iter().find(|l| l.id == id).map(|l| l.port)
    }

    /// What this view says about the nodes in `live` and the slots.
    fn topology(&self, live: &[u16]) -> Result<Topology, String> {
        let mut owners = vec![0; SLOTS];
        for line in self.lines.iter().filter(|l| l.has_flag("master")) {
            for &(start, end) in &line.slots {
                for owner in &mut owners[start..=end] {
                    *owner = line.port;
                }
            }
        }
        let mut primary_of = BTreeMap::new();
        for line in self.lines.iter().filter(|l| live.contains(&l.port)) {
            let primary = match &line.primary_id {
                None => None,
                Some(id) => Some(
                    self.port_of(id)
                        .ok_or_else(|| format!("node {} replicates unknown {id}", line.port))?,
                ),
            };
            primary_of.insert(line.port, primary);
        }
        Ok(Topology { owners, primary_of })
    }
}

/// One node's idea of who does what, compared across nodes: right after
/// `--cluster create` or a failover, some still see a fresh replica as a
/// primary, and would, for one, refuse it their vote in a failover.
#[derive(PartialEq, Eq)]
struct Topology {
    /// The port of the primary serving each slot, 0 where none does.
    owners: Vec<u16>,
    /// For each running node: `None` for a primary, else its primary's port.
    primary_of: BTreeMap<u16, Option<u16>>,
}

/// Short: 16384 slot owners would drown a failure message.
impl std::fmt::Debug for Topology {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ranges: Vec<(usize, usize, u16)> = Vec::new();
        for (slot, &owner) in self.owners.iter().enumerate() {
            match ranges.last_mut() {
                Some((_, end, last)) if *last == owner => *end = slot,
                _ => ranges.push((slot, slot, owner)),
            }
        }
        f.debug_struct("Topology")
            .field("slots", &ranges)
            .field("primary_of", &self.primary_of)
            .finish()
    }
}

/// One line of `CLUSTER NODES`:
/// `<id> <ip:port@cport[,hostname]> <flags> <primary id|-> <ping-sent>
/// <pong-recv> <config-epoch> <link-state> <slot ranges...>`.
#[derive(Debug)]
struct NodeLine {
    id: String,
    port: u16,
    flags: Vec<String>,
    primary_id: Option<String>,
    /// Inclusive ranges of served slots.
    slots: Vec<(usize, usize)>,
}

impl NodeLine {
    fn parse(line: &str) -> Option<Self> {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (address, _bus) = fields.get(1)?.split_once('@')?;
        let port = address.rsplit_once(':')?.1.parse().ok()?;
        let primary_id = match *fields.get(3)? {
            "-" => None,
            id => Some(id.to_owned()),
        };
        let slots = fields
            .get(8..)
            .unwrap_or_default()
            .iter()
            // `[slot->-id]` and `[slot-<-id]` are migrations in progress, not
            // ownership.
            .filter(|field| !field.starts_with('['))
            .map(|field| {
                let (start, end) = field.split_once('-').unwrap_or((field, field));
                Some((start.parse().ok()?, end.parse().ok()?))
            })
            .collect::<Option<Vec<(usize, usize)>>>()?;
        if slots
            .iter()
            .any(|&(start, end)| start > end || end >= SLOTS)
        {
            return None;
        }
        Some(Self {
            id: (*fields.first()?).to_owned(),
            port,
            flags: fields.get(2)?.split(',').map(str::to_owned).collect(),
            primary_id,
            slots,
        })
    }

    fn has_flag(&self, flag: &str) -> bool {
        self.flags.iter().any(|f| f == flag)
    }

    /// Flagged as failing (`fail`, or `fail?` for "this node cannot reach
    /// it"), or not (yet) a full member.
    fn is_unhealthy(&self) -> bool {
        ["fail", "fail?", "handshake", "noaddr"]
            .iter()
            .any(|flag| self.has_flag(flag))
    }

    fn slot_count(&self) -> usize {
        self.slots.iter().map(|(start, end)| end - start + 1).sum()
    }
}
