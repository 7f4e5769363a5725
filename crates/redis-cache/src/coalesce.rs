//! [`Coalescer`]: concurrent requests of one kind sent to Redis as batches.
//!
//! On a busy service many tasks send the same kind of command at once (a
//! `GET` each, a `SET` each, an invalidation each). Each command costs fred
//! a queue entry, a frame and a wake-up, and costs Redis a parse, a lookup
//! of the command and a reply: per command, not per key. A coalescer puts
//! such requests in one queue read by one driver task, which sends what it
//! finds queued as one batch (one `MGET`, one script call) and hands each
//! caller its own reply.
//!
//! No timer decides when a batch leaves: the driver takes what is queued as
//! soon as fewer than `max_in_flight` batches are in flight. A request that
//! finds the driver idle goes out at once, alone (an idle service pays one
//! task hop, not a delay); requests that arrive while batches are in flight
//! wait for the first of them to finish and leave together. The busier the
//! service, the larger the batches, with no added wait beyond one batch's
//! round trip.
//!
//! The queue holds at most one entry per waiting caller (each caller waits
//! for its reply), so its length is bounded by the caller's own
//! concurrency. A caller that stops waiting does not withdraw its request:
//! like a command fred has queued, it is sent, and its reply dropped.
//!
//! [`Coalescer::call_or_run`] spares an idle service even the task hop: a
//! request that finds nothing in flight runs in its caller's own task, as
//! a batch of one that counts as in flight meanwhile (so what arrives
//! behind it still queues and leaves together). The hop to the driver and
//! back cost a lone `get` a quarter to a third of its throughput
//! (BENCHMARKS.md, issue 15 item 2). Such a request is the caller's own future: dropped
//! before it is sent, it is not sent (as a command of its own would not
//! be), which is why `call` does not do it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::{Notify, mpsc, oneshot};

/// One kind of request a [`Coalescer`] sends in batches.
pub(crate) trait Batch: Send + Sync + 'static {
    /// What one caller asks for.
    type Request: Send + 'static;
    /// What one caller gets back.
    type Reply: Send + 'static;

    /// Sends `requests` together; exactly one reply per request, in order.
    fn run(&self, requests: Vec<Self::Request>) -> impl Future<Output = Vec<Self::Reply>> + Send;
}

/// How large and how many batches a [`Coalescer`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Requests per batch at most (a batch holds the server while it runs).
    pub(crate) max_batch: usize,
    /// Batches in flight at once at most; requests wait while this many are.
    pub(crate) max_in_flight: usize,
}

/// The driver is gone (its runtime is shutting down), or dropped a request
/// without a reply: the caller should send its request the direct way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped;

type Job<B> = (<B as Batch>::Request, oneshot::Sender<<B as Batch>::Reply>);

/// A queue of requests and the driver task that sends them in batches
/// (started by the first request, so a coalescer can be built outside a
/// runtime).
pub(crate) struct Coalescer<B: Batch> {
    batch: Arc<B>,
    limits: Limits,
    queue: OnceLock<mpsc::UnboundedSender<Job<B>>>,
    /// Batches in flight, the driver's and callers' own, shared with the
    /// driver.
    busy: Arc<Busy>,
}

/// How many batches are in flight, driver's and callers' own together
/// (see [`Coalescer::call_or_run`]), and a wake-up for the driver when a
/// caller's own ends while the driver waits for a place.
#[derive(Debug, Default)]
struct Busy {
    batches: AtomicUsize,
    /// The driver found no place (set before it counts `batches`, so a
    /// caller ending its batch after that count sees it, and wakes it).
    /// Waking the driver after every caller's own batch instead cost an
    /// idle service a task wake-up per call.
    blocked: AtomicBool,
    freed: Notify,
}

/// A caller's own batch of one, in flight until dropped.
struct Alone<'a>(&'a Busy);

impl Drop for Alone<'_> {
    fn drop(&mut self) {
        self.0.batches.fetch_sub(1, Ordering::SeqCst);
        if self.0.blocked.load(Ordering::SeqCst) {
            self.0.freed.notify_one();
        }
    }
}

impl<B: Batch> std::fmt::Debug for Coalescer<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer")
            .field("limits", &self.limits)
            .field("started", &self.queue.get().is_some())
            .finish_non_exhaustive()
    }
}

impl<B: Batch> Coalescer<B> {
    pub(crate) fn new(batch: B, limits: Limits) -> Self {
        Self {
            batch: Arc::new(batch),
            limits: Limits {
                max_batch: limits.max_batch.max(1),
                max_in_flight: limits.max_in_flight.max(1),
            },
            queue: OnceLock::new(),
            busy: Arc::default(),
        }
    }

