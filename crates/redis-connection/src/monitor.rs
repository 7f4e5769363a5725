//! Watching fred clients: one task per client turns fred's event streams into
//! our [`ConnectionStatus`] and [`ConnectionEvent`]s.
//!
//! fred's own `on_error`/`on_reconnect` helpers end silently when their
//! broadcast receiver lags. Our watcher treats `Lagged` as an event, re-reads
//! the client's state, and keeps going. It also polls the state every 100 ms,
//! because fred changes state without always announcing it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::error::Error as FredError;
use fred::interfaces::{ClientLike, EventInterface};
use fred::types::ClientState;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::error::ConnectionError;
use crate::outage::{OutageLog, Role};
use crate::status::{ConnectionEvent, ConnectionStatus};

const RECONCILE_EVERY: Duration = Duration::from_millis(100);

/// What the monitor knows about one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Slot {
    Connecting,
    Connected,
    Disconnected,
    /// The connection task ended: the policy gave up, or the client quit.
    Stopped,
}

/// Shared state of the clients of one pool (or one subscriber).
#[derive(Debug)]
pub(crate) struct Monitor {
    slots: Mutex<Vec<Slot>>,
    ever_connected: AtomicBool,
    shutting_down: AtomicBool,
    last_error: Mutex<Option<ConnectionError>>,
    status_tx: watch::Sender<ConnectionStatus>,
    events_tx: broadcast::Sender<ConnectionEvent>,
    /// Bumped on every change, so waiters can re-check conditions.
    changes_tx: watch::Sender<u64>,
    /// Changes of any client's slot so far: a connection made or lost.
    generation: AtomicU64,
    command_timeout: Duration,
    /// One WARN per outage, a summary per period, one INFO when it ends.
    outage: OutageLog,
}

impl Monitor {
    pub(crate) fn new(
        role: Role,
        clients: usize,
        event_capacity: usize,
        command_timeout: Duration,
    ) -> Self {
        Self {
            slots: Mutex::new(vec![Slot::Connecting; clients]),
            ever_connected: AtomicBool::new(false),
            shutting_down: AtomicBool::new(false),
            last_error: Mutex::new(None),
            status_tx: watch::channel(ConnectionStatus::Connecting).0,
            events_tx: broadcast::channel(event_capacity).0,
            changes_tx: watch::channel(0).0,
            generation: AtomicU64::new(0),
            command_timeout,
            outage: OutageLog::new(role),
        }
    }

    pub(crate) fn status(&self) -> ConnectionStatus {
        *self.status_tx.borrow()
    }

    pub(crate) fn watch_status(&self) -> watch::Receiver<ConnectionStatus> {
        self.status_tx.subscribe()
    }

