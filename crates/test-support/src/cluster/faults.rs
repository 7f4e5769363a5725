//! Fault injection (stop, restart, pause, failover) and the waits that
//! follow it: until the cluster is whole again, as every node sees it.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::RedisCluster;
use super::node::{Member, NodeRole, NodeState};
use super::nodes_text::Topology;
use crate::resp::Reply;

/// How long a cluster may take to (re)converge, and a failover to complete.
const CONVERGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Polling period of the waits. Each poll opens a few connections per node,
/// so it is coarser than [`crate::wait_for`]'s.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Redis abandons a manual failover that has not completed after 5 s
/// (`CLUSTER_MF_TIMEOUT`); past that, asking again is the only way forward.
const MANUAL_FAILOVER_RETRY: Duration = Duration::from_secs(6);

impl RedisCluster {
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
}
