//! Redis keys (`RedisKey`): the only way this workspace names a Redis key.
//!
//! Callers never concatenate strings into keys: each family has a builder that
//! takes validated ids, so the format lives here once and a key can never name
//! another tenant's data.
//!
//! Two namespaces:
//! - **cache** (`tenant:{t}:...`): data that can be recomputed from a source of
//!   truth. `tenant:{t}:*` covers exactly one tenant's cached data, and any
//!   cache invalidation, even of a whole tenant, stays inside it.
//! - **state** (`auth:...`, `ratelimit:...`, `counter:...`, `jobs:...`):
//!   sessions, the sets of a user's sessions, rate-limit windows, counters
//!   and purge jobs. They are not
//!   cache: losing them logs users out or resets a limit, so no cache
//!   invalidation touches them.

use std::fmt;

use crate::digest::{QueryHash, TokenHash};
use crate::id::{CounterName, JobId, ShardId, TenantId, UserId};
use crate::ttl::TtlPolicy;

/// The family of a key: its format, its TTL policy and its invalidation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyFamily {
    /// `tenant:{t}:shard:{s}:structured`
    ShardStructured,
    /// `tenant:{t}:user:{u}:profile`
    UserProfile,
    /// `tenant:{t}:acl:{u}:{s}`
    Acl,
    /// `tenant:{t}:vsearch:{query_hash}`
    VectorSearch,
    /// `auth:tenant:{t}:session:{token_hash}` (state)
    Session,
    /// `auth:tenant:{t}:user:{u}:sessions`, the set of a user's session hashes (state)
    UserSessions,
    /// `ratelimit:tenant:{t}:user:{u}:{action}` (state)
    RateLimit,
    /// `counter:tenant:{t}:{name}` (state)
    Counter,
    /// `keyindex:tenant:{t}`: the sorted set of a tenant's cache keys, scored
    /// by expiry, that makes a tenant purge cost that tenant's keys only
    /// (bookkeeping of the cache; not itself cache).
    TenantIndex,
    /// `jobs:tenant:{t}:purge:{job}`: a purge job's progress, a hash (state).
    PurgeJob,
    /// `jobs:tenant:{t}:purge-lease`: which purge job of the tenant runs,
    /// held with an expiry its runner renews (state).
    PurgeLease,
}

impl KeyFamily {
    /// Every family, for tables and tests.
    pub const ALL: [KeyFamily; 11] = [
        KeyFamily::ShardStructured,
        KeyFamily::UserProfile,
        KeyFamily::Acl,
        KeyFamily::VectorSearch,
        KeyFamily::Session,
        KeyFamily::UserSessions,
        KeyFamily::RateLimit,
        KeyFamily::Counter,
        KeyFamily::TenantIndex,
        KeyFamily::PurgeJob,
        KeyFamily::PurgeLease,
    ];

