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
//!
//! Every family but two is a tenant's. The deployment's own keys, the
//! purge-jobs registry (`jobs:purge:running`) and the invalidation stream
//! (`coherence:invalidations`), have builders here too, so that this file
//! is the one list of the names this layer writes.

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
    /// `jobs:purge:running`: the set of the keys of every tenant's purge
    /// jobs not yet ended (state; the deployment's, no tenant's).
    PurgeRunning,
    /// `coherence:invalidations`: the invalidation stream every
    /// announcement is appended to (redis-cache's coherence; the
    /// deployment's, no tenant's).
    InvalidationStream,
}

impl KeyFamily {
    /// Every family, for tables and tests.
    pub const ALL: [KeyFamily; 13] = [
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
        KeyFamily::PurgeRunning,
        KeyFamily::InvalidationStream,
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
            KeyFamily::PurgeRunning => "purge_running",
            KeyFamily::InvalidationStream => "invalidation_stream",
        }
    }

    /// Whether keys of this family belong to one tenant (all but the
    /// deployment's own: the purge-jobs registry and the invalidation
    /// stream).
    pub const fn is_tenant_scoped(self) -> bool {
        !matches!(
            self,
            KeyFamily::PurgeRunning | KeyFamily::InvalidationStream
        )
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
            | KeyFamily::PurgeLease
            | KeyFamily::PurgeRunning
            | KeyFamily::InvalidationStream => None,
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
    /// Where each id the builder was given sits in `key` (start, length),
    /// in the builder's order, the tenant first (every family is
    /// tenant-scoped). Per-tenant bookkeeping (the L1's shares, the
    /// tenant's key index) and the key's invalidation read the ids from
    /// here: no parsing, and no extra allocation on the hot path.
    ids: [Span; MAX_IDS],
}

/// Where one id sits in a key's text. Keys are well under 64 KiB (ids are
/// at most `MAX_ID_LEN` bytes, at most three a key).
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
struct Span {
    at: u16,
    len: u16,
}

/// The most ids a key holds (an ACL entry: tenant, user, shard).
const MAX_IDS: usize = 3;

