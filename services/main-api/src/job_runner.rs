//! Running purge jobs: one page of the tenant's key index at a time
//! (`CacheService::purge_step`, the engine `cache-admin purge` uses), paced
//! to the configured rate, the progress saved and the lease renewed after
//! each page (in Redis: `redis_cache::PurgeJobs`), and resumed after a
//! restart.
//!
//! **Restarts.** A runner killed mid-job leaves its job `running` with the
//! cursor of its next page, and its lease expiring. On start, an instance
//! reads the registry of running jobs (`PurgeJobs::running`: one `SMEMBERS`,
//! whatever the keyspace), and for each one still `running`
//! waits for its lease to be free (a live runner elsewhere keeps renewing
//! it, and then keeps the job), takes it and continues from the cursor, so
//! no job stops silently half-way. A job whose progress cannot be read
//! back, or whose tenant has since started another job (which holds the
//! lease), is marked `interrupted` with the counts it saved. A registry
//! entry whose job is missing or ended is forgotten.
//!
//! **Failures.** A page that fails (Redis unavailable) is retried from the
//! same cursor, which is harmless; after [`MAX_FAILURES`] failures in a row
//! the job is marked `failed` with what it deleted. Recovery after a
//! restart waits out a Redis that does not answer (retrying with a backoff
//! of up to 5 s) instead of giving up on the jobs it would resume.

use std::time::{Duration, Instant};

use redis_cache::{
    CacheError, CacheService, Claim, JobProgress as Progress, JobState, LEASE_TTL,
    LoadedJob as Loaded, PurgeJobs,
};
use shared_types::{JobId, KeyPattern, TenantId};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

use crate::config::JobConfig;

/// Consecutive failed pages before a job is given up as `failed`.
const MAX_FAILURES: u32 = 10;

/// Most index entries one page reads: small enough that a page is a few
/// milliseconds of Redis time, whatever the rate.
const MAX_PAGE: u32 = 500;

/// Starts, resumes and runs jobs; the tasks end when the last clone of the
/// owner ([`crate::AppState`]) is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Runner {
    pub(crate) cache: CacheService,
    pub(crate) store: PurgeJobs,
    pub(crate) config: JobConfig,
}

