//! [`Batched`]: the single-key `get`s and `set`s of many tasks, sent to a
//! single Redis server together.
//!
//! **Why.** Profiling workload 1 (BENCHMARKS.md, issue 15) showed where a
//! busy service's time goes: per command, not per key. fred spends a queue
//! entry, a frame, a timer and a wake-up on each; Redis a parse, a command
//! lookup and a reply; and both share the machine's cores. No setting
//! removes that; fewer commands do. So on a single server (standalone or
//! sentinel) concurrent calls go through a [`Coalescer`] each:
//!
//! - Redis-only `get`s as one `MGET`;
//! - two-tier `get`s (`GET`+`PTTL`) as one call of the GET+PTTL script
//!   (`store.rs`), which refuses a wrongly typed key alone (`WRONGTYPE`);
//! - unannounced `set`s of keys the tenant index does not cover yet
//!   (`index.rs`) as one script that writes every key with its own TTL and
//!   indexes it; a key given twice in one batch keeps the later value (the
//!   script writes in queue order). A rewrite of a key the index covers
//!   (the common case) is not coalesced: it is one `SET`, and sending many
//!   `SET`s from one task cost more than it saved, while running them from
//!   a script cost Redis about twice as much (BENCHMARKS.md, issue 15).
//!
//! A call that finds nothing in flight is sent at once from its caller's
//! own task, alone, as the very command it was before coalescing (`GET`,
//! `GET`+`PTTL`, `SET PX` or the SET+index script; `Coalescer::call_or_run`):
//! an idle service sends what it always sent, without a task hop, while
//! what arrives meanwhile queues behind it. A cluster keeps one command per
//! key (a batch's keys would span slots and nodes).
//!
//! **`MGET` and wrongly typed keys.** `MGET` answers nil for a key holding
//! another type, where `GET` refuses it (and the cache then deletes it as
//! undecodable). So when a batch's `MGET` answers nil for some keys, an
//! `EXISTS` of those keys follows: 0 (the usual case) means they are all
//! missing; otherwise each is read again with its own `GET`, which gives
//! each its true answer. Hits cost nothing extra; a batch with misses one
//! more round trip.
//!
//! **Bounds.** Every command of a batch fails fast while the pool is known
//! to be disconnected, and is bounded by what is left of its oldest
//! request's command timeout, counted from that request's call; a request
//! that has already waited a whole command timeout in the queue is answered
//! with the timeout error and not sent. So no caller waits longer than the
//! command timeout after its call (as without coalescing), except a script
//! reloaded after `NOSCRIPT` (up to three commands, as without coalescing).
//! A batch holds at most [`LIMITS`]`.max_batch` requests, below the
//! 250 keys of an `mset` script (`mset.rs`): a script holds the server
//! while it runs. An error of a batch reaches each of its callers, as the
//! typed error a lone command would have given.
//!
//! **Statistics.** Each caller counts its own hit, miss or write
//! (`read.rs`, `write.rs`); a batch counts one observation per request in
//! the command latency histogram, under the command that carried it
//! (`MGET`, `EVALSHA`), as `n` commands sent together are counted.

use std::time::{Duration, Instant};

use bytes::Bytes;
use redis_connection::ConnectionError;
use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{ClientLike, KeysInterface};
use redis_connection::fred::types::Key;
use redis_connection::fred::types::config::Options;
use shared_types::RedisKey;

use crate::coalesce::{Batch, Coalescer, Limits, Stopped};
use crate::error::CacheError;
use crate::store::{Fetched, Store};

/// How large and how many batches each kind sends. Workload 1 (64 tasks;
/// BENCHMARKS.md, issue 15 item 2) could not tell 128 with 1, 2 or 4 in
/// flight, or 32 with 2, apart from its noise; two in flight let one
/// batch's callers decode while the next is sent, and 128 is above the
/// callers measured and under the 250 keys of an `mset` script (a script
/// holds the server while it runs).
pub(crate) const LIMITS: Limits = Limits {
    max_batch: 128,
    max_in_flight: 2,
};

/// The coalescers of one store (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Batched {
    gets: Coalescer<Gets>,
    fetches: Coalescer<Fetches>,
    sets: Coalescer<Sets>,
}

impl Batched {
    /// Coalescers sending through `store`, which must not itself coalesce
    /// (a batch would queue behind itself).
    pub(crate) fn new(store: Store) -> Self {
        Self {
            gets: Coalescer::new(
                Gets {
                    store: store.clone(),
                },
                LIMITS,
            ),
            fetches: Coalescer::new(
                Fetches {
                    store: store.clone(),
                },
                LIMITS,
            ),
            sets: Coalescer::new(Sets { store }, LIMITS),
        }
    }

