//! Whether a subscription is confirmed by the server *now*, read directly.
//!
//! Events say the same thing, but late: a holder that is behind on its
//! events (a slow consumer, a flood) still has `Disconnected` queued, and a
//! lag can drop it altogether. A cache that trusted its L1 on the strength
//! of the last event it read would serve from it while the feed is down and
//! invalidations are being lost. The pump changes this state before it sends
//! the matching event, so a reader of it is never behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The state of one channel's or pattern's subscription, shared by every
/// holder of it. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # use redis_pubsub::{PubSub, PubSubError};
/// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
/// let subscription = pubsub.psubscribe("events:*").await?;
/// let state = subscription.state();
/// if let Some(session) = state.session() {
///     // Subscribed; `session` changes with every loss and restoration.
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Default)]
pub struct SubscriptionState {
    /// Odd while subscribed, even while not; bumped on every change, so one
    /// value names one unbroken stretch of subscription (a *session*).
    counter: Arc<AtomicU64>,
}

impl SubscriptionState {
    /// `Some(session)` while the server has confirmed the subscription since
    /// the last loss; `None` while messages may be lost. Two reads giving
    /// the same session mean no message was lost in between.
    pub fn session(&self) -> Option<u64> {
        let counter = self.counter.load(Ordering::Acquire);
        (counter % 2 == 1).then_some(counter)
    }

    /// Whether the subscription is confirmed now.
    pub fn is_subscribed(&self) -> bool {
        self.session().is_some()
    }

    /// Moves to `subscribed`, starting a new session if it changes.
    pub(crate) fn set(&self, subscribed: bool) {
        let _ = self
            .counter
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |counter| {
                (subscribed != (counter % 2 == 1)).then_some(counter + 1)
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A loss and a restoration make a new session: the same session read
    // twice means nothing was lost in between.
    #[test]
    fn each_restoration_is_a_new_session() {
        let state = SubscriptionState::default();
        assert_eq!(state.session(), None);
        state.set(true);
        let first = state.session().unwrap();
        state.set(true);
        assert_eq!(state.session(), Some(first), "no change, same session");
        state.set(false);
        assert!(!state.is_subscribed());
        state.set(true);
        assert_ne!(state.session(), Some(first));
        assert!(state.is_subscribed());
    }
}
