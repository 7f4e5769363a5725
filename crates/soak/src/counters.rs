//! Counters: no increment that returned success may be lost.
//!
//! The soak's Redis runs with `--appendonly yes --appendfsync always`, so a
//! kill and restart keeps every acknowledged write (Redis appends and
//! fsyncs before it replies), and the only fault that legitimately loses
//! counter state is the explicit "restart with data gone". The run is cut
//! into *epochs* at that fault. In each epoch, for each counter, the harness
//! counts the increments that returned `Ok` (`acked`) and those that
//! returned an error (`failed`: the outcome is unknown, the INCRBY may have
//! run). At the end of an epoch, with every increment quiesced (a gate
//! that increments hold shared and the epoch's end holds exclusively) and
//! Redis up, it reads each counter with a raw client and requires
//!
//! `acked <= value`: **no lost increment** (asserted), and reports
//! `value - acked - failed` when positive: increments applied more often
//! than they were sent (a retried INCRBY whose first attempt did run),
//! which no caller was told about; reported, not asserted.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use shared_types::RedisKey;
use test_support::RedisServer;
use tokio::sync::{OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock};

/// One counter at the end of one epoch.
#[derive(Debug, Clone)]
pub(crate) struct EpochCheck {
    pub(crate) epoch: usize,
    pub(crate) counter: String,
    pub(crate) acked: u64,
    pub(crate) failed: u64,
    /// `None`: Redis could not be read.
    pub(crate) value: Option<u64>,
}

impl EpochCheck {
    /// Acknowledged increments the server does not have (all of them if it
    /// could not be read).
    pub(crate) fn lost(&self) -> u64 {
        self.acked.saturating_sub(self.value.unwrap_or(0))
    }

    /// Increments the server has beyond every one sent.
    pub(crate) fn extra(&self) -> u64 {
        self.value
            .unwrap_or(0)
            .saturating_sub(self.acked + self.failed)
    }
}

/// The counters and their books.
#[derive(Debug)]
pub(crate) struct CounterBook {
    pub(crate) keys: Vec<RedisKey>,
    gate: std::sync::Arc<RwLock<()>>,
    acked: Vec<AtomicU64>,
    failed: Vec<AtomicU64>,
    epoch: AtomicU64,
    checks: Mutex<Vec<EpochCheck>>,
    closing: Mutex<Option<OwnedRwLockWriteGuard<()>>>,
}

impl CounterBook {
    pub(crate) fn new(keys: Vec<RedisKey>) -> Self {
        let n = keys.len();
        Self {
            keys,
            gate: std::sync::Arc::new(RwLock::new(())),
            acked: (0..n).map(|_| AtomicU64::new(0)).collect(),
            failed: (0..n).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(1),
            checks: Mutex::new(Vec::new()),
            closing: Mutex::new(None),
        }
    }

    /// Held while one increment runs.
    pub(crate) async fn enter(&self) -> OwnedRwLockReadGuard<()> {
        self.gate.clone().read_owned().await
    }

    /// Records an increment's outcome (call while holding [`enter`]'s guard).
    ///
    /// [`enter`]: Self::enter
    pub(crate) fn record(&self, counter: usize, acknowledged: bool) {
        let book = if acknowledged {
            &self.acked
        } else {
            &self.failed
        };
        book[counter].fetch_add(1, Ordering::SeqCst);
    }

    /// Ends the epoch: waits for increments in flight, reads every counter
    /// from `redis` with a raw client (retrying for up to 10 s; `None` if it
    /// never answers), and keeps the gate closed until
    /// [`reopen`](Self::reopen). The raw reads block: call it from the fault
    /// injector's thread, or once the load has stopped.
    pub(crate) async fn close_epoch(&self, redis: &RedisServer) {
        let guard = self.gate.clone().write_owned().await;
        let epoch = usize::try_from(self.epoch.fetch_add(1, Ordering::SeqCst)).unwrap_or(0);
        let mut checks = Vec::new();
        for (i, key) in self.keys.iter().enumerate() {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            let value = loop {
                match redis.try_cmd(&["GET", key.as_str()]) {
                    Ok(reply) if reply.is_nil() => break Some(0),
                    Ok(reply) => break reply.as_int().and_then(|v| u64::try_from(v).ok()),
                    Err(_) if std::time::Instant::now() > deadline => break None,
                    Err(_) => tokio::time::sleep(std::time::Duration::from_millis(10)).await,
                }
            };
            checks.push(EpochCheck {
                epoch,
                counter: key.as_str().to_owned(),
                acked: self.acked[i].swap(0, Ordering::SeqCst),
                failed: self.failed[i].swap(0, Ordering::SeqCst),
                value,
            });
        }
        self.checks.lock().expect("checks lock").extend(checks);
        *self.closing.lock().expect("closing lock") = Some(guard);
    }

    /// Lets increments run again, in the new epoch.
    pub(crate) fn reopen(&self) {
        self.closing.lock().expect("closing lock").take();
    }

    pub(crate) fn checks(&self) -> Vec<EpochCheck> {
        self.checks.lock().expect("checks lock").clone()
    }
}
