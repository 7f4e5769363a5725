//! Tenant purges as background jobs.
//!
//! - `POST /v1/tenants/{t}/cache/invalidate {"kind":"tenant"}` on a tenant
//!   with more indexed keys than `MAIN_API_PURGE_JOB_THRESHOLD` answers `202`
//!   with `{"job": id, "state": "running", "existing": bool}` and
//!   `Location: /v1/tenants/{t}/cache/jobs/{id}` instead of purging in the
//!   request ([`start_tenant_purge`]). One job per tenant: while one runs, a
//!   second request answers `202` with the running job's id and
//!   `"existing": true` (a retried request is not an error, and the caller
//!   gets what it wanted: the tenant being purged).
//! - `GET /v1/tenants/{t}/cache/jobs/{id}` (role `admin` of `t`) answers the
//!   progress `{"id","tenant","state","scanned","deleted","total","resumed"}`,
//!   or 404 for an unknown id or another tenant's.
//!
//! Jobs live in Redis (`redis_cache::PurgeJobs`) and run in this process's background
//! tasks (`job_runner.rs`), which end when the service stops; a restarted
//! instance resumes what they left.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use service_kit::{ApiError, Authenticated, ErrorBody, PathParams, Platform};
use shared_types::{JobId, TenantId};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::JobConfig;
use crate::invalidate::{Invalidated, require_tenant_admin};
use crate::job_runner::Runner;
use crate::job_view::{JobState, Progress};
use crate::state::AppState;
use redis_cache::{Claim, JobProgress, LoadedJob};

/// The purge jobs of this instance: how to start them, and their tasks.
#[derive(Debug, Clone)]
pub struct Jobs {
    runner: Runner,
    /// The running jobs' tasks: dropped (and so aborted) with the last
    /// clone of the state, when the service stops.
    tasks: Arc<Mutex<JoinSet<()>>>,
}

impl Jobs {
    /// Jobs on `platform`'s Redis; resumes, in the background, the jobs a
    /// dead process left running (so it must be called inside a runtime).
    pub fn start(platform: &Platform, config: JobConfig) -> Self {
        let runner = Runner {
            cache: platform.cache.clone(),
            store: platform.cache.purge_jobs(),
            config,
        };
        let jobs = Self {
            runner,
            tasks: Arc::new(Mutex::new(JoinSet::new())),
        };
        let recovery = jobs.runner.clone().recover(jobs.tasks.clone());
        jobs.spawn(recovery);
        jobs
    }

    /// The configured settings.
    pub(crate) fn config(&self) -> JobConfig {
        self.runner.config
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = self.tasks.lock().expect("jobs lock");
        // Finished tasks' results are dropped here, so the set stays small.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }
}

/// Starts a purge job of `tenant` (which has `total` indexed keys), or
/// finds the one already running; answers the `202` response.
pub(crate) async fn start_tenant_purge(
    jobs: &Jobs,
    tenant: TenantId,
    total: u64,
) -> Result<Response, ApiError> {
    let store = &jobs.runner.store;
    let id = new_job_id();
    match store.claim(&tenant, &id).await.map_err(unavailable)? {
        Claim::Taken => {
            let progress = JobProgress::new(id.clone(), tenant.clone(), total);
            if let Err(error) = store.save(&progress).await {
                let _ = store.release(&tenant, &id).await;
                return Err(unavailable(error));
            }
            info!(tenant.id = %tenant, job.id = %id, total, "purge job started");
            jobs.spawn(jobs.runner.clone().run(progress));
            Ok(accepted(&tenant, &id, false))
        }
        Claim::HeldBy(running) => Ok(accepted(&tenant, &running, true)),
    }
}

fn accepted(tenant: &TenantId, id: &JobId, existing: bool) -> Response {
    let location = format!("/v1/tenants/{tenant}/cache/jobs/{id}");
    let mut response = (
        StatusCode::ACCEPTED,
        axum::Json(Invalidated::Job {
            job: id.clone(),
            state: JobState::Running,
            existing,
        }),
    )
        .into_response();
    // Ids are validated (no control characters), so this cannot fail.
    if let Ok(value) = HeaderValue::from_str(&location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// 16 random hex digits: unguessable enough that ids are not a way to
/// probe, and valid ids by construction.
fn new_job_id() -> JobId {
    format!("{:016x}", fastrand::u64(..))
        .parse()
        .expect("hex digits are a valid id")
}

fn unavailable(error: impl std::fmt::Display) -> ApiError {
    warn!(%error, "purge job store unavailable");
    ApiError::unavailable()
}

#[derive(Debug, Deserialize)]
pub(crate) struct JobPath {
    tenant_id: TenantId,
    job_id: JobId,
}

/// The progress of a purge job of the tenant (role `admin`).
///
/// Jobs are kept in Redis for 24 hours after they end; a job left running
/// by a stopped instance is resumed by the next one to start.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/cache/jobs/{job_id}",
    tag = "cache",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("job_id" = String, Path, description = "The job's id, from the `202` that started it", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "9f86d081884c7d65"),
    ),
    responses(
        (status = 200, description = "The job's progress", body = Progress),
        (status = 400, description = "An id breaks the id rules", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "The session belongs to another tenant, or lacks the role `admin`", body = ErrorBody),
        (status = 404, description = "No such job of this tenant", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 500, description = "The job's saved progress cannot be read", body = ErrorBody),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn get_job(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<JobPath>,
) -> Result<axum::Json<Progress>, ApiError> {
    require_tenant_admin(&auth, &path.tenant_id, "purge jobs need the admin role")?;
    let store = &state.jobs.runner.store;
    // The key names the tenant: another tenant's id is simply not found.
    match store
        .load(&path.tenant_id, &path.job_id)
        .await
        .map_err(unavailable)?
    {
        LoadedJob::Found(progress) => Ok(axum::Json(progress.into())),
        LoadedJob::Missing => Err(ApiError::not_found()),
        LoadedJob::Damaged { .. } => Err(ApiError::internal(&"purge job unreadable")),
    }
}
