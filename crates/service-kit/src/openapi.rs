//! The HTTP contract both services publish: what their OpenAPI 3.1
//! documents share (the JSON error shape, the two bearer schemes, the
//! health and metrics operations) and the route that serves a document at
//! `GET /openapi.json`.
//!
//! Each service derives its own operations from its handlers
//! (`#[utoipa::path]`) and passes them to [`document`], which adds what is
//! common. The document is rendered once, when the router is built, as the
//! same bytes that are committed under `docs/openapi/` ([`render`]), so a
//! running service and the repository can be compared byte for byte.

use std::io::Write as _;
use std::process::ExitCode;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, OpenApi};
use utoipa::{OpenApi as _, ToSchema};

/// The security scheme of a session token (`Authorization: Bearer
/// {tenant}~{secret}`), as auth-broker issues it.
pub const SESSION_AUTH: &str = "session";

/// The security scheme of the internal API token (`Authorization: Bearer
/// $INTERNAL_API_TOKEN`), for services calling each other.
pub const INTERNAL_AUTH: &str = "internal_token";

/// The route template of the document itself.
pub const OPENAPI_PATH: &str = "/openapi.json";

/// The pattern every id in a path or body follows (shared-types' id rules:
/// `A-Z a-z 0-9 - _ . @ +`, 1 to 128 characters). utoipa's attributes take
/// only literals, so the schemas spell it out; a test checks they agree.
pub const ID_PATTERN: &str = "^[A-Za-z0-9._@+-]{1,128}$";

/// Every error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorBody`].
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable machine-readable code: `bad_request`, `headers_too_large`,
    /// `unauthorized`, `forbidden`, `not_found`, `method_not_allowed`,
    /// `payload_too_large`, `unsupported_media_type`, `rate_limited`,
    /// `tenant_busy`, `unavailable`, `redis_refused`, `overloaded`,
    /// `timeout` or `internal`. New codes may be added.
    #[schema(example = "unauthorized")]
    pub code: String,
    /// A message for people, safe to show: it never carries internal detail.
    #[schema(example = "a valid bearer token is required")]
    pub message: String,
}

/// `GET /health/live`'s body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Liveness {
    /// Always `ok`.
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
}

/// `GET /health/ready`'s body: the verdict only, never its cause.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct Readiness {
    /// `ok`, `degraded` or `unavailable`.
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
    /// `healthy`, `degraded` or `unhealthy`.
    #[schema(example = "healthy")]
    pub(crate) redis: &'static str,
}

/// The operations every service has.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        crate::health::live,
        crate::health::ready,
        crate::health::health,
        crate::health::metrics,
        openapi_json,
    ),
    components(schemas(ErrorBody, ErrorDetail, Liveness, Readiness))
)]
struct Common;

/// A service's document: its own operations (`own`, derived from its
/// handlers) with the common ones, the error shape and both bearer schemes
/// added, under `title` and `description`.
pub fn document(own: OpenApi, title: &str, description: &str) -> OpenApi {
    let mut document = Common::openapi();
    document.merge(own);
    document.info.title = title.to_owned();
    document.info.description = Some(description.to_owned());
    // The crate's version (the workspace's one), not utoipa's guess from
    // whichever crate derived the common part.
    document.info.version = env!("CARGO_PKG_VERSION").to_owned();
    let bearer = |what: &str| {
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(what.to_owned()))
                .build(),
        )
    };
    let schemes = ComponentsBuilder::new()
        .security_scheme(
            SESSION_AUTH,
            bearer(
                "A session token from auth-broker's POST /v1/sessions: \
                 `Authorization: Bearer {tenant_id}~{43 base64url characters}`.",
            ),
        )
        .security_scheme(
            INTERNAL_AUTH,
            bearer(
                "The internal API token (`INTERNAL_API_TOKEN`), for services \
                 calling each other: `Authorization: Bearer <token>`.",
            ),
        )
        .build();
    match document.components.as_mut() {
        Some(components) => components.security_schemes = schemes.security_schemes,
        None => document.components = Some(schemes),
    }
    document
}

/// The document as served and committed: pretty JSON and a final newline.
///
/// # Panics
/// Never: a document of utoipa's types always serialises.
pub fn render(document: &OpenApi) -> String {
    let mut text = document
        .to_pretty_json()
        .expect("an OpenAPI document serialises");
    text.push('\n');
    text
}

/// Writes [`render`]`(document)` to stdout, for a service binary's
/// `openapi` argument (what `cargo xtask openapi` reads).
pub fn print(document: &OpenApi) -> ExitCode {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(render(document).as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `GET /openapi.json`, serving `document` (rendered once, here).
pub fn route<S>(document: &OpenApi) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let body = Bytes::from(render(document));
    Router::new().route(
        OPENAPI_PATH,
        get(move || {
            let body = body.clone();
            async move { ([(header::CONTENT_TYPE, "application/json")], body) }
        }),
    )
}

/// This document (no authentication, like health).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    responses(
        (status = 200, description = "This OpenAPI 3.1 document", content_type = "application/json", body = Object),
        (status = 503, description = "`overloaded` (too many requests in flight) or `timeout`", body = ErrorBody),
    )
)]
#[allow(dead_code)] // Only its generated documentation is used: `route` serves it.
fn openapi_json() {}

#[cfg(test)]
mod tests {
    use shared_types::{MAX_ID_LEN, validate_id};

    use super::ID_PATTERN;

    /// The characters of `ID_PATTERN`'s class, ranges expanded, and its
    /// length bounds.
    fn pattern_parts() -> (Vec<char>, usize, usize) {
        let inner = ID_PATTERN
            .strip_prefix("^[")
            .and_then(|p| p.strip_suffix('$'))
            .expect("^[class]{min,max}$");
        let (class, bounds) = inner.split_once("]{").expect("a class, then bounds");
        let (min, max) = bounds
            .strip_suffix('}')
            .and_then(|b| b.split_once(','))
            .expect("{min,max}");
        let chars: Vec<char> = class.chars().collect();
        let mut set = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            // `a-z` is a range; a `-` at the end of the class is itself.
            if i + 2 < chars.len() && chars[i + 1] == '-' {
                set.extend(chars[i]..=chars[i + 2]);
                i += 3;
            } else {
                set.push(chars[i]);
                i += 1;
            }
        }
        (set, min.parse().unwrap(), max.parse().unwrap())
    }

    // The pattern the documents give every id accepts exactly what
    // shared-types' id rules accept: each ASCII character alone, and the
    // length bounds.
    #[test]
    fn the_documented_id_pattern_matches_the_id_rules() {
        let (class, min, max) = pattern_parts();
        for byte in 0u8..=127 {
            let c = char::from(byte);
            assert_eq!(
                validate_id("id", &c.to_string()).is_ok(),
                class.contains(&c),
                "{c:?}"
            );
        }
        assert_eq!((min, max), (1, MAX_ID_LEN));
        assert!(validate_id("id", "").is_err());
        assert!(validate_id("id", &"a".repeat(MAX_ID_LEN)).is_ok());
        assert!(validate_id("id", &"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(
            validate_id("id", "é").is_err(),
            "non-ASCII is outside the class"
        );
    }
}
