//! Where purge jobs live: in Redis, so that a job outlives the request that
//! started it and the process that ran it.
//!
//! - `jobs:tenant:{t}:purge:{job}`, a hash: `state`, `cursor` (the
//!   `ZSCAN` cursor of the next page, see `redis_cache::PurgeCursor`),
//!   `scanned`, `deleted`, `total` (the index size when it started),
//!   `resumed` (how many times a restarted instance took it over). It
//!   expires [`FINISHED_TTL`] after the job ends.
//! - `jobs:tenant:{t}:purge-lease`, the running job's id, written with
//!   `SET NX` and an expiry of [`LEASE_TTL`] its runner renews after each
//!   page. It is both "one job per tenant" and "one runner per job": a
//!   second instance cannot take it while the runner lives, and once a
//!   runner dies (SIGKILL) it expires, so a restarted instance can resume.
//!
//! The progress is written after each page's deletion, so a crash between
//! the two redoes one page (harmless: `purge_step` from the same cursor
//! deletes what is left of it) and never skips one.

use std::collections::HashMap;
use std::time::Duration;

use redis_cache::PurgeCursor;
use redis_connection::fred::clients::Client;
use redis_connection::fred::interfaces::{ClientLike, HashesInterface, KeysInterface};
use redis_connection::fred::types::{Expiration, SetOptions};
use serde::Serialize;
use shared_types::{JobId, RedisKey, TenantId};

/// How long a lease lives unless renewed: a dead runner's job is resumed
/// this long after it died at the latest. Pages take milliseconds, so a
/// live runner renews it long before.
pub(crate) const LEASE_TTL: Duration = Duration::from_secs(5);

/// How long a finished job's progress stays readable.
pub(crate) const FINISHED_TTL: Duration = Duration::from_secs(24 * 3600);

/// A job's state, as `GET .../jobs/{id}` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum JobState {
    /// A runner is purging (or a restarted instance is about to resume it).
    Running,
    /// The whole index was walked.
    Done,
    /// Redis failed repeatedly; `deleted` says what the job did before.
    Failed,
    /// Stopped where it was, and nobody will continue it: its runner lost
    /// its lease to another job of the tenant (after a stall longer than
    /// the lease), or its saved progress could not be read back. `deleted`
    /// says what it did; a new purge request finishes the work.
    Interrupted,
}

impl JobState {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "running" => Self::Running,
            "done" => Self::Done,
            "failed" => Self::Failed,
            "interrupted" => Self::Interrupted,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A job's saved progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Progress {
    /// The job's id.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$")]
    pub(crate) id: JobId,
    /// The tenant it purges.
    #[schema(value_type = String)]
    pub(crate) tenant: TenantId,
    /// Where it stands.
    pub(crate) state: JobState,
    /// Index entries read so far.
    pub(crate) scanned: u64,
    /// Keys deleted so far.
    pub(crate) deleted: u64,
    /// The tenant's indexed keys when the job started.
    pub(crate) total: u64,
    /// How many times a restarted instance resumed it.
    pub(crate) resumed: u64,
    /// The next page's cursor (not shown: an internal detail).
    #[serde(skip)]
    #[schema(ignore)]
    pub(crate) cursor: PurgeCursor,
}

impl Progress {
    /// A job that has not read a page yet.
    pub(crate) fn new(id: JobId, tenant: TenantId, total: u64) -> Self {
        Self {
            id,
            tenant,
            state: JobState::Running,
            scanned: 0,
            deleted: 0,
            total,
            resumed: 0,
            cursor: PurgeCursor::START,
        }
    }
}

/// Reads and writes jobs and their leases.
#[derive(Debug, Clone)]
pub(crate) struct JobStore {
    client: Client,
}

type RedisResult<T> = Result<T, redis_connection::fred::error::Error>;

impl JobStore {
    pub(crate) fn new(client: Client) -> Self {
        Self { client }
    }

    /// Takes the tenant's lease for `job` if no job holds it.
    pub(crate) async fn claim(&self, tenant: &TenantId, job: &JobId) -> RedisResult<Claim> {
        let lease = RedisKey::purge_lease(tenant);
        let taken: Option<String> = self
            .client
            .set(
                lease.as_str(),
                job.as_str(),
                Some(Expiration::PX(millis(LEASE_TTL))),
                Some(SetOptions::NX),
                false,
            )
            .await?;
        if taken.is_some() {
            return Ok(Claim::Taken);
        }
        let holder: Option<String> = self.client.get(lease.as_str()).await?;
        // The holder may have ended between the two commands.
        Ok(match holder.and_then(|id| id.parse().ok()) {
            Some(holder) => Claim::HeldBy(holder),
            None => Claim::Retry,
        })
    }

