//! Wake-ups for instances waiting on another instance's load
//! (`fleet_wait.rs`): the listener hands every event of the invalidation
//! feed here, and a waiter whose key it may concern reads Redis again.
//!
//! The holder of a lease announces its key when it settles the lease and a
//! waiter asked for it (`lease.rs`, `Settled::Awaited`); that announcement
//! is an ordinary invalidation of the key, so it also wakes a waiter when
//! anyone else changes the key meanwhile. Anything that may have hidden a
//! message from us (a gap, a lag, a resubscribe, an unreadable or unknown
//! event) wakes every waiter: a spurious wake-up costs one read, a missed
//! one the rest of the wait bound.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::feed::InvalidationEvent;
use shared_types::Scope;
use tokio::sync::Notify;

/// The keys this instance waits on, each with the `Notify` its waiters
/// share and how many they are.
#[derive(Debug, Default)]
pub(crate) struct LeaseWaits {
    keys: Mutex<HashMap<String, (Arc<Notify>, usize)>>,
}

/// One waiter's registration; dropping it unregisters.
pub(crate) struct Waiting<'a> {
    waits: &'a LeaseWaits,
    key: String,
    pub(crate) notify: Arc<Notify>,
}

impl LeaseWaits {
    /// Registers a waiter on `key`. Register before reading Redis, and
    /// enable the `Notify`'s future before that read too: a wake-up that
    /// comes between the read and the wait is then not lost.
    pub(crate) fn wait_on(&self, key: &str) -> Waiting<'_> {
        let mut keys = self.keys.lock().expect("lease waits lock");
        let entry = keys
            .entry(key.to_owned())
            .or_insert_with(|| (Arc::new(Notify::new()), 0));
        entry.1 += 1;
        Waiting {
            waits: self,
            key: key.to_owned(),
            notify: entry.0.clone(),
        }
    }

    /// Wakes the waiters an event of the invalidation feed may concern.
    pub(crate) fn on_event(&self, event: &InvalidationEvent) {
        match event {
            InvalidationEvent::Received(received) => self.wake(&received.invalidation.scope()),
            _ => self.wake_matching(|_| true),
        }
    }

    fn wake(&self, scope: &Scope) {
        match scope {
            Scope::Key(key) => {
                let keys = self.keys.lock().expect("lease waits lock");
                if let Some((notify, _)) = keys.get(key.as_str()) {
                    notify.notify_waiters();
                }
            }
            Scope::Pattern(pattern) => self.wake_matching(|key| pattern.matches(key)),
        }
    }

    fn wake_matching(&self, matches: impl Fn(&str) -> bool) {
        let keys = self.keys.lock().expect("lease waits lock");
        for (key, (notify, _)) in keys.iter() {
            if matches(key) {
                notify.notify_waiters();
            }
        }
    }

    /// Keys waited on.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.keys.lock().expect("lease waits lock").len()
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        let Ok(mut keys) = self.waits.keys.lock() else {
            return;
        };
        if let Some(entry) = keys.get_mut(&self.key) {
            entry.1 -= 1;
            if entry.1 == 0 {
                keys.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared_types::{KeyPattern, RedisKey, ShardId, TenantId};

    fn key(shard: &str) -> RedisKey {
        let tenant = TenantId::new("t").unwrap();
        RedisKey::shard_structured(&tenant, &ShardId::new(shard).unwrap())
    }

    // A key's invalidation wakes its waiters only; a pattern wakes the keys
    // it matches; the last waiter to leave unregisters the key.
    #[tokio::test]
    async fn wakes_the_waiters_of_the_key_or_pattern_only() {
        let waits = LeaseWaits::default();
        let (a, b) = (key("a"), key("b"));
        let on_a = waits.wait_on(a.as_str());
        let on_b = waits.wait_on(b.as_str());
        let (mut woke_a, mut woke_b) = (
            Box::pin(on_a.notify.notified()),
            Box::pin(on_b.notify.notified()),
        );
        woke_a.as_mut().enable();
        woke_b.as_mut().enable();
        waits.wake(&Scope::Key(a.clone()));
        woke_a.await;
        assert!(
            futures::poll!(woke_b.as_mut()).is_pending(),
            "another key's waiter sleeps on"
        );
        let tenant = TenantId::new("t").unwrap();
        waits.wake(&Scope::Pattern(KeyPattern::tenant_shards(&tenant)));
        woke_b.await;
        let again = waits.wait_on(a.as_str());
        drop(on_a);
        assert_eq!(waits.len(), 2, "a still has a waiter");
        drop((again, on_b));
        assert_eq!(waits.len(), 0);
    }
}
