//! Applying invalidations from other instances, and from any other client
//! publishing on the invalidation channels (the TypeScript services), to
//! this instance's L1, and keeping the L1 swept.

use std::sync::Arc;
use std::time::Duration;

use redis_pubsub::{InvalidationEvent, InvalidationFeed};
use shared_types::Invalidation;
use tracing::{debug, info, warn};

use crate::l1::L1;
use crate::stats::{Tally, add, bump, store, unix_ms};

/// How often expired L1 entries are reclaimed.
const SWEEP_PERIOD: Duration = Duration::from_secs(1);

/// Runs until the feed ends (pub/sub shut down), then leaves the L1
/// untrusted: nothing keeps it fresh any more.
pub(crate) async fn run(
    mut feed: InvalidationFeed,
    l1: Option<Arc<L1>>,
    tally: Arc<Tally>,
    own_origin: String,
) {
    let mut subscribed_before = false;
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
        match event {
            InvalidationEvent::Received(received) => {
                // The channel said what to invalidate; the payload says who
                // sent it only when it is ours and valid. Anything else
                // (a TypeScript service's, redis-cli's, garbage) is
                // nobody's own and is applied.
                let scope = received.invalidation.scope();
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
                    // Invalidations sent while we were not subscribed are lost:
                    // nothing in the L1 can be trusted. Flush, then trust again.
                    l1.flush();
                    if subscribed_before {
                        bump(&tally.l1_flushes);
                        info!("invalidation feed re-subscribed; L1 flushed");
                    }
                    l1.set_live(true);
                }
                subscribed_before = true;
            }
            InvalidationEvent::Disconnected => {
                if let Some(l1) = &l1 {
                    l1.set_live(false);
                }
                // INFO: what it means for the cache; the connection's loss
                // itself is the connection layer's WARN.
                info!("invalidation feed disconnected; reading through to Redis until it is back");
            }
            InvalidationEvent::Lagged { missed } => {
                add(&tally.invalidations_missed, missed);
                if let Some(l1) = &l1 {
                    l1.flush();
                    bump(&tally.l1_flushes);
                }
                warn!(missed, "invalidation feed lagged; L1 flushed");
            }
            // Future events of the feed: none can be ignored safely without
            // knowing it, so the L1 is not trusted with them.
            _ => {
                if let Some(l1) = &l1 {
                    l1.flush();
                    bump(&tally.l1_flushes);
                }
                warn!("unknown invalidation feed event; L1 flushed");
            }
        }
    }
    if let Some(l1) = &l1 {
        l1.set_live(false);
    }
    debug!("invalidation listener stopped");
}