    /// `GET` of `key`, in the next batch.
    ///
    /// # Errors
    /// [`Stopped`]: send it the direct way.
    pub(crate) async fn get(
        &self,
        key: &str,
    ) -> Result<Result<Option<Bytes>, CacheError>, Stopped> {
        self.gets.call_or_run(Read::new(key)).await
    }

    /// `GET` and `PTTL` of `key`, in the next batch.
    ///
    /// # Errors
    /// [`Stopped`]: send it the direct way.
    pub(crate) async fn get_with_ttl(
        &self,
        key: &str,
    ) -> Result<Result<Option<Fetched>, CacheError>, Stopped> {
        self.fetches.call_or_run(Read::new(key)).await
    }

    /// `SET key value PX ttl`, indexed as needed, in the next batch.
    ///
    /// # Errors
    /// [`Stopped`]: send it the direct way (it may have been sent already;
    /// a `SET` is harmless to repeat).
    pub(crate) async fn set(
        &self,
        key: &RedisKey,
        value: Bytes,
        ttl: Duration,
    ) -> Result<Result<(), CacheError>, Stopped> {
        let write = Write {
            key: key.clone(),
            value,
            ttl,
            since: Instant::now(),
        };
        self.sets.call_or_run(write).await
    }
}

/// A read of one key, and when its caller asked.
struct Read {
    key: Key,
    since: Instant,
}

impl Read {
    fn new(key: &str) -> Self {
        Self {
            key: Key::from(key),
            since: Instant::now(),
        }
    }
}

/// A write of one key, and when its caller asked.
struct Write {
    key: RedisKey,
    value: Bytes,
    ttl: Duration,
    since: Instant,
}

/// When a request was made: what its deadline counts from.
trait Asked {
    fn since(&self) -> Instant;
}

impl Asked for Read {
    fn since(&self) -> Instant {
        self.since
    }
}

impl Asked for Write {
    fn since(&self) -> Instant {
        self.since
    }
}

/// When a batch must be answered by: its oldest request's call plus the
/// command timeout.
#[derive(Debug, Clone, Copy)]
struct Deadline(Instant);

impl Deadline {
    /// Options of a command of the batch: failing fast while disconnected,
    /// and timed out at the deadline (`None`: it has passed).
    fn options(self) -> Option<Options> {
        let left = self.0.saturating_duration_since(Instant::now());
        // fred reads a zero timeout as none at all.
        (left >= Duration::from_millis(1)).then(|| Options {
            fail_fast: true,
            timeout: Some(left),
            ..Options::default()
        })
    }
}

/// The error of a request whose command timeout passed before it was sent.
fn timed_out(store: &Store) -> CacheError {
    ConnectionError::Timeout(store.manager().command_timeout()).into()
}

/// Answers the requests that already waited a whole command timeout with
/// the timeout error, and sends the rest with `send` under their deadline
/// (and the options of a command timed out at it; when it has passed
/// before sending, every request gets the timeout error); one reply per
/// request, in order.
async fn within_timeout<R, T, F, Fut>(
    store: &Store,
    requests: Vec<R>,
    send: F,
) -> Vec<Result<T, CacheError>>
where
    R: Asked,
    F: FnOnce(Vec<R>, Deadline, Options) -> Fut,
    Fut: Future<Output = Vec<Result<T, CacheError>>>,
{
    let timeout = store.manager().command_timeout();
    let now = Instant::now();
    let late = |r: &R| now.saturating_duration_since(r.since()) >= timeout;
    let oldest = |requests: &[R]| {
        requests
            .iter()
            .map(Asked::since)
            .min()
            .map_or(Deadline(now + timeout), |since| Deadline(since + timeout))
    };
    let send = |requests: Vec<R>, deadline: Deadline| async move {
        match deadline.options() {
            Some(options) => send(requests, deadline, options).await,
            None => requests.iter().map(|_| Err(timed_out(store))).collect(),
        }
    };
    if !requests.iter().any(late) {
        let deadline = oldest(&requests);
        return send(requests, deadline).await;
    }
    let mut out: Vec<Option<Result<T, CacheError>>> = Vec::with_capacity(requests.len());
    let mut live = Vec::new();
    let mut at = Vec::new();
    for (i, request) in requests.into_iter().enumerate() {
        if late(&request) {
            out.push(Some(Err(timed_out(store))));
        } else {
            out.push(None);
            at.push(i);
            live.push(request);
        }
    }
    if !live.is_empty() {
        let deadline = oldest(&live);
        for (i, reply) in at.into_iter().zip(send(live, deadline).await) {
            out[i] = Some(reply);
        }
    }
    out.into_iter()
        .map(|reply| reply.unwrap_or_else(|| Err(timed_out(store))))
        .collect()
}

