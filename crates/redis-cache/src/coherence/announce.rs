//! Announcing a change: with it, atomically, where one script can hold
//! both (`atomic_write.rs`), after its outcome where not (patterns, `mset`
//! on a cluster), and in every case whatever the outcome: a command that
//! timed out may still run, and an extra invalidation only costs other
//! instances one L2 read.

use std::sync::Arc;

use redis_connection::ConnectionError;
use redis_pubsub::PubSubError;
use shared_types::{Invalidation, RedisKey};

use super::announcer::Announced;
use super::atomic_write::{Announcement, KeyChange};
use super::publisher::InvalidationPublisher;
use crate::coalesce::Stopped;
use crate::config::Retention;
use crate::error::CacheError;
use crate::mset::SCRIPT_CHUNK;
use crate::service::CacheService;
use crate::stats::{Tally, add, bump};
use crate::store::Store;

/// `call`'s reply, or a timeout after `timeout`: a change queued behind a
/// batch in flight would otherwise wait for it and then for its own, twice
/// the command timeout that bounds a lone change's script. A change that
/// timed out here may still be sent (as a command that timed out may still
/// run); its announcement then goes out the fallback way too.
async fn bounded(
    timeout: std::time::Duration,
    call: impl Future<Output = Result<Result<u64, CacheError>, Stopped>>,
) -> Result<Result<u64, CacheError>, Stopped> {
    match tokio::time::timeout(timeout, call).await {
        Ok(reply) => reply,
        Err(_) => Ok(Err(ConnectionError::Timeout(timeout).into())),
    }
}

impl CacheService {
    /// Runs `change` of `key` and publishes `invalidation` (if any) with
    /// it: one script, so Redis makes the change visible and publishes in
    /// one step, and the caller waits one round trip (on a single server
    /// the script carries the changes other callers make meanwhile too:
    /// `announcer.rs`). Returns the change's
    /// outcome and the announcement's. When the script fails (or the
    /// caller's future is dropped before its outcome) the change may or may
    /// not have happened: the invalidation is then published on its own,
    /// after the outcome, from a task of its own (the announcement's
    /// outcome is then `Ok`: the caller has the change's error to return).
    pub(crate) async fn change_key(
        &self,
        key: &RedisKey,
        change: KeyChange,
        invalidation: Option<Invalidation>,
    ) -> (Result<u64, CacheError>, Result<(), CacheError>) {
        let store = &self.inner.store;
        let Some((publisher, invalidation)) = self.inner.publisher.as_ref().zip(invalidation)
        else {
            // Nothing to announce (a Redis-only cache, or a family no other
            // instance holds): the change alone, awaited in place.
            return (store.change_on(store.client(), key, change).await, Ok(()));
        };
        // Boxed: the announced path's future (the script, its fallbacks)
        // is several times a plain command's, and every caller's future
        // would otherwise carry it, and build and move it, on every call,
        // announced or not (BENCHMARKS.md, issue 15).
        Box::pin(self.change_announced(key, change, publisher, invalidation)).await
    }

    /// [`change_key`](Self::change_key) with something to announce.
    async fn change_announced(
        &self,
        key: &RedisKey,
        change: KeyChange,
        publisher: &InvalidationPublisher,
        invalidation: Invalidation,
    ) -> (Result<u64, CacheError>, Result<(), CacheError>) {
        let store = &self.inner.store;
        let client = store.client().clone();
        let (channel, payload) = match publisher.encode(&invalidation) {
            Ok(message) => message,
            Err(error) => {
                // Nothing to publish (shut down): the change alone.
                let changed = store.change_on(&client, key, change).await;
                return (changed, self.sent(Err(error)));
            }
        };
        let pending = self.pending(publisher, vec![invalidation]);
        let announcement = Announcement {
            channel,
            payload,
            retention: self.inner.config.invalidation_retention,
        };
        let changed = match &self.inner.announcer {
            // Sent with whatever other changes are queued meanwhile
            // (`announcer.rs`); the direct way if the coalescer stopped.
            Some(announcer) => match bounded(
                store.manager().command_timeout(),
                announcer.call(Announced::new(key, change.clone(), &announcement)),
            )
            .await
            {
                Ok(changed) => changed,
                Err(Stopped) => {
                    store
                        .change_announced(&client, key, change, announcement)
                        .await
                }
            },
            None => {
                store
                    .change_announced(&client, key, change, announcement)
                    .await
            }
        };
        match changed {
            Ok(reply) => {
                pending.disarm();
                publisher.record_published();
                bump(&self.inner.tally.invalidations_sent);
                (Ok(reply), Ok(()))
            }
            Err(error) => pending.after_failure(error),
        }
    }

