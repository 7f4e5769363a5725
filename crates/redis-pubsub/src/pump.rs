//! The one task that reads the subscriber connection: it routes messages to
//! subscriptions, and restores every subscription after a reconnect.
//!
//! **Reconnects.** Messages published while the subscriber is disconnected
//! are lost (pub/sub is fire-and-forget), and the server forgets our
//! subscriptions. On `Disconnected` every subscription is told so (the L1
//! stops trusting itself); on `Connected` everything is subscribed again and
//! each subscription receives `Subscribed` once the server confirmed it. A
//! tick also re-subscribes anything still unconfirmed, covering events we
//! may have missed.
//!
//! **Clusters.** Subscriptions live on one node, which a failover or a
//! resharding can move without an error: see `home.rs`.
//!
//! **Patterns.** fred drops the pattern of a `pmessage`, so we match the
//! channel against our patterns with Redis's glob rules. When several of our
//! patterns match one channel, Redis sends one `pmessage` per pattern, back
//! to back on this connection; we deliver the first to every matching
//! pattern and skip the copies.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use redis_connection::ConnectionEvent;
use redis_connection::fred::clients::SubscriberClient;
use redis_connection::fred::error::Error;
use redis_connection::fred::interfaces::{ClientLike, PubsubInterface};
use redis_connection::fred::types::{Message, MessageKind};
use shared_types::glob_match;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

use crate::home::Home;
use crate::message::{PubSubEvent, PubSubMessage};
use crate::routes::{Kind, Routes};
use crate::stats::{Counters, add, bump};

/// The state a [`crate::PubSub`] shares with its pump task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) client: SubscriberClient,
    pub(crate) routes: Mutex<Routes>,
    pub(crate) counters: Counters,
    pub(crate) instance_id: String,
    pub(crate) capacity: usize,
    /// Serialises re-subscriptions, so that a route is confirmed (and its
    /// holders told) once, whoever triggered it.
    pub(crate) resync_lock: tokio::sync::Mutex<()>,
    /// On a cluster, the node the subscriptions live on (see home.rs).
    pub(crate) home: Home,
    /// Confirmed subscriptions were lost and not yet restored: the next
    /// restoring resync is a resubscription. A first subscription (or a new
    /// route added later) is not one, so `resubscriptions` counts losses.
    pub(crate) lost: AtomicBool,
    /// The server refused a subscription and that was logged; cleared once
    /// every route is confirmed, so a new refusal is logged again.
    pub(crate) refused: AtomicBool,
}

impl Shared {
    pub(crate) fn routes(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().expect("routes lock")
    }

    pub(crate) fn client(&self) -> &SubscriberClient {
        &self.client
    }

    pub(crate) fn subscriber_connected(&self) -> bool {
        self.client.is_connected()
    }
}

const RESYNC_EVERY: Duration = Duration::from_millis(250);

/// A subscribed connection is silent when nobody publishes, so a peer that
/// vanished without a TCP reset (a dropped flow, a hung server) would go
/// unnoticed: fred only detects unresponsive connections by unanswered
/// commands. A PING now and then gives it one to wait for.
const HEARTBEAT_EVERY: u32 = 4; // ticks: about once a second

/// Copies of a `pmessage` still to be skipped.
struct PendingCopies {
    channel: String,
    payload: Bytes,
    remaining: usize,
}

pub(crate) async fn run(
    shared: Arc<Shared>,
    mut messages: broadcast::Receiver<Message>,
    mut events: broadcast::Receiver<ConnectionEvent>,
) {
    let mut copies: Option<PendingCopies> = None;
    let mut ticks: u32 = 0;
    let mut tick = tokio::time::interval(RESYNC_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = messages.recv() => match message {
                Ok(message) => dispatch(&shared, message, &mut copies),
                Err(RecvError::Lagged(missed)) => {
                    add(&shared.counters.lagged, missed);
                    warn!(missed, "pub/sub subscriber fell behind; messages were dropped");
                    shared.routes().broadcast(&PubSubEvent::Lagged { missed });
                }
                Err(RecvError::Closed) => break,
            },
            event = events.recv() => match event {
                Ok(ConnectionEvent::Connected { .. }) => {
                    if shared.home.moved(shared.client()) {
                        disconnected(&shared);
                    }
                    resync(&shared).await;
                }
                Ok(ConnectionEvent::Disconnected { .. } | ConnectionEvent::Unresponsive { .. } | ConnectionEvent::GaveUp { .. }) => {
                    disconnected(&shared);
                }
                // Connection events we did not see may include a reconnect:
                // assume the worst and subscribe everything again.
                Ok(ConnectionEvent::Missed { .. }) | Err(RecvError::Lagged(_)) => {
                    disconnected(&shared);
                    resync(&shared).await;
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if shared.subscriber_connected() {
                    // fred re-read the topology without connecting a new node.
                    if shared.home.moved(shared.client()) {
                        disconnected(&shared);
                    }
                    resync(&shared).await;
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(HEARTBEAT_EVERY) {
                        let client = shared.client().clone();
                        // Fire and forget: a PING that gets no answer makes
                        // fred replace the connection; the pump stays free.
                        tokio::spawn(async move {
                            let _: Result<(), _> =
                                client.with_options(&Home::options(&client)).ping(None).await;
                        });
                    }
                }
            }
        }
    }
    debug!("pub/sub pump stopped");
}

