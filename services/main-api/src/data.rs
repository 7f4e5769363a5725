//! Tenant data: shard structured data and user profiles, any JSON, served
//! through the two-tier cache with an `x-cache` header saying which tier
//! answered (`hit-l1`, `hit-l2`, `miss`), or `stale`: the document's read
//! failed (its Redis node down or slow) while the session's succeeded, and
//! the instance's L1 copy was served without Redis confirming it.

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redis_cache::{Expiry, Tier};
use serde::Deserialize;
use serde_json::value::RawValue;
use service_kit::{
    ApiError, Authenticated, ErrorBody, JsonDocument, PathParams, require_tenant,
    require_user_or_admin,
};
use shared_types::{RedisKey, ShardId, TenantId, TtlPolicy, UserId};

use crate::state::AppState;

const X_CACHE: HeaderName = HeaderName::from_static("x-cache");

/// `/v1/tenants/{tenant_id}/shards/{shard_id}/structured`
#[derive(Debug, Deserialize)]
pub(crate) struct ShardPath {
    tenant_id: TenantId,
    shard_id: ShardId,
}

/// `/v1/tenants/{tenant_id}/users/{user_id}/profile`
#[derive(Debug, Deserialize)]
pub(crate) struct ProfilePath {
    tenant_id: TenantId,
    user_id: UserId,
}

impl ShardPath {
    fn key(&self, auth: &Authenticated) -> Result<RedisKey, ApiError> {
        require_tenant(&auth.session, &self.tenant_id)?;
        Ok(RedisKey::shard_structured(&self.tenant_id, &self.shard_id))
    }
}

impl ProfilePath {
    /// A profile belongs to its user: only they and the tenant's admins
    /// may read, write or delete it.
    fn key(&self, auth: &Authenticated) -> Result<RedisKey, ApiError> {
        require_user_or_admin(&auth.session, &self.tenant_id, &self.user_id)?;
        Ok(RedisKey::user_profile(&self.tenant_id, &self.user_id))
    }
}

