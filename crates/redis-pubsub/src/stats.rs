//! Pub/sub counters.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) published: AtomicU64,
    pub(crate) received: AtomicU64,
    pub(crate) lagged: AtomicU64,
    pub(crate) resubscriptions: AtomicU64,
    pub(crate) refusals: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl Counters {
    pub(crate) fn snapshot(&self) -> PubSubStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        PubSubStats {
            published: get(&self.published),
            received: get(&self.received),
            lagged: get(&self.lagged),
            resubscriptions: get(&self.resubscriptions),
            refusals: get(&self.refusals),
        }
    }
}

/// A snapshot of a pub/sub service's counters: the transport's. What the
/// messages say (malformed or foreign invalidations) is counted by their
/// reader, redis-cache's invalidation feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PubSubStats {
    /// Messages published by this instance.
    pub published: u64,
    /// Messages received (before decoding).
    pub received: u64,
    /// Messages lost because this instance fell behind.
    pub lagged: u64,
    /// Times the subscriptions were restored after they were lost (a
    /// reconnect, a missed connection event, a moved cluster home): one a
    /// loss, however many routes; subscribing at start is not counted.
    pub resubscriptions: u64,
    /// Times Redis refused to subscribe routes again (after a reconnect,
    /// the user's ACL having changed): one a refused stretch, logged once
    /// at WARN, until every route is confirmed again. The routes stay,
    /// unconfirmed, and are retried. A refusal at a route's first
    /// subscription is its caller's error ([`crate::PubSubError::Refused`])
    /// and is not counted here.
    pub refusals: u64,
}
