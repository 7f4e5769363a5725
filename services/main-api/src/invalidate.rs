//! `POST /v1/tenants/{tenant_id}/cache/invalidate`: admins drop cached data
//! of their tenant (never sessions, which are not cache).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use service_kit::{
    ADMIN_ROLE, ApiError, Authenticated, ErrorBody, JsonBody, PathParams, require_tenant,
};
use shared_types::{Invalidation, ShardId, TenantId, UserId};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct TenantPath {
    tenant_id: TenantId,
}

/// What to invalidate: `{"kind": "shard", "id": "eu-1"}`. The kind decides
/// whether an id is needed: shard and user need one, acl may name a user,
/// vsearch and tenant take none. Anything else is a 400 naming the problem.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub(crate) enum InvalidateBody {
    /// One shard's structured data.
    Shard {
        /// The shard.
        #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "eu-1")]
        id: ShardId,
    },
    /// One user's profile and other per-user data.
    User {
        /// The user.
        #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice")]
        id: UserId,
    },
    /// Access-control data: one user's, or the whole tenant's without an id.
    Acl {
        /// The user, if only theirs.
        #[serde(default)]
        #[schema(value_type = Option<String>, pattern = "^[A-Za-z0-9._@+-]{1,128}$")]
        id: Option<UserId>,
    },
    /// The tenant's vector-search results.
    Vsearch {},
    /// Every cached entry of the tenant (sessions are not cache: never touched).
    Tenant {},
}

impl InvalidateBody {
    /// The schema utoipa derives, with `additionalProperties: false` on each
    /// kind: serde's `deny_unknown_fields` on the enum applies to every
    /// variant, but utoipa only reads it from a struct's own attributes
    /// (and serde allows it on no variant), so the derived schema would
    /// accept the extra fields the handler refuses.
    pub(crate) fn strict_schema() -> RefOr<Schema> {
        let mut schema = <Self as PartialSchema>::schema();
        if let RefOr::T(Schema::OneOf(one_of)) = &mut schema {
            for kind in &mut one_of.items {
                if let RefOr::T(Schema::Object(object)) = kind {
                    object.additional_properties =
                        Some(Box::new(AdditionalProperties::FreeForm(false)));
                }
            }
        }
        schema
    }
}

/// The answer to an invalidation: done, or (a tenant larger than
/// `MAIN_API_PURGE_JOB_THRESHOLD` keys) a background purge job.
#[derive(Debug, Serialize, ToSchema)]
#[serde(untagged)]
pub(crate) enum Invalidated {
    /// Done: Redis changed and every instance was told.
    Done {
        /// Keys deleted from Redis.
        deleted: u64,
    },
    /// A purge job of the whole tenant runs in the background; its progress
    /// is at the response's `Location`.
    Job {
        /// The job's id (16 hex digits).
        #[schema(value_type = String, pattern = "^[0-9a-f]{16}$")]
        job: shared_types::JobId,
        /// `running`.
        state: crate::job_view::JobState,
        /// Whether the job was already running (one job per tenant at a
        /// time: a second request answers the running one).
        existing: bool,
    },
}

/// Invalidates cached data of the tenant (role `admin`).
///
/// Redis changes first, then every instance of every service drops its
/// copies. Sessions are never touched.
#[utoipa::path(
    post,
    path = "/v1/tenants/{tenant_id}/cache/invalidate",
    tag = "cache",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
    ),
    request_body = InvalidateBody,
    responses(
        (status = 202, description = "Invalidated (`deleted`), or, for a tenant with more indexed keys than `MAIN_API_PURGE_JOB_THRESHOLD`, a background purge job (`job`)", body = Invalidated,
            headers(("Location" = String, description = "For a job: `/v1/tenants/{tenant_id}/cache/jobs/{job}`, its progress"))),
        (status = 400, description = "An id breaks the id rules, the body is not JSON or names no known kind, lacks an id its kind needs, or has other fields", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "The session belongs to another tenant, or lacks the role `admin`", body = ErrorBody),
        (status = 413, description = "The body is larger than `CACHE_MAX_VALUE_BYTES`", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn invalidate(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<InvalidateBody>,
) -> Result<Response, ApiError> {
    require_tenant_admin(
        &auth,
        &path.tenant_id,
        "invalidating cached data needs the admin role",
    )?;
    let invalidation = to_invalidation(path.tenant_id.clone(), body);
    if let Invalidation::Tenant { .. } = invalidation {
        // A large tenant is purged by a background job (see `jobs.rs`).
        let threshold = state.jobs.config().threshold;
        let total = state
            .platform
            .cache
            .tenant_indexed_keys(&path.tenant_id)
            .await?;
        if total > threshold {
            return crate::jobs::start_tenant_purge(&state.jobs, path.tenant_id, total).await;
        }
    }
    let deleted = state.platform.cache.invalidate(&invalidation).await?;
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(Invalidated::Done { deleted }),
    )
        .into_response())
}

/// The session is of `tenant` (else 403, as [`require_tenant`]) and has
/// the role `admin` (else 403 with `why`): what every cache operation of a
/// whole tenant needs.
pub(crate) fn require_tenant_admin(
    auth: &Authenticated,
    tenant: &TenantId,
    why: &'static str,
) -> Result<(), ApiError> {
    require_tenant(&auth.session, tenant)?;
    if auth.session.has_role(ADMIN_ROLE) {
        Ok(())
    } else {
        Err(ApiError::forbidden(why))
    }
}

fn to_invalidation(tenant_id: TenantId, body: InvalidateBody) -> Invalidation {
    match body {
        InvalidateBody::Shard { id } => Invalidation::Shard {
            tenant_id,
            shard_id: id,
        },
        InvalidateBody::User { id } => Invalidation::User {
            tenant_id,
            user_id: id,
        },
        InvalidateBody::Acl { id: Some(user_id) } => Invalidation::AclUser { tenant_id, user_id },
        InvalidateBody::Acl { id: None } => Invalidation::Acl { tenant_id },
        InvalidateBody::Vsearch {} => Invalidation::Vsearch { tenant_id },
        InvalidateBody::Tenant {} => Invalidation::Tenant { tenant_id },
    }
}
