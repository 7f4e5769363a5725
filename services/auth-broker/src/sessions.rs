//! Sessions: creation (rate-limited), reading, revocation.
//!
//! Redis holds, per session, `auth:tenant:{t}:session:{sha256(token)}` (the
//! JSON [`Session`], expiring with it) and, per user, the set
//! `auth:tenant:{t}:user:{u}:sessions` of their session hashes, so that all
//! of a user's sessions can be revoked. Revocation deletes the session key
//! and publishes the session's invalidation, so that every instance of every
//! service drops its cached copy at once.
//!
//! **Creation against revoke-all.** The two keys live in different hash
//! slots (on a cluster, different nodes), so no transaction spans them.
//! Instead each side orders its steps:
//! - creation writes the session first and adds its hash to the user's set
//!   second, and hands out the token only after both (if the second step
//!   fails, the session is revoked again);
//! - revoke-all reads the set's members, revokes each, and then removes
//!   exactly those members from the set (never the whole set).
//!
//! A hash revoke-all read was added after its session was written, so
//! revoke-all deletes that session (and counts it, once, even when two
//! revoke-alls race: `UNLINK` counts only what it deleted). A hash added
//! after the read is not removed: its session stays live and tracked, and
//! the next revoke-all finds it. No interleaving leaves a live session
//! outside its user's set. (The old order, set first and then reading and
//! deleting the whole set, lost sessions added between the read and the
//! delete, or written after revoke-all had deleted their key.)

use axum::extract::State;
use axum::http::StatusCode;
use redis_cache::Expiry;
use serde::{Deserialize, Serialize};
use service_kit::{
    ApiError, Authenticated, ErrorBody, InternalCaller, JsonBody, PathParams, Session, SessionToken,
};
use shared_types::{CounterName, Invalidation, RedisKey, TenantId, TokenHash, TtlPolicy, UserId};
use time::OffsetDateTime;
use tracing::info;
use utoipa::ToSchema;

use crate::state::AppState;

/// Most roles a session may carry, and the longest role name.
const MAX_ROLES: usize = 32;
const MAX_ROLE_LEN: usize = 64;

/// A session to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateSession {
    /// The tenant.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme")]
    tenant_id: TenantId,
    /// The user.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice")]
    user_id: UserId,
    /// The user's roles (`admin` may invalidate cached data and manage any
    /// profile of the tenant): at most 32, each 1 to 64 characters.
    #[serde(default)]
    #[schema(max_items = 32, inline, value_type = Vec<Role>, example = json!(["admin"]))]
    roles: Vec<String>,
}

/// A role name: 1 to 64 characters of `A-Z a-z 0-9 - _ . :`.
#[derive(ToSchema)]
#[schema(pattern = "^[A-Za-z0-9._:-]{1,64}$")]
#[allow(dead_code)] // A schema only: roles are kept as strings.
pub(crate) struct Role(String);

/// The answer to a creation: the only time the token is ever shown.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Created {
    /// The session token, `{tenant_id}~{43 base64url characters}`: send it
    /// as `Authorization: Bearer <token>`. Shown only here.
    #[schema(pattern = "^[A-Za-z0-9._@+-]{1,128}~[A-Za-z0-9_-]{43}$")]
    token: String,
    #[serde(flatten)]
    session: Session,
}