    /// A short name for logs and metrics labels. Logs carry the family, never
    /// the full key, which may name a user.
    pub const fn name(self) -> &'static str {
        match self {
            KeyFamily::ShardStructured => "shard",
            KeyFamily::UserProfile => "profile",
            KeyFamily::Acl => "acl",
            KeyFamily::VectorSearch => "vsearch",
            KeyFamily::Session => "session",
            KeyFamily::UserSessions => "user_sessions",
            KeyFamily::RateLimit => "ratelimit",
            KeyFamily::Counter => "counter",
            KeyFamily::TenantIndex => "keyindex",
            KeyFamily::PurgeJob => "purge_job",
            KeyFamily::PurgeLease => "purge_lease",
        }
    }

    /// What comes before the tenant id in keys of this family.
    const fn tenant_prefix(self) -> &'static str {
        match self {
            KeyFamily::ShardStructured
            | KeyFamily::UserProfile
            | KeyFamily::Acl
            | KeyFamily::VectorSearch => "tenant:",
            KeyFamily::Session | KeyFamily::UserSessions => "auth:tenant:",
            KeyFamily::RateLimit => "ratelimit:tenant:",
            KeyFamily::Counter => "counter:tenant:",
            KeyFamily::TenantIndex => "keyindex:tenant:",
            KeyFamily::PurgeJob | KeyFamily::PurgeLease => "jobs:tenant:",
        }
    }

    /// Whether the family is cached data (under `tenant:{t}:`), as opposed to state.
    pub const fn is_cache(self) -> bool {
        matches!(
            self,
            KeyFamily::ShardStructured
                | KeyFamily::UserProfile
                | KeyFamily::Acl
                | KeyFamily::VectorSearch
        )
    }

    /// Whether keys of this family have their own invalidation
    /// ([`crate::Invalidation::for_key`] maps them), which is what allows an
    /// instance to hold them in an in-process L1: cached data and sessions.
    /// Session sets, rate-limit windows and counters change on every write
    /// and must always be read from Redis.
    pub const fn has_key_invalidation(self) -> bool {
        self.is_cache() || matches!(self, KeyFamily::Session)
    }

    /// Whether a copy in an L1 that may have missed invalidations may be
    /// served when Redis cannot answer. Cached data may (that is the
    /// cache's degraded mode, at most the L1 TTL cap stale); sessions and
    /// ACL decisions may not: they are security state, and a revocation
    /// missed while the invalidation feed was down would keep a revoked
    /// session, or a withdrawn permission, working.
    pub const fn may_serve_stale(self) -> bool {
        self.is_cache() && !matches!(self, KeyFamily::Acl)
    }

    /// The default TTL policy of the family. Rate-limit windows and counters
    /// have none: their expiry is chosen by the caller (the window length).
    pub const fn default_ttl(self) -> Option<TtlPolicy> {
        match self {
            KeyFamily::ShardStructured => Some(TtlPolicy::shard_structured()),
            KeyFamily::UserProfile => Some(TtlPolicy::user_profile()),
            KeyFamily::Acl => Some(TtlPolicy::acl()),
            KeyFamily::VectorSearch => Some(TtlPolicy::vector_search()),
            KeyFamily::Session | KeyFamily::UserSessions => Some(TtlPolicy::session()),
            KeyFamily::RateLimit
            | KeyFamily::Counter
            | KeyFamily::TenantIndex
            | KeyFamily::PurgeJob
            | KeyFamily::PurgeLease => None,
        }
    }
}

/// A Redis key built from validated ids. See the module docs for the formats.
///
/// Named for what it is: a key of any family this layer writes, cached data
/// (shards, profiles, ACL decisions, vector searches: [`KeyFamily::is_cache`])
/// and state that is not cache (sessions, rate windows, counters, the
/// tenant key index). It was called `CacheKey` before; that name is kept as
/// a deprecated alias for one release.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RedisKey {
    key: String,
    family: KeyFamily,
    /// Where the tenant id sits in `key` (every family is tenant-scoped),
    /// so that per-tenant bookkeeping (the L1's shares, the tenant's key
    /// index) needs no parsing and no extra allocation.
    tenant_at: u8,
    tenant_len: u8,
}

impl RedisKey {
    fn new(family: KeyFamily, key: String) -> Self {
        let tenant_at = family.tenant_prefix().len();
        let tenant_len = key[tenant_at..].find(':').unwrap_or(key.len() - tenant_at);
        // Prefixes are under 20 bytes and ids at most MAX_ID_LEN (128).
        Self {
            tenant_at: u8::try_from(tenant_at).unwrap_or(u8::MAX),
            tenant_len: u8::try_from(tenant_len).unwrap_or(u8::MAX),
            key,
            family,
        }
    }

    /// `tenant:{t}:shard:{s}:structured`
    pub fn shard_structured(tenant: &TenantId, shard: &ShardId) -> Self {
        Self::new(
            KeyFamily::ShardStructured,
            format!("tenant:{tenant}:shard:{shard}:structured"),
        )
    }