impl Runner {
    /// Runs `progress` (already claimed and saved) to its end.
    pub(crate) async fn run(self, mut progress: Progress) {
        let pattern = KeyPattern::tenant_cache(&progress.tenant);
        let page = self.config.rate.min(MAX_PAGE);
        let started = Instant::now();
        let mut this_run = 0_u64;
        let mut failures = 0;
        loop {
            match self
                .cache
                .purge_step(&pattern, progress.cursor, page, false)
                .await
            {
                Ok(step) => {
                    failures = 0;
                    progress.scanned += step.scanned;
                    progress.deleted += step.deleted;
                    this_run += step.scanned;
                    match step.next {
                        Some(next) => progress.cursor = next,
                        None => progress.state = JobState::Done,
                    }
                }
                Err(error) => {
                    failures += 1;
                    warn!(tenant.id = %progress.tenant, job.id = %progress.id, %error, failures, "purge job page failed");
                    if failures >= MAX_FAILURES {
                        progress.state = JobState::Failed;
                    } else {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                }
            }
            if let Err(error) = self.store.save(&progress).await {
                // The page is done; its progress will be saved with the
                // next one (or the page redone after a restart).
                warn!(tenant.id = %progress.tenant, job.id = %progress.id, %error, "purge job progress not saved");
            }
            if progress.state != JobState::Running {
                let _ = self.store.release(&progress.tenant, &progress.id).await;
                info!(tenant.id = %progress.tenant, job.id = %progress.id, state = ?progress.state, scanned = progress.scanned, deleted = progress.deleted, "purge job ended");
                return;
            }
            match self.store.renew(&progress.tenant, &progress.id).await {
                Ok(true) => {}
                Ok(false) => {
                    // Another job of the tenant took the lease during a
                    // stall: say this one stopped rather than leave it
                    // `running` with nobody running it.
                    warn!(tenant.id = %progress.tenant, job.id = %progress.id, "purge job lease lost to another job; interrupted");
                    progress.state = JobState::Interrupted;
                    self.save_ended(&progress).await;
                    return;
                }
                Err(error) => {
                    warn!(tenant.id = %progress.tenant, job.id = %progress.id, %error, "purge job lease not renewed");
                }
            }
            pace(started, this_run, self.config.rate).await;
        }
    }

    /// Finds the jobs a dead process left `running` and resumes them (see
    /// the module docs). Redis not answering (the service starting during
    /// an outage) is waited out: giving up here would leave those jobs
    /// `running` with nobody running them.
    pub(crate) async fn recover(self, tasks: std::sync::Arc<std::sync::Mutex<JoinSet<()>>>) {
        let mut backoff = Backoff::default();
        let jobs = loop {
            match self.store.running().await {
                Ok(jobs) => break jobs,
                Err(error) => {
                    backoff
                        .wait_after(&error, None, "purge jobs left running could not be listed")
                        .await;
                }
            }
        };
        for (tenant, id) in jobs {
            let runner = self.clone();
            let task = async move { runner.resume(tenant, id).await };
            tasks.lock().expect("jobs lock").spawn(task);
        }
    }

    /// Resumes one job if it is still `running` once its lease is free;
    /// one whose progress is damaged is marked `interrupted` once its lease
    /// is free (so that no runner is still writing it), and the lease let go.
    /// A failed Redis call is retried (with [`Backoff`]), never taken as an
    /// answer: the job would be left `running` with nobody running it.
    async fn resume(self, tenant: TenantId, id: JobId) {
        // A dead runner's lease expires within LEASE_TTL; a live runner
        // keeps it, and then this instance leaves the job alone. Counted
        // from the first answer, so that an outage does not use it up.
        let mut deadline = None;
        let mut backoff = Backoff::default();
        loop {
            let mut progress = match self.store.load(&tenant, &id).await {
                Ok(Loaded::Found(progress)) if progress.state == JobState::Running => progress,
                Ok(Loaded::Damaged { scanned, deleted }) => {
                    let mut progress = Progress::new(id.clone(), tenant.clone(), 0);
                    progress.scanned = scanned;
                    progress.deleted = deleted;
                    // Marked below, as interrupted, whoever holds the lease.
                    progress.state = JobState::Interrupted;
                    progress
                }
                Ok(_) => {
                    // Missing (expired) or ended: the registry lists it
                    // from a crash between the two writes.
                    let _ = self.store.forget(&tenant, &id).await;
                    return;
                }
                Err(error) => {
                    backoff
                        .wait_after(&error, Some((&tenant, &id)), "purge job not read")
                        .await;
                    continue;
                }
            };
            let claim = match self.store.claim(&tenant, &id).await {
                Ok(claim) => claim,
                Err(error) => {
                    backoff
                        .wait_after(&error, Some((&tenant, &id)), "purge job lease not read")
                        .await;
                    continue;
                }
            };
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + LEASE_TTL * 3);
            match claim {
                Claim::Taken if progress.state == JobState::Interrupted => {
                    warn!(tenant.id = %tenant, job.id = %id, deleted = progress.deleted, "purge job unreadable; marked interrupted");
                    self.save_ended(&progress).await;
                    let _ = self.store.release(&tenant, &id).await;
                    return;
                }
                Claim::Taken => {
                    progress.resumed += 1;
                    info!(tenant.id = %tenant, job.id = %id, scanned = progress.scanned, deleted = progress.deleted, "purge job resumed");
                    let _ = self.store.save(&progress).await;
                    self.run(progress).await;
                    return;
                }
                Claim::HeldBy(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Claim::HeldBy(other) if other != id => {
                    // Another job of the tenant runs: nobody will continue
                    // this one.
                    progress.state = JobState::Interrupted;
                    warn!(tenant.id = %tenant, job.id = %id, "purge job superseded; marked interrupted");
                    self.save_ended(&progress).await;
                    return;
                }
                // Its own runner, alive elsewhere, keeps it.
                Claim::HeldBy(_) => return,
            }
        }
    }

    /// Saves a job's final state, retrying until Redis takes it: an ended
    /// job left saved as `running` would never be looked at again.
    async fn save_ended(&self, progress: &Progress) {
        let mut backoff = Backoff::default();
        while let Err(error) = self.store.save(progress).await {
            let job = Some((&progress.tenant, &progress.id));
            backoff
                .wait_after(&error, job, "purge job state not saved")
                .await;
        }
    }
}

/// Delays between retries of a Redis call the runner cannot do without:
/// from 100 ms, doubling, at most 5 s.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: Duration::from_millis(100),
        }
    }
}

impl Backoff {
    /// Logs `error` (what failed, of which job) and sleeps the next delay.
    /// Redis being unavailable is logged at DEBUG only: the outage has its
    /// own WARN, summaries and INFO (`service_kit`'s outage log), and a line
    /// per retry would repeat it; any other error is a WARN.
    async fn wait_after(
        &mut self,
        error: &CacheError,
        job: Option<(&TenantId, &JobId)>,
        what: &'static str,
    ) {
        let tenant = job.map(|(tenant, _)| tenant.as_str());
        let id = job.map(|(_, id)| id.as_str());
        let retry_in = self.next;
        if error.is_unavailable() {
            debug!(tenant.id = tenant, job.id = id, %error, ?retry_in, "{what}; retrying");
        } else {
            warn!(tenant.id = tenant, job.id = id, %error, ?retry_in, "{what}; retrying");
        }
        tokio::time::sleep(self.next).await;
        self.next = (self.next * 2).min(Duration::from_secs(5));
    }
}

/// Sleeps until `done` index entries since `started` are within `rate` a
/// second.
async fn pace(started: Instant, done: u64, rate: u32) {
    #[allow(clippy::cast_precision_loss)]
    let due = Duration::from_secs_f64(done as f64 / f64::from(rate.max(1)));
    let elapsed = started.elapsed();
    if due > elapsed {
        tokio::time::sleep(due - elapsed).await;
    }
}
