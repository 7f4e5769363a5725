//! Starting a cluster: one cluster-mode `redis-server` per node on a free
//! port, joined by `redis-cli --cluster create`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::RedisCluster;
use super::node::Member;
use crate::port::free_cluster_port;
use crate::process::{RedisProcess, find_binary, find_on_path};

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

/// `cluster-node-timeout` unless the builder says otherwise. Short, so that
/// failure detection and automatic failover take seconds, not the default 15 s;
/// not shorter, so that a loaded 2-core CI box does not see false failures.
const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_millis(1500);

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
}
