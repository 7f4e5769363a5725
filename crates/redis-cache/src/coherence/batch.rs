//! The announcements of an `mset`: on a single server each key's
//! announcement (append to the invalidation stream, `PUBLISH`) runs in the
//! script that writes it (`mset.rs`), atomic in Redis; on a cluster, where the keys span slots and each is its own
//! `SET`, they follow the writes' outcome. Either way they are published
//! again on their own when the writes fail (some may have run).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use redis_connection::fred::prelude::Client;
use shared_types::{Invalidation, RedisKey};

use crate::config::Retention;
use crate::error::CacheError;
use crate::service::CacheService;
use crate::stats::add;

/// The announcement (channel, payload) of each key of an `mset` that has
/// one, for the scripts that write them (and append them to the
/// invalidation stream, keeping `retention`).
pub(crate) struct Messages<'a> {
    pub(crate) by_key: HashMap<&'a str, (String, Bytes)>,
    pub(crate) retention: Retention,
}

impl CacheService {
    /// The writes of `mset`, with the tenant indexes first, and their
    /// announcements: on a single server each `PUBLISH` runs in the script
    /// that writes its key (atomic in Redis); on a cluster (keys in many
    /// slots) the announcements follow the writes' outcome. Either way they
    /// are published again on their own if the writes fail.
    pub(crate) async fn mset_announced(
        &self,
        encoded: &[(&RedisKey, Bytes, Duration)],
    ) -> (Result<(), CacheError>, Result<(), CacheError>) {
        let store = &self.inner.store;
        let client = store.client().clone();
        let (client, indexed) = (
            &client,
            &encoded
                .iter()
                .map(|(key, _, ttl)| (*key, *ttl))
                .collect::<Vec<(&RedisKey, Duration)>>(),
        );
        let batch = encoded
            .iter()
            .map(|(key, bytes, ttl)| (key.as_str(), bytes.clone(), *ttl))
            .collect();
        // Without pub/sub there is nothing to announce; building the
        // announcements anyway cost a Redis-only mset of 1 000 keys more
        // than its pipeline did (BENCHMARKS.md, workload 3).
        let Some(publisher) = &self.inner.publisher else {
            return (self.mset_writes(client, indexed, batch, None).await, Ok(()));
        };
        let announced: Vec<(&RedisKey, Invalidation)> = encoded
            .iter()
            .filter_map(|(key, _, _)| Some((*key, Invalidation::for_key(key)?)))
            .collect();
        let mut messages = Messages {
            by_key: HashMap::with_capacity(announced.len()),
            retention: self.inner.config.invalidation_retention,
        };
        if !store.is_cluster() {
            for (key, invalidation) in &announced {
                match publisher.encode(invalidation) {
                    Ok(message) => messages.by_key.insert(key.as_str(), message),
                    // Shut down: nothing can be published.
                    Err(error) => {
                        return (
                            self.mset_writes(client, indexed, batch, None).await,
                            self.sent(Err(error)),
                        );
                    }
                };
            }
        }
        let sent = messages.by_key.len() as u64;
        let pending = self.pending(publisher, announced.into_iter().map(|(_, i)| i).collect());
        if store.is_cluster() {
            let written = self.mset_writes(client, indexed, batch, None).await;
            return (written, pending.send_all().await);
        }
        match self
            .mset_writes(client, indexed, batch, Some(&messages))
            .await
        {
            Ok(()) => {
                pending.disarm();
                for _ in 0..sent {
                    publisher.record_published();
                }
                add(&self.inner.tally.invalidations_sent, sent);
                (Ok(()), Ok(()))
            }
            Err(error) => pending.after_failure(error),
        }
    }

    /// `mset`'s writes and their tenant index updates (queued first), with
    /// the `messages` of the keys on a single server.
    async fn mset_writes(
        &self,
        client: &Client,
        indexed: &[(&RedisKey, Duration)],
        batch: Vec<(&str, Bytes, Duration)>,
        messages: Option<&Messages<'_>>,
    ) -> Result<(), CacheError> {
        let store = &self.inner.store;
        let (index, written) = futures::join!(
            store.index_many_on(client, indexed),
            store.mset_on(client, batch, messages)
        );
        written?;
        index?.confirm(store);
        Ok(())
    }
}
