//! The invalidation feed: every invalidation published on an invalidation
//! channel, decoded (`received.rs`), with the transport's life
//! (subscribed, disconnected, lagged) in between.
//!
//! **Receiving.** The channel is authoritative: a message on a channel that
//! parses as an invalidation channel is delivered as the channel's
//! invalidation, whatever its payload (ours, the TypeScript package's, empty,
//! garbage). The payload only adds who sent it ([`Sender`]), and only when it
//! is ours, valid, and names exactly the channel's invalidation; any other
//! payload is counted as foreign (and logged, rate-limited) but never
//! stops the invalidation, nor widens or redirects it. A message on a
//! channel that does not parse names nothing: it is counted as malformed,
//! logged (rate-limited) and skipped. Never a panic, never the end of the
//! stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis_pubsub::{PubSubEvent, PubSubMessage, Subscription, SubscriptionState};
use shared_types::Invalidation;
use tracing::{info, warn};

use super::received::{Decoded, ReceivedInvalidation, Sender, UnreadableInvalidation, decode};
use super::wire::now_ms;
use crate::stats::bump;

/// How often a malformed message, or a foreign payload, is logged (the rest
/// are only counted).
const LOG_PERIOD: Duration = Duration::from_secs(10);

/// What an [`InvalidationFeed`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidationEvent {
    /// An invalidation from anyone: any instance of this layer (this one
    /// included: see [`ReceivedInvalidation::is_from`]) or any other client
    /// publishing on an invalidation channel.
    Received(ReceivedInvalidation),
    /// An invalidation from a newer version of this layer that this one
    /// cannot read (see [`WIRE_VERSION`](crate::WIRE_VERSION)): treat its
    /// whole tenant as changed.
    Unreadable(UnreadableInvalidation),
    /// The feed is (again) subscribed; invalidations published while it was
    /// not were lost.
    Subscribed,
    /// The subscriber connection dropped; invalidations are being lost.
    Disconnected,
    /// This feed fell behind and `missed` messages were dropped.
    Lagged {
        /// How many were dropped.
        missed: u64,
    },
}

/// Every invalidation published by any instance (see
/// [`Invalidations::invalidations`](crate::Invalidations::invalidations)).
#[derive(Debug)]
pub struct InvalidationFeed {
    subscription: Subscription,
    /// Shared with the cache that reads the feed from a task, for its stats.
    counters: Arc<FeedCounters>,
    /// When a malformed message was last logged (ms since the epoch).
    malformed_logged: AtomicU64,
    /// When a foreign payload was last logged (ms since the epoch).
    foreign_logged: AtomicU64,
}

/// What a feed counted of the messages it read.
#[derive(Debug, Default)]
pub(crate) struct FeedCounters {
    malformed: AtomicU64,
    foreign: AtomicU64,
}

impl FeedCounters {
    pub(crate) fn snapshot(&self) -> FeedStats {
        FeedStats {
            malformed: self.malformed.load(Ordering::Relaxed),
            foreign_payloads: self.foreign.load(Ordering::Relaxed),
        }
    }
}

/// A snapshot of an [`InvalidationFeed`]'s counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedStats {
    /// Messages on channels under `cache:invalidate:` that name no
    /// invalidation (the channel does not parse): ignored.
    pub malformed: u64,
    /// Invalidations delivered although their payload is not ours (a
    /// TypeScript service's, empty, garbled, or ours naming another
    /// invalidation than its channel): the channel said what to invalidate.
    pub foreign_payloads: u64,
}

impl InvalidationFeed {
    pub(crate) fn new(subscription: Subscription) -> Self {
        Self {
            subscription,
            counters: Arc::default(),
            malformed_logged: AtomicU64::new(0),
            foreign_logged: AtomicU64::new(0),
        }
    }