    /// `tenant:{t}:user:{u}:profile`
    pub fn user_profile(tenant: &TenantId, user: &UserId) -> Self {
        Self::new(
            KeyFamily::UserProfile,
            format!("tenant:{tenant}:user:{user}:profile"),
        )
    }

    /// `tenant:{t}:acl:{u}:{s}`: the ACL check of one user on one shard.
    pub fn acl(tenant: &TenantId, user: &UserId, shard: &ShardId) -> Self {
        Self::new(
            KeyFamily::Acl,
            format!("tenant:{tenant}:acl:{user}:{shard}"),
        )
    }

    /// `tenant:{t}:vsearch:{query_hash}`
    pub fn vector_search(tenant: &TenantId, query: &QueryHash) -> Self {
        Self::new(
            KeyFamily::VectorSearch,
            format!("tenant:{tenant}:vsearch:{query}"),
        )
    }

    /// `auth:tenant:{t}:session:{token_hash}`: one session, named by its token's hash.
    pub fn session(tenant: &TenantId, token: &TokenHash) -> Self {
        Self::new(
            KeyFamily::Session,
            format!("auth:tenant:{tenant}:session:{token}"),
        )
    }

    /// `auth:tenant:{t}:user:{u}:sessions`: the set of a user's session hashes.
    pub fn user_sessions(tenant: &TenantId, user: &UserId) -> Self {
        Self::new(
            KeyFamily::UserSessions,
            format!("auth:tenant:{tenant}:user:{user}:sessions"),
        )
    }

    /// `ratelimit:tenant:{t}:user:{u}:{action}`: one user's window for one action.
    pub fn rate_limit(tenant: &TenantId, user: &UserId, action: &CounterName) -> Self {
        Self::new(
            KeyFamily::RateLimit,
            format!("ratelimit:tenant:{tenant}:user:{user}:{action}"),
        )
    }

    /// `counter:tenant:{t}:{name}`: a tenant-wide counter.
    pub fn counter(tenant: &TenantId, name: &CounterName) -> Self {
        Self::new(
            KeyFamily::Counter,
            format!("counter:tenant:{tenant}:{name}"),
        )
    }

    /// `keyindex:tenant:{t}`: the index of the tenant's cache keys (a sorted
    /// set scored by expiry time), kept by the cache beside every write.
    pub fn tenant_index(tenant: &TenantId) -> Self {
        Self::new(KeyFamily::TenantIndex, format!("keyindex:tenant:{tenant}"))
    }

    /// `jobs:tenant:{t}:purge:{job}`: a purge job's progress (a hash).
    pub fn purge_job(tenant: &TenantId, job: &JobId) -> Self {
        Self::new(
            KeyFamily::PurgeJob,
            format!("jobs:tenant:{tenant}:purge:{job}"),
        )
    }

    /// `jobs:tenant:{t}:purge-lease`: the id of the tenant's running purge
    /// job, expiring unless its runner renews it (one job per tenant).
    pub fn purge_lease(tenant: &TenantId) -> Self {
        Self::new(
            KeyFamily::PurgeLease,
            format!("jobs:tenant:{tenant}:purge-lease"),
        )
    }

    /// The index of the tenant `key` belongs to (see [`tenant_index`](Self::tenant_index)).
    pub fn tenant_index_of(key: &RedisKey) -> Self {
        // The tenant id was validated when `key` was built.
        Self::new(
            KeyFamily::TenantIndex,
            format!("keyindex:tenant:{}", key.tenant_str()),
        )
    }

    /// `{<key>}:lease`: where a `get_or_load` of `key` holds its claim while
    /// it loads (redis-cache's `lease.rs`), beside the key rather than in
    /// it, so that every value under a cache key is the cached JSON or
    /// nothing. The whole key is the hash tag: keys never contain braces,
    /// so the lease hashes exactly as the key does and lives in the key's
    /// cluster slot, where one script can check both.
    pub fn load_lease_of(key: &str) -> String {
        format!("{{{key}}}:lease")
    }

