//! Applying other instances' invalidations to this instance's L1.

use std::sync::Arc;

use redis_pubsub::{InvalidationEvent, InvalidationFeed};
use tracing::{debug, info, warn};

use crate::l1::L1;
use crate::stats::{Counters, bump};

/// Runs until the feed ends (pub/sub shut down), then leaves the L1
/// untrusted: nothing keeps it fresh any more.
pub(crate) async fn run(
    mut feed: InvalidationFeed,
    l1: Option<Arc<L1>>,
    counters: Arc<Counters>,
    own_id: String,
) {
    let mut subscribed_before = false;
    while let Some(event) = feed.recv().await {
        match event {
            InvalidationEvent::Received(message) => {
                // Our own invalidations were applied before they were sent.
                if message.origin == own_id {
                    continue;
                }
                bump(&counters.invalidations_received);
                if let Some(l1) = &l1 {
                    l1.invalidate(&message.invalidation.scope());
                    bump(&counters.invalidations_applied);
                }
                debug!(
                    cache.invalidation = message.invalidation.kind(),
                    "applied a remote invalidation"
                );
            }
            InvalidationEvent::Subscribed => {
                if let Some(l1) = &l1 {
                    // Invalidations sent while we were not subscribed are lost:
                    // nothing in the L1 can be trusted. Flush, then trust again.
                    l1.flush();
                    if subscribed_before {
                        bump(&counters.l1_flushes);
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
                warn!("invalidation feed disconnected; reading through to Redis until it is back");
            }
            InvalidationEvent::Lagged { missed } => {
                if let Some(l1) = &l1 {
                    l1.flush();
                    bump(&counters.l1_flushes);
                }
                warn!(missed, "invalidation feed lagged; L1 flushed");
            }
        }
    }
    if let Some(l1) = &l1 {
        l1.set_live(false);
    }
    debug!("invalidation listener stopped");
}
