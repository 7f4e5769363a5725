//! What a subscription delivers.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

use crate::state::SubscriptionState;

/// One message, as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubSubMessage {
    /// The channel it was published on.
    pub channel: String,
    /// For a pattern subscription, the pattern that matched (fred does not
    /// report it; we match it ourselves with Redis's glob rules).
    pub pattern: Option<String>,
    /// The payload, as published.
    pub payload: Bytes,
}

/// What a [`Subscription`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PubSubEvent {
    /// A message.
    Message(PubSubMessage),
    /// The subscription is active on the server: after it was first
    /// confirmed, and again after every reconnect. Messages published while
    /// it was not active were lost.
    Subscribed,
    /// The subscriber connection dropped: messages are being lost until the
    /// next [`PubSubEvent::Subscribed`].
    Disconnected,
    /// This subscriber fell behind and `missed` messages were dropped.
    Lagged {
        /// How many were dropped.
        missed: u64,
    },
}

/// A stream of events for one channel or pattern: read it with
/// [`Subscription::recv`], or as a [`futures::Stream`] (`next`, `filter_map`,
/// `take_until`, ...). Dropping it stops delivery to it;
/// [`crate::PubSub::unsubscribe`] ends the subscription for every holder.
#[derive(Debug)]
pub struct Subscription {
    name: String,
    events: BroadcastStream<PubSubEvent>,
    /// Joined a route that was already active: its `Subscribed` went out
    /// before this receiver existed, so this one yields its own first.
    joined_active: bool,
    state: SubscriptionState,
}

impl Subscription {
    pub(crate) fn new(
        name: String,
        rx: broadcast::Receiver<PubSubEvent>,
        joined_active: bool,
        state: SubscriptionState,
    ) -> Self {
        Self {
            name,
            events: BroadcastStream::new(rx),
            joined_active,
            state,
        }
    }

    /// Whether the subscription is confirmed by the server now, whatever
    /// events this stream still has queued (see [`SubscriptionState`]).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let subscription = pubsub.subscribe("events").await?;
    /// let subscribed_now = subscription.state().is_subscribed();
    /// # Ok(())
    /// # }
    /// ```
    pub fn state(&self) -> &SubscriptionState {
        &self.state
    }

    /// The channel or pattern subscribed to.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let subscription = pubsub.subscribe("events").await?;
    /// assert_eq!(subscription.name(), "events");
    /// # Ok(())
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event; `None` once unsubscribed or shut down. A receiver that
    /// fell behind gets [`PubSubEvent::Lagged`] rather than an error: the
    /// messages are gone, the stream goes on.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// use redis_pubsub::PubSubEvent;
    ///
    /// let mut subscription = pubsub.subscribe("events").await?;
    /// while let Some(event) = subscription.recv().await {
    ///     match event {
    ///         PubSubEvent::Message(message) => {
    ///             let payload = message.payload;
    ///         }
    ///         PubSubEvent::Lagged { missed } => { /* `missed` messages are gone */ }
    ///         _ => {}
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn recv(&mut self) -> Option<PubSubEvent> {
        self.next().await
    }
}

/// The same events as [`Subscription::recv`], in the same order.
impl Stream for Subscription {
    type Item = PubSubEvent;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<PubSubEvent>> {
        let this = self.get_mut();
        if std::mem::take(&mut this.joined_active) {
            return Poll::Ready(Some(PubSubEvent::Subscribed));
        }
        Poll::Ready(
            ready!(this.events.poll_next_unpin(cx)).map(|event| match event {
                Ok(event) => event,
                Err(BroadcastStreamRecvError::Lagged(missed)) => PubSubEvent::Lagged { missed },
            }),
        )
    }
}
