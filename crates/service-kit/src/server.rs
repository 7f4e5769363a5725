//! The HTTP server: our own accept loop around hyper, because
//! `axum::serve` gives hyper no timer (so its header-read timeout is off),
//! caps nothing, and waits for every connection on shutdown.
//!
//! - **Header-read timeout.** hyper closes a connection whose request
//!   headers do not arrive in full within `header_read_timeout`. It starts
//!   that clock whenever it waits for a request, so the same timeout closes
//!   a keep-alive connection left idle between requests.
//! - **Connection cap.** At most `max_connections` connections are served;
//!   a connection beyond the cap is accepted and closed at once, so that
//!   neither the process's file descriptors nor the kernel's accept queue
//!   fill up with clients that send nothing.
//! - **Shutdown deadline.** On shutdown the listener is closed, every
//!   connection is asked to finish its request in flight and close, and
//!   whatever is still open after `shutdown_grace` is dropped, so that the
//!   caller can close the Redis layer and exit.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::throttle::LogThrottle;

/// Connection-level limits of the HTTP server, from the environment; the
/// default is what the environment's defaults give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ServerLimits {
    /// Longest a client may take to send a request's headers, and longest a
    /// keep-alive connection may stay idle between requests.
    pub header_read_timeout: Duration,
    /// Connections served at once; further ones are closed at once.
    pub max_connections: usize,
    /// How long shutdown waits for connections to finish before dropping them.
    pub shutdown_grace: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Setters in the manner of moka's and reqwest's builders: start from
/// [`ServerLimits::default`] and change what differs.
impl ServerLimits {
    /// Longest a client may take to send a request's headers.
    #[must_use]
    pub fn with_header_read_timeout(mut self, header_read_timeout: Duration) -> Self {
        self.header_read_timeout = header_read_timeout;
        self
    }

    /// Connections served at once.
    #[must_use]
    pub fn with_max_connections(mut self, max_connections: usize) -> Self {
        self.max_connections = max_connections;
        self
    }

    /// How long shutdown waits for connections to finish.
    #[must_use]
    pub fn with_shutdown_grace(mut self, shutdown_grace: Duration) -> Self {
        self.shutdown_grace = shutdown_grace;
        self
    }
}

/// After an accept error (out of file descriptors, say), pause before the
/// next accept instead of spinning on the same error.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(50);

/// Serves `router` on `listener` until `shutdown` completes, then stops
/// accepting, lets connections finish for at most `limits.shutdown_grace`,
/// and drops the rest.
///
/// # Errors
/// Never at present; the signature leaves room for fatal listener errors.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut connections = JoinSet::new();
    let refusals = LogThrottle::new(Duration::from_secs(10));
    let accept_errors = LogThrottle::new(Duration::from_secs(10));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            // Reap finished connections so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        if let Some(suppressed) = accept_errors.check() {
                            warn!(%error, suppressed, "accepting a connection failed");
                        }
                        tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    if let Some(suppressed) = refusals.check() {
                        warn!(
                            max_connections = limits.max_connections,
                            suppressed,
                            "connection limit reached; closing new connections"
                        );
                    }
                    drop(stream);
                    continue;
                };
                let (router, stopping) = (router.clone(), stopping.clone());
                connections.spawn(async move {
                    serve_connection(stream, router, limits, stopping).await;
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    let open = connections.len();
    let _ = stop.send(true);
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        let left = connections.len();
        info!(
            open,
            dropped = left,
            "shutdown grace over; dropping the connections still open"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
    Ok(())
}

/// Serves one connection until it ends, finishing gracefully when `stopping`
/// turns true.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: ServerLimits,
    mut stopping: watch::Receiver<bool>,
) {
    // Responses are written whole; waiting to coalesce them only adds latency.
    let _ = stream.set_nodelay(true);
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    let stop = async {
        // The guard `wait_for` returns must not live across the awaits below.
        let _ = stopping.wait_for(|stop| *stop).await;
    };
    let result = tokio::select! {
        result = connection.as_mut() => result,
        () = stop => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = result {
        // Timeouts, resets and malformed requests are the client's business.
        debug!(%error, "connection ended with an error");
    }
}
