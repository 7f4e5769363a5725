//! [`PurgeJobs`]: where tenant purge jobs keep their progress and their
//! lease, in Redis, so that a job outlives the request that started it and
//! the process that ran it.
//!
//! - `jobs:tenant:{t}:purge:{job}`, a hash: `state`, `cursor` (the
//!   [`PurgeCursor`] of the next page), `scanned`, `deleted`, `total` (the
//!   index size when it started), `resumed` (how many times a restarted
//!   instance took it over). It expires [`FINISHED_TTL`] after the job ends.
//! - `jobs:tenant:{t}:purge-lease`, the running job's id, expiring after
//!   [`LEASE_TTL`] unless its runner renews it. It is both "one job per
//!   tenant" and "one runner per job": a second instance cannot take it
//!   while the runner lives, and once a runner dies (SIGKILL) it expires,
//!   so a restarted instance can resume.
//! - `jobs:purge:running` ([`RedisKey::purge_jobs_running`]), a set of the job keys of the jobs not yet ended: what a
//!   starting instance reads to find jobs to resume, so start-up costs the
//!   number of running jobs, not a `SCAN` of the keyspace.
//!
//! **Atomic leases.** Claiming, renewing and releasing a lease each compare
//! its holder and change it in one Lua script: done as `GET` then `PEXPIRE`
//! or `DEL`, the lease could expire between the two and be taken by another
//! job, which the second command would then extend or delete.
//!
//! **Cluster.** Every script touches one key, so no two keys need to share a
//! slot. The registry is kept beside the job's hash with separate commands,
//! ordered so that a crash between them errs towards a registry entry too
//! many (added before the job is saved `running`, removed after it is saved
//! ended), which the next start-up reads, finds not running, and forgets.

use std::collections::HashMap;
use std::sync::LazyLock;
use std::time::Duration;

use redis_connection::RedisOp;
use redis_connection::fred::interfaces::{HashesInterface, SetsInterface};
use redis_connection::fred::types::scripts::Script;
use redis_connection::fred::types::{Key, Value};
use shared_types::{JobId, RedisKey, TenantId};

use crate::error::CacheError;
use crate::purge_step::PurgeCursor;
use crate::service::CacheService;
use crate::store::{Store, millis};

/// How long a lease lives unless renewed: a dead runner's job is resumed
/// this long after it died at the latest. Pages take milliseconds, so a
/// live runner renews it long before.
pub const LEASE_TTL: Duration = Duration::from_secs(5);

/// How long a finished job's progress stays readable.
pub const FINISHED_TTL: Duration = Duration::from_secs(24 * 3600);

/// The set of the keys of jobs not yet ended
/// ([`RedisKey::purge_jobs_running`], `jobs:purge:running`). One key for
/// every tenant: it holds running jobs only, a handful, and is read once
/// per start.
static RUNNING: LazyLock<RedisKey> = LazyLock::new(RedisKey::purge_jobs_running);

/// `SET NX PX`, or the holder when the lease is taken; `''` when the caller
/// took it (a job id is never empty).
const CLAIM_LUA: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return ''
end
return redis.call('GET', KEYS[1])
";

/// Extends the lease if `ARGV[1]` holds it, takes it again if it expired
/// (a page slower than the TTL); 0 when another job holds it.
const RENEW_LUA: &str = r"
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if not holder then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
";

/// Deletes the lease if `ARGV[1]` holds it.
const RELEASE_LUA: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// Writes the fields `ARGV[2..]` (name, value pairs) of the job's hash, and
/// makes it expire after `ARGV[1]` seconds unless that is 0 (still running).
const SAVE_LUA: &str = r"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] ~= '0' then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
end
return 1
";

static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::from_lua(CLAIM_LUA));
static RENEW: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RENEW_LUA));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(RELEASE_LUA));
static SAVE: LazyLock<Script> = LazyLock::new(|| Script::from_lua(SAVE_LUA));

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    /// A runner is purging (or a restarted instance is about to resume it).
    Running,
    /// The whole index was walked.
    Done,
    /// Redis failed repeatedly; `deleted` says what the job did before.
    Failed,
    /// Stopped where it was, and nobody will continue it (its lease went to
    /// another job of the tenant, or its saved progress could not be read
    /// back); `deleted` says what it did.
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

    /// The state as it is stored (and shown): `running`, `done`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Interrupted => "interrupted",
        }
    }
}

/// A job's saved progress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobProgress {
    /// The job's id.
    pub id: JobId,
    /// The tenant it purges.
    pub tenant: TenantId,
    /// Where it stands.
    pub state: JobState,
    /// Index entries read so far.
    pub scanned: u64,
    /// Keys deleted so far.
    pub deleted: u64,
    /// The tenant's indexed keys when the job started.
    pub total: u64,
    /// How many times a restarted instance resumed it.
    pub resumed: u64,
    /// The next page's cursor.
    pub cursor: PurgeCursor,
}

impl JobProgress {
    /// A job that has not read a page yet.
    pub fn new(id: JobId, tenant: TenantId, total: u64) -> Self {
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

/// What [`PurgeJobs::claim`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The lease is the caller's.
    Taken,
    /// This job holds it.
    HeldBy(JobId),
}

/// What [`PurgeJobs::load`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoadedJob {
    /// A readable job.
    Found(JobProgress),
    /// No such job (or it expired).
    Missing,
    /// A job whose fields do not parse, with the counts that did.
    Damaged {
        /// `scanned`, or 0 if it did not parse.
        scanned: u64,
        /// `deleted`, or 0 if it did not parse.
        deleted: u64,
    },
}

/// Reads and writes purge jobs and their leases; from
/// [`CacheService::purge_jobs`].
#[derive(Debug, Clone)]
pub struct PurgeJobs {
    store: Store,
}

