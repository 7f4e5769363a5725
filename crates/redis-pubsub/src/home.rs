//! Where the subscriptions live on a Redis Cluster: their *home*.
//!
//! fred sends SUBSCRIBE and PSUBSCRIBE to the primary serving the hash slot
//! of the subscriber client's id (so that an UNSUBSCRIBE finds them), while
//! the subscriber client keeps connections to every primary. Three things
//! follow, all handled by the pump:
//!
//! - The heartbeat PING must go home ([`Home::options`]): a keyless PING goes
//!   to any node, and a hung home would go unnoticed.
//! - A topology change can move the home without any error: after a failover
//!   fred re-reads the cluster, closes the old home's connection without an
//!   error event and only reports the new node's connection; a resharding
//!   moves the home's slot to another primary. The pump asks
//!   [`Home::moved`] when a node connects and on every tick, and if so treats
//!   every subscription as lost and subscribes again.
//! - An old home that is still a primary keeps its subscriptions and would
//!   deliver every message twice: [`Home::leave_old`] unsubscribes there first.
//!
//! Off a cluster there is no home and all of this does nothing.

use std::sync::Mutex;

use redis_connection::fred::clients::SubscriberClient;
use redis_connection::fred::interfaces::{ClientLike, ClusterInterface, PubsubInterface};
use redis_connection::fred::types::ClusterHash;
use redis_connection::fred::types::config::{Options, Server};
use redis_connection::fred::util::redis_keyslot;
use tracing::debug;

/// The node our confirmed subscriptions were made on.
#[derive(Debug, Default)]
pub(crate) struct Home {
    subscribed_on: Mutex<Option<Server>>,
}

impl Home {
    /// Options routing a command home (no change off a cluster).
    pub(crate) fn options(client: &SubscriberClient) -> Options {
        Options {
            cluster_hash: slot(client).map(ClusterHash::Custom),
            ..Options::default()
        }
    }

    /// Whether fred would now subscribe on another node than the one our
    /// confirmed subscriptions were made on.
    pub(crate) fn moved(&self, client: &SubscriberClient) -> bool {
        let subscribed_on = self.get();
        subscribed_on.is_some() && subscribed_on != node(client)
    }

    /// Remembers where fred subscribes now, after a confirmed subscription.
    pub(crate) fn record(&self, client: &SubscriberClient) {
        *self.subscribed_on.lock().expect("home lock") = node(client);
    }

    /// Unsubscribes `channels` and `patterns` (every route) on the old home
    /// if the home moved and the old one is still a primary. Only a node
    /// fred is connected to (a primary it knows) is asked: a command for an
    /// unknown node makes fred reconnect everything. Failing leaves harmless
    /// duplicates.
    pub(crate) async fn leave_old(
        &self,
        client: &SubscriberClient,
        channels: Vec<String>,
        patterns: Vec<String>,
    ) {
        let Some(old) = self.get() else {
            return;
        };
        let primaries = client
            .cached_cluster_state()
            .map(|state| state.unique_primary_nodes())
            .unwrap_or_default();
        if node(client).as_ref() == Some(&old) || !primaries.contains(&old) {
            return;
        }
        let at_old = client.with_options(&Options {
            cluster_node: Some(old),
            ..Options::default()
        });
        if !channels.is_empty()
            && let Err(error) = at_old.unsubscribe(channels).await
        {
            debug!(%error, "leaving the old home's channels failed");
        }
        if !patterns.is_empty()
            && let Err(error) = at_old.punsubscribe(patterns).await
        {
            debug!(%error, "leaving the old home's patterns failed");
        }
    }

    fn get(&self) -> Option<Server> {
        self.subscribed_on.lock().expect("home lock").clone()
    }
}

/// The hash slot fred routes this client's SUBSCRIBE commands by, on a
/// cluster (`cluster_hash_legacy_command` in fred 10.1).
fn slot(client: &SubscriberClient) -> Option<u16> {
    client
        .is_clustered()
        .then(|| redis_keyslot(client.id().as_bytes()))
}

/// The node a SUBSCRIBE would go to now, per fred's view of the cluster.
fn node(client: &SubscriberClient) -> Option<Server> {
    let slot = slot(client)?;
    client.cached_cluster_state()?.get_server(slot).cloned()
}