    /// [`call`](Self::call), except that a request finding no batch in
    /// flight runs at once in the caller's task, as a batch of one (see the
    /// module's documentation): dropping the returned future may then
    /// withdraw it.
    ///
    /// # Errors
    /// [`Stopped`]: the request may not have been sent.
    pub(crate) async fn call_or_run(&self, request: B::Request) -> Result<B::Reply, Stopped> {
        let claimed = self
            .busy
            .batches
            .compare_exchange(0, 1, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok();
        if !claimed {
            return self.call(request).await;
        }
        let _alone = Alone(&self.busy);
        // Boxed: a batch's future (a whole command path) nested in every
        // caller's would grow them all, and deepen the layouts the compiler
        // computes past its limit in the services.
        Box::pin(self.batch.run(vec![request]))
            .await
            .pop()
            .ok_or(Stopped)
    }

    /// Queues `request` and waits for its reply.
    ///
    /// # Errors
    /// [`Stopped`]: the request may not have been sent.
    pub(crate) async fn call(&self, request: B::Request) -> Result<B::Reply, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.queue().send((request, reply)).map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    fn queue(&self) -> &mpsc::UnboundedSender<Job<B>> {
        self.queue.get_or_init(|| {
            let (queue, requests) = mpsc::unbounded_channel();
            tokio::spawn(drive(
                self.batch.clone(),
                self.limits,
                self.busy.clone(),
                requests,
            ));
            queue
        })
    }
}

/// Takes what is queued whenever a batch may leave; ends once every sender
/// is gone and the last batch has answered.
async fn drive<B: Batch>(
    batch: Arc<B>,
    limits: Limits,
    busy: Arc<Busy>,
    mut requests: mpsc::UnboundedReceiver<Job<B>>,
) {
    let mut in_flight = FuturesUnordered::new();
    let mut open = true;
    loop {
        if !open && in_flight.is_empty() {
            break;
        }
        // Callers' own batches count too (a caller may have claimed the
        // last place an instant before this batch: then one more is in
        // flight for as long as the caller's runs). `blocked` first: see
        // `Busy`.
        busy.blocked.store(true, Ordering::SeqCst);
        let room = busy.batches.load(Ordering::SeqCst) < limits.max_in_flight;
        if room {
            busy.blocked.store(false, Ordering::SeqCst);
        }
        tokio::select! {
            // Answers first: a finished batch frees a place for the next.
            biased;
            Some(()) = in_flight.next(), if !in_flight.is_empty() => {
                busy.batches.fetch_sub(1, Ordering::SeqCst);
            }
            job = requests.recv(), if open && room => {
                let Some(first) = job else {
                    open = false;
                    continue;
                };
                let mut jobs = Vec::with_capacity(limits.max_batch.min(64));
                jobs.push(first);
                while jobs.len() < limits.max_batch {
                    match requests.try_recv() {
                        Ok(job) => jobs.push(job),
                        Err(_) => break,
                    }
                }
                busy.batches.fetch_add(1, Ordering::SeqCst);
                in_flight.push(send(batch.clone(), jobs));
            }
            // A caller's own batch ended: there may be room now.
            () = busy.freed.notified(), if open && !room => {}
            else => break,
        }
    }
}

/// Sends one batch and hands each caller its reply (a caller that stopped
/// waiting is skipped).
async fn send<B: Batch>(batch: Arc<B>, jobs: Vec<Job<B>>) {
    let (requests, callers): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
    let replies = batch.run(requests).await;
    debug_assert_eq!(replies.len(), callers.len(), "one reply per request");
    for (caller, reply) in callers.into_iter().zip(replies) {
        let _ = caller.send(reply);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;

    /// Doubles numbers; records each batch; holds every batch until the
    /// test lets it go (one permit per batch).
    struct Doubler {
        batches: Mutex<Vec<Vec<u32>>>,
        gate: Semaphore,
    }

    impl Batch for Doubler {
        type Request = u32;
        type Reply = u32;

        async fn run(&self, requests: Vec<u32>) -> Vec<u32> {
            self.batches.lock().unwrap().push(requests.clone());
            self.gate.acquire().await.unwrap().forget();
            requests.into_iter().map(|n| n * 2).collect()
        }
    }

    fn doubler(limits: Limits) -> Arc<Coalescer<Doubler>> {
        Arc::new(Coalescer::new(
            Doubler {
                batches: Mutex::new(Vec::new()),
                gate: Semaphore::new(0),
            },
            limits,
        ))
    }

    fn batches(c: &Coalescer<Doubler>) -> Vec<Vec<u32>> {
        c.batch.batches.lock().unwrap().clone()
    }

    /// Waits, with a deadline, until `n` batches have been started.
    async fn started(c: &Coalescer<Doubler>, n: usize) {
        tokio::time::timeout(Duration::from_secs(5), async {
            while batches(c).len() < n {
                tokio::task::yield_now().await;
            }
        })
        .await
        .expect("the batches start");
    }

    #[tokio::test]
    async fn a_lone_request_leaves_at_once_alone() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        c.batch.gate.add_permits(1);
        assert_eq!(c.call(21).await, Ok(42));
        assert_eq!(batches(&c), vec![vec![21]]);
    }

    #[tokio::test]
    async fn requests_queued_behind_a_batch_in_flight_leave_together_each_with_its_reply() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        let mut first = Box::pin(c.call(1));
        assert!(futures::poll!(&mut first).is_pending());
        started(&c, 1).await;
        // Polled once, each request is queued behind the batch in flight.
        let mut rest: Vec<_> = (2..=10).map(|n| Box::pin(c.call(n))).collect();
        for call in &mut rest {
            assert!(futures::poll!(call).is_pending());
        }
        c.batch.gate.add_permits(2);
        assert_eq!(first.await, Ok(2));
        for (n, call) in (2..=10).zip(rest) {
            assert_eq!(call.await, Ok(n * 2));
        }
        assert_eq!(batches(&c), vec![vec![1], (2..=10).collect::<Vec<_>>()]);
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_its_size_and_batches_in_flight_are_capped() {
        let c = doubler(Limits {
            max_batch: 3,
            max_in_flight: 2,
        });
        let mut calls: Vec<_> = (0..8).map(|n| Box::pin(c.call(n))).collect();
        for call in &mut calls {
            assert!(futures::poll!(call).is_pending());
        }
        started(&c, 2).await;
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(batches(&c), vec![vec![0, 1, 2], vec![3, 4, 5]]);
        c.batch.gate.add_permits(8);
        for (n, call) in (0..8).zip(calls) {
            assert_eq!(call.await, Ok(n * 2));
        }
        assert_eq!(batches(&c)[2], vec![6, 7]);
    }

    #[tokio::test]
    async fn a_caller_that_stops_waiting_leaves_the_others_their_replies() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        let mut first = Box::pin(c.call(1));
        assert!(futures::poll!(&mut first).is_pending());
        started(&c, 1).await;
        let mut gone = Box::pin(c.call(2));
        let mut kept = Box::pin(c.call(3));
        assert!(futures::poll!(&mut gone).is_pending());
        assert!(futures::poll!(&mut kept).is_pending());
        drop(gone);
        c.batch.gate.add_permits(2);
        assert_eq!(first.await, Ok(2));
        assert_eq!(kept.await, Ok(6));
        // The abandoned request was still sent (it cannot be withdrawn).
        assert_eq!(batches(&c)[1], vec![2, 3]);
    }

