//! [`TcpProxy`]: a loopback TCP proxy that can cut or stall the connections
//! it carries, to put one process on the far side of a network partition
//! while the others keep talking to the same server.
//!
//! It runs on its own thread with its own runtime, so that it keeps
//! forwarding while a test blocks its own thread (starting a process,
//! waiting on a socket).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::wait::wait_for_sync;

/// What the proxy does with its connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Bytes flow both ways.
    Forward,
    /// Every connection is closed, and new ones are closed at once: a
    /// partition the peers notice (a reset, a refused connection).
    Cut,
    /// Connections stay open but nothing flows either way, and new ones are
    /// accepted and left silent: a partition nobody is told about (a dropped
    /// flow, a blackholed route).
    Stall,
    /// The proxy is being dropped.
    Stop,
}

/// A proxy from a free loopback port to `127.0.0.1:{upstream}`. Dropping it
/// closes everything it carries.
#[derive(Debug)]
pub struct TcpProxy {
    port: u16,
    mode: watch::Sender<Mode>,
    open: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl TcpProxy {
    /// Starts forwarding to `127.0.0.1:{upstream}`.
    ///
    /// # Panics
    /// When no loopback port can be bound or no runtime can be built.
    pub fn start(upstream: u16) -> Self {
        let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let (mode, modes) = watch::channel(Mode::Forward);
        let open = Arc::new(AtomicUsize::new(0));
        let counted = open.clone();
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, upstream));
        let thread = std::thread::Builder::new()
            .name(format!("tcp-proxy-{port}"))
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(accept_loop(listener, upstream, modes, counted));
            })
            .expect("spawn the proxy thread");
        Self {
            port,
            mode,
            open,
            thread: Some(thread),
        }
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every connection and refuses new ones (each is accepted and
    /// closed at once) until [`restore`](Self::restore). Returns once every
    /// carried connection is closed.
    ///
    /// # Panics
    /// When the connections are not closed within 5 s.
    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
        wait_for_sync(
            "the proxy to close its connections",
            Duration::from_secs(5),
            || self.open.load(Ordering::Acquire) == 0,
        );
    }

    /// Stops forwarding in both directions without closing anything: peers
    /// see silence, not an error. New connections are accepted and stay
    /// silent too.
    pub fn stall(&self) {
        self.mode.send_replace(Mode::Stall);
    }

    /// Forwards again. Connections from before a cut or stall are closed
    /// (their flows are gone); new ones are forwarded.
    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }

    /// Connections the proxy carries now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.mode.send_replace(Mode::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn accept_loop(
    listener: std::net::TcpListener,
    upstream: SocketAddr,
    mut modes: watch::Receiver<Mode>,
    open: Arc<AtomicUsize>,
) {
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            changed = modes.changed() => {
                if changed.is_err() || *modes.borrow() == Mode::Stop {
                    break;
                }
            }
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                let mode = *modes.borrow();
                match mode {
                    Mode::Forward | Mode::Stall => {
                        open.fetch_add(1, Ordering::AcqRel);
                        let guard = Counted(open.clone());
                        connections.spawn(carry(client, upstream, modes.clone(), mode, guard));
                    }
                    Mode::Cut | Mode::Stop => drop(client),
                }
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    connections.abort_all();
    while connections.join_next().await.is_some() {}
}

/// Decrements the open-connection count when a connection task ends.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Carries one connection until it ends or the mode changes.
async fn carry(
    mut client: TcpStream,
    upstream: SocketAddr,
    mut modes: watch::Receiver<Mode>,
    born: Mode,
    _counted: Counted,
) {
    if born == Mode::Stall {
        // Accepted while stalled: silent until the mode changes, then closed.
        let _ = modes.changed().await;
        return;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else {
        let _ = client.shutdown().await;
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        () = until_not_forwarding(&mut modes) => {
            if *modes.borrow() == Mode::Stall {
                // Hold both sockets open, moving nothing, until the next change.
                let _ = modes.changed().await;
            }
        }
    }
}

async fn until_not_forwarding(modes: &mut watch::Receiver<Mode>) {
    while *modes.borrow_and_update() == Mode::Forward {
        if modes.changed().await.is_err() {
            return;
        }
    }
}
