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
//! **Refusals.** Redis refuses a SUBSCRIBE naming a channel the ACL user
//! has no rights on, the whole command. A route refused at its first
//! subscription is dropped and its caller gets `PubSubError::Refused`; a
//! re-subscription refused later (the user's rights changed) stays,
//! unconfirmed, retried every tick, logged once and counted
//! (`PubSubStats::refusals`). Either way the other routes are subscribed
//! one by one, so that one forbidden channel does not silence the rest.
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
use redis_connection::fred::types::config::Options;
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
    /// A heartbeat is in flight (at most one at a time).
    pub(crate) beating: AtomicBool,
    /// How long a heartbeat may wait for its answer: twice the command
    /// timeout, at least a second, so that a busy machine is not taken for
    /// a hung peer (a false alarm costs a resubscription and an L1 that
    /// distrusts itself until then).
    pub(crate) heartbeat_timeout: Duration,
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
/// unnoticed. A PING now and then asks it to answer (see [`heartbeat`]).
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
                    report_refused(&shared, &resync(&shared).await);
                }
                Ok(ConnectionEvent::Disconnected { .. } | ConnectionEvent::Unresponsive { .. } | ConnectionEvent::GaveUp { .. }) => {
                    disconnected(&shared);
                }
                // Connection events we did not see may include a reconnect:
                // assume the worst and subscribe everything again.
                Ok(ConnectionEvent::Missed { .. }) | Err(RecvError::Lagged(_)) => {
                    disconnected(&shared);
                    report_refused(&shared, &resync(&shared).await);
                }
                Err(RecvError::Closed) => break,
            },
            _ = tick.tick() => {
                if shared.subscriber_connected() {
                    // fred re-read the topology without connecting a new node.
                    if shared.home.moved(shared.client()) {
                        disconnected(&shared);
                    }
                    report_refused(&shared, &resync(&shared).await);
                    ticks = ticks.wrapping_add(1);
                    if ticks.is_multiple_of(HEARTBEAT_EVERY)
                        && !shared.beating.swap(true, Ordering::AcqRel)
                    {
                        // Its own task: the pump stays free while it waits.
                        tokio::spawn(heartbeat(shared.clone()));
                    }
                }
            }
        }
    }
    debug!("pub/sub pump stopped");
}

/// One PING home, bounded by [`Shared::heartbeat_timeout`]. Unanswered while the
/// connection claims to be up, the subscriptions are treated as lost (their
/// holders hear `Disconnected` at once, so an L1 stops trusting them) and
/// the connection is replaced.
///
/// fred's own check is not enough: it closes a connection only when a
/// command has waited twice the command timeout *since the last write*, and
/// each heartbeat is a write, so with a command timeout above half the
/// heartbeat period a hung peer was never noticed (FRED-NOTES.md).
async fn heartbeat(shared: Arc<Shared>) {
    let client = shared.client();
    let options = Options {
        timeout: Some(shared.heartbeat_timeout),
        ..Home::options(client)
    };
    let answered: Result<(), _> = client.with_options(&options).ping(None).await;
    if let Err(error) = answered
        && shared.subscriber_connected()
    {
        warn!(%error, "pub/sub connection did not answer its heartbeat; replacing it");
        disconnected(&shared);
        if let Err(error) = client.force_reconnection().await {
            debug!(%error, "pub/sub reconnection after a missed heartbeat failed; fred retries");
        }
    }
    shared.beating.store(false, Ordering::Release);
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

/// Subscribes every route not yet confirmed; returns the routes the server
/// refused (an ACL user without rights on them), for the caller to report:
/// a first subscription's refusal is its caller's error (`PubSub::add`),
/// a later one a WARN ([`report_refused`]).
pub(crate) async fn resync(shared: &Shared) -> Vec<(Kind, String)> {
    let _serialised = shared.resync_lock.lock().await;
    let (channels, patterns) = shared.routes().inactive();
    if channels.is_empty() && patterns.is_empty() {
        return Vec::new();
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
    let mut refused = Vec::new();
    for (kind, names) in [(Kind::Channel, channels), (Kind::Pattern, patterns)] {
        if names.is_empty() {
            continue;
        }
        match subscribe_all(shared, kind, names).await {
            Ok(denied) => refused.extend(denied.into_iter().map(|name| (kind, name))),
            Err(error) => {
                restored = false;
                debug!(%error, "subscribing failed; will retry");
            }
        }
    }
    if restored {
        // Where the confirmed routes now live, refused ones or not: a
        // move of this home must still be noticed.
        shared.home.record(client);
    }
    if restored && refused.is_empty() {
        shared.refused.store(false, Ordering::Relaxed);
        if shared.lost.swap(false, Ordering::AcqRel) {
            bump(&shared.counters.resubscriptions);
        }
        debug!("subscriptions restored");
    }
    refused
}

/// Subscribes `names` of one kind and activates those the server
/// confirms; returns those it refused. Redis refuses a whole SUBSCRIBE
/// when the user may not have one of its channels, so after a refusal each
/// name is tried on its own: one forbidden channel must not keep the
/// permitted ones from being heard. `Err`: a failure that is not a
/// refusal (the connection), for the next tick to retry.
async fn subscribe_all(
    shared: &Shared,
    kind: Kind,
    names: Vec<String>,
) -> Result<Vec<String>, Error> {
    match subscribe(shared, kind, names.clone()).await {
        Ok(()) => return Ok(Vec::new()),
        Err(error) if !is_refusal(&error) => return Err(error),
        Err(_) if names.len() == 1 => return Ok(names),
        Err(_) => {}
    }
    let mut refused = Vec::new();
    for name in names {
        match subscribe(shared, kind, vec![name.clone()]).await {
            Ok(()) => {}
            Err(error) if is_refusal(&error) => refused.push(name),
            Err(error) => return Err(error),
        }
    }
    Ok(refused)
}

/// One SUBSCRIBE or PSUBSCRIBE of `names`, activated once confirmed.
async fn subscribe(shared: &Shared, kind: Kind, names: Vec<String>) -> Result<(), Error> {
    let client = shared.client();
    let sent = match kind {
        Kind::Channel => Box::pin(confirmed(client, client.subscribe(names.clone()))).await,
        Kind::Pattern => Box::pin(confirmed(client, client.psubscribe(names.clone()))).await,
    };
    sent.map(|()| shared.routes().activate(kind, &names))
}

/// Whether the server refused for lack of rights (`NOPERM`), which no
/// retry mends until an operator changes the user's ACL.
fn is_refusal(error: &Error) -> bool {
    error.details().contains("NOPERM")
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

/// Reports re-subscriptions the server refused: once at WARN, and counted
/// ([`crate::PubSubStats::refusals`]), until every route is confirmed again
/// (they are retried every tick, and refused every tick until the user's
/// ACL changes). The routes stay, unconfirmed: their holders read from
/// their state that they hear nothing.
pub(crate) fn report_refused(shared: &Shared, refused: &[(Kind, String)]) {
    if refused.is_empty() || shared.refused.swap(true, Ordering::Relaxed) {
        return;
    }
    bump(&shared.counters.refusals);
    let names: Vec<&str> = refused.iter().map(|(_, name)| name.as_str()).collect();
    warn!(
        refused = ?names,
        "Redis refused to subscribe again (ACL: no rights on these channels); nothing is heard on them and nothing is trusted from them; will retry"
    );
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
