//! The ledger: the source of truth for every soak key, the changes that were
//! acknowledged and when, and the rule that says whether a read was stale.
//!
//! **Versions.** Every change of a key (a `set`, or an `invalidate` after the
//! source of truth changed) takes the next number of one global counter and
//! stores it as the key's source-of-truth version *before* the cache is
//! touched, like an application that commits to its database and then
//! updates or invalidates the cache. Values carry `{key, version}`; a loader
//! answers the key's current source-of-truth version.
//!
//! **One writer per key at a time.** Changes of one key are serialised (an
//! async mutex per key, held from taking the version to recording the
//! outcome), as an application serialises writes of one row. Without it two
//! concurrent `set`s could reach Redis in either order, "last writer wins"
//! would be invisible to the harness, and a newer version could be
//! legitimately overwritten by an older one. With it, acknowledged versions
//! of a key increase with their acknowledgement times. Readers and loaders
//! are never serialised: races between reads, loads and writes, within and
//! across instances, are exactly what the soak is after.
//!
//! **Acknowledged, failed.** A change is acknowledged when the cache call
//! returned `Ok`; the acknowledgement time is taken right after. A change
//! that returned an error has an unknown outcome: its command may have run
//! (a `set` whose SET ran but whose PUBLISH failed), and may even run
//! *after* the call returned: a timeout while Redis is paused leaves the
//! command in the server's socket buffer, executed on `SIGCONT`, possibly
//! after a newer change. fred never sends a command again once its caller
//! got an error, so a failed change can land at most [`LATE_LANDING`] after
//! it failed (the 2 s pause plus recovery, with room to spare).
//!
//! **Stale read.** A read of key `k` that started at `s` and returned
//! version `r` is *stale* when some change of `k` with version `v > r` was
//! acknowledged at `t_v` with `t_v + grace <= s` (and, if `r` is a failed
//! change's version, failed at `t_r`, also `t_v > t_r + LATE_LANDING`: a
//! failed change landing late may legitimately overwrite newer ones
//! acknowledged before it landed; such reads are counted apart). In words: once a change is acknowledged, every read
//! anywhere that starts more than `grace` later returns that change or a
//! newer one. `grace` is the pub/sub propagation allowance (another
//! instance hears of the change a little later). Reads that started before
//! `t_v + grace` and missed it are counted as *lagging*, with how far
//! behind they were; that is the propagation delay actually observed.
//! A read the caller tags as *relaxed* (an L1 serving while its invalidation
//! feed was down and Redis could not answer: the documented "at most the L1
//! TTL cap old" rule) is judged with `relaxed_grace` instead.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex as AsyncMutex, MutexGuard};

/// The longest after its failure that a failed change may still reach Redis
/// (see the module docs).
pub(crate) const LATE_LANDING: Duration = Duration::from_secs(5);

/// How long acknowledgements are remembered (the newest older one is always
/// kept as a floor): far longer than any read may take plus any grace.
const KEEP: Duration = Duration::from_secs(30);

/// What every soak value holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Versioned {
    /// The key's index: a value found under another key is a violation.
    pub(crate) key: usize,
    /// The change that wrote it (0: the initial source-of-truth state).
    pub(crate) version: u64,
}

/// The judgement of one read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Not older than anything acknowledged before the read started.
    Fresh,
    /// Missed changes acknowledged before it started, all within the grace;
    /// the duration is how long before the read the oldest missed change
    /// was acknowledged.
    Lagging(Duration),
    /// A version whose change returned an error (outcome unknown), and that
    /// may have landed after the changes the read missed.
    FailedWrite,
    /// A version never written to this key (or another key's value).
    Phantom,
    /// Missed a change acknowledged more than the grace before it started.
    Stale {
        /// The missed version.
        missed: u64,
        /// How long before the read started it was acknowledged.
        behind: Duration,
    },
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Ledger {
    next_version: AtomicU64,
    keys: Vec<KeyLedger>,
    grace: Duration,
    relaxed_grace: Duration,
}

#[derive(Debug, Default)]
struct KeyLedger {
    /// The source of truth: the version of the latest change begun.
    source: AtomicU64,
    writer: AsyncMutex<()>,
    history: Mutex<History>,
}

#[derive(Debug, Default)]
struct History {
    /// Acknowledged changes, oldest first; versions and times both increase.
    acks: VecDeque<(u64, Instant)>,
    /// Versions whose change returned an error, and when.
    failed: HashMap<u64, Instant>,
}

/// A change in progress: holds the key's writer lock until it is finished.
#[derive(Debug)]
pub(crate) struct Change<'a> {
    _writer: MutexGuard<'a, ()>,
    key: usize,
    /// The version this change writes.
    pub(crate) version: u64,
}

impl Ledger {
    /// A ledger of `keys` keys, all at version 0.
    pub(crate) fn new(keys: usize, grace: Duration, relaxed_grace: Duration) -> Self {
        Self {
            next_version: AtomicU64::new(1),
            keys: (0..keys).map(|_| KeyLedger::default()).collect(),
            grace,
            relaxed_grace,
        }
    }

    /// The propagation allowance.
    pub(crate) fn grace(&self) -> Duration {
        self.grace
    }

    /// The allowance for reads served while a fault was in progress.
    pub(crate) fn relaxed_grace(&self) -> Duration {
        self.relaxed_grace
    }

