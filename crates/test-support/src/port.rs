//! Free loopback ports.

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Mutex;

/// Redis Cluster's bus port is the client port plus this.
const BUS_OFFSET: u16 = 10_000;

/// Picks a port that is free on 127.0.0.1, for a single server.
///
/// Ports are drawn at random rather than asked of the OS: the OS hands out
/// ephemeral ports sequentially, so parallel tests that bind and release
/// would often be handed the same one before redis-server binds it. Where
/// the OS allows, they come from above the ephemeral range (outgoing
/// connections never take them, so a stopped server can be restarted on its
/// port) and so never meet cluster ports, which lie below it.
///
/// A port handed out stays reserved for this process until it exits (a
/// lock file under the temporary directory, taken by `reserve`): nextest runs
/// each test in a process of its own, and a test that stops its server to
/// simulate an outage must not see another test's server start on that
/// port meanwhile and answer its commands.
pub fn free_port() -> u16 {
    match ephemeral_range_end() {
        Some(end) if end < u16::MAX - 2_000 => free_port_in(end + 1..u16::MAX, false),
        _ => free_port_in(20_000..50_000, false),
    }
}

/// Like [`free_port`], for a cluster node: where the OS allows, both the port
/// and its bus port lie below the ephemeral range.
///
/// Why: a node's bus port would otherwise be in the range the OS assigns to
/// outgoing connections, and cluster nodes open many (each node links to
/// every other). One that takes a node's bus port as its local port makes
/// the node fail to start, or, worse, to restart after `restart_node`, where
/// the port cannot be changed.
pub(crate) fn free_cluster_port() -> u16 {
    let ephemeral_start = ephemeral_range_start().unwrap_or(32_768);
    let low = 10_000;
    match ephemeral_start.checked_sub(BUS_OFFSET) {
        // Room for a few thousand ports: enough for parallel clusters.
        Some(high) if high >= low + 2_000 => free_port_in(low..high, true),
        _ => free_port_in(20_000..50_000, true),
    }
}

/// Linux's ephemeral range (`ip_local_port_range`), when readable.
fn ephemeral_range() -> Option<(u16, u16)> {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut bounds = range.split_whitespace().map(|n| n.parse().ok());
    Some((bounds.next()??, bounds.next()??))
}

fn ephemeral_range_start() -> Option<u16> {
    ephemeral_range().map(|(start, _)| start)
}

fn ephemeral_range_end() -> Option<u16> {
    ephemeral_range().map(|(_, end)| end)
}

/// A random free port in `range`; with `bus`, its cluster bus port too.
fn free_port_in(range: std::ops::Range<u16>, bus: bool) -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(range.clone());
        let bus_free = !bus || port.checked_add(BUS_OFFSET).is_some_and(is_free);
        if is_free(port) && bus_free && reserve(port) {
            return port;
        }
    }
    panic!("no free loopback port found in {range:?} after 1000 tries");
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// The locks of the ports this process was handed, held until it exits
/// (the OS releases a lock with its process, even a killed one).
static RESERVED: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// Takes `port`'s lock file for this process; false when another process
/// (or an earlier pick of this one) holds it. Where no lock file can be
/// made, the port is taken unreserved, as before there were reservations.
fn reserve(port: u16) -> bool {
    let dir = std::env::temp_dir().join("test-support-ports");
    let path: PathBuf = dir.join(format!("{port}.lock"));
    let file = std::fs::create_dir_all(&dir).and_then(|()| {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
    });
    let Ok(file) = file else { return true };
    match file.try_lock() {
        Ok(()) => {
            RESERVED
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(file);
            true
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Many picks, none bound: each port handed out stays this process's
    // until it ends, so no pick repeats an earlier one (by chance alone, 300
    // draws from a few thousand ports would almost surely repeat one).
    #[test]
    fn a_port_handed_out_is_not_handed_out_again() {
        let mut seen = std::collections::HashSet::new();
        for _ in 0..300 {
            let port = free_port();
            assert!(seen.insert(port), "port {port} handed out twice");
        }
    }
}
