//! [`PubSub`]: subscriptions on a dedicated connection, publishing through
//! the pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use redis_connection::fred::interfaces::{ClientLike, EventInterface, PubsubInterface};
use redis_connection::fred::types::config::Options;
use redis_connection::{ConnectionError, RedisConnectionManager, RedisOp, RedisSubscriber};
use serde::Serialize;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::error::PubSubError;
use crate::home::Home;
use crate::message::Subscription;
use crate::pump::Shared;
use crate::routes::{Kind, Route, Routes};
use crate::stats::{Counters, PubSubStats, bump};

/// How long [`PubSub::shutdown`] waits for `UNSUBSCRIBE`.
const UNSUBSCRIBE_DEADLINE: Duration = Duration::from_secs(1);

/// What this instance listens to now (the seed's channel management).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    /// Exact channels.
    pub channels: Vec<String>,
    /// Glob patterns.
    pub patterns: Vec<String>,
}

/// Publish/subscribe for one service instance. Cheap to clone.
///
/// Subscriptions live on a dedicated connection (a subscribed RESP2
/// connection cannot run other commands) and survive reconnects: after Redis
/// comes back every channel and pattern is subscribed again, and each
/// [`Subscription`] is told ([`crate::PubSubEvent::Subscribed`]), because
/// messages published meanwhile were lost. Publishing goes through the
/// connection manager's pool.
#[derive(Debug, Clone)]
pub struct PubSub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    manager: RedisConnectionManager,
    subscriber: RedisSubscriber,
    shared: Arc<Shared>,
    pump: JoinHandle<()>,
    shut_down: AtomicBool,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