    /// Begins a change of `key`: waits for the key's previous change to
    /// finish, takes the next version and makes it the source of truth.
    pub(crate) async fn begin(&self, key: usize) -> Change<'_> {
        let writer = self.keys[key].writer.lock().await;
        let version = self.next_version.fetch_add(1, Ordering::SeqCst);
        self.keys[key].source.store(version, Ordering::SeqCst);
        Change {
            _writer: writer,
            key,
            version,
        }
    }

    /// Records the outcome of `change`, then releases the key: the next
    /// change of the key can only be acknowledged after this one.
    pub(crate) fn finish(&self, change: Change<'_>, acknowledged: bool) {
        let now = Instant::now();
        {
            let mut history = self.keys[change.key].history.lock().expect("ledger lock");
            if acknowledged {
                history.acks.push_back((change.version, now));
                while history.acks.len() > 1 && history.acks[1].1 + KEEP < now {
                    history.acks.pop_front();
                }
            } else {
                history.failed.insert(change.version, now);
            }
        }
        drop(change);
    }

    /// What a loader answers: the source of truth now.
    pub(crate) fn source(&self, key: usize) -> Versioned {
        Versioned {
            key,
            version: self.keys[key].source.load(Ordering::SeqCst),
        }
    }

    /// Judges a read of `key` that started at `started` and returned `value`.
    pub(crate) fn check(
        &self,
        key: usize,
        value: Versioned,
        started: Instant,
        relaxed: bool,
    ) -> Verdict {
        let ledger = &self.keys[key];
        if value.key != key || value.version > ledger.source.load(Ordering::SeqCst) {
            return Verdict::Phantom;
        }
        let history = ledger.history.lock().expect("ledger lock");
        let landed_by = history
            .failed
            .get(&value.version)
            .map(|failed| *failed + LATE_LANDING);
        let grace = if relaxed {
            self.relaxed_grace
        } else {
            self.grace
        };
        // Newest first: skip changes acknowledged while the read ran (either
        // answer is right for them), stop at the first the read did see.
        let mut oldest_missed = None;
        let mut missed_before_landing = false;
        for &(version, at) in history.acks.iter().rev() {
            if at > started {
                continue;
            }
            if version <= value.version {
                break;
            }
            if landed_by.is_some_and(|landed_by| at <= landed_by) {
                // The failed change may have landed after this one.
                missed_before_landing = true;
                break;
            }
            oldest_missed = Some((version, started - at));
        }
        match oldest_missed {
            Some((missed, behind)) if behind > grace => Verdict::Stale { missed, behind },
            _ if missed_before_landing => Verdict::FailedWrite,
            None if landed_by.is_some() => Verdict::FailedWrite,
            None => Verdict::Fresh,
            Some((_, behind)) => Verdict::Lagging(behind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GRACE: Duration = Duration::from_millis(200);

    fn ledger() -> Ledger {
        Ledger::new(2, GRACE, Duration::from_secs(5))
    }

    async fn change(ledger: &Ledger, key: usize, acknowledged: bool) -> u64 {
        let change = ledger.begin(key).await;
        let version = change.version;
        ledger.finish(change, acknowledged);
        version
    }

    fn at(key: usize, version: u64) -> Versioned {
        Versioned { key, version }
    }

    // A read that started after an acknowledgement plus the grace must see it.
    #[tokio::test]
    async fn stale_after_grace() {
        let ledger = ledger();
        let v1 = change(&ledger, 0, true).await;
        let v2 = change(&ledger, 0, true).await;
        let later = Instant::now() + GRACE * 2;
        assert_eq!(ledger.check(0, at(0, v2), later, false), Verdict::Fresh);
        assert!(matches!(
            ledger.check(0, at(0, v1), later, false),
            Verdict::Stale { missed, .. } if missed == v2
        ));
        // The oldest change it missed is the one reported.
        assert!(matches!(
            ledger.check(0, at(0, 0), later, false),
            Verdict::Stale { missed, .. } if missed == v1
        ));
        // The relaxed grace (L1 serving during an outage) forgives it.
        assert!(matches!(
            ledger.check(0, at(0, v1), later, true),
            Verdict::Lagging(_)
        ));
    }

    // Within the grace a miss is lagging; during the read, not even that.
    #[tokio::test]
    async fn lagging_within_grace_and_concurrent_changes() {
        let ledger = ledger();
        let before = Instant::now();
        let v1 = change(&ledger, 0, true).await;
        assert_eq!(ledger.check(0, at(0, 0), before, false), Verdict::Fresh);
        let soon = Instant::now() + GRACE / 2;
        assert!(matches!(
            ledger.check(0, at(0, 0), soon, false),
            Verdict::Lagging(_)
        ));
        assert_eq!(ledger.check(0, at(0, v1), soon, false), Verdict::Fresh);
    }

    // A failed change may land late: missing changes acknowledged before it
    // could have landed is excused, missing later ones is not. Foreign
    // values are phantoms.
    #[tokio::test]
    async fn failed_and_phantom() {
        let ledger = ledger();
        let failed = change(&ledger, 0, false).await;
        let acked = change(&ledger, 0, true).await;
        let later = Instant::now() + GRACE * 2;
        assert_eq!(
            ledger.check(0, at(0, failed), later, false),
            Verdict::FailedWrite
        );
        // An acknowledgement long after the failure: the failed change had
        // landed (or not) by then, so missing it is stale.
        ledger.keys[0]
            .history
            .lock()
            .unwrap()
            .acks
            .push_back((acked + 1, Instant::now() + LATE_LANDING * 2));
        ledger.keys[0].source.store(acked + 1, Ordering::SeqCst);
        let much_later = Instant::now() + LATE_LANDING * 3;
        assert!(matches!(
            ledger.check(0, at(0, failed), much_later, false),
            Verdict::Stale { missed, .. } if missed == acked + 1
        ));
        assert_eq!(
            ledger.check(1, at(0, failed), later, false),
            Verdict::Phantom
        );
        assert_eq!(ledger.check(1, at(1, 99), later, false), Verdict::Phantom);
        assert_eq!(ledger.source(1), at(1, 0));
    }
}
