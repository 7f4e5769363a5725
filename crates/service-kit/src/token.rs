//! Session tokens and bearer authentication.
//!
//! A token is `{tenant_id}~{secret}`: the tenant tells any service where the
//! session lives (`auth:tenant:{t}:session:{sha256(token)}`) without a global
//! index, and the secret is 256 bits from the operating system's CSPRNG,
//! base64url-encoded. `~` can appear in neither part. Redis only ever holds
//! the token's SHA-256; comparing hashes of the presented token against
//! stored keys means no token is ever compared byte by byte.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use shared_types::{TenantId, TokenHash};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// Random bytes in a token's secret: 256 bits.
pub const TOKEN_SECRET_BYTES: usize = 32;

/// A presented session token, parsed (not yet checked against Redis).
#[derive(Clone)]
pub struct SessionToken {
    tenant: TenantId,
    hash: TokenHash,
}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token itself is never kept, so it cannot be printed.
        f.debug_struct("SessionToken")
            .field("tenant", &self.tenant)
            .field("hash", &self.hash)
            .finish()
    }
}

impl SessionToken {
    /// A fresh token for `tenant`: the text to hand to the client, and its parsed form.
    ///
    /// # Errors
    /// When the OS random source fails (then no session can be created).
    pub fn generate(tenant: &TenantId) -> Result<(String, SessionToken), getrandom::Error> {
        let mut secret = [0u8; TOKEN_SECRET_BYTES];
        getrandom::fill(&mut secret)?;
        let text = format!("{tenant}~{}", URL_SAFE_NO_PAD.encode(secret));
        let parsed = SessionToken {
            tenant: tenant.clone(),
            hash: TokenHash::of_token(&text),
        };
        Ok((text, parsed))
    }

    /// Parses `text`; `None` when it is not a well-formed token.
    pub fn parse(text: &str) -> Option<Self> {
        let (tenant, secret) = text.split_once('~')?;
        let decoded = URL_SAFE_NO_PAD.decode(secret).ok()?;
        if decoded.len() != TOKEN_SECRET_BYTES {
            return None;
        }
        let tenant = TenantId::new(tenant).ok()?;
        Some(SessionToken {
            tenant,
            hash: TokenHash::of_token(text),
        })
    }

    /// The bearer token of `headers`, parsed. Missing, empty and malformed
    /// tokens are all 401: telling them apart would help an attacker.
    ///
    /// # Errors
    /// [`ApiError::unauthorized`].
    pub fn from_headers(headers: &HeaderMap) -> Result<Self, ApiError> {
        bearer(headers)
            .and_then(Self::parse)
            .ok_or_else(ApiError::unauthorized)
    }

    /// The tenant the token belongs to.
    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    /// The token's SHA-256, which names its session in Redis.
    pub fn hash(&self) -> &TokenHash {
        &self.hash
    }
}

/// The `Authorization: Bearer <token>` value, if there is a non-empty one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Whether `presented` equals `expected`, in time independent of where they
/// differ (so a caller cannot guess the internal token byte by byte).
pub fn constant_time_eq(presented: &str, expected: &str) -> bool {
    // Length differences leak only the length, which is public (>= 32).
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    // A generated token parses back to the same tenant and hash, and carries
    // 256 random bits.
    #[test]
    fn a_generated_token_parses_back_with_256_random_bits() {
        let tenant = TenantId::new("acme.eu").unwrap();
        let (text, token) = SessionToken::generate(&tenant).unwrap();
        let parsed = SessionToken::parse(&text).unwrap();
        assert_eq!(parsed.tenant(), &tenant);
        assert_eq!(parsed.hash(), token.hash());
        let secret = text.split_once('~').unwrap().1;
        assert_eq!(URL_SAFE_NO_PAD.decode(secret).unwrap().len(), 32);
        let (other, _) = SessionToken::generate(&tenant).unwrap();
        assert_ne!(text, other);
        assert!(!format!("{token:?}").contains(secret));
    }

    // Malformed tokens are refused.
    #[test]
    fn malformed_tokens_are_refused() {
        let (good, _) = SessionToken::generate(&TenantId::new("t").unwrap()).unwrap();
        let secret = good.split_once('~').unwrap().1;
        for bad in [
            String::new(),
            "no-separator".to_owned(),
            format!("t~{}", &secret[1..]),
            format!("t~{secret}x"),
            format!("bad:tenant~{secret}"),
            format!("~{secret}"),
            format!("t~{}", "!".repeat(43)),
        ] {
            assert!(SessionToken::parse(&bad).is_none(), "{bad:?} accepted");
        }
    }

    // Constant-time comparison gives the right answers.
    #[test]
    fn constant_time_comparison_gives_the_right_answers() {
        assert!(constant_time_eq(
            "a".repeat(40).as_str(),
            "a".repeat(40).as_str()
        ));
        assert!(!constant_time_eq(
            "a".repeat(40).as_str(),
            "b".repeat(40).as_str()
        ));
        assert!(!constant_time_eq("short", "longer"));
    }
}
