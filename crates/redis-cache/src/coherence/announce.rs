//! Announcing a change: with it, atomically, where one script can hold
//! both (`atomic_write.rs`), after its outcome where not (patterns, `mset`
//! on a cluster), and in every case whatever the outcome: a command that
//! timed out may still run, and an extra invalidation only costs other
//! instances one L2 read.

use std::sync::Arc;

use redis_pubsub::{InvalidationPublisher, PubSubError};
use shared_types::{Invalidation, RedisKey};

use super::atomic_write::{Announcement, KeyChange};
use crate::error::CacheError;
use crate::service::CacheService;
use crate::stats::{Tally, bump};

impl CacheService {
    /// Runs `change` of `key` and publishes `invalidation` (if any) with
    /// it: one script, so Redis makes the change visible and publishes in
    /// one step, and the caller waits one round trip. Returns the change's
    /// outcome and the announcement's. When the script fails (or the
    /// caller's future is dropped before its outcome) the change may or may
    /// not have happened: the invalidation is then published on its own,
    /// after the outcome (from a task of its own if the future was
    /// dropped).
    pub(crate) async fn change_key(
        &self,
        key: &RedisKey,
        change: KeyChange,
        invalidation: Option<Invalidation>,
    ) -> (Result<u64, CacheError>, Result<(), CacheError>) {
        let store = &self.inner.store;
        let client = store.client().clone();
        let Some((publisher, invalidation)) = self.inner.publisher.as_ref().zip(invalidation)
        else {
            return (store.change_on(&client, key, change).await, Ok(()));
        };
        let (channel, payload) = match publisher.encode(&invalidation) {
            Ok(message) => message,
            Err(error) => {
                // Nothing to publish (shut down): the change alone.
                let changed = store.change_on(&client, key, change).await;
                return (changed, self.sent(Err(error)));
            }
        };
        let pending = self.pending(publisher, vec![invalidation]);
        let announcement = Announcement { channel, payload };
        match store
            .change_announced(&client, key, change, announcement)
            .await
        {
            Ok(reply) => {
                pending.disarm();
                publisher.record_published();
                bump(&self.inner.tally.invalidations_sent);
                (Ok(reply), Ok(()))
            }
            Err(error) => (Err(error), pending.send_all().await),
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
    invalidations: Vec<Invalidation>,
    tally: Arc<Tally>,
}

impl PendingAnnouncements {
    /// Publishes every invalidation; the first error, if any.
    pub(crate) async fn send_all(mut self) -> Result<(), CacheError> {
        let tally = self.tally.clone();
        let published = futures::future::join_all(
            self.invalidations
                .iter()
                .map(|invalidation| self.publisher.invalidate(invalidation)),
        )
        .await;
        // Sent (or refused by Redis): nothing is left for the drop to do.
        self.invalidations.clear();
        let mut outcome = Ok(());
        for published in published {
            match published {
                Ok(_) => bump(&tally.invalidations_sent),
                Err(error) => {
                    bump(&tally.errors);
                    if outcome.is_ok() {
                        outcome = Err(CacheError::from(error));
                    }
                }
            }
        }
        outcome
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
        let invalidations = std::mem::take(&mut self.invalidations);
        runtime.spawn(async move {
            for invalidation in &invalidations {
                match publisher.invalidate(invalidation).await {
                    Ok(_) => bump(&tally.invalidations_sent),
                    Err(_) => bump(&tally.errors),
                }
            }
        });
    }
}