    pub(crate) fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.events_tx.subscribe()
    }

    pub(crate) fn changes(&self) -> watch::Receiver<u64> {
        self.changes_tx.subscribe()
    }

    /// Connections made or lost so far (see
    /// `RedisConnectionManager::connection_epoch`).
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub(crate) fn slots(&self) -> Vec<Slot> {
        self.slots.lock().expect("monitor lock").clone()
    }

    pub(crate) fn last_error(&self) -> Option<ConnectionError> {
        self.last_error.lock().expect("monitor lock").clone()
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    fn set_slot(&self, index: usize, slot: Slot) -> Slot {
        let previous = {
            let mut slots = self.slots.lock().expect("monitor lock");
            std::mem::replace(&mut slots[index], slot)
        };
        if previous != slot {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        if slot == Slot::Connected {
            self.ever_connected.store(true, Ordering::SeqCst);
        }
        self.recompute();
        previous
    }

    fn recompute(&self) {
        let slots = self.slots();
        let status = if self.is_shutting_down() {
            ConnectionStatus::Disconnected
        } else if slots.contains(&Slot::Connected) {
            ConnectionStatus::Connected
        } else if !self.ever_connected.load(Ordering::SeqCst) && !slots.contains(&Slot::Stopped) {
            ConnectionStatus::Connecting
        } else {
            ConnectionStatus::Disconnected
        };
        let shutting_down = self.is_shutting_down();
        self.status_tx.send_if_modified(|current| {
            let changed = *current != status;
            if changed && !shutting_down {
                let cause = self.last_error();
                self.outage.status_changed(*current, status, cause.as_ref());
            }
            *current = status;
            changed
        });
        self.changes_tx.send_modify(|n| *n += 1);
    }

    fn emit(&self, event: ConnectionEvent) {
        // No receiver is fine: nobody is listening.
        let _ = self.events_tx.send(event);
    }

    fn record_error(&self, error: &FredError) -> ConnectionError {
        let classified = ConnectionError::from_fred(error, self.command_timeout);
        *self.last_error.lock().expect("monitor lock") = Some(classified.clone());
        classified
    }

    /// Marks everything stopped after a shutdown.
    pub(crate) fn mark_all_stopped(&self) {
        {
            let mut slots = self.slots.lock().expect("monitor lock");
            slots.iter_mut().for_each(|s| *s = Slot::Stopped);
        }
        self.recompute();
    }
}

/// fred's event receivers of one client, taken before it connects so that
/// the first connection's event cannot be missed.
pub(crate) struct Watcher<C> {
    client: C,
    errors: broadcast::Receiver<(FredError, Option<fred::types::config::Server>)>,
    reconnects: broadcast::Receiver<fred::types::config::Server>,
    unresponsive: broadcast::Receiver<fred::types::config::Server>,
}

impl<C> Watcher<C>
where
    C: ClientLike + EventInterface + Send + Sync + 'static,
{
    pub(crate) fn subscribe(client: C) -> Self {
        Self {
            errors: client.error_rx(),
            reconnects: client.reconnect_rx(),
            unresponsive: client.unresponsive_rx(),
            client,
        }
    }

    /// Runs until the client's connection task ends.
    pub(crate) fn spawn(
        self,
        monitor: Arc<Monitor>,
        index: usize,
        mut connection_task: JoinHandle<Result<(), FredError>>,
    ) -> JoinHandle<()> {
        let Self {
            client,
            mut errors,
            mut reconnects,
            mut unresponsive,
        } = self;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(RECONCILE_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut open_streams = 3;
            let outcome = loop {
                tokio::select! {
                    result = &mut connection_task => break result,
                    event = reconnects.recv(), if open_streams > 0 => match event {
                        Ok(server) => on_connected(&monitor, index, &server.to_string()),
                        Err(RecvError::Lagged(n)) => on_missed(&monitor, index, &client, n),
                        Err(RecvError::Closed) => open_streams -= 1,
                    },
                    event = errors.recv(), if open_streams > 0 => match event {
                        Ok((error, server)) => {
                            let server = server.map(|s| s.to_string());
                            on_error(&monitor, index, &client, &error, server.as_deref());
                        }
                        Err(RecvError::Lagged(n)) => on_missed(&monitor, index, &client, n),
                        Err(RecvError::Closed) => open_streams -= 1,
                    },
                    event = unresponsive.recv(), if open_streams > 0 => match event {
                        Ok(server) => on_unresponsive(&monitor, index, &server.to_string()),
                        Err(RecvError::Lagged(n)) => on_missed(&monitor, index, &client, n),
                        Err(RecvError::Closed) => open_streams -= 1,
                    },
                    _ = tick.tick() => reconcile(&monitor, index, &client),
                }
            };
            on_stopped(&monitor, index, outcome);
        })
    }
}

fn on_connected(monitor: &Monitor, index: usize, server: &str) {
    let previous = monitor.set_slot(index, Slot::Connected);
    let reconnect = previous != Slot::Connecting;
    if reconnect {
        // The end of an outage is logged once, by the status change.
        debug!(
            redis.client = index,
            redis.server = server,
            "reconnected to Redis"
        );
    } else {
        debug!(
            redis.client = index,
            redis.server = server,
            "connected to Redis"
        );
    }
    monitor.emit(ConnectionEvent::Connected {
        server: server.to_owned(),
        reconnect,
    });
}

