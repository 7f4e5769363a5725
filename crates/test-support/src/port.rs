//! Free loopback ports.

use std::net::TcpListener;

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
        if is_free(port) && bus_free {
            return port;
        }
    }
    panic!("no free loopback port found in {range:?} after 1000 tries");
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