    /// The key as Redis sees it.
    pub fn as_str(&self) -> &str {
        &self.key
    }

    /// The key's family.
    pub fn family(&self) -> KeyFamily {
        self.family
    }

    /// The id of the tenant the key belongs to, as it appears in the key.
    pub fn tenant_str(&self) -> &str {
        let at = usize::from(self.tenant_at);
        &self.key[at..at + usize::from(self.tenant_len)]
    }

    /// The `:`-separated segments after the family's fixed prefix; used to
    /// recover ids (which never contain `:`).
    pub(crate) fn segments(&self) -> Vec<&str> {
        self.key.split(':').collect()
    }
}

impl fmt::Display for RedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key)
    }
}

impl fmt::Debug for RedisKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisKey({:?}, {})", self.family, self.key)
    }
}

impl AsRef<str> for RedisKey {
    fn as_ref(&self) -> &str {
        &self.key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    // The exact key formats the platform agreed on.
    #[test]
    fn key_names_are_the_agreed_formats_exactly() {
        let (tenant, user, shard) = (t("t1"), "u1".parse().unwrap(), "s1".parse().unwrap());
        let q = QueryHash::of_query("q");
        let tok = TokenHash::of_token("tok");
        let name: CounterName = "login".parse().unwrap();
        let cases = [
            (
                RedisKey::shard_structured(&tenant, &shard),
                "tenant:t1:shard:s1:structured".to_owned(),
            ),
            (
                RedisKey::user_profile(&tenant, &user),
                "tenant:t1:user:u1:profile".to_owned(),
            ),
            (
                RedisKey::acl(&tenant, &user, &shard),
                "tenant:t1:acl:u1:s1".to_owned(),
            ),
            (
                RedisKey::vector_search(&tenant, &q),
                format!("tenant:t1:vsearch:{q}"),
            ),
            (
                RedisKey::session(&tenant, &tok),
                format!("auth:tenant:t1:session:{tok}"),
            ),
            (
                RedisKey::user_sessions(&tenant, &user),
                "auth:tenant:t1:user:u1:sessions".to_owned(),
            ),
            (
                RedisKey::rate_limit(&tenant, &user, &name),
                "ratelimit:tenant:t1:user:u1:login".to_owned(),
            ),
            (
                RedisKey::counter(&tenant, &name),
                "counter:tenant:t1:login".to_owned(),
            ),
            (
                RedisKey::tenant_index(&tenant),
                "keyindex:tenant:t1".to_owned(),
            ),
            (
                RedisKey::purge_job(&tenant, &"j1".parse().unwrap()),
                "jobs:tenant:t1:purge:j1".to_owned(),
            ),
            (
                RedisKey::purge_lease(&tenant),
                "jobs:tenant:t1:purge-lease".to_owned(),
            ),
        ];
        for (key, expected) in cases {
            assert_eq!(key.as_str(), expected);
            assert_eq!(key.tenant_str(), "t1", "{expected}");
            assert_eq!(key.family().is_cache(), expected.starts_with("tenant:"));
        }
    }

    // Only cache families live under `tenant:`; state has no default jitter.
    #[test]
    fn only_cache_families_have_default_jitter() {
        for family in KeyFamily::ALL {
            if family == KeyFamily::Session {
                assert_eq!(family.default_ttl().unwrap().jitter_percent(), 0);
            }
            if family.is_cache() {
                assert_eq!(family.default_ttl().unwrap().jitter_percent(), 10);
            }
        }
    }

    // Sessions and ACL decisions, security state, are never served from an
    // L1 that may have missed a revocation; other cached data may be (the
    // degraded mode).
    #[test]
    fn security_state_is_never_served_stale() {
        assert!(!KeyFamily::Session.may_serve_stale());
        assert!(!KeyFamily::Acl.may_serve_stale());
        for family in KeyFamily::ALL {
            let expected = family.is_cache() && family != KeyFamily::Acl;
            assert_eq!(family.may_serve_stale(), expected, "{family:?}");
        }
    }
}
