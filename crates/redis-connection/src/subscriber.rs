//! [`RedisSubscriber`]: a dedicated pub/sub connection.
//!
//! A connection in subscribed mode cannot run ordinary commands (RESP2), so
//! subscriptions never share the command pool. Each subscriber has its own
//! status and events: the pub/sub crate needs to know when *this* connection
//! dropped, because messages published meanwhile are lost.

use std::time::Duration;

use fred::clients::SubscriberClient;
use tokio::sync::{broadcast, watch};

use crate::config::RedisConfig;
use crate::error::ConnectionError;
use crate::outage::Role;
use crate::status::{ConnectionEvent, ConnectionStatus};
use crate::supervisor::{SHUTDOWN_DEADLINE, Supervisor};

/// A dedicated subscriber connection, connecting (and reconnecting) in the
/// background. Dropping it aborts its tasks.
#[derive(Debug)]
pub struct RedisSubscriber {
    client: SubscriberClient,
    supervisor: Supervisor,
}

impl RedisSubscriber {
    pub(crate) fn start(client: SubscriberClient, config: &RedisConfig) -> Self {
        let supervisor = Supervisor::start(
            Role::Subscriber,
            std::slice::from_ref(&client),
            config.event_capacity,
            config.command_timeout,
        );
        Self { client, supervisor }
    }

    /// The fred subscriber client (`subscribe`, `psubscribe`, `message_rx`, ...).
    pub fn client(&self) -> &SubscriberClient {
        &self.client
    }

    /// This connection's status.
    pub fn status(&self) -> ConnectionStatus {
        self.supervisor.monitor.status()
    }

    /// Whether this connection is up.
    pub fn is_connected(&self) -> bool {
        self.status() == ConnectionStatus::Connected
    }

    /// A receiver that sees every status change of this connection.
    pub fn watch_status(&self) -> watch::Receiver<ConnectionStatus> {
        self.supervisor.monitor.watch_status()
    }

    /// This connection's events; [`ConnectionEvent::Connected`] with
    /// `reconnect: true` means messages may have been lost.
    pub fn events(&self) -> broadcast::Receiver<ConnectionEvent> {
        self.supervisor.monitor.events()
    }

    /// Waits until connected, at most `timeout`.
    ///
    /// # Errors
    /// [`ConnectionError::Timeout`] when the deadline passes first.
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), ConnectionError> {
        let mut status = self.watch_status();
        tokio::time::timeout(
            timeout,
            status.wait_for(|s| *s == ConnectionStatus::Connected),
        )
        .await
        .map_err(|_| ConnectionError::Timeout(timeout))?
        .map(|_| ())
        .map_err(|_| ConnectionError::Shutdown)
    }

    /// Closes the connection (`QUIT`), at most [`SHUTDOWN_DEADLINE`].
    pub async fn shutdown(&self) {
        use fred::interfaces::ClientLike;
        let client = self.client.clone();
        self.supervisor
            .shutdown(async move { client.quit().await }, SHUTDOWN_DEADLINE)
            .await;
    }
}
