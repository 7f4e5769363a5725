//! Key patterns for group invalidation.
//!
//! A [`KeyPattern`] is a Redis glob built only from validated ids and a fixed
//! literal prefix `tenant:{t}:`. Because ids cannot contain `:` or glob
//! characters, a pattern of tenant `a` can never match a key of tenant `ab`.

use std::fmt;

use crate::glob::glob_match;
use crate::id::{ShardId, TenantId, UserId};
use crate::invalidation::Invalidation;

/// A Redis glob over one tenant's cached keys.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeyPattern {
    pattern: String,
    /// The invalidation whose scope this pattern is, with its typed ids
    /// (among them the one tenant whose keys the pattern can match: where
    /// its keys are indexed), so that nothing parses the glob back.
    invalidation: Invalidation,
}

impl KeyPattern {
    /// `tenant:{t}:*`: all cached data of a tenant (never its sessions or counters).
    pub fn tenant_cache(tenant: &TenantId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:*"),
            invalidation: Invalidation::Tenant {
                tenant_id: tenant.clone(),
            },
        }
    }

    /// `tenant:{t}:acl:*`: all ACL entries of a tenant.
    pub fn tenant_acl(tenant: &TenantId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:acl:*"),
            invalidation: Invalidation::Acl {
                tenant_id: tenant.clone(),
            },
        }
    }

    /// `tenant:{t}:acl:{u}:*`: all ACL entries of one user.
    pub fn user_acl(tenant: &TenantId, user: &UserId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:acl:{user}:*"),
            invalidation: Invalidation::AclUser {
                tenant_id: tenant.clone(),
                user_id: user.clone(),
            },
        }
    }

    /// `tenant:{t}:acl:*:{s}`: all ACL entries on one shard.
    pub fn shard_acl(tenant: &TenantId, shard: &ShardId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:acl:*:{shard}"),
            invalidation: Invalidation::AclShard {
                tenant_id: tenant.clone(),
                shard_id: shard.clone(),
            },
        }
    }

    /// `tenant:{t}:shard:*`: the structured data of every shard of a tenant.
    pub fn tenant_shards(tenant: &TenantId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:shard:*"),
            invalidation: Invalidation::ShardAll {
                tenant_id: tenant.clone(),
            },
        }
    }

    /// `tenant:{t}:user:*`: every user profile of a tenant (its ACL entries
    /// live under `acl:`, its sessions outside `tenant:`).
    pub fn tenant_user_profiles(tenant: &TenantId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:user:*"),
            invalidation: Invalidation::UserAll {
                tenant_id: tenant.clone(),
            },
        }
    }

    /// `tenant:{t}:vsearch:*`: all vector-search results of a tenant.
    pub fn tenant_vector_search(tenant: &TenantId) -> Self {
        Self {
            pattern: format!("tenant:{tenant}:vsearch:*"),
            invalidation: Invalidation::Vsearch {
                tenant_id: tenant.clone(),
            },
        }
    }

    /// The tenant whose cached keys the pattern covers (and no other's).
    pub fn tenant(&self) -> &TenantId {
        self.invalidation.tenant()
    }

    /// The invalidation whose scope is exactly this pattern.
    pub(crate) fn invalidation(&self) -> &Invalidation {
        &self.invalidation
    }

    /// The glob as Redis sees it (for `SCAN MATCH`).
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// The glob matching the load leases (see [`crate::RedisKey::load_lease_of`])
    /// of exactly the keys this pattern matches: a purge by `SCAN` must
    /// find the lease of a key being loaded, which has no value yet.
    pub fn load_leases(&self) -> String {
        crate::RedisKey::load_lease_of(&self.pattern)
    }

    /// Whether `key` matches, with Redis glob semantics.
    pub fn matches(&self, key: &str) -> bool {
        glob_match(&self.pattern, key)
    }
}

impl fmt::Display for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pattern)
    }
}

impl fmt::Debug for KeyPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyPattern({})", self.pattern)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::RedisKey;

    // Each pattern covers what its name says, and nothing of a look-alike tenant.
    #[test]
    fn each_pattern_covers_its_keys_and_no_lookalike_tenant() {
        let a: TenantId = "a".parse().unwrap();
        let ab: TenantId = "ab".parse().unwrap();
        let (u1, u2): (UserId, UserId) = ("u1".parse().unwrap(), "u2".parse().unwrap());
        let (s1, s2): (ShardId, ShardId) = ("s1".parse().unwrap(), "s2".parse().unwrap());

        let acl_a = RedisKey::acl(&a, &u1, &s1);
        assert!(KeyPattern::tenant_cache(&a).matches(acl_a.as_str()));
        assert!(KeyPattern::tenant_acl(&a).matches(acl_a.as_str()));
        assert!(KeyPattern::user_acl(&a, &u1).matches(acl_a.as_str()));
        assert!(!KeyPattern::user_acl(&a, &u2).matches(acl_a.as_str()));
        assert!(KeyPattern::shard_acl(&a, &s1).matches(acl_a.as_str()));
        assert!(!KeyPattern::shard_acl(&a, &s2).matches(acl_a.as_str()));
        assert!(!KeyPattern::tenant_cache(&a).matches(RedisKey::acl(&ab, &u1, &s1).as_str()));
        assert!(!KeyPattern::tenant_acl(&a).matches(RedisKey::shard_structured(&a, &s1).as_str()));
        let session = RedisKey::session(&a, &crate::TokenHash::of_token("x"));
        assert!(!KeyPattern::tenant_cache(&a).matches(session.as_str()));

        let (shard_a, profile_a) = (
            RedisKey::shard_structured(&a, &s1),
            RedisKey::user_profile(&a, &u1),
        );
        assert!(KeyPattern::tenant_shards(&a).matches(shard_a.as_str()));
        assert!(!KeyPattern::tenant_shards(&a).matches(profile_a.as_str()));
        assert!(!KeyPattern::tenant_shards(&ab).matches(shard_a.as_str()));
        assert!(KeyPattern::tenant_user_profiles(&a).matches(profile_a.as_str()));
        assert!(!KeyPattern::tenant_user_profiles(&a).matches(shard_a.as_str()));
        assert!(!KeyPattern::tenant_user_profiles(&a).matches(acl_a.as_str()));
        let sessions = RedisKey::user_sessions(&a, &u1);
        assert!(!KeyPattern::tenant_user_profiles(&a).matches(sessions.as_str()));
    }
}