    #[tokio::test]
    async fn a_request_finding_nothing_in_flight_runs_in_its_callers_task() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        c.batch.gate.add_permits(1);
        assert_eq!(c.call_or_run(21).await, Ok(42));
        assert_eq!(batches(&c), vec![vec![21]]);
        assert!(c.queue.get().is_none(), "no driver was started");
    }

    #[tokio::test]
    async fn requests_behind_a_callers_own_run_queue_and_leave_together() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        let mut first = Box::pin(c.call_or_run(1));
        // Runs in this task: its batch has started (and waits at the gate).
        assert!(futures::poll!(&mut first).is_pending());
        assert_eq!(batches(&c), vec![vec![1]]);
        let mut rest: Vec<_> = (2..=5).map(|n| Box::pin(c.call_or_run(n))).collect();
        for call in &mut rest {
            assert!(futures::poll!(call).is_pending());
        }
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(batches(&c).len(), 1, "nothing leaves beside it");
        c.batch.gate.add_permits(2);
        assert_eq!(first.await, Ok(2));
        for (n, call) in (2..=5).zip(rest) {
            assert_eq!(call.await, Ok(n * 2));
        }
        assert_eq!(batches(&c), vec![vec![1], vec![2, 3, 4, 5]]);
    }

    #[tokio::test]
    async fn a_callers_own_run_dropped_midway_frees_its_place_for_the_queue() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        let mut first = Box::pin(c.call_or_run(1));
        assert!(futures::poll!(&mut first).is_pending());
        let mut second = Box::pin(c.call_or_run(2));
        assert!(futures::poll!(&mut second).is_pending());
        drop(first);
        c.batch.gate.add_permits(1);
        assert_eq!(second.await, Ok(4));
        assert_eq!(batches(&c), vec![vec![1], vec![2]]);
    }

    #[tokio::test]
    async fn a_request_after_the_runtime_of_its_driver_is_gone_is_stopped() {
        let c = doubler(Limits {
            max_batch: 64,
            max_in_flight: 1,
        });
        std::thread::scope(|s| {
            s.spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                c.batch.gate.add_permits(1);
                assert_eq!(runtime.block_on(c.call(1)), Ok(2));
            });
        });
        assert_eq!(c.call(2).await, Err(Stopped));
    }
}