impl CacheService {
    /// The purge jobs kept in this cache's Redis.
    pub fn purge_jobs(&self) -> PurgeJobs {
        PurgeJobs {
            store: self.inner.store.clone(),
        }
    }
}

impl PurgeJobs {
    /// Takes the tenant's lease for `job` if no job holds it, or says which
    /// job does.
    pub async fn claim(&self, tenant: &TenantId, job: &JobId) -> Result<Claim, CacheError> {
        let holder: String = self.lease_script(&CLAIM, tenant, job).await?;
        if holder.is_empty() {
            return Ok(Claim::Taken);
        }
        // Only job ids are written to the lease.
        holder.parse().map(Claim::HeldBy).map_err(|_| {
            CacheError::Rejected(redis_connection::Rejection::new(
                redis_connection::RejectionKind::Other,
                "a purge lease holds something other than a job id".to_owned(),
            ))
        })
    }

    /// Extends the lease if `job` holds it, or takes it again if it expired
    /// meanwhile; `false` when another job holds it.
    pub async fn renew(&self, tenant: &TenantId, job: &JobId) -> Result<bool, CacheError> {
        Ok(self.lease_script::<i64>(&RENEW, tenant, job).await? == 1)
    }

    /// Gives the lease up if `job` holds it; whether it did.
    pub async fn release(&self, tenant: &TenantId, job: &JobId) -> Result<bool, CacheError> {
        Ok(self.lease_script::<i64>(&RELEASE, tenant, job).await? == 1)
    }

    async fn lease_script<R: redis_connection::fred::types::FromValue>(
        &self,
        script: &Script,
        tenant: &TenantId,
        job: &JobId,
    ) -> Result<R, CacheError> {
        let lease = RedisKey::purge_lease(tenant);
        let args = vec![Value::from(job.as_str()), Value::Integer(millis(LEASE_TTL))];
        self.store
            .run_script(script, vec![Key::from(lease.as_str())], args)
            .await
    }

    /// Writes a job's progress: a running job is in the registry of running
    /// jobs (`jobs:purge:running`), an ended one leaves it and starts expiring.
    pub async fn save(&self, progress: &JobProgress) -> Result<(), CacheError> {
        let key = RedisKey::purge_job(&progress.tenant, &progress.id);
        let running = progress.state == JobState::Running;
        if running {
            // Registered before it is saved running (see the module docs).
            self.register(&key, true).await?;
        }
        let expiry = if running { 0 } else { FINISHED_TTL.as_secs() };
        let mut args = vec![Value::from(expiry.to_string())];
        for (name, value) in [
            ("state", progress.state.as_str().to_owned()),
            ("cursor", progress.cursor.to_string()),
            ("scanned", progress.scanned.to_string()),
            ("deleted", progress.deleted.to_string()),
            ("total", progress.total.to_string()),
            ("resumed", progress.resumed.to_string()),
        ] {
            args.push(Value::from(name));
            args.push(Value::from(value));
        }
        self.store
            .run_script::<i64>(&SAVE, vec![Key::from(key.as_str())], args)
            .await?;
        if !running {
            self.register(&key, false).await?;
        }
        Ok(())
    }

    /// Adds the job `key` to the registry of running jobs, or removes it.
    async fn register(&self, key: &RedisKey, running: bool) -> Result<(), CacheError> {
        let fast = self.store.fast();
        let result = if running {
            self.store
                .timed(
                    RedisOp::SADD,
                    fast.sadd::<i64, _, _>(RUNNING.as_str(), key.as_str()),
                )
                .await
        } else {
            self.store
                .timed(
                    RedisOp::SREM,
                    fast.srem::<i64, _, _>(RUNNING.as_str(), key.as_str()),
                )
                .await
        };
        result.map(drop).map_err(|e| self.store.error(&e))
    }

    /// Drops a job from the registry of running jobs: for one the registry
    /// lists but that is no longer running (see the module docs).
    pub async fn forget(&self, tenant: &TenantId, job: &JobId) -> Result<(), CacheError> {
        self.register(&RedisKey::purge_job(tenant, job), false)
            .await
    }

    /// A job's progress.
    pub async fn load(&self, tenant: &TenantId, job: &JobId) -> Result<LoadedJob, CacheError> {
        let key = RedisKey::purge_job(tenant, job);
        let fields: HashMap<String, String> = self
            .store
            .timed(RedisOp::HGETALL, self.store.fast().hgetall(key.as_str()))
            .await
            .map_err(|e| self.store.error(&e))?;
        if fields.is_empty() {
            return Ok(LoadedJob::Missing);
        }
        let number = |name: &str| fields.get(name).and_then(|v| v.parse::<u64>().ok());
        let parsed = (|| {
            Some(JobProgress {
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
            Some(progress) => LoadedJob::Found(progress),
            None => LoadedJob::Damaged {
                deleted: number("deleted").unwrap_or(0),
                scanned: number("scanned").unwrap_or(0),
            },
        })
    }

    /// The jobs the registry lists as running (one `SMEMBERS`): what a
    /// starting instance resumes. An entry that is not a job key is skipped.
    pub async fn running(&self) -> Result<Vec<(TenantId, JobId)>, CacheError> {
        let members: Vec<String> = self
            .store
            .timed(
                RedisOp::SMEMBERS,
                self.store.fast().smembers(RUNNING.as_str()),
            )
            .await
            .map_err(|e| self.store.error(&e))?;
        Ok(members
            .iter()
            // Members are text read back from Redis (anyone may have
            // written one): parsed as a key, then read by its typed ids.
            .filter_map(|member| RedisKey::parse(member).ok()?.purge_job_ids())
            .collect())
    }
}
