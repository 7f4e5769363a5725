//! When the L1 may be read: only while the invalidation feed is subscribed
//! *now*, in the same unbroken subscription (session) the listener last
//! caught up in.
//!
//! The listener learns of a lost subscriber from an event, and it may be
//! behind on events (a flood) or lose them to a lag; trusting the L1 on the
//! strength of the last event read would serve from it while invalidations
//! are being lost. So every read also asks the feed's own state, which the
//! pub/sub pump changes before it sends the event: a loss stops L1 reads at
//! once, and a restoration does not resume them until the listener has
//! replayed what it missed and trusted the new session. A replay that
//! cannot read the stream yet keeps retrying (`coherence/replay.rs`), and
//! the session is trusted only once it returns: never on a failed read.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use redis_pubsub::SubscriptionState;

/// No session trusted (sessions are odd, see [`SubscriptionState`]).
const NONE: u64 = 0;
/// Trusted without a feed to ask (an L1 that follows no feed: unit tests).
#[cfg(test)]
const ALWAYS: u64 = u64::MAX;

#[derive(Debug, Default)]
pub(crate) struct Trust {
    /// The feed session the listener last caught up in, or [`NONE`].
    session: AtomicU64,
    /// The feed's state, once the listener follows one.
    feed: OnceLock<SubscriptionState>,
}

impl Trust {
    pub(crate) fn is_live(&self) -> bool {
        match self.session.load(Ordering::Acquire) {
            NONE => false,
            session => self
                .feed
                .get()
                .is_none_or(|feed| feed.session() == Some(session)),
        }
    }

    /// Reads are checked against `feed` from now on.
    pub(crate) fn follow(&self, feed: SubscriptionState) {
        // Set once by the one listener; a second call changes nothing.
        let _ = self.feed.set(feed);
    }

    /// Trusts the L1 for `session` (read before catching up), or not at all
    /// (`None`: the feed was not subscribed).
    pub(crate) fn trust(&self, session: Option<u64>) {
        self.session
            .store(session.unwrap_or(NONE), Ordering::Release);
    }

    /// Trusted or not, whatever the feed says (without a feed: tests).
    #[cfg(test)]
    pub(crate) fn set(&self, live: bool) {
        let session = if live { ALWAYS } else { NONE };
        self.session.store(session, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Once a feed is followed its state decides: while it is not
    // subscribed nothing makes the L1 live. (Sessions of a subscribed feed
    // are covered by the integration tests, with a real subscriber.)
    #[test]
    fn a_followed_feed_that_is_not_subscribed_keeps_the_l1_untrusted() {
        let trust = Trust::default();
        assert!(!trust.is_live(), "untrusted until told");
        trust.set(true);
        assert!(trust.is_live(), "no feed followed: trusted as told");
        trust.follow(SubscriptionState::default());
        assert!(!trust.is_live());
        trust.trust(Some(1));
        assert!(!trust.is_live(), "session 1 is not the feed's");
    }
}
