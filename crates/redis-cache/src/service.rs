//! [`CacheService`]: construction, configuration and statistics. The
//! operations live in `read.rs`, `write.rs`, `load.rs` and `counters.rs`.

use std::sync::Arc;
use std::time::Duration;

use redis_connection::RedisConnectionManager;
use redis_pubsub::PubSub;
use tokio::task::JoinHandle;

use crate::coherence::lease_wait::LeaseWaits;
use crate::coherence::{Announcer, FeedCounters, InvalidationPublisher, Invalidations};
use crate::config::CacheConfig;
use crate::error::CacheError;
use crate::flight::SingleFlight;
use crate::l1::L1;
use crate::stats::{CacheStats, ServerStats, Tally};
use crate::store::Store;
use crate::throttle::LogThrottle;

/// How often a failure that is handled here (a read degraded to a miss, a
/// write-back that failed) is logged while Redis is down.
const FAILURE_LOG_PERIOD: Duration = Duration::from_secs(10);

/// A typed JSON cache over Redis, optionally with an in-process L1 kept
/// coherent across instances by pub/sub invalidation. Cheap to clone; clones
/// share everything.
///
/// Keys are [`shared_types::RedisKey`]s, so a caller can only address keys
/// built from validated ids. Values are any `Serialize` /
/// `DeserializeOwned` type, stored as JSON.
///
/// Two flavours, one type:
/// - [`CacheService::new`]: Redis only.
/// - [`CacheService::two_tier`]: an L1 in front of Redis (when
///   [`CacheConfig::l1`] is set), and every change (`set`, `delete`,
///   `invalidate`, ...) published so that other instances drop their copies.
///   See `l1.rs` for the rules that keep the L1 from serving stale data.
#[derive(Debug, Clone)]
pub struct CacheService {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: CacheConfig,
    pub(crate) tally: Arc<Tally>,
    pub(crate) read_errors: LogThrottle,
    pub(crate) write_errors: LogThrottle,
    pub(crate) l1: Option<Arc<L1>>,
    pub(crate) bus: Option<PubSub>,
    /// Publishes this cache's invalidations under an origin of its own, so
    /// that two caches sharing one `PubSub` still see each other's.
    pub(crate) publisher: Option<InvalidationPublisher>,
    /// Sends concurrent announced changes of single keys together (with a
    /// publisher on a single server; `coherence/announcer.rs`).
    pub(crate) announcer: Option<Announcer>,
    /// What the invalidation feed (read by the listener task) counted.
    feed: Option<Arc<FeedCounters>>,
    pub(crate) flights: SingleFlight,
    /// `get_or_load` calls waiting for another instance's load, woken by
    /// the listener (two-tier caches only; Redis-only ones poll).
    pub(crate) lease_waits: Option<Arc<LeaseWaits>>,
    listener: Option<JoinHandle<()>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl CacheService {
    /// A Redis-only cache over `manager`'s pool (`config.l1` is not used:
    /// an L1 needs the invalidation feed of [`two_tier`](Self::two_tier)).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use redis_cache::{CacheConfig, CacheService};
    /// use redis_connection::{RedisConfig, RedisConnectionManager};
    ///
    /// let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
    /// let cache = CacheService::new(manager, CacheConfig::from_env()?);
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(manager: RedisConnectionManager, config: CacheConfig) -> Self {
        Self::build(
            manager,
            config,
            Arc::new(Tally::default()),
            None,
            None,
            None,
        )
    }

    /// A two-tier cache: an L1 of `config.l1` (if set) in front of Redis,
    /// kept coherent with every other instance through `pubsub`. Without an
    /// L1 it still publishes its changes, so that instances that have one
    /// stay correct.
    ///
    /// The L1 is trusted only once the invalidation feed is subscribed;
    /// until then reads go to Redis.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] if the pub/sub service was shut down;
    /// [`CacheError::Rejected`] of kind
    /// [`NoPermission`](redis_connection::RejectionKind::NoPermission) when
    /// Redis refuses to subscribe the invalidation channels (an ACL user
    /// without rights on `cache:invalidate:*`): such a cache could never
    /// trust its L1, so it does not start rather than start deaf. Redis
    /// being down is no error: the feed is subscribed once it is back (and
    /// if Redis refuses it then, that is logged at WARN and counted in
    /// [`PubSubStats::refusals`](redis_pubsub::PubSubStats::refusals), the
    /// L1 left untrusted).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
    /// use redis_cache::{CacheConfig, CacheService};
    /// use redis_connection::{RedisConfig, RedisConnectionManager};
    /// use redis_pubsub::PubSub;
    ///
    /// let manager = RedisConnectionManager::connect(RedisConfig::from_env()?).await?;
    /// let pubsub = PubSub::new(manager.clone()).await?;
    /// let cache = CacheService::two_tier(manager, CacheConfig::from_env()?, pubsub).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn two_tier(
        manager: RedisConnectionManager,
        config: CacheConfig,
        pubsub: PubSub,
    ) -> Result<Self, CacheError> {
        let feed = pubsub.invalidations().await.map_err(CacheError::from)?;
        let l1 = config.l1.map(|l1| Arc::new(L1::new(l1)));
        let tally = Arc::new(Tally::default());
        let counters = feed.counters();
        let publisher = pubsub.publisher();
        let waits = Arc::new(LeaseWaits::default());
        let listener = tokio::spawn(crate::coherence::listener::run(
            feed,
            l1.clone(),
            tally.clone(),
            publisher.origin().to_owned(),
            Store::new(manager.clone()),
            waits.clone(),
        ));
        Ok(Self::build(
            manager,
            config,
            tally,
            l1,
            Some((pubsub, publisher, counters)),
            Some((listener, waits)),
        ))
    }