/// Creates a session (internal), rate-limited per tenant and user.
///
/// The token is returned once; Redis keeps only its SHA-256.
#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "sessions",
    security(("internal_token" = [])),
    request_body = CreateSession,
    responses(
        (status = 201, description = "Created", body = Created),
        (status = 400, description = "An id or role breaks its rules, the body is not JSON, or has unknown fields", body = ErrorBody),
        (status = 401, description = "No valid internal token", body = ErrorBody),
        (status = 413, description = "The body is larger than 16 KiB", body = ErrorBody),
        (status = 415, description = "The body is not `application/json`", body = ErrorBody),
        (status = 429, description = "`rate_limited`: too many sessions created for this tenant and user in the window", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds until the window resets"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<AppState>,
    _internal: InternalCaller,
    JsonBody(request): JsonBody<CreateSession>,
) -> Result<(StatusCode, axum::Json<Created>), ApiError> {
    check_roles(&request.roles)?;
    let cache = &state.platform.cache;
    let policy = state.sessions;

    let action = CounterName::new("session-create").map_err(|e| ApiError::internal(&e))?;
    let window_key = RedisKey::rate_limit(&request.tenant_id, &request.user_id, &action);
    let window = cache
        .increment_window(&window_key, policy.rate_window)
        .await?;
    if window.count > policy.rate_limit {
        return Err(ApiError::too_many_requests(window.resets_in));
    }

    let (token, parsed) =
        SessionToken::generate(&request.tenant_id).map_err(|e| ApiError::internal(&e))?;
    let now = OffsetDateTime::now_utc();
    let session = Session {
        session_id: parsed.hash().to_string(),
        tenant_id: request.tenant_id,
        user_id: request.user_id,
        roles: request.roles,
        created_at: now,
        expires_at: now + policy.ttl,
    };
    // The session first, then the user's set (see the module docs): a
    // revoke-all that took the set before our hash was in it cannot have
    // missed a session it should have deleted.
    let lifetime = TtlPolicy::session_with(policy.ttl).map_err(|e| ApiError::internal(&e))?;
    cache
        .set(
            &RedisKey::session(&session.tenant_id, parsed.hash()),
            &session,
            Expiry::Policy(lifetime),
        )
        .await?;
    if let Err(error) = remember(&state, &session, parsed.hash()).await {
        // Untracked, the session could not be revoked with the others:
        // remove it. Should that fail too, its token was never handed out,
        // so nobody can use it before it expires.
        let _ = revoke(&state, &session.tenant_id, parsed.hash()).await;
        return Err(error);
    }
    info!(tenant.id = %session.tenant_id, "session created");
    Ok((StatusCode::CREATED, axum::Json(Created { token, session })))
}

/// The caller's session, without its token.
#[utoipa::path(
    get,
    path = "/v1/sessions/current",
    tag = "sessions",
    security(("session" = [])),
    responses(
        (status = 200, description = "The session", body = Session),
        (status = 401, description = "No valid session token (missing, malformed, unknown, expired or revoked)", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn current(auth: Authenticated) -> axum::Json<Session> {
    axum::Json(auth.session)
}

/// Revokes the caller's session everywhere.
///
/// Within a second every instance of every service refuses its token.
#[utoipa::path(
    delete,
    path = "/v1/sessions/current",
    tag = "sessions",
    security(("session" = [])),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "No valid session token", body = ErrorBody),
        (status = 429, description = "`tenant_busy`: the session's tenant has all its requests in flight", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_current(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<StatusCode, ApiError> {
    revoke(&state, &auth.session.tenant_id, auth.token.hash()).await?;
    forget(&state, &auth.session, auth.token.hash()).await?;
    info!(tenant.id = %auth.session.tenant_id, "session revoked");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub(crate) struct UserPath {
    tenant_id: TenantId,
    user_id: UserId,
}

/// The answer to a revocation of a user's sessions.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Revoked {
    /// Sessions that were live and are now revoked.
    revoked: u64,
}

/// Revokes every session of a user (internal); answers how many were live.
#[utoipa::path(
    delete,
    path = "/v1/tenants/{tenant_id}/users/{user_id}/sessions",
    tag = "sessions",
    security(("internal_token" = [])),
    params(
        ("tenant_id" = String, Path, description = "The tenant", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme"),
        ("user_id" = String, Path, description = "The user", pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice"),
    ),
    responses(
        (status = 200, description = "Revoked", body = Revoked),
        (status = 400, description = "An id in the path breaks the id rules", body = ErrorBody),
        (status = 401, description = "No valid internal token", body = ErrorBody),
        (status = 503, description = "Redis cannot answer (`unavailable`, `redis_refused`), or `overloaded`, `timeout`", body = ErrorBody),
    )
)]
pub(crate) async fn revoke_user(
    State(state): State<AppState>,
    _internal: InternalCaller,
    PathParams(path): PathParams<UserPath>,
) -> Result<axum::Json<Revoked>, ApiError> {
    let set = RedisKey::user_sessions(&path.tenant_id, &path.user_id);
    let cache = &state.platform.cache;
    // Every member's session was written before the member was added (see
    // the module docs), so revoking the members read here revokes them all;
    // a hash added meanwhile is not among them and stays in the set.
    let members = cache.members(&set).await?;
    let mut revoked = 0;
    for member in &members {
        // Only our own writes fill the set; anything else is just removed.
        if let Ok(hash) = TokenHash::from_hex(member) {
            revoked += revoke(&state, &path.tenant_id, &hash).await?;
        }
    }
    // Only the members revoked here leave the set: deleting the set would
    // drop a session created meanwhile from it. On an error above, the
    // members not yet revoked are still there for the next attempt.
    cache.remove_members(&set, members).await?;
    info!(tenant.id = %path.tenant_id, revoked, "user sessions revoked");
    Ok(axum::Json(Revoked { revoked }))
}

/// Deletes one session and tells every instance; returns 1 if it was live.
async fn revoke(state: &AppState, tenant: &TenantId, hash: &TokenHash) -> Result<u64, ApiError> {
    let invalidation = Invalidation::Session {
        tenant_id: tenant.clone(),
        session_hash: hash.clone(),
    };
    Ok(state.platform.cache.invalidate(&invalidation).await?)
}

/// Adds a session to its user's set, which lives as long as the newest session.
async fn remember(state: &AppState, session: &Session, hash: &TokenHash) -> Result<(), ApiError> {
    let set = RedisKey::user_sessions(&session.tenant_id, &session.user_id);
    let cache = &state.platform.cache;
    Ok(cache
        .add_member(&set, hash.as_str(), state.sessions.ttl)
        .await?)
}

/// Removes a revoked session from its user's set.
async fn forget(state: &AppState, session: &Session, hash: &TokenHash) -> Result<(), ApiError> {
    let set = RedisKey::user_sessions(&session.tenant_id, &session.user_id);
    let cache = &state.platform.cache;
    cache
        .remove_members(&set, vec![hash.as_str().to_owned()])
        .await?;
    Ok(())
}

fn check_roles(roles: &[String]) -> Result<(), ApiError> {
    if roles.len() > MAX_ROLES {
        return Err(ApiError::bad_request(format!("at most {MAX_ROLES} roles")));
    }
    let valid = |r: &String| {
        !r.is_empty()
            && r.len() <= MAX_ROLE_LEN
            && r.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    };
    if roles.iter().all(valid) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "roles must be 1 to {MAX_ROLE_LEN} characters of A-Z a-z 0-9 - _ . :"
        )))
    }
}