/// Redis-only reads: `MGET`.
struct Gets {
    store: Store,
}

impl Batch for Gets {
    type Request = Read;
    type Reply = Result<Option<Bytes>, CacheError>;

    async fn run(&self, requests: Vec<Read>) -> Vec<Self::Reply> {
        let store = &self.store;
        within_timeout(store, requests, |requests, deadline, options| async move {
            let n = requests.len();
            if let [read] = requests.as_slice() {
                return vec![store.get_with(&options, read.key.clone()).await];
            }
            let keys: Vec<Key> = requests.into_iter().map(|r| r.key).collect();
            let client = store.client().with_options(&options);
            let timer = store
                .manager()
                .commands()
                .start(RedisOp::MGET, u64::try_from(n).unwrap_or(u64::MAX));
            let read = client.mget(keys.clone()).await;
            timer.finish();
            let values: Vec<Option<Bytes>> = match read {
                Ok(values) => values,
                Err(error) => {
                    let error = store.error(&error);
                    return (0..n).map(|_| Err(error.clone())).collect();
                }
            };
            let missing: Vec<usize> = (0..n).filter(|&i| values[i].is_none()).collect();
            let mut out: Vec<Self::Reply> = values.into_iter().map(Ok).collect();
            if !missing.is_empty() {
                for (i, reply) in missing
                    .iter()
                    .zip(recheck(store, &keys, &missing, deadline).await)
                {
                    out[*i] = reply;
                }
            }
            out
        })
        .await
    }
}

/// The true answers for `keys[missing]`, which `MGET` answered nil: missing
/// keys (usually, shown by one `EXISTS`), or keys holding another type,
/// which a `GET` of each refuses (see the module's documentation).
async fn recheck(
    store: &Store,
    keys: &[Key],
    missing: &[usize],
    deadline: Deadline,
) -> Vec<Result<Option<Bytes>, CacheError>> {
    let failed = |error: CacheError| missing.iter().map(|_| Err(error.clone())).collect();
    let Some(options) = deadline.options() else {
        return failed(timed_out(store));
    };
    let names: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
    let client = store.client().with_options(&options);
    let existing: u64 = match store.timed(RedisOp::EXISTS, client.exists(names)).await {
        Ok(existing) => existing,
        Err(error) => return failed(store.error(&error)),
    };
    if existing == 0 {
        return missing.iter().map(|_| Ok(None)).collect();
    }
    let reads = missing
        .iter()
        .map(|&i| store.get_with(&options, keys[i].clone()));
    futures::future::join_all(reads).await
}

/// Two-tier reads: the GET+PTTL script.
struct Fetches {
    store: Store,
}

impl Batch for Fetches {
    type Request = Read;
    type Reply = Result<Option<Fetched>, CacheError>;

    async fn run(&self, requests: Vec<Read>) -> Vec<Self::Reply> {
        let store = &self.store;
        within_timeout(store, requests, |requests, _, options| async move {
            let n = requests.len();
            if let [read] = requests.as_slice() {
                return vec![store.get_with_ttl_with(&options, read.key.clone()).await];
            }
            let keys: Vec<Key> = requests.into_iter().map(|r| r.key).collect();
            match store
                .fetch_scripted(store.client(), &options, keys, n)
                .await
            {
                Ok(fetched) => fetched,
                Err(error) => (0..n).map(|_| Err(error.clone())).collect(),
            }
        })
        .await
    }
}

/// Unannounced writes: one script for the batch.
struct Sets {
    store: Store,
}

impl Batch for Sets {
    type Request = Write;
    type Reply = Result<(), CacheError>;

    async fn run(&self, requests: Vec<Write>) -> Vec<Self::Reply> {
        let store = &self.store;
        within_timeout(store, requests, |requests, _, options| async move {
            let n = requests.len();
            let client = store.client();
            if let [write] = requests.as_slice() {
                let written = store
                    .set_indexed_with(client, &options, &write.key, write.value.clone(), write.ttl)
                    .await;
                return vec![written];
            }
            let entries: Vec<(RedisKey, Bytes, Duration)> = requests
                .into_iter()
                .map(|w| (w.key, w.value, w.ttl))
                .collect();
            match store.set_many_indexed(client, &options, &entries).await {
                Ok(()) => (0..n).map(|_| Ok(())).collect(),
                Err(error) => (0..n).map(|_| Err(error.clone())).collect(),
            }
        })
        .await
    }
}
