//! [`ApiError`]: every error response is `{"error": {"code", "message"}}`,
//! with a status a client can act on and no internal detail (no Redis error
//! text, no stack).

use std::time::Duration;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use redis_cache::CacheError;
use tracing::{debug, error, info, warn};

use crate::openapi::{ErrorBody, ErrorDetail};
use crate::throttle::LogThrottle;

/// An error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// A stable machine-readable code (`unauthorized`).
    pub code: &'static str,
    /// A human-readable message, safe to show to the caller.
    pub message: String,
    /// For 429: when to retry.
    pub retry_after: Option<Duration>,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        let mut message: String = message.into();
        // Rejection messages may quote the caller's input; keep them short.
        if message.len() > 300 {
            let mut cut = 300;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        Self {
            status,
            code,
            message,
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid bearer token is required",
        )
    }

    /// 403.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such resource")
    }

    /// 405: the path exists, the method does not (the router adds `Allow`).
    pub fn method_not_allowed() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this method is not allowed on this path",
        )
    }

    /// 413.
    pub fn payload_too_large() -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "the request body is too large",
        )
    }

    /// 415.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "the request body must be application/json",
        )
    }

    /// 429, with `Retry-After`.
    pub fn too_many_requests(retry_after: Duration) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "too many requests; retry later",
        );
        e.retry_after = Some(retry_after);
        e
    }

    /// 429 `tenant_busy`: the caller's tenant has all its in-flight slots
    /// taken (`HTTP_MAX_CONCURRENCY_PER_TENANT`); other tenants are served.
    pub fn tenant_busy() -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "tenant_busy",
            "too many requests of this tenant in flight; retry later",
        );
        e.retry_after = Some(Duration::from_secs(1));
        e
    }

    /// 503: a dependency (Redis) cannot answer now.
    pub fn unavailable() -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service cannot answer right now; retry later",
        )
    }

    /// 500, logged here (once, where it is handled) with its cause.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error",
        )
    }
}

/// While Redis is unavailable, every request it is needed for fails: one
/// log line per period, with the count.
static UNAVAILABLE_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));

/// While Redis refuses, every write is refused: one log line per period.
static REFUSAL_LOG: LogThrottle = LogThrottle::new(Duration::from_secs(10));

impl From<CacheError> for ApiError {
    fn from(error: CacheError) -> Self {
        match error {
            CacheError::Unavailable(cause) => {
                // During an outage every request lands here: the connection
                // layer logs the outage (one WARN, then a summary per
                // period); here, one line per period says how many
                // requests it cost.
                debug!(error = %cause, "Redis unavailable; answering 503");
                if let Some(suppressed) = UNAVAILABLE_LOG.check() {
                    info!(
                        requests = suppressed + 1,
                        "answered 503 unavailable: Redis cannot answer (count since the last such line)"
                    );
                }
                ApiError::unavailable()
            }
            // Out of memory under `noeviction`, unable to persist, too few
            // replicas, or a user without the permission: retrying later
            // (or an operator) fixes them; the request was fine. Other
            // refusals (`ERR`, `WRONGTYPE`, ...) are bugs: 500 below.
            CacheError::Rejected(rejection) if rejection.kind().is_refusal_of_state() => {
                if let Some(suppressed) = REFUSAL_LOG.check() {
                    warn!(
                        error = %rejection,
                        suppressed,
                        "Redis refused a command; answering 503 redis_refused"
                    );
                }
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "redis_refused",
                    "the data store refused the operation; retry later",
                )
            }
            CacheError::ValueTooLarge { .. } => ApiError::payload_too_large(),
            other => ApiError::internal(&other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(retry) = self.retry_after {
            // Whole seconds, rounded up: retrying early would fail again.
            let secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&secs.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use redis_connection::ConnectionError;

    use super::*;

    // Redis refusing for its state (memory, persistence, replicas, ACL) is
    // 503 `redis_refused`; a refusal that means a bug stays a 500.
    #[test]
    fn refusals_are_503_and_bugs_are_500() {
        // Through redis-connection's classification, as a reply reaches us.
        let refused =
            |m: &str| ApiError::from(CacheError::from(ConnectionError::from_server_reply(m)));
        for message in [
            "OOM command not allowed when used memory > 'maxmemory'.",
            "MISCONF Redis is configured to save RDB snapshots",
            "NOREPLICAS Not enough good replicas to write.",
            "NOPERM this user has no permissions to run the 'set' command",
        ] {
            let answer = refused(message);
            assert_eq!(
                (answer.status, answer.code),
                (StatusCode::SERVICE_UNAVAILABLE, "redis_refused"),
                "{message}"
            );
            assert!(!answer.message.contains(message.split(' ').next().unwrap()));
        }
        for message in ["ERR syntax error", "WRONGTYPE Operation", "OOMX not a code"] {
            assert_eq!(
                refused(message).status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{message}"
            );
        }
    }
}