fn on_error<C: ClientLike>(
    monitor: &Monitor,
    index: usize,
    client: &C,
    error: &FredError,
    server: Option<&str>,
) {
    if monitor.is_shutting_down() {
        return;
    }
    // Whatever fred's state says yet: the connection may be gone, and the
    // server behind it with its data (see `connection_epoch`).
    monitor.generation.fetch_add(1, Ordering::AcqRel);
    let classified = monitor.record_error(error);
    let attempt = client
        .client_reconnect_policy()
        .map(|p| (p.attempts(), p.max_attempts()));
    // During an outage each attempt is counted into the outage's summary;
    // otherwise one connection failed while others serve: worth an INFO,
    // not a WARN (the WARN is for Redis being unreachable).
    if monitor.status() == ConnectionStatus::Connecting {
        // Never connected yet (Redis was down when we started): that is an
        // outage too, though the status says "connecting" until the first
        // connection.
        monitor.outage.status_changed(
            ConnectionStatus::Connecting,
            ConnectionStatus::Disconnected,
            Some(&classified),
        );
    }
    let in_outage = monitor.outage.attempt_failed(&classified);
    match (&classified, attempt) {
        (ConnectionError::Auth { .. }, _) => {
            error!(redis.client = index, redis.server = server, error = %classified, "Redis refused our credentials");
        }
        _ if in_outage => {
            debug!(redis.client = index, redis.server = server, error = %classified, "Redis connection attempt failed");
        }
        (_, Some((attempt, max))) if client.state() != ClientState::Connected => {
            let max = if max == 0 {
                "unlimited".to_owned()
            } else {
                max.to_string()
            };
            info!(redis.client = index, redis.server = server, attempt, max_attempts = max, error = %classified, "Redis connection attempt failed, retrying with backoff");
        }
        _ => {
            info!(redis.client = index, redis.server = server, error = %classified, "Redis connection error");
        }
    }
    // A failed first attempt leaves the slot `Connecting`: the status says
    // "connecting" until the first success, "disconnected" only after a loss.
    let current = monitor.slots()[index];
    if client.state() != ClientState::Connected && current == Slot::Connected {
        monitor.set_slot(index, Slot::Disconnected);
    } else {
        monitor.recompute();
    }
    monitor.emit(ConnectionEvent::Disconnected {
        error: classified.to_string(),
    });
}

fn on_unresponsive(monitor: &Monitor, index: usize, server: &str) {
    if monitor.outage.attempt_failed(&"connection unresponsive") {
        debug!(
            redis.client = index,
            redis.server = server,
            "Redis connection unresponsive, replacing it"
        );
    } else {
        warn!(
            redis.client = index,
            redis.server = server,
            "Redis connection unresponsive, replacing it"
        );
    }
    monitor.set_slot(index, Slot::Disconnected);
    monitor.emit(ConnectionEvent::Unresponsive {
        server: server.to_owned(),
    });
}

fn on_missed<C: ClientLike>(monitor: &Monitor, index: usize, client: &C, missed: u64) {
    warn!(
        redis.client = index,
        missed, "fell behind on Redis connection events; re-reading state"
    );
    monitor.emit(ConnectionEvent::Missed { missed });
    reconcile(monitor, index, client);
}

/// Aligns our view with fred's state, which changes without an event at times.
fn reconcile<C: ClientLike>(monitor: &Monitor, index: usize, client: &C) {
    let current = monitor.slots()[index];
    if current == Slot::Stopped {
        return;
    }
    match client.state() {
        ClientState::Connected if current != Slot::Connected => {
            // A connection we did not hear about: report it like any other.
            on_connected(monitor, index, "");
        }
        ClientState::Connected => {}
        _ if current == Slot::Connected => {
            monitor.set_slot(index, Slot::Disconnected);
            monitor.emit(ConnectionEvent::Disconnected {
                error: "connection lost".to_owned(),
            });
        }
        _ => {}
    }
}

fn on_stopped(
    monitor: &Monitor,
    index: usize,
    outcome: Result<Result<(), FredError>, tokio::task::JoinError>,
) {
    monitor.set_slot(index, Slot::Stopped);
    // Aborted by the supervisor (the manager was dropped): not a failure.
    let aborted = matches!(&outcome, Err(e) if e.is_cancelled());
    if monitor.is_shutting_down() || aborted {
        return;
    }
    let error = match outcome {
        Ok(Err(e)) => monitor.record_error(&e).to_string(),
        Ok(Ok(())) => "the connection task ended".to_owned(),
        Err(e) => format!("the connection task failed: {e}"),
    };
    error!(
        redis.client = index,
        error, "Redis client stopped reconnecting"
    );
    monitor.emit(ConnectionEvent::GaveUp { error });
}