    /// What this feed counted so far.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use redis_cache::Invalidations;
    ///
    /// let feed = pubsub.invalidations().await?;
    /// assert_eq!(feed.stats().malformed, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> FeedStats {
        self.counters.snapshot()
    }

    /// The counters, for a reader that moves the feed into a task.
    pub(crate) fn counters(&self) -> Arc<FeedCounters> {
        self.counters.clone()
    }

    /// Whether the feed is subscribed now, read directly rather than from
    /// the events still queued: trust a cache only while this names the
    /// session the cache caught up in (see [`SubscriptionState`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let feed = pubsub.invalidations().await?;
    /// let state = feed.state().clone();
    /// let hearing_everything = state.is_subscribed();
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> &SubscriptionState {
        self.subscription.state()
    }

    /// The next event, skipping (and counting) messages on channels that
    /// name no invalidation; `None` once unsubscribed or shut down.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # use redis_cache::Invalidations;
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use redis_cache::InvalidationEvent;
    ///
    /// let mut feed = pubsub.invalidations().await?;
    /// while let Some(event) = feed.recv().await {
    ///     match event {
    ///         InvalidationEvent::Received(received) if !received.is_from(pubsub.instance_id()) => {
    ///             let stale = received.invalidation;
    ///         }
    ///         // Invalidations were lost: drop whatever they might have covered.
    ///         InvalidationEvent::Disconnected | InvalidationEvent::Lagged { .. } => {}
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<InvalidationEvent> {
        loop {
            let event = match self.subscription.recv().await? {
                PubSubEvent::Message(message) => match decode(&message) {
                    Ok(Decoded::Readable(received)) => {
                        if let Sender::Foreign { reason } = received.sender {
                            self.foreign(&received.invalidation, reason);
                        }
                        InvalidationEvent::Received(received)
                    }
                    Ok(Decoded::Unreadable(unreadable)) => {
                        InvalidationEvent::Unreadable(unreadable)
                    }
                    Err(reason) => {
                        self.malformed(&message, reason);
                        continue;
                    }
                },
                PubSubEvent::Subscribed => InvalidationEvent::Subscribed,
                PubSubEvent::Disconnected => InvalidationEvent::Disconnected,
                PubSubEvent::Lagged { missed } => InvalidationEvent::Lagged { missed },
            };
            return Some(event);
        }
    }

    fn malformed(&self, message: &PubSubMessage, reason: &'static str) {
        bump(&self.counters.malformed);
        if !due(&self.malformed_logged) {
            return;
        }
        // The channel is attacker-controlled text: log its length, not its
        // content.
        let total = self.counters.malformed.load(Ordering::Relaxed);
        warn!(
            reason,
            payload_bytes = message.payload.len(),
            channel_bytes = message.channel.len(),
            malformed_total = total,
            "ignored a malformed message on an invalidation channel"
        );
    }

    /// Counts (and now and then logs) an invalidation applied although its
    /// payload is not ours: expected while the TypeScript services share
    /// Redis, so logged at info.
    fn foreign(&self, invalidation: &Invalidation, reason: &'static str) {
        bump(&self.counters.foreign);
        if !due(&self.foreign_logged) {
            return;
        }
        // The channel parsed, so its ids are valid; the payload is still
        // not logged (it is anyone's text).
        let total = self.counters.foreign.load(Ordering::Relaxed);
        info!(
            reason,
            cache.invalidation = invalidation.kind(),
            foreign_total = total,
            "applied an invalidation whose payload is not ours"
        );
    }
}

/// Whether a log line rate-limited by `last` (ms since the epoch) is due,
/// claiming it if so: at most one per [`LOG_PERIOD`], the counters have
/// the full story.
fn due(last: &AtomicU64) -> bool {
    let now = now_ms();
    let previous = last.load(Ordering::Relaxed);
    let period = u64::try_from(LOG_PERIOD.as_millis()).unwrap_or(u64::MAX);
    now.saturating_sub(previous) >= period
        && last
            .compare_exchange(previous, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}
