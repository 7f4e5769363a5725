//! A purge job as `GET .../cache/jobs/{id}` shows it: the HTTP face of
//! `redis_cache::JobProgress` (kept in Redis by `redis_cache::PurgeJobs`),
//! without its cursor, an internal detail.

use serde::Serialize;
use shared_types::{JobId, TenantId};

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

impl From<redis_cache::JobState> for JobState {
    fn from(state: redis_cache::JobState) -> Self {
        match state {
            redis_cache::JobState::Running => Self::Running,
            redis_cache::JobState::Done => Self::Done,
            redis_cache::JobState::Failed => Self::Failed,
            redis_cache::JobState::Interrupted => Self::Interrupted,
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
}

impl From<redis_cache::JobProgress> for Progress {
    fn from(job: redis_cache::JobProgress) -> Self {
        Self {
            id: job.id,
            tenant: job.tenant,
            state: job.state.into(),
            scanned: job.scanned,
            deleted: job.deleted,
            total: job.total,
            resumed: job.resumed,
        }
    }
}