/// A piece of a key's text, for [`RedisKey::build`].
enum Part<'a> {
    /// Fixed text of the family's layout.
    Lit(&'static str),
    /// An id (or digest), validated by its type.
    Id(&'a str),
}

use Part::{Id, Lit};

impl RedisKey {
    /// Concatenates `parts`, recording where each id went.
    fn build(family: KeyFamily, parts: &[Part<'_>]) -> Self {
        let len = parts
            .iter()
            .map(|part| match part {
                Lit(text) | Id(text) => text.len(),
            })
            .sum();
        let mut key = String::with_capacity(len);
        let mut ids = [Span::default(); MAX_IDS];
        let mut next = 0;
        for part in parts {
            match part {
                Lit(text) => key.push_str(text),
                Id(id) => {
                    // Lengths are bounded (see `Span`); saturating keeps a
                    // broken bound visible as a wrong id, never a panic.
                    ids[next] = Span {
                        at: u16::try_from(key.len()).unwrap_or(u16::MAX),
                        len: u16::try_from(id.len()).unwrap_or(u16::MAX),
                    };
                    next += 1;
                    key.push_str(id);
                }
            }
        }
        Self { key, family, ids }
    }

    /// `tenant:{t}:shard:{s}:structured`
    pub fn shard_structured(tenant: &TenantId, shard: &ShardId) -> Self {
        Self::build(
            KeyFamily::ShardStructured,
            &[
                Lit("tenant:"),
                Id(tenant.as_str()),
                Lit(":shard:"),
                Id(shard.as_str()),
                Lit(":structured"),
            ],
        )
    }

    /// `tenant:{t}:user:{u}:profile`
    pub fn user_profile(tenant: &TenantId, user: &UserId) -> Self {
        Self::build(
            KeyFamily::UserProfile,
            &[
                Lit("tenant:"),
                Id(tenant.as_str()),
                Lit(":user:"),
                Id(user.as_str()),
                Lit(":profile"),
            ],
        )
    }

    /// `tenant:{t}:acl:{u}:{s}`: the ACL check of one user on one shard.
    pub fn acl(tenant: &TenantId, user: &UserId, shard: &ShardId) -> Self {
        Self::build(
            KeyFamily::Acl,
            &[
                Lit("tenant:"),
                Id(tenant.as_str()),
                Lit(":acl:"),
                Id(user.as_str()),
                Lit(":"),
                Id(shard.as_str()),
            ],
        )
    }

    /// `tenant:{t}:vsearch:{query_hash}`
    pub fn vector_search(tenant: &TenantId, query: &QueryHash) -> Self {
        Self::build(
            KeyFamily::VectorSearch,
            &[
                Lit("tenant:"),
                Id(tenant.as_str()),
                Lit(":vsearch:"),
                Id(query.as_str()),
            ],
        )
    }

    /// `auth:tenant:{t}:session:{token_hash}`: one session, named by its token's hash.
    pub fn session(tenant: &TenantId, token: &TokenHash) -> Self {
        Self::build(
            KeyFamily::Session,
            &[
                Lit("auth:tenant:"),
                Id(tenant.as_str()),
                Lit(":session:"),
                Id(token.as_str()),
            ],
        )
    }

    /// `auth:tenant:{t}:user:{u}:sessions`: the set of a user's session hashes.
    pub fn user_sessions(tenant: &TenantId, user: &UserId) -> Self {
        Self::build(
            KeyFamily::UserSessions,
            &[
                Lit("auth:tenant:"),
                Id(tenant.as_str()),
                Lit(":user:"),
                Id(user.as_str()),
                Lit(":sessions"),
            ],
        )
    }

    /// `ratelimit:tenant:{t}:user:{u}:{action}`: one user's window for one action.
    pub fn rate_limit(tenant: &TenantId, user: &UserId, action: &CounterName) -> Self {
        Self::build(
            KeyFamily::RateLimit,
            &[
                Lit("ratelimit:tenant:"),
                Id(tenant.as_str()),
                Lit(":user:"),
                Id(user.as_str()),
                Lit(":"),
                Id(action.as_str()),
            ],
        )
    }

    /// `counter:tenant:{t}:{name}`: a tenant-wide counter.
    pub fn counter(tenant: &TenantId, name: &CounterName) -> Self {
        Self::build(
            KeyFamily::Counter,
            &[
                Lit("counter:tenant:"),
                Id(tenant.as_str()),
                Lit(":"),
                Id(name.as_str()),
            ],
        )
    }

    /// `keyindex:tenant:{t}`: the index of the tenant's cache keys (a sorted
    /// set scored by expiry time), kept by the cache beside every write.
    pub fn tenant_index(tenant: &TenantId) -> Self {
        Self::tenant_index_named(tenant.as_str())
    }

    fn tenant_index_named(tenant: &str) -> Self {
        Self::build(
            KeyFamily::TenantIndex,
            &[Lit("keyindex:tenant:"), Id(tenant)],
        )
    }

    /// `jobs:tenant:{t}:purge:{job}`: a purge job's progress (a hash).
    pub fn purge_job(tenant: &TenantId, job: &JobId) -> Self {
        Self::build(
            KeyFamily::PurgeJob,
            &[
                Lit("jobs:tenant:"),
                Id(tenant.as_str()),
                Lit(":purge:"),
                Id(job.as_str()),
            ],
        )
    }

    /// `jobs:tenant:{t}:purge-lease`: the id of the tenant's running purge
    /// job, expiring unless its runner renews it (one job per tenant).
    pub fn purge_lease(tenant: &TenantId) -> Self {
        Self::build(
            KeyFamily::PurgeLease,
            &[
                Lit("jobs:tenant:"),
                Id(tenant.as_str()),
                Lit(":purge-lease"),
            ],
        )
    }

    /// `jobs:purge:running`: the set of the keys of the purge jobs not yet
    /// ended, every tenant's (a starting instance resumes them). One key
    /// for the deployment; its name is part of the deployed contract.
    pub fn purge_jobs_running() -> Self {
        Self::build(KeyFamily::PurgeRunning, &[Lit("jobs:purge:running")])
    }

    /// `coherence:invalidations`: the bounded stream every invalidation
    /// announcement is appended to, so that an instance that missed some
    /// replays them. One key for the deployment (no hash tag: on a cluster
    /// it lives in its own slot); its name is part of the deployed contract.
    pub fn invalidation_stream() -> Self {
        Self::build(
            KeyFamily::InvalidationStream,
            &[Lit("coherence:invalidations")],
        )
    }

    /// The index of the tenant `key` belongs to (see [`tenant_index`](Self::tenant_index)).
    pub fn tenant_index_of(key: &RedisKey) -> Self {
        // The tenant id was validated when `key` was built.
        Self::tenant_index_named(key.tenant_str())
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

    /// The id of the tenant the key belongs to, as it appears in the key;
    /// empty for the deployment's keys (see [`KeyFamily::is_tenant_scoped`]).
    pub fn tenant_str(&self) -> &str {
        self.id(0)
    }

    /// The tenant and job of a purge job's key ([`purge_job`](Self::purge_job));
    /// `None` for a key of any other family.
    ///
    /// # Examples
    ///
    /// ```
    /// use shared_types::{JobId, RedisKey, TenantId};
    ///
    /// let (tenant, job) = (TenantId::new("t1").unwrap(), JobId::new("j1").unwrap());
    /// let key = RedisKey::purge_job(&tenant, &job);
    /// assert_eq!(key.purge_job_ids(), Some((tenant.clone(), job)));
    /// assert_eq!(RedisKey::purge_lease(&tenant).purge_job_ids(), None);
    /// ```
    pub fn purge_job_ids(&self) -> Option<(TenantId, JobId)> {
        (self.family == KeyFamily::PurgeJob).then(|| {
            (
                TenantId::from_key_part(self.id(0)),
                JobId::from_key_part(self.id(1)),
            )
        })
    }

    /// The `n`th id its builder was given (0: the tenant), as it appears
    /// in the key; empty past the family's last id.
    pub(crate) fn id(&self, n: usize) -> &str {
        let span = self.ids[n];
        let at = usize::from(span.at);
        &self.key[at..at + usize::from(span.len)]
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
            (
                RedisKey::purge_jobs_running(),
                "jobs:purge:running".to_owned(),
            ),
            (
                RedisKey::invalidation_stream(),
                "coherence:invalidations".to_owned(),
            ),
        ];
        assert_eq!(cases.len(), KeyFamily::ALL.len());
        for (key, expected) in cases {
            assert_eq!(key.as_str(), expected);
            let tenant = if key.family().is_tenant_scoped() {
                "t1"
            } else {
                ""
            };
            assert_eq!(key.tenant_str(), tenant, "{expected}");
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
