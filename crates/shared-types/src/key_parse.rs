//! Reading a key back: the text of a key (from an operator, a log line, a
//! `SCAN`) to the [`RedisKey`] whose builder makes exactly that text.
//!
//! Parsing goes through the builders, so a parsed key is one a builder could
//! have made: its ids are validated and its family is known. Errors name the
//! part that did not match, never the input (it may carry a session's hash
//! or any text an operator pasted).

use std::str::FromStr;

use crate::digest::{QueryHash, TokenHash};
use crate::error::ValidationError;
use crate::key::RedisKey;

impl RedisKey {
    /// The key whose text is `key`, in any family.
    ///
    /// # Errors
    /// [`ValidationError::Key`] when the layout is not one of the families'
    /// (see the README's key table); [`ValidationError::Id`] or
    /// [`ValidationError::Digest`] when a segment is not a valid id or hash.
    ///
    /// # Examples
    ///
    /// ```
    /// use shared_types::{KeyFamily, RedisKey};
    ///
    /// let key = RedisKey::parse("tenant:t1:shard:eu-1:structured").unwrap();
    /// assert_eq!(key.family(), KeyFamily::ShardStructured);
    /// assert_eq!(key.tenant_str(), "t1");
    /// assert!(RedisKey::parse("tenant:t1:shard:eu-1").is_err());
    /// ```
    pub fn parse(key: &str) -> Result<Self, ValidationError> {
        let parts: Vec<&str> = key.split(':').collect();
        let parsed = match parts.as_slice() {
            ["tenant", t, "shard", s, "structured"] => {
                RedisKey::shard_structured(&t.parse()?, &s.parse()?)
            }
            ["tenant", t, "user", u, "profile"] => RedisKey::user_profile(&t.parse()?, &u.parse()?),
            ["tenant", t, "acl", u, s] => RedisKey::acl(&t.parse()?, &u.parse()?, &s.parse()?),
            ["tenant", t, "vsearch", h] => {
                RedisKey::vector_search(&t.parse()?, &QueryHash::from_hex(*h)?)
            }
            ["auth", "tenant", t, "session", h] => {
                RedisKey::session(&t.parse()?, &TokenHash::from_hex(*h)?)
            }
            ["auth", "tenant", t, "user", u, "sessions"] => {
                RedisKey::user_sessions(&t.parse()?, &u.parse()?)
            }
            ["ratelimit", "tenant", t, "user", u, a] => {
                RedisKey::rate_limit(&t.parse()?, &u.parse()?, &a.parse()?)
            }
            ["counter", "tenant", t, n] => RedisKey::counter(&t.parse()?, &n.parse()?),
            ["keyindex", "tenant", t] => RedisKey::tenant_index(&t.parse()?),
            ["jobs", "tenant", t, "purge", j] => RedisKey::purge_job(&t.parse()?, &j.parse()?),
            ["jobs", "tenant", t, "purge-lease"] => RedisKey::purge_lease(&t.parse()?),
            ["jobs", "purge", "running"] => RedisKey::purge_jobs_running(),
            ["coherence", "invalidations"] => RedisKey::invalidation_stream(),
            ["tenant", ..] => return Err(key_error("not a layout of the cache families")),
            [
                "auth" | "ratelimit" | "counter" | "keyindex" | "jobs" | "coherence",
                ..,
            ] => {
                return Err(key_error("not a layout of the state families"));
            }
            _ => return Err(key_error("unknown prefix")),
        };
        Ok(parsed)
    }
}

impl FromStr for RedisKey {
    type Err = ValidationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RedisKey::parse(s)
    }
}

fn key_error(reason: &'static str) -> ValidationError {
    ValidationError::Key { reason }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyFamily;
    use crate::id::{CounterName, ShardId, TenantId, UserId};

    // Every family's builder output parses back to the same key and family.
    #[test]
    fn every_family_parses_back_to_its_key() {
        let t: TenantId = "t1".parse().unwrap();
        let u: UserId = "u.1@x".parse().unwrap();
        let s: ShardId = "eu-1".parse().unwrap();
        let n: CounterName = "login".parse().unwrap();
        let keys = [
            RedisKey::shard_structured(&t, &s),
            RedisKey::user_profile(&t, &u),
            RedisKey::acl(&t, &u, &s),
            RedisKey::vector_search(&t, &QueryHash::of_query("q")),
            RedisKey::session(&t, &TokenHash::of_token("tok")),
            RedisKey::user_sessions(&t, &u),
            RedisKey::rate_limit(&t, &u, &n),
            RedisKey::counter(&t, &n),
            RedisKey::tenant_index(&t),
            RedisKey::purge_job(&t, &"j1".parse().unwrap()),
            RedisKey::purge_lease(&t),
            RedisKey::purge_jobs_running(),
            RedisKey::invalidation_stream(),
        ];
        assert_eq!(keys.len(), KeyFamily::ALL.len());
        for key in keys {
            let parsed = RedisKey::parse(key.as_str()).unwrap();
            assert_eq!(parsed, key);
            assert_eq!(parsed.family(), key.family());
            assert_eq!(parsed.tenant_str(), key.tenant_str());
        }
    }

    // Wrong layouts and bad ids are refused without echoing the input.
    #[test]
    fn malformed_keys_are_refused_without_echo() {
        for bad in [
            "",
            "tenant:t1",
            "tenant:t1:shard:s1",
            "tenant:t1:shard:s1:structured:extra",
            "tenant:t1:vsearch:not-a-hash",
            "tenant:t*:shard:s1:structured",
            "auth:tenant:t1:session:secretsecret",
            "session:t1:u1:abc",
            "keyindex:tenant:",
        ] {
            let error = RedisKey::parse(bad).unwrap_err().to_string();
            assert!(
                bad.len() < 4 || !error.contains(bad),
                "{bad:?} echoed: {error}"
            );
        }
    }
}