/// Reads a shard's structured data.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/shards/{shard_id}/structured",
    tag = "data",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("shard_id" = String, Path, description = "The shard", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "eu-1"),
    ),
    responses(
        (status = 200, description = "The stored document, byte for byte", body = serde_json::Value,
            headers(("x-cache" = String, description = "Which tier answered: `hit-l1` or `hit-l2`; or `stale`: Redis could not answer for the document (its node down or slow) and this instance's copy was served, at most `CACHE_L1_TTL_SECS` old"))),
        (status = 404, description = "Nothing stored", body = ErrorBody,
            headers(("x-cache" = String, description = "`miss`"))),
        (status = 400, description = "An id in the path breaks the id rules", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "The session belongs to another tenant", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn get_shard(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<ShardPath>,
) -> Result<Response, ApiError> {
    read(&state, &path.key(&auth)?).await
}

/// Stores a shard's structured data (shard TTL policy).
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant_id}/shards/{shard_id}/structured",
    tag = "data",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("shard_id" = String, Path, description = "The shard", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "eu-1"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "Any JSON document (nesting at most 128 levels), stored as sent"),
    responses(
        (status = 204, description = "Stored; every instance drops its old copy"),
        (status = 400, description = "An id in the path breaks the id rules, or the body is not JSON, not UTF-8, or nests deeper than 128 levels", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "The session belongs to another tenant", body = ErrorBody),
        (status = 413, description = "The document is larger than `CACHE_MAX_VALUE_BYTES`", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn put_shard(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<ShardPath>,
    JsonDocument(document): JsonDocument,
) -> Result<StatusCode, ApiError> {
    let policy = state.platform.cache.config().shard_ttl;
    write(&state, &path.key(&auth)?, &document, policy).await
}

/// Deletes a shard's structured data everywhere.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant_id}/shards/{shard_id}/structured",
    tag = "data",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("shard_id" = String, Path, description = "The shard", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "eu-1"),
    ),
    responses(
        (status = 204, description = "Deleted everywhere (also when nothing was stored)"),
        (status = 400, description = "An id in the path breaks the id rules", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "The session belongs to another tenant", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn delete_shard(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<ShardPath>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &path.key(&auth)?).await
}

/// Reads a user's profile.
#[utoipa::path(
    get,
    path = "/v1/tenants/{tenant_id}/users/{user_id}/profile",
    tag = "data",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("user_id" = String, Path, description = "The user: the session's own, unless the session has the role `admin`", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice"),
    ),
    responses(
        (status = 200, description = "The stored document, byte for byte", body = serde_json::Value,
            headers(("x-cache" = String, description = "Which tier answered: `hit-l1` or `hit-l2`; or `stale`: Redis could not answer for the document (its node down or slow) and this instance's copy was served, at most `CACHE_L1_TTL_SECS` old"))),
        (status = 404, description = "Nothing stored", body = ErrorBody,
            headers(("x-cache" = String, description = "`miss`"))),
        (status = 400, description = "An id in the path breaks the id rules", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Another tenant's session, or another user's without the role `admin`", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn get_profile(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<ProfilePath>,
) -> Result<Response, ApiError> {
    read(&state, &path.key(&auth)?).await
}

/// Stores a user's profile (profile TTL policy).
#[utoipa::path(
    put,
    path = "/v1/tenants/{tenant_id}/users/{user_id}/profile",
    tag = "data",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("user_id" = String, Path, description = "The user: the session's own, unless the session has the role `admin`", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice"),
    ),
    request_body(content = serde_json::Value, content_type = "application/json",
        description = "Any JSON document (nesting at most 128 levels), stored as sent"),
    responses(
        (status = 204, description = "Stored; every instance drops its old copy"),
        (status = 400, description = "An id in the path breaks the id rules, or the body is not JSON, not UTF-8, or nests deeper than 128 levels", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Another tenant's session, or another user's without the role `admin`", body = ErrorBody),
        (status = 413, description = "The document is larger than `CACHE_MAX_VALUE_BYTES`", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn put_profile(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<ProfilePath>,
    JsonDocument(document): JsonDocument,
) -> Result<StatusCode, ApiError> {
    write(
        &state,
        &path.key(&auth)?,
        &document,
        TtlPolicy::user_profile(),
    )
    .await
}

/// Deletes a user's profile everywhere.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant_id}/users/{user_id}/profile",
    tag = "data",
    security(("session" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant; the session's own", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("user_id" = String, Path, description = "The user: the session's own, unless the session has the role `admin`", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice"),
    ),
    responses(
        (status = 204, description = "Deleted everywhere (also when nothing was stored)"),
        (status = 400, description = "An id in the path breaks the id rules", body = ErrorBody),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 403, description = "Another tenant's session, or another user's without the role `admin`", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn delete_profile(
    State(state): State<AppState>,
    auth: Authenticated,
    PathParams(path): PathParams<ProfilePath>,
) -> Result<StatusCode, ApiError> {
    remove(&state, &path.key(&auth)?).await
}

/// 200 with the stored document, or 404; `x-cache` either way. Sessions
/// are never served stale (see `service-kit`'s authentication): a request
/// whose session Redis cannot read fails before it gets here.
async fn read(state: &AppState, key: &RedisKey) -> Result<Response, ApiError> {
    let found = state
        .platform
        .cache
        .get_with_tier::<Box<RawValue>>(key)
        .await?;
    let Some((document, tier)) = found else {
        let mut response = ApiError::not_found().into_response();
        response
            .headers_mut()
            .insert(X_CACHE, HeaderValue::from_static("miss"));
        return Ok(response);
    };
    let hit = match tier {
        Tier::L1 => "hit-l1",
        Tier::L2 => "hit-l2",
        Tier::Stale => "stale",
        // A tier added later: say it was served from the cache without
        // claiming which tier, rather than fail the request.
        _ => "hit",
    };
    let headers = [
        (
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        ),
        (X_CACHE, HeaderValue::from_static(hit)),
    ];
    Ok((headers, document.get().to_owned()).into_response())
}

/// Stores the document; other instances drop their copy.
async fn write(
    state: &AppState,
    key: &RedisKey,
    document: &RawValue,
    policy: TtlPolicy,
) -> Result<StatusCode, ApiError> {
    state
        .platform
        .cache
        .set(key, document, Expiry::Policy(policy))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes the document everywhere (idempotent).
async fn remove(state: &AppState, key: &RedisKey) -> Result<StatusCode, ApiError> {
    state.platform.cache.delete(key).await?;
    Ok(StatusCode::NO_CONTENT)
}
