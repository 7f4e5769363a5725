//! Catching up after a gap: instead of flushing its L1 when it may have
//! missed invalidations (a resubscribe, a lag, a message whose `stream_prev`
//! is not the last entry it applied), an instance reads the invalidation
//! stream from the last entry it applied and applies what follows. Only
//! when the stream no longer holds that entry (trimmed: the gap is older
//! than the retention; or gone: Redis lost its data) does it flush.
//!
//! Whether the stream still holds the gap is read from entry ids alone:
//! the first entry at or after our last one must be that entry itself, or
//! name it as its predecessor (`p`). No clock is compared.
//!
//! A stream that cannot be read (a timeout, an ACL that denies `XRANGE`,
//! a cluster whose stream slot has no primary during a failover) says
//! nothing about what was missed, so it is no reason to flush: the catch-up
//! waits and reads again, with a backoff, until the stream answers. The
//! L1 stays untrusted all that time (reads go to Redis, as while the feed
//! is down): the listener trusts it only once this returns, that is after
//! a replay, or a flush when the stream no longer holds the gap.

use std::time::Duration;

use shared_types::Invalidation;
use tracing::{debug, info, warn};

use super::received::kind_and_tenant;
use super::stream::{Entry, EntryId};
use crate::l1::L1;
use crate::stats::{Tally, add, bump};
use crate::store::Store;

/// Entries read per `XRANGE`.
const PAGE: u32 = 1000;

/// The wait before reading the stream again after a failed read, doubled
/// after each failure up to [`RETRY_MAX`].
const RETRY_MIN: Duration = Duration::from_millis(100);

/// The longest wait between two reads of a stream that does not answer: a
/// read is one small script, so one every two seconds per instance costs
/// Redis nothing worth counting, and the L1 is back in use at most this
/// long after the stream answers again.
const RETRY_MAX: Duration = Duration::from_secs(2);

/// The last stream entry this instance applied, and what it does with a
/// message's place in the stream.
#[derive(Debug, Default)]
pub(crate) struct Cursor {
    /// `None`: not known (the stream could not be read); the next
    /// sequenced message sets it. [`EntryId::ZERO`]: the stream was empty.
    last: Option<EntryId>,
}

/// What a message's place in the stream says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// The next entry after the last applied one (or the first we know of).
    Next,
    /// At or before the last applied one: already applied by a replay.
    Seen,
    /// Entries between the last applied one and this one were missed.
    Gap,
}

impl Cursor {
    /// Where the stream ends now, for an instance starting with an empty
    /// L1 (nothing before it matters).
    pub(crate) async fn start(store: &Store) -> Self {
        match store.stream_last().await {
            Ok(last) => Self {
                last: Some(last.unwrap_or(EntryId::ZERO)),
            },
            Err(error) => {
                // Redis being unavailable is the outage's WARN (the
                // connection layer's), not one more of ours.
                if error.is_unavailable() {
                    info!(%error, "could not read the invalidation stream's end");
                } else {
                    warn!(%error, "could not read the invalidation stream's end");
                }
                Self { last: None }
            }
        }
    }

    /// Takes a message at `id` whose predecessor was `prev`.
    pub(crate) fn step(&mut self, id: EntryId, prev: EntryId) -> Step {
        match self.last {
            None => {
                self.last = Some(id);
                Step::Next
            }
            Some(last) if prev == last => {
                self.last = Some(id);
                Step::Next
            }
            Some(last) if id <= last => Step::Seen,
            Some(_) => Step::Gap,
        }
    }

    /// Applies to `l1` every entry after the last applied one; flushes it
    /// when the stream no longer holds that entry. While the stream cannot
    /// be read it reads it again (backing off from [`RETRY_MIN`] to
    /// [`RETRY_MAX`], the failure logged once) and does not return: the
    /// caller keeps the L1 untrusted until then. Returns whether it
    /// replayed (`false`: flushed).
    pub(crate) async fn catch_up(&mut self, store: &Store, l1: &L1, tally: &Tally) -> bool {
        let mut delay = RETRY_MIN;
        let mut failures: u32 = 0;
        loop {
            match self.replay(store, l1, tally).await {
                Ok(Some(replayed)) => {
                    bump(&tally.l1_replays);
                    add(&tally.invalidations_replayed, replayed);
                    if failures > 0 {
                        info!(
                            replayed,
                            failures, "the invalidation stream answers again; caught up, L1 kept"
                        );
                    } else {
                        info!(replayed, "caught up from the invalidation stream; L1 kept");
                    }
                    return true;
                }
                Ok(None) => {
                    self.flush(store, l1, tally).await;
                    info!("the invalidation stream no longer holds the gap; L1 flushed");
                    return false;
                }
                Err(error) => {
                    // Once per catch-up, not per attempt: a stream denied
                    // by the ACL fails every attempt until an operator
                    // acts. Redis being unavailable is the outage's WARN
                    // (the connection layer's), not one more of ours.
                    if failures > 0 {
                        debug!(%error, failures, "the invalidation stream still cannot be read");
                    } else if error.is_unavailable() {
                        info!(%error, "could not read the invalidation stream; L1 kept but untrusted until it can be read");
                    } else {
                        warn!(%error, "could not read the invalidation stream; L1 kept but untrusted until it can be read");
                    }
                    failures = failures.saturating_add(1);
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(RETRY_MAX);
                }
            }
        }
    }

