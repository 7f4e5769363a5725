//! Free loopback ports.

use std::net::TcpListener;

/// Picks a port that is free on 127.0.0.1, together with `port + 10000`
/// (Redis Cluster's bus port), so the same helper serves cluster nodes.
///
/// Ports are drawn at random from 20000..50000 rather than asked of the OS:
/// the OS hands out ephemeral ports sequentially, so parallel tests that bind
/// and release would often be handed the same one before redis-server binds it.
pub fn free_port() -> u16 {
    for _ in 0..1000 {
        let port = fastrand::u16(20_000..50_000);
        if is_free(port) && is_free(port + 10_000) {
            return port;
        }
    }
    panic!("no free loopback port found in 20000..50000 after 1000 tries");
}

fn is_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok()
}