impl PubSub {
    /// Starts a pub/sub service on `manager`: opens the dedicated subscriber
    /// connection (in the background) and the task that reads it.
    ///
    /// `async` because it spawns that task on the current tokio runtime:
    /// awaited inside one, it cannot be called where there is none (before,
    /// a plain function, it panicked there).
    ///
    /// # Errors
    /// When the subscriber client cannot be built (a configuration error).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use redis_connection::{RedisConfig, RedisConnectionManager};
    /// use redis_pubsub::PubSub;
    ///
    /// let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
    /// let pubsub = PubSub::new(manager).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn new(manager: RedisConnectionManager) -> Result<Self, PubSubError> {
        let subscriber = manager.subscriber()?;
        let client = subscriber.client().clone();
        let events = subscriber.events();
        let messages = client.message_rx();
        let shared = Arc::new(Shared {
            client,
            routes: Mutex::new(Routes::default()),
            counters: Counters::default(),
            instance_id: new_instance_id(),
            capacity: manager.config().event_capacity,
            resync_lock: tokio::sync::Mutex::new(()),
            home: Home::default(),
            lost: AtomicBool::new(false),
            refused: AtomicBool::new(false),
            beating: AtomicBool::new(false),
            heartbeat_timeout: (manager.config().command_timeout * 2).max(Duration::from_secs(1)),
        });
        let pump = tokio::spawn(crate::pump::run(shared.clone(), messages, events));
        info!(pubsub.instance = %shared.instance_id, "pub/sub started");
        Ok(Self {
            inner: Arc::new(Inner {
                manager,
                subscriber,
                shared,
                pump,
                shut_down: AtomicBool::new(false),
            }),
        })
    }

    /// This instance's id: random (128 bits as hex), for a protocol on top
    /// that needs to tell its instances apart (redis-cache's invalidations
    /// carry it, so that an instance can recognise its own).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let me = pubsub.instance_id().to_owned();
    /// # Ok(())
    /// # }
    /// ```
    pub fn instance_id(&self) -> &str {
        &self.inner.shared.instance_id
    }

    /// The dedicated subscriber connection (its status and events).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let connected = pubsub.subscriber().is_connected();
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscriber(&self) -> &RedisSubscriber {
        &self.inner.subscriber
    }

    /// Counters since start.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let stats = pubsub.stats();
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> PubSubStats {
        self.inner.shared.counters.snapshot()
    }

    /// Subscribes to `channel`. The returned stream yields
    /// [`crate::PubSubEvent::Subscribed`] once the server confirms, which is
    /// at once when Redis is up; while it is not, the subscription is kept and
    /// made when Redis comes back.
    ///
    /// # Errors
    /// [`PubSubError::InvalidName`] for an empty name,
    /// [`PubSubError::Shutdown`] after [`shutdown`](Self::shutdown),
    /// [`PubSubError::Refused`] when Redis answers the first attempt with a
    /// refusal (the ACL user has no rights on the channel): nothing is kept.
    /// A re-subscription refused later, after a reconnect, has no caller to
    /// return to: it is logged once at WARN, counted in
    /// [`PubSubStats::refusals`], and retried, its subscription unconfirmed
    /// ([`Subscription::state`]) until the rights come back.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let mut events = pubsub.subscribe("events").await?;
    /// let first = events.recv().await; // `Subscribed` once the server confirms
    /// # Ok(())
    /// # }
    /// ```
    pub async fn subscribe(&self, channel: &str) -> Result<Subscription, PubSubError> {
        self.add(Kind::Channel, channel).await
    }

    /// Subscribes to every channel matching the Redis glob `pattern`; each
    /// message says which pattern matched.
    ///
    /// # Errors
    /// As [`subscribe`](Self::subscribe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let mut tenants = pubsub.psubscribe("events:tenant:*").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn psubscribe(&self, pattern: &str) -> Result<Subscription, PubSubError> {
        self.add(Kind::Pattern, pattern).await
    }

    async fn add(&self, kind: Kind, name: &str) -> Result<Subscription, PubSubError> {
        if name.is_empty() {
            return Err(PubSubError::InvalidName(
                "channel and pattern names must not be empty",
            ));
        }
        self.check_running()?;
        let shared = &self.inner.shared;
        let (rx, active, state, fresh) = {
            let mut routes = shared.routes();
            let routes = routes.of(kind);
            let fresh = !routes.contains_key(name);
            let route = routes
                .entry(name.to_owned())
                .or_insert_with(|| Route::new(shared.capacity));
            (
                route.tx.subscribe(),
                route.active,
                route.state.clone(),
                fresh,
            )
        };
        if !active {
            // Confirm now if we can; otherwise the pump does on (re)connect.
            let mut refused = crate::pump::resync(shared).await;
            let ours = refused.iter().position(|(k, n)| *k == kind && n == name);
            if let Some(at) = ours.filter(|_| fresh) {
                // Refused at the first attempt: the caller's to handle. The
                // route goes (the pump would retry it for ever, and a holder
                // would wait for messages that never come).
                refused.swap_remove(at);
                crate::pump::report_refused(shared, &refused);
                let mut routes = shared.routes();
                let routes = routes.of(kind);
                if routes.get(name).is_some_and(|route| !route.active) {
                    routes.remove(name);
                }
                return Err(PubSubError::Refused {
                    channel: name.to_owned(),
                });
            }
            crate::pump::report_refused(shared, &refused);
        }
        Ok(Subscription::new(name.to_owned(), rx, active, state))
    }

    /// Unsubscribes from `channel`: every [`Subscription`] to it ends.
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when the server could not be told (it
    /// forgets the subscription on the next reconnect anyway).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let events = pubsub.subscribe("events").await?;
    /// pubsub.unsubscribe("events").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), PubSubError> {
        let Some(route) = self.inner.shared.routes().channels.remove(channel) else {
            return Ok(());
        };
        route.state.set(false);
        self.inner
            .shared
            .client()
            .unsubscribe(channel)
            .await
            .map_err(|e| self.error(&e))
    }

    /// Unsubscribes from `pattern`: every [`Subscription`] to it ends.
    ///
    /// # Errors
    /// As [`unsubscribe`](Self::unsubscribe).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let tenants = pubsub.psubscribe("events:tenant:*").await?;
    /// pubsub.punsubscribe("events:tenant:*").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn punsubscribe(&self, pattern: &str) -> Result<(), PubSubError> {
        let Some(route) = self.inner.shared.routes().patterns.remove(pattern) else {
            return Ok(());
        };
        route.state.set(false);
        self.inner
            .shared
            .client()
            .punsubscribe(pattern)
            .await
            .map_err(|e| self.error(&e))
    }

    /// What this instance listens to now: every channel and pattern it is
    /// subscribed to, or will be again as soon as Redis answers.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let events = pubsub.subscribe("events").await?;
    /// assert!(pubsub.subscriptions().channels.contains(&"events".to_owned()));
    /// # Ok(())
    /// # }
    /// ```
    pub fn subscriptions(&self) -> Subscriptions {
        let routes = self.inner.shared.routes();
        Subscriptions {
            channels: routes.channels.keys().cloned().collect(),
            patterns: routes.patterns.keys().cloned().collect(),
        }
    }

    /// Publishes `message` as JSON on `channel`; returns how many subscriber
    /// connections received it. On a cluster Redis delivers it on every node
    /// but counts only the subscribers of the node that took the PUBLISH, so
    /// 0 there does not mean nobody listens.
    ///
    /// # Errors
    /// [`PubSubError::Encode`], or [`PubSubError::Unavailable`] when Redis
    /// cannot take it (nothing was published).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let receivers = pubsub.publish("events", &serde_json::json!({"id": 1})).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish<T: Serialize + ?Sized>(
        &self,
        channel: &str,
        message: &T,
    ) -> Result<u64, PubSubError> {
        let payload = serde_json::to_vec(message).map_err(|e| PubSubError::Encode(e.into()))?;
        self.publish_bytes(channel, Bytes::from(payload)).await
    }

    /// Publishes raw bytes on `channel`.
    ///
    /// # Errors
    /// [`PubSubError::Unavailable`] when Redis cannot take it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// let receivers = pubsub.publish_bytes("events", bytes::Bytes::from_static(b"ping")).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn publish_bytes(&self, channel: &str, payload: Bytes) -> Result<u64, PubSubError> {
        if channel.is_empty() {
            return Err(PubSubError::InvalidName("channel names must not be empty"));
        }
        self.check_running()?;
        let options = Options {
            fail_fast: true,
            ..Options::default()
        };
        let client = self.inner.manager.client().with_options(&options);
        let publish = client.publish(channel, payload);
        let receivers: u64 = self
            .inner
            .manager
            .commands()
            .timed(RedisOp::PUBLISH, 1, publish)
            .await
            .map_err(|e| self.error(&e))?;
        bump(&self.inner.shared.counters.published);
        Ok(receivers)
    }

    /// Unsubscribes from everything, ends every [`Subscription`], and closes
    /// the subscriber connection. Publishing fails afterwards.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # async fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// pubsub.shutdown().await;
    /// assert!(pubsub.publish("events", &1).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn shutdown(&self) {
        if self.inner.shut_down.swap(true, Ordering::SeqCst) {
            return;
        }
        let (channels, patterns) = {
            let mut routes = self.inner.shared.routes();
            let mut taken = std::mem::take(&mut *routes);
            // Holders that read the state stop trusting their stream now.
            taken.mark_all_inactive();
            (
                taken.channels.into_keys().collect::<Vec<_>>(),
                taken.patterns.into_keys().collect::<Vec<_>>(),
            )
        };
        let client = self.inner.shared.client();
        let unsubscribe = async {
            if !channels.is_empty() {
                let _ = client.unsubscribe(channels).await;
            }
            if !patterns.is_empty() {
                let _ = client.punsubscribe(patterns).await;
            }
        };
        if tokio::time::timeout(UNSUBSCRIBE_DEADLINE, unsubscribe)
            .await
            .is_err()
        {
            debug!("UNSUBSCRIBE did not complete before shutdown");
        }
        self.inner.pump.abort();
        self.inner.subscriber.shutdown().await;
        info!("pub/sub stopped");
    }

    /// Counts a message published by another command on this service's
    /// behalf ([`PubSubStats`]'s `published`), such as a script that
    /// publishes with the change it makes (redis-cache's announced writes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::PubSub;
    /// # fn example(pubsub: PubSub) {
    /// // A script published one message on our behalf.
    /// pubsub.record_published();
    /// # }
    /// ```
    pub fn record_published(&self) {
        bump(&self.inner.shared.counters.published);
    }

    /// Whether the service still runs: `Err(PubSubError::Shutdown)` after
    /// [`shutdown`](Self::shutdown), for a caller about to publish by
    /// other means (a script) than [`publish_bytes`](Self::publish_bytes).
    ///
    /// # Errors
    /// [`PubSubError::Shutdown`] after [`shutdown`](Self::shutdown).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_pubsub::{PubSub, PubSubError};
    /// # fn example(pubsub: PubSub) -> Result<(), PubSubError> {
    /// pubsub.check_running()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn check_running(&self) -> Result<(), PubSubError> {
        if self.inner.shut_down.load(Ordering::SeqCst) {
            Err(PubSubError::Shutdown)
        } else {
            Ok(())
        }
    }

    fn error(&self, error: &redis_connection::fred::error::Error) -> PubSubError {
        ConnectionError::from_fred(error, self.inner.manager.command_timeout()).into()
    }
}

/// 128 random bits as hex. Not a secret: it only has to be unique.
fn new_instance_id() -> String {
    format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..))
}