    async fn flush(&mut self, store: &Store, l1: &L1, tally: &Tally) {
        // Where the stream ends before the flush: what follows is applied
        // live or replayed from there.
        *self = Self::start(store).await;
        l1.flush();
        bump(&tally.l1_flushes);
    }

    /// `Some(how many applied)`, or `None` when the gap is not in the
    /// stream any more.
    async fn replay(
        &mut self,
        store: &Store,
        l1: &L1,
        tally: &Tally,
    ) -> Result<Option<u64>, crate::CacheError> {
        let Some(mut last) = self.last else {
            return Ok(None);
        };
        let mut first_page = true;
        let mut applied = 0;
        loop {
            let entries = store.stream_from(last, PAGE).await?;
            if first_page {
                first_page = false;
                let holds_gap = entries
                    .first()
                    .is_some_and(|first| first.id == last || first.prev == last);
                // Empty with a last entry applied: the stream is gone
                // (Redis lost its data). Empty as it was: nothing missed.
                let still_empty = entries.is_empty() && last == EntryId::ZERO;
                if !holds_gap && !still_empty {
                    return Ok(None);
                }
            }
            let full = entries.len() >= PAGE as usize;
            for entry in entries.iter().filter(|entry| entry.id > last) {
                apply(l1, entry, tally);
                applied += 1;
            }
            if let Some(end) = entries.last() {
                last = last.max(end.id);
            }
            self.last = Some(last);
            if !full {
                return Ok(Some(applied));
            }
        }
    }
}

/// Applies one replayed entry: what its channel names; a channel this
/// version cannot read (a newer kind, from a rolling deploy) drops its
/// tenant, or the whole L1 when not even the tenant reads.
fn apply(l1: &L1, entry: &Entry, tally: &Tally) {
    match Invalidation::from_channel(&entry.channel) {
        Ok(invalidation) => l1.invalidate(&invalidation.scope()),
        Err(_) => {
            bump(&tally.invalidations_unreadable);
            match kind_and_tenant(&entry.channel) {
                Some((_, tenant_id)) => l1.invalidate(&Invalidation::Tenant { tenant_id }.scope()),
                None => l1.flush(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(ms: u64) -> EntryId {
        EntryId { ms, seq: 0 }
    }

    // A message whose predecessor is the last applied entry moves the
    // cursor; one already applied is seen; any other predecessor is a gap,
    // decided by ids alone.
    #[test]
    fn a_message_is_next_seen_or_a_gap_by_its_ids() {
        let mut cursor = Cursor { last: Some(id(5)) };
        assert_eq!(cursor.step(id(6), id(5)), Step::Next);
        assert_eq!(cursor.step(id(6), id(5)), Step::Seen);
        assert_eq!(cursor.step(id(4), id(3)), Step::Seen);
        assert_eq!(cursor.step(id(9), id(8)), Step::Gap);
        assert_eq!(cursor.last, Some(id(6)));
        let mut unknown = Cursor { last: None };
        assert_eq!(unknown.step(id(9), id(8)), Step::Next);
        assert_eq!(unknown.last, Some(id(9)));
    }

    // The tenant of a channel of an unknown kind is still read.
    #[test]
    fn an_unknown_kinds_channel_still_names_its_tenant() {
        assert_eq!(
            kind_and_tenant("cache:invalidate:newkind:t1:x")
                .map(|(kind, t)| (kind.to_owned(), t.as_str().to_owned())),
            Some(("newkind".to_owned(), "t1".to_owned()))
        );
        assert_eq!(kind_and_tenant("other:channel"), None);
    }
}
