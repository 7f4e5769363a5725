//! One load per fleet: a `get_or_load` that finds another instance's lease
//! on a missing key (`lease.rs`) waits for that instance's value instead of
//! calling its own loader, so that a cold key hit on every instance at once
//! reaches the source of truth once.
//!
//! **How a waiter learns the value is there.** It sets a flag next to the
//! lease (`{key}:lease:waited`, same slot, expiring with the lease) in the
//! script that reads the lease's remaining time (`Store::watch_lease` in
//! `lease.rs`, with the other lease scripts). The holder's settle script
//! removes the flag with the lease and says whether it was set; if so the
//! holder announces the key on the invalidation channel (an invalidation
//! of a key that was absent: harmless to every L1). A two-tier waiter is
//! woken by its listener (`coherence/lease_wait.rs`) and reads the key
//! again: the holder's value, or, if a change removed the key and its
//! lease meanwhile, a miss that it loads itself. Nothing is taken from the
//! announcement but "read again", so a waiter never serves a value Redis no
//! longer holds. The flag and the check are one script on each side, so a
//! holder that settles between a waiter's failed claim and its flag is
//! seen by the waiter's own read of the lease (gone: read again).
//!
//! **Redis-only caches** have no listener: they poll the lease with a short
//! backoff (5 ms doubling to 50 ms) instead, which costs a waiting instance
//! about 20 round trips a second per key and adds at most the backoff step
//! to its wait. Two-tier waiters poll too, slowly, in case the holder
//! cannot announce (a Redis-only holder, a lost message).
//!
//! **Bounded.** A waiter waits at most [`LoadOptions::fleet_wait`]
//! (default [`DEFAULT_FLEET_WAIT`]) and never past the lease's expiry: when
//! the holder died (its lease expired, or was left behind by a loader that
//! never returns) the waiter reads again and claims the key itself, or,
//! once the bound passes with the lease still held, loads without a lease
//! (not cached), as every caller did before this existed.

use std::time::Duration;

use bytes::Bytes;
use shared_types::{Invalidation, RedisKey};
use tokio::time::Instant;
use tracing::debug;

use crate::error::CacheError;
use crate::lease::{Lease, Settled};
use crate::load_options::LoadOptions;
use crate::service::CacheService;
use crate::stats::bump;

/// How long a `get_or_load` waits for another instance's load by default:
/// far longer than a typical loader, far shorter than the lease (10 s)
/// that a dead holder leaves behind.
pub const DEFAULT_FLEET_WAIT: Duration = Duration::from_secs(1);

/// The first poll of a Redis-only waiter, doubled up to [`POLL_CAP`].
const POLL_FIRST: Duration = Duration::from_millis(5);
const POLL_CAP: Duration = Duration::from_millis(50);
/// A two-tier waiter's safety poll: notifications do the work.
const POLL_NOTIFIED: Duration = Duration::from_millis(250);

/// One load's wait for other instances' leases: its bound is shared by
/// every wait of the load (a lease given up and taken by another waiter
/// does not restart it).
pub(crate) struct FleetWait {
    limit: Duration,
    deadline: Option<Instant>,
}

impl FleetWait {
    pub(crate) fn new(options: &LoadOptions) -> Self {
        Self {
            limit: options.fleet_wait_limit(),
            deadline: None,
        }
    }

    /// Waits while another caller holds `key`'s lease: `true` once it is
    /// gone (read the key again), `false` when the bound passed or Redis
    /// could not answer (load without a lease).
    pub(crate) async fn holder_gone(&mut self, cache: &CacheService, key: &RedisKey) -> bool {
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + self.limit);
        if Instant::now() >= deadline {
            return false;
        }
        bump(&cache.inner.tally.fleet_waits);
        let waits = cache.inner.lease_waits.as_deref();
        let mut poll = if waits.is_some() {
            POLL_NOTIFIED
        } else {
            POLL_FIRST
        };
        loop {
            let waiting = waits.map(|waits| waits.wait_on(key.as_str()));
            let mut woken = waiting.as_ref().map(|w| Box::pin(w.notify.notified()));
            if let Some(woken) = woken.as_mut() {
                woken.as_mut().enable();
            }
            let left = match cache.inner.store.watch_lease(key).await {
                Ok(left) => left,
                Err(error) => {
                    debug!(%error, "could not watch a lease; loading without one");
                    return false;
                }
            };
            // No lease (-2), or one without expiry (-1, not ours).
            let Ok(left) = u64::try_from(left) else {
                return left == -2;
            };
            let now = Instant::now();
            if now >= deadline {
                bump(&cache.inner.tally.fleet_wait_timeouts);
                debug!(
                    cache.family = key.family().name(),
                    "another instance's load outlasted the wait; loading without a lease"
                );
                return false;
            }
            // Past the lease's end by a millisecond: it has expired then.
            let until = (now + poll)
                .min(deadline)
                .min(now + Duration::from_millis(left + 1));
            match woken {
                Some(woken) => {
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep_until(until) => {}
                    }
                }
                None => tokio::time::sleep_until(until).await,
            }
            if waits.is_none() {
                poll = (poll * 2).min(POLL_CAP);
            }
        }
    }
}

impl CacheService {
    /// [`Lease::fulfil`], then the announcement its waiters asked for;
    /// whether it wrote.
    pub(crate) async fn fulfil_lease(
        &self,
        lease: Lease,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
        replacing: Option<(Bytes, Duration)>,
    ) -> Result<bool, CacheError> {
        let settled = lease
            .fulfil(&self.inner.store, key, value, ttl, replacing)
            .await?;
        self.announce_settled(key, settled);
        Ok(settled.done())
    }

    /// [`Lease::release`], then the announcement its waiters asked for:
    /// they may claim the key at once instead of waiting out their bound.
    pub(crate) async fn release_lease(&self, lease: Lease, key: &RedisKey) {
        if let Ok(settled) = lease.release(&self.inner.store, key).await {
            self.announce_settled(key, settled);
        }
    }

    /// Announces `key` from a task of its own when waiters asked for it:
    /// the lease's holder answers its own callers without waiting for it.
    fn announce_settled(&self, key: &RedisKey, settled: Settled) {
        if settled != Settled::Awaited {
            return;
        }
        let Some((publisher, invalidation)) = self
            .inner
            .publisher
            .as_ref()
            .zip(Invalidation::for_key(key))
        else {
            // Waiters poll: a Redis-only holder has nothing to announce on.
            return;
        };
        let pending = self.pending(publisher, vec![invalidation]);
        tokio::spawn(async move {
            // Counted as an error when it fails; waiters then poll.
            let _ = pending.send_all().await;
        });
    }
}
