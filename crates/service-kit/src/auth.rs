//! Authentication extractors: a session (bearer session token) or the
//! internal caller (bearer `INTERNAL_API_TOKEN`). They run before any body
//! is read, so an unauthenticated request learns nothing else.

use std::sync::Arc;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use secrecy::{ExposeSecret, SecretString};

use crate::error::ApiError;
use crate::fairness::{TenantShare, TenantSlots};
use crate::platform::Platform;
use crate::session::{Session, authenticate};
use crate::token::{SessionToken, bearer, constant_time_eq};

/// The caller's session (401 without a valid one, 503 when it cannot be
/// read), holding one of its tenant's in-flight slots for as long as the
/// handler keeps it (429 when the tenant holds them all; see fairness.rs).
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The presented token, parsed (it names the session).
    pub token: SessionToken,
    /// The session.
    pub session: Session,
    /// The tenant's slot, given back when the last clone is dropped.
    _share: Option<Arc<TenantShare>>,
}

impl<S> FromRequestParts<S> for Authenticated
where
    S: Send + Sync,
    Platform: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let platform = Platform::from_ref(state);
        let (token, session) = authenticate(&platform.cache, &parts.headers).await?;
        // Counted by the session's tenant, known only now: a tenant named in
        // the path or an unchecked token could be anyone's.
        let share = match parts.extensions.get::<Arc<TenantSlots>>() {
            Some(slots) => Some(Arc::new(
                slots
                    .try_acquire(&session.tenant_id)
                    .ok_or_else(ApiError::tenant_busy)?,
            )),
            None => None,
        };
        Ok(Self {
            token,
            session,
            _share: share,
        })
    }
}

/// The internal API token, shared by services that call each other.
#[derive(Clone)]
pub struct InternalToken(pub Arc<SecretString>);

impl std::fmt::Debug for InternalToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalToken([REDACTED])")
    }
}

/// Proof that the caller presented the internal token (401 otherwise),
/// compared in constant time.
#[derive(Debug, Clone, Copy)]
pub struct InternalCaller;

impl<S> FromRequestParts<S> for InternalCaller
where
    S: Send + Sync,
    InternalToken: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let expected = InternalToken::from_ref(state);
        match bearer(&parts.headers) {
            Some(presented) if constant_time_eq(presented, expected.0.expose_secret()) => {
                Ok(InternalCaller)
            }
            _ => Err(ApiError::unauthorized()),
        }
    }
}