fn disconnected(shared: &Shared) {
    let mut routes = shared.routes();
    let was_active = routes
        .channels
        .values()
        .chain(routes.patterns.values())
        .any(|r| r.active);
    routes.mark_all_inactive();
    if was_active {
        shared.lost.store(true, Ordering::Release);
        routes.broadcast(&PubSubEvent::Disconnected);
    }
}

/// Subscribes every route not yet confirmed.
pub(crate) async fn resync(shared: &Shared) {
    let _serialised = shared.resync_lock.lock().await;
    let (channels, patterns) = shared.routes().inactive();
    if channels.is_empty() && patterns.is_empty() {
        return;
    }
    let client = shared.client();
    let (old_channels, old_patterns) = {
        let routes = shared.routes();
        (
            routes.channels.keys().cloned().collect(),
            routes.patterns.keys().cloned().collect(),
        )
    };
    shared
        .home
        .leave_old(client, old_channels, old_patterns)
        .await;
    let mut restored = true;
    if !channels.is_empty() {
        match Box::pin(confirmed(client, client.subscribe(channels.clone()))).await {
            Ok(()) => shared.routes().activate(Kind::Channel, &channels),
            Err(error) => {
                restored = false;
                failed(shared, "channels", &error);
            }
        }
    }
    if !patterns.is_empty() {
        match Box::pin(confirmed(client, client.psubscribe(patterns.clone()))).await {
            Ok(()) => shared.routes().activate(Kind::Pattern, &patterns),
            Err(error) => {
                restored = false;
                failed(shared, "patterns", &error);
            }
        }
    }
    if restored {
        shared.refused.store(false, Ordering::Relaxed);
        shared.home.record(client);
        if shared.lost.swap(false, Ordering::AcqRel) {
            bump(&shared.counters.resubscriptions);
        }
        debug!(
            channels = channels.len(),
            patterns = patterns.len(),
            "subscriptions restored"
        );
    }
}

/// The server's answer to a SUBSCRIBE or PSUBSCRIBE, `sending` it.
///
/// fred answers those commands as soon as they are written (their replies
/// come out of band) and drops an error reply to them when no command waits
/// for a reply, so a refusal (an ACL user without channel rights gets
/// `NOPERM`) would read as success, and a holder would trust a feed that
/// never delivers. A PING queued home right behind it, before either is
/// written, waits on the same connection, and fred hands it the first
/// non-pub/sub reply it reads: the refusal when there was one, else its
/// PONG. Both futures are polled in order by `join`, and fred queues a
/// command when it is first polled, so nothing comes between them. (Its
/// future holds two fred commands' futures: callers box it.)
async fn confirmed(
    client: &SubscriberClient,
    sending: impl Future<Output = Result<(), Error>>,
) -> Result<(), Error> {
    let home = client.with_options(&Home::options(client));
    let (sent, answered) = tokio::join!(sending, home.ping::<()>(None));
    sent.and(answered)
}

/// Logs a failed (re)subscription: a refusal by the server once at WARN
/// (it repeats every tick until the configuration changes), anything else
/// at DEBUG (a connection problem, which the connection layer reports).
fn failed(shared: &Shared, what: &str, error: &Error) {
    if error.details().contains("NOPERM") {
        if !shared.refused.swap(true, Ordering::Relaxed) {
            warn!(%error, "Redis refused to subscribe the {what}; invalidations cannot be heard and nothing is trusted from them; will retry");
        }
    } else {
        debug!(%error, "subscribing {what} failed; will retry");
    }
}

fn dispatch(shared: &Shared, message: Message, copies: &mut Option<PendingCopies>) {
    bump(&shared.counters.received);
    let channel = message.channel.to_string();
    let payload = message.value.into_bytes().unwrap_or_default();
    let routes = shared.routes();
    match message.kind {
        MessageKind::Message | MessageKind::SMessage => {
            if let Some(route) = routes.channels.get(&channel) {
                let _ = route.tx.send(PubSubEvent::Message(PubSubMessage {
                    channel,
                    pattern: None,
                    payload,
                }));
            }
        }
        MessageKind::PMessage => {
            if let Some(pending) = copies.as_mut()
                && pending.remaining > 0
                && pending.channel == channel
                && pending.payload == payload
            {
                pending.remaining -= 1;
                return;
            }
            let matching: Vec<_> = routes
                .patterns
                .iter()
                .filter(|(p, _)| glob_match(p, &channel))
                .collect();
            *copies = (matching.len() > 1).then(|| PendingCopies {
                channel: channel.clone(),
                payload: payload.clone(),
                remaining: matching.len() - 1,
            });
            for (pattern, route) in matching {
                let _ = route.tx.send(PubSubEvent::Message(PubSubMessage {
                    channel: channel.clone(),
                    pattern: Some(pattern.clone()),
                    payload: payload.clone(),
                }));
            }
        }
    }
}