    /// Extends the lease if `job` still holds it, or takes it again if it
    /// expired meanwhile (a page slower than the TTL); `false` when another
    /// job took it in between.
    pub(crate) async fn renew(&self, tenant: &TenantId, job: &JobId) -> RedisResult<bool> {
        let lease = RedisKey::purge_lease(tenant);
        let holder: Option<String> = self.client.get(lease.as_str()).await?;
        match holder {
            Some(holder) if holder == job.as_str() => {
                // Expired between the two commands: take it again.
                let extended: bool = self
                    .client
                    .pexpire(lease.as_str(), millis(LEASE_TTL), None)
                    .await?;
                if extended {
                    Ok(true)
                } else {
                    Ok(matches!(self.claim(tenant, job).await?, Claim::Taken))
                }
            }
            Some(_) => Ok(false),
            None => Ok(matches!(self.claim(tenant, job).await?, Claim::Taken)),
        }
    }

    /// Gives the lease up if `job` holds it.
    pub(crate) async fn release(&self, tenant: &TenantId, job: &JobId) -> RedisResult<()> {
        let lease = RedisKey::purge_lease(tenant);
        let holder: Option<String> = self.client.get(lease.as_str()).await?;
        if holder.as_deref() == Some(job.as_str()) {
            self.client.del::<i64, _>(lease.as_str()).await?;
        }
        Ok(())
    }

    /// Writes a job's progress; a job that ended starts expiring.
    pub(crate) async fn save(&self, progress: &Progress) -> RedisResult<()> {
        let key = RedisKey::purge_job(&progress.tenant, &progress.id);
        let fields: Vec<(&str, String)> = vec![
            ("state", progress.state.as_str().to_owned()),
            ("cursor", progress.cursor.to_string()),
            ("scanned", progress.scanned.to_string()),
            ("deleted", progress.deleted.to_string()),
            ("total", progress.total.to_string()),
            ("resumed", progress.resumed.to_string()),
        ];
        self.client.hset::<i64, _, _>(key.as_str(), fields).await?;
        if progress.state != JobState::Running {
            let seconds = i64::try_from(FINISHED_TTL.as_secs()).unwrap_or(i64::MAX);
            self.client
                .expire::<bool, _>(key.as_str(), seconds, None)
                .await?;
        }
        Ok(())
    }

    /// A job's progress: [`Loaded::Missing`] for a job that does not exist
    /// (or expired), [`Loaded::Damaged`] when a field does not parse.
    pub(crate) async fn load(&self, tenant: &TenantId, job: &JobId) -> RedisResult<Loaded> {
        let key = RedisKey::purge_job(tenant, job);
        let fields: HashMap<String, String> = self.client.hgetall(key.as_str()).await?;
        if fields.is_empty() {
            return Ok(Loaded::Missing);
        }
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        let parsed = (|| {
            Some(Progress {
                id: job.clone(),
                tenant: tenant.clone(),
                state: JobState::parse(fields.get("state")?)?,
                scanned: number("scanned")?,
                deleted: number("deleted")?,
                total: number("total")?,
                resumed: number("resumed").unwrap_or(0),
                cursor: fields.get("cursor")?.parse().ok()?,
            })
        })();
        Ok(match parsed {
            Some(progress) => Loaded::Found(progress),
            None => Loaded::Damaged {
                deleted: number("deleted").unwrap_or(0),
                scanned: number("scanned").unwrap_or(0),
            },
        })
    }

    /// Every job key in Redis (read once at start-up, to find the jobs a
    /// dead process left running). A `SCAN` of the keyspace: its cost is
    /// the keyspace, paid once per start, in the background.
    pub(crate) async fn all_jobs(&self) -> RedisResult<Vec<(TenantId, JobId)>> {
        use futures::StreamExt;
        // The pattern is a constant: the family's fixed layout.
        let pattern = "jobs:tenant:*:purge:*";
        let keys: Vec<_> = if self.client.is_clustered() {
            self.client
                .scan_cluster_buffered(pattern, Some(1000), None)
                .collect()
                .await
        } else {
            self.client
                .scan_buffered(pattern, Some(1000), None)
                .collect()
                .await
        };
        let mut jobs = Vec::new();
        for key in keys {
            let key = key?;
            let Some(text) = key.as_str() else { continue };
            if let Some(job) = RedisKey::parse(text).ok().as_ref().and_then(job_of) {
                jobs.push(job);
            }
        }
        Ok(jobs)
    }
}

/// What [`JobStore::claim`] did.
#[derive(Debug)]
pub(crate) enum Claim {
    /// The lease is the caller's.
    Taken,
    /// This job holds it.
    HeldBy(JobId),
    /// It was held, then freed before it could be read: try again.
    Retry,
}

/// What [`JobStore::load`] found.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// A readable job.
    Found(Progress),
    /// No such job.
    Missing,
    /// A job whose fields do not parse, with the counts that did.
    Damaged { scanned: u64, deleted: u64 },
}

/// The tenant and job of a `jobs:tenant:{t}:purge:{job}` key.
fn job_of(key: &RedisKey) -> Option<(TenantId, JobId)> {
    if key.family() != shared_types::KeyFamily::PurgeJob {
        return None;
    }
    let job = key.as_str().rsplit(':').next()?.parse().ok()?;
    Some((key.tenant_str().parse().ok()?, job))
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
