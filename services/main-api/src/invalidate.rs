//! `POST /v1/tenants/{tenant_id}/cache/invalidate`: admins drop cached data
//! of their tenant (never sessions, which are not cache).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use service_kit::{ADMIN_ROLE, ApiError, Authenticated, JsonBody, PathParams, require_tenant};
use shared_types::{Invalidation, ShardId, TenantId, UserId};

use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub(crate) struct TenantPath {
    tenant_id: TenantId,
}

/// `{"kind": "shard"|"user"|"acl"|"vsearch"|"tenant", "id": "..."}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InvalidateBody {
    kind: String,
    id: Option<String>,
}

pub(crate) async fn invalidate(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<TenantPath>,
    JsonBody(body): JsonBody<InvalidateBody>,
) -> Result<Response, ApiError> {
    require_tenant(&auth.session, &path.tenant_id)?;
    if !auth.session.has_role(ADMIN_ROLE) {
        return Err(ApiError::forbidden(
            "invalidating cached data needs the admin role",
        ));
    }
    let invalidation = to_invalidation(path.tenant_id.clone(), &body)?;
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
        axum::Json(json!({"deleted": deleted})),
    )
        .into_response())
}

fn to_invalidation(tenant_id: TenantId, body: &InvalidateBody) -> Result<Invalidation, ApiError> {
    let id = || {
        body.id
            .as_deref()
            .ok_or_else(|| ApiError::bad_request(format!("kind {:?} needs an id", body.kind)))
    };
    let bad = |e: shared_types::ValidationError| ApiError::bad_request(e.to_string());
    Ok(match body.kind.as_str() {
        "shard" => Invalidation::Shard {
            tenant_id,
            shard_id: ShardId::new(id()?).map_err(bad)?,
        },
        "user" => Invalidation::User {
            tenant_id,
            user_id: UserId::new(id()?).map_err(bad)?,
        },
        "acl" => match body.id.as_deref() {
            Some(user) => Invalidation::AclUser {
                tenant_id,
                user_id: UserId::new(user).map_err(bad)?,
            },
            None => Invalidation::Acl { tenant_id },
        },
        "vsearch" => Invalidation::Vsearch { tenant_id },
        "tenant" => Invalidation::Tenant { tenant_id },
        _ => {
            return Err(ApiError::bad_request(
                "kind must be one of shard, user, acl, vsearch, tenant",
            ));
        }
    })
}