    /// Announcements that go out even if the caller stops waiting first.
    pub(crate) fn pending(
        &self,
        publisher: &InvalidationPublisher,
        invalidations: Vec<Invalidation>,
    ) -> PendingAnnouncements {
        PendingAnnouncements {
            publisher: publisher.clone(),
            store: self.inner.store.clone(),
            retention: self.inner.config.invalidation_retention,
            invalidations,
            tally: self.inner.tally.clone(),
        }
    }

    /// Counts a publication: an error, or one invalidation sent.
    pub(crate) fn sent(&self, published: Result<u64, PubSubError>) -> Result<(), CacheError> {
        self.counted(published.map_err(CacheError::from))?;
        bump(&self.inner.tally.invalidations_sent);
        Ok(())
    }
}

/// Invalidations that must be published once the change they announce has
/// an outcome. [`send_all`](Self::send_all) publishes them; dropped before
/// that (the caller's future was dropped mid-change), they are published
/// from a task of their own.
pub(crate) struct PendingAnnouncements {
    publisher: InvalidationPublisher,
    /// Where they are appended to the invalidation stream and published.
    store: Store,
    retention: Retention,
    invalidations: Vec<Invalidation>,
    tally: Arc<Tally>,
}

impl PendingAnnouncements {
    /// Appends every invalidation to the stream and publishes it (one
    /// script); the error, if any.
    pub(crate) async fn send_all(mut self) -> Result<(), CacheError> {
        let invalidations = std::mem::take(&mut self.invalidations);
        let outcome = sequenced(
            &self.publisher,
            &self.store,
            self.retention,
            &invalidations,
            &self.tally,
        )
        .await;
        outcome.inspect_err(|_| bump(&self.tally.errors))
    }

    /// The change failed with `error`: its caller returns that error and
    /// never reads the announcement's outcome, so the invalidations (the
    /// change may still have happened) go out from a task of their own, as
    /// on a drop, instead of making the caller wait for them too, which on
    /// a frozen server was a second command timeout (lib.rs: nothing waits
    /// longer than one). The change's error, and `Ok` for the announcement.
    pub(crate) fn after_failure<T>(
        self,
        error: CacheError,
    ) -> (Result<T, CacheError>, Result<(), CacheError>) {
        drop(self);
        (Err(error), Ok(()))
    }

    /// The change was announced with it (atomically): nothing to send.
    pub(crate) fn disarm(mut self) {
        self.invalidations.clear();
    }
}

impl Drop for PendingAnnouncements {
    fn drop(&mut self) {
        if self.invalidations.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (publisher, tally) = (self.publisher.clone(), self.tally.clone());
        let (store, retention) = (self.store.clone(), self.retention);
        let invalidations = std::mem::take(&mut self.invalidations);
        runtime.spawn(async move {
            if sequenced(&publisher, &store, retention, &invalidations, &tally)
                .await
                .is_err()
            {
                bump(&tally.errors);
            }
        });
    }
}

/// Encodes `invalidations` under `publisher`'s origin, appends them to the
/// invalidation stream and publishes them, in one script (one chunk at a
/// time: a script holds the server while it runs); counts each sent.
async fn sequenced(
    publisher: &InvalidationPublisher,
    store: &Store,
    retention: Retention,
    invalidations: &[Invalidation],
    tally: &Tally,
) -> Result<(), CacheError> {
    let mut messages = Vec::with_capacity(invalidations.len());
    for invalidation in invalidations {
        messages.push(publisher.encode(invalidation).map_err(CacheError::from)?);
    }
    let client = store.client().clone();
    for chunk in messages.chunks(SCRIPT_CHUNK) {
        let n = chunk.len() as u64;
        store
            .announce_sequenced(&client, retention, chunk.to_vec())
            .await?;
        for _ in 0..n {
            publisher.record_published();
        }
        add(&tally.invalidations_sent, n);
    }
    Ok(())
}
