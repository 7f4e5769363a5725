//! Owning the tasks behind a set of fred clients: their connection tasks and
//! our watchers. Shared by the pool and by each subscriber client.
//!
//! Dropping a [`Supervisor`] aborts every task it owns (fred's connection
//! tasks hold their own references and would otherwise keep reconnecting
//! forever); [`Supervisor::shutdown`] first asks politely with `QUIT`.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::interfaces::{ClientLike, EventInterface};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::warn;

use crate::monitor::{Monitor, Watcher};
use crate::outage::Role;

/// How long [`crate::RedisConnectionManager::shutdown`] (and a subscriber's)
/// waits for connections to close before aborting them.
pub const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(crate) struct Supervisor {
    pub(crate) monitor: Arc<Monitor>,
    watchers: Mutex<Vec<JoinHandle<()>>>,
    connection_tasks: Vec<AbortHandle>,
}

impl Supervisor {
    /// Subscribes to each client's events, then connects it. Must run inside
    /// a tokio runtime.
    pub(crate) fn start<C>(
        role: Role,
        clients: &[C],
        event_capacity: usize,
        command_timeout: Duration,
    ) -> Self
    where
        C: ClientLike + EventInterface + Clone + Send + Sync + 'static,
    {
        let monitor = Arc::new(Monitor::new(
            role,
            clients.len(),
            event_capacity,
            command_timeout,
        ));
        let mut watchers = Vec::with_capacity(clients.len());
        let mut connection_tasks = Vec::with_capacity(clients.len());
        for (index, client) in clients.iter().enumerate() {
            // Subscribe before connect(), so the first connection's event is seen.
            let watcher = Watcher::subscribe(client.clone());
            let task = client.connect();
            connection_tasks.push(task.abort_handle());
            watchers.push(watcher.spawn(monitor.clone(), index, task));
        }
        Self {
            monitor,
            watchers: Mutex::new(watchers),
            connection_tasks,
        }
    }

    /// Sends `QUIT` through `quit`, then waits for every task to end, all
    /// within `deadline`; whatever is still running then is aborted.
    pub(crate) async fn shutdown<F>(&self, quit: F, deadline: Duration)
    where
        F: Future<Output = Result<(), fred::error::Error>>,
    {
        self.monitor.begin_shutdown();
        let watchers = std::mem::take(&mut *self.watchers.lock().expect("watchers lock"));
        let graceful = async {
            if let Err(e) = quit.await {
                warn!(error = %e, "QUIT failed during shutdown");
            }
            for watcher in watchers {
                let _ = watcher.await;
            }
        };
        if tokio::time::timeout(deadline, graceful).await.is_err() {
            warn!(
                ?deadline,
                "Redis connections did not close in time; aborting them"
            );
        }
        self.abort_all();
        self.monitor.mark_all_stopped();
    }

    fn abort_all(&self) {
        // Watchers first: they would otherwise see their connection task
        // end and report a client that "stopped reconnecting".
        self.monitor.begin_shutdown();
        if let Ok(watchers) = self.watchers.lock() {
            for watcher in watchers.iter() {
                watcher.abort();
            }
        }
        for task in &self.connection_tasks {
            task.abort();
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.abort_all();
    }
}