    fn build(
        manager: RedisConnectionManager,
        config: CacheConfig,
        tally: Arc<Tally>,
        l1: Option<Arc<L1>>,
        bus: Option<(PubSub, InvalidationPublisher, Arc<FeedCounters>)>,
        listener: Option<(JoinHandle<()>, Arc<LeaseWaits>)>,
    ) -> Self {
        let (bus, publisher, feed) = match bus {
            Some((bus, publisher, feed)) => (Some(bus), Some(publisher), Some(feed)),
            None => (None, None, None),
        };
        let (listener, lease_waits) = listener.unzip();
        let store = Store::new(manager);
        let announcer = publisher
            .as_ref()
            .and_then(|_| crate::coherence::announcer(&store, config.invalidation_retention));
        Self {
            inner: Arc::new(Inner {
                store,
                config,
                tally,
                read_errors: LogThrottle::new(FAILURE_LOG_PERIOD),
                write_errors: LogThrottle::new(FAILURE_LOG_PERIOD),
                l1,
                bus,
                publisher,
                announcer,
                feed,
                flights: SingleFlight::default(),
                lease_waits,
                listener,
            }),
        }
    }

    /// The connection manager underneath.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let health = cache.manager().health_check().await;
    /// # Ok(())
    /// # }
    /// ```
    pub fn manager(&self) -> &RedisConnectionManager {
        self.inner.store.manager()
    }

    /// The pub/sub service of a two-tier cache.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// if let Some(pubsub) = cache.pubsub() {
    ///     let subscribed = pubsub.subscriptions();
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn pubsub(&self) -> Option<&PubSub> {
        self.inner.bus.as_ref()
    }

    /// The configuration.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let largest_value = cache.config().max_value_bytes;
    /// # Ok(())
    /// # }
    /// ```
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// Whether this instance's L1 is trusted now: it exists and its
    /// invalidation feed is subscribed.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// // False until the invalidation feed is subscribed, and after it drops:
    /// // reads then go to Redis.
    /// let trusted = cache.l1_live();
    /// # Ok(())
    /// # }
    /// ```
    pub fn l1_live(&self) -> bool {
        self.inner.l1.as_ref().is_some_and(|l1| l1.is_live())
    }

    /// Entries in the L1 (0 without one).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let entries = cache.l1_len();
    /// # Ok(())
    /// # }
    /// ```
    pub fn l1_len(&self) -> u64 {
        self.inner.l1.as_ref().map_or(0, |l1| l1.len())
    }

    /// Bytes the L1 holds now (0 without one): keys, JSON and decoded
    /// copies, as the L1's byte bound counts them.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let bytes = cache.l1_bytes();
    /// # Ok(())
    /// # }
    /// ```
    pub fn l1_bytes(&self) -> u64 {
        self.inner.l1.as_ref().map_or(0, |l1| l1.stats().bytes)
    }

    /// This instance's counters, and what its L1 holds.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let stats = cache.stats();
    /// let hit_rate = stats.hit_rate();
    /// # Ok(())
    /// # }
    /// ```
    pub fn stats(&self) -> CacheStats {
        let mut stats = self.inner.tally.snapshot();
        if let Some(feed) = &self.inner.feed {
            let feed = feed.snapshot();
            stats.malformed_messages = feed.malformed;
            stats.foreign_payloads = feed.foreign_payloads;
        }
        if let Some(l1) = &self.inner.l1 {
            stats.add_l1(&l1.stats());
            stats.invalidation_feed_live = l1.is_live();
        }
        stats
    }

    /// Key count and memory use, as Redis reports them.
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # use redis_cache::{CacheError, CacheService};
    /// # use shared_types::{RedisKey, ShardId, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// # let tenant = TenantId::new("acme").unwrap();
    /// # let key = RedisKey::shard_structured(&tenant, &ShardId::new("s1").unwrap());
    /// let server = cache.server_stats().await?;
    /// let (keys, memory) = (server.keys, server.used_memory_bytes);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn server_stats(&self) -> Result<ServerStats, CacheError> {
        let (keys, used_memory_bytes) = self.counted(self.inner.store.server_stats().await)?;
        Ok(ServerStats {
            keys,
            used_memory_bytes,
        })
    }

    /// The L1, if there is one and `key`'s family may live in it.
    pub(crate) fn l1_for(&self, key: &shared_types::RedisKey) -> Option<&Arc<L1>> {
        self.inner
            .l1
            .as_ref()
            .filter(|_| key.family().has_key_invalidation())
    }

    /// Counts a failed operation.
    pub(crate) fn counted<T>(&self, result: Result<T, CacheError>) -> Result<T, CacheError> {
        if result.is_err() {
            crate::stats::bump(&self.inner.tally.errors);
        }
        result
    }
}
