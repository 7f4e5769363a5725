//! Sessions: what auth-broker stores and every service reads.

use axum::http::HeaderMap;
use redis_cache::CacheService;
use serde::{Deserialize, Serialize};
use shared_types::{RedisKey, TenantId, UserId};
use time::OffsetDateTime;
use utoipa::ToSchema;

use crate::error::ApiError;
use crate::token::SessionToken;

/// The role of a tenant's administrators: they may invalidate the
/// tenant's cached data and manage any of its users' profiles.
pub const ADMIN_ROLE: &str = "admin";

/// A session, as stored (JSON) at `auth:tenant:{t}:session:{token hash}`.
/// It never contains the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Session {
    /// The token's SHA-256, hex: names the session without revealing the token.
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub session_id: String,
    /// The tenant the session belongs to.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "acme")]
    pub tenant_id: TenantId,
    /// The user.
    #[schema(value_type = String, pattern = "^[A-Za-z0-9._@+-]{1,128}$", example = "alice")]
    pub user_id: UserId,
    /// The user's roles (`admin` may invalidate cached data).
    #[schema(example = json!(["admin"]))]
    pub roles: Vec<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Expiry time; Redis expires the key at the same moment.
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: OffsetDateTime,
}

impl Session {
    /// Whether the session has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }

    /// Whether the session is past its expiry (the key may outlive it by
    /// a clock tick; the check does not rely on that).
    pub fn is_expired(&self) -> bool {
        self.expires_at <= OffsetDateTime::now_utc()
    }
}

/// Authenticates the request's bearer token against the session store
/// (through the two-tier cache: a revocation reaches every instance's L1).
///
/// # Errors
/// 401 for a missing, malformed, unknown, expired or revoked token; 503 when
/// Redis cannot answer and the L1 does not hold the session (never a
/// misleading 401).
pub async fn authenticate(
    cache: &CacheService,
    headers: &HeaderMap,
) -> Result<(SessionToken, Session), ApiError> {
    let token = SessionToken::from_headers(headers)?;
    let key = RedisKey::session(token.tenant(), token.hash());
    match cache.get::<Session>(&key).await {
        Ok(Some(session)) if !session.is_expired() && session.tenant_id == *token.tenant() => {
            Ok((token, session))
        }
        Ok(_) => Err(ApiError::unauthorized()),
        Err(error) => Err(error.into()),
    }
}

/// Parses a tenant path segment and checks it is the session's tenant.
///
/// # Errors
/// 403 when the session belongs to another tenant.
pub fn require_tenant(session: &Session, tenant: &TenantId) -> Result<(), ApiError> {
    if session.tenant_id == *tenant {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "the session does not belong to this tenant",
        ))
    }
}

/// Checks the session may act on `user`'s own resources in `tenant`: it is
/// that user's, or an admin's of that tenant.
///
/// # Errors
/// 403 for another tenant's session, or another user's without the admin role.
pub fn require_user_or_admin(
    session: &Session,
    tenant: &TenantId,
    user: &UserId,
) -> Result<(), ApiError> {
    require_tenant(session, tenant)?;
    if session.user_id == *user || session.has_role(ADMIN_ROLE) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "only the user and the tenant's admins may do this",
        ))
    }
}
