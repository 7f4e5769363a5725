//! A pattern purge one page at a time, for callers that pace it, show its
//! progress, and stop and resume it (the `cache-admin` CLI).
//!
//! [`CacheService::delete_pattern`] runs a purge to its end in one call;
//! a tenant of 200 000 keys then holds one request (or one CLI run) for
//! seconds, cannot be throttled, and an interruption loses where it was.
//! Here each call does one `ZSCAN` page of the tenant's key index (the same
//! index `delete_pattern` reads, so a step costs that page of the tenant's
//! keys, never the keyspace) and `UNLINK`s what it found, and answers the
//! cursor to continue from. A [`PurgeCursor`] is Redis's own `ZSCAN`
//! cursor, so it stays valid across processes: `ZSCAN` returns every member
//! present for the whole walk at least once, whatever changed meanwhile, and
//! the purge does not remove members (deleted keys' members expire, see
//! `index.rs`), so a resumed walk redoes no page and misses no key that a
//! full walk would find.
//!
//! Each step that found keys is announced like any pattern deletion
//! (`delete_announced` in `write.rs`: this instance's L1 first, then the
//! pattern's invalidation published whatever the outcome), so running
//! instances drop their L1 copies as the purge goes, not only at its end.

use std::fmt;
use std::str::FromStr;

use shared_types::{Invalidation, KeyPattern};

use crate::error::CacheError;
use crate::service::CacheService;

/// Where a stepped purge stands in the tenant's key index: a `ZSCAN`
/// cursor. [`PurgeCursor::START`] begins a purge; a step answers the next
/// one, or none once the index has been walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PurgeCursor(u64);

impl PurgeCursor {
    /// The beginning of the index.
    pub const START: PurgeCursor = PurgeCursor(0);

    /// The cursor as Redis writes it (an unsigned integer).
    pub fn value(self) -> u64 {
        self.0
    }
}

impl From<u64> for PurgeCursor {
    fn from(value: u64) -> Self {
        PurgeCursor(value)
    }
}

impl fmt::Display for PurgeCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for PurgeCursor {
    type Err = std::num::ParseIntError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(PurgeCursor)
    }
}

/// What one step of a purge did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct PurgeStep {
    /// The cursor to continue from; `None` once the index has been walked.
    pub next: Option<PurgeCursor>,
    /// Index members of this page that match the pattern (a member whose
    /// key expired or was deleted counts here, not in `deleted`).
    pub scanned: u64,
    /// Keys this page deleted (in a dry run: that exist and would be).
    pub deleted: u64,
}

impl CacheService {
    /// One page of a purge of `pattern`: up to about `count` members of the
    /// tenant's key index from `cursor` (a small index comes whole), their
    /// keys `UNLINK`ed, and the pattern's invalidation announced on a
    /// two-tier cache (see the module docs). Call again with
    /// [`PurgeStep::next`] until it is `None`.
    ///
    /// With `dry_run` nothing is deleted or announced: `deleted` counts the
    /// keys that exist and would be.
    ///
    /// Keys that only other clients wrote are not in the index and are not
    /// found (see [`crate::PurgeMode::Scan`]).
    ///
    /// # Errors
    /// [`CacheError::Unavailable`] when Redis cannot answer (the step may or
    /// may not have deleted its page: running it again from the same cursor
    /// is harmless); [`CacheError::Rejected`] when the cursor is not one
    /// Redis accepts.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # use redis_cache::{CacheError, CacheService, PurgeCursor};
    /// # use shared_types::{KeyPattern, TenantId};
    /// # async fn example(cache: CacheService) -> Result<(), CacheError> {
    /// let pattern = KeyPattern::tenant_cache(&TenantId::new("acme").unwrap());
    /// let mut cursor = PurgeCursor::START;
    /// loop {
    ///     let step = cache.purge_step(&pattern, cursor, 100, false).await?;
    ///     match step.next {
    ///         Some(next) => cursor = next,
    ///         None => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge_step(
        &self,
        pattern: &KeyPattern,
        cursor: PurgeCursor,
        count: u32,
        dry_run: bool,
    ) -> Result<PurgeStep, CacheError> {
        let store = &self.inner.store;
        let client = store.client().clone();
        let (next, keys) =
            self.counted(store.index_page(&client, pattern, cursor.0, count).await)?;
        let scanned = keys.len() as u64;
        let deleted = if dry_run {
            self.counted(store.count_existing_on(&client, keys).await)?
        } else if keys.is_empty() {
            0
        } else {
            let announcement = self
                .inner
                .bus
                .as_ref()
                .map(|_| Invalidation::for_pattern(pattern));
            let deletion = store.unlink_with_leases_on(&client, keys);
            // Boxed, as `invalidate` boxes a purge: large and rare.
            Box::pin(self.delete_announced(pattern, announcement, deletion)).await?
        };
        Ok(PurgeStep {
            next: (next != 0).then_some(PurgeCursor(next)),
            scanned,
            deleted,
        })
    }
}
