//! Applying invalidations from other instances, and from any other client
//! publishing on the invalidation channels (the TypeScript services), to
//! this instance's L1, and keeping the L1 swept. Messages of ours carry
//! their place in the invalidation stream: the listener follows it, and on
//! a gap (a resubscribe, a lag, a predecessor that is not the last entry
//! applied) replays the stream instead of flushing (`replay.rs`).

use std::sync::Arc;
use std::time::Duration;

use shared_types::Invalidation;
use tracing::{debug, info, warn};

use super::feed::{InvalidationEvent, InvalidationFeed};
use super::lease_wait::LeaseWaits;
use super::replay::{Cursor, Step};
use super::stream::EntryId;
use crate::l1::L1;
use crate::stats::{Tally, add, bump, store, unix_ms};
use crate::store::Store;

/// How often expired L1 entries are reclaimed.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// Runs until the feed ends (pub/sub shut down), then leaves the L1
/// untrusted: nothing keeps it fresh any more.
pub(crate) async fn run(
    mut feed: InvalidationFeed,
    l1: Option<Arc<L1>>,
    tally: Arc<Tally>,
    own_origin: String,
    redis: Store,
    waits: Arc<LeaseWaits>,
) {
    let mut subscribed_before = false;
    // Whether the feed is subscribed is read from its state, never inferred
    // from the events read so far: a lag can drop a `Disconnected`, and a
    // backlog delays it. The session is read before each catch-up, so the
    // L1 is trusted only for a subscription that was already in place when
    // the stream was read (see l1/trust.rs).
    let state = feed.state().clone();
    if let Some(l1) = &l1 {
        l1.follow(state.clone());
    }
    let mut cursor = Cursor::default();
    let mut sweep = tokio::time::interval(SWEEP_PERIOD);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let event = tokio::select! {
            event = feed.recv() => event,
            _ = sweep.tick() => {
                if let Some(l1) = &l1 {
                    l1.sweep();
                }
                continue;
            }
        };
        let Some(event) = event else { break };
        waits.on_event(&event);
        match event {
            InvalidationEvent::Received(received) => {
                // The channel said what to invalidate; the payload says who
                // sent it only when it is ours and valid. Anything else
                // (a TypeScript service's, redis-cli's, garbage) is
                // nobody's own and is applied.
                let scope = received.invalidation.scope();
                // Its place in the stream, own messages included: the
                // stream holds every instance's announcements in order.
                // Without an L1 there is nothing to keep coherent.
                let position = l1.as_ref().and(received.position.as_ref());
                let step = position.and_then(|position| {
                    let id = EntryId::parse(&position.id)?;
                    Some(cursor.step(id, EntryId::parse(&position.prev)?))
                });
                if step == Some(Step::Gap) {
                    if let Some(l1) = &l1 {
                        // The replay applies this message too.
                        l1.trust(None);
                        let session = state.session();
                        cursor.catch_up(&redis, l1, &tally).await;
                        l1.trust(session);
                    }
                    continue;
                }
                // Our own changes were applied before they were sent, except
                // those whose outcome we never learnt: Redis delivers their
                // announcement only after running them.
                if received.is_from(&own_origin) {
                    if let Some(l1) = l1.as_ref().filter(|l1| l1.applies_own(&scope)) {
                        l1.invalidate(&scope);
                        debug!("applied an own invalidation of unknown outcome");
                    }
                    continue;
                }
                bump(&tally.invalidations_received);
                if let Some(l1) = &l1 {
                    l1.invalidate(&scope);
                    bump(&tally.invalidations_applied);
                    let now = unix_ms();
                    store(&tally.last_applied_ms, now);
                    if let Some(sent) = received.ts() {
                        store(&tally.last_delay_ms, now.saturating_sub(sent));
                    }
                }
                debug!(
                    cache.invalidation = received.invalidation.kind(),
                    foreign = received.origin().is_none(),
                    "applied a remote invalidation"
                );
            }
            InvalidationEvent::Unreadable(unreadable) => {
                // A newer version of the layer changed something of this
                // tenant in a way this one cannot read: drop all of it.
                bump(&tally.invalidations_unreadable);
                if let Some(l1) = &l1 {
                    let tenant = Invalidation::Tenant {
                        tenant_id: unreadable.tenant_id,
                    };
                    l1.invalidate(&tenant.scope());
                    store(&tally.last_applied_ms, unix_ms());
                }
                info!(
                    reason = ?unreadable.reason,
                    "an invalidation from a newer version could not be read; its tenant was dropped from the L1"
                );
            }
            InvalidationEvent::Subscribed => {
                if let Some(l1) = &l1 {
                    let session = state.session();
                    if subscribed_before {
                        // Invalidations sent while we were not subscribed
                        // were lost on the channel, not in the stream.
                        cursor.catch_up(&redis, l1, &tally).await;
                    } else {
                        // Starting: nothing in the L1 predates this.
                        cursor = Cursor::start(&redis).await;
                        l1.flush();
                    }
                    // `None` when it was lost again meanwhile: its
                    // `Disconnected` is on its way, or was lost to a lag.
                    l1.trust(session);
                }
                subscribed_before = true;
            }
            InvalidationEvent::Disconnected => {
                if let Some(l1) = &l1 {
                    l1.trust(None);
                }
                // INFO: what it means for the cache; the connection's loss
                // itself is the connection layer's WARN.
                info!("invalidation feed disconnected; reading through to Redis until it is back");
            }
            InvalidationEvent::Lagged { missed } => {
                add(&tally.invalidations_missed, missed);
                if let Some(l1) = &l1 {
                    // The lag may have dropped a `Disconnected`: trust only
                    // a feed subscribed before the stream is read.
                    l1.trust(None);
                    let session = state.session();
                    cursor.catch_up(&redis, l1, &tally).await;
                    l1.trust(session);
                }
                warn!(
                    missed,
                    "invalidation feed lagged; caught up from the stream"
                );
            } // No catch-all: the feed is this crate's, so a new event kind
              // fails to compile here until it is handled.
        }
    }
    if let Some(l1) = &l1 {
        l1.trust(None);
    }
    debug!("invalidation listener stopped");
}
