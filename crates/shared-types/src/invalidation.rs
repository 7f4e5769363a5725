//! Invalidations: what a change makes stale, and the channel that announces it.
//!
//! This is the one table the crates agree on: each [`Invalidation`] names its
//! pub/sub channel, parses back from it, and knows the exact key or key
//! pattern it covers ([`Scope`]). Every key family that lives in an L1 maps to
//! the narrowest invalidation covering it ([`Invalidation::for_key`]).
//!
//! **The channels are shared with the TypeScript services** (the
//! `@castiel/redis-utils` package): every channel is
//! `cache:invalidate:{type}:{tenantId}:{id}`, where `{type}` is
//! [`Invalidation::channel_type`] and `{id}` is [`Invalidation::channel_id`]
//! (`*` for a whole family of the tenant). The channel alone says what
//! became stale, so a receiver never needs the payload to act on it.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::digest::{QueryHash, TokenHash};
use crate::error::ValidationError;
use crate::id::{ShardId, TenantId, UserId};
use crate::key::{KeyFamily, RedisKey};
use crate::pattern::KeyPattern;

/// Prefix of every invalidation channel.
pub const CHANNEL_PREFIX: &str = "cache:invalidate:";

/// Every channel `{type}` this version publishes and reads
/// ([`Invalidation::channel_type`] of each kind). A channel of another type
/// comes from a newer version.
pub const CHANNEL_TYPES: [&str; 6] = ["shard", "user", "acl", "vsearch", "tenant", "session"];

/// The one `PSUBSCRIBE` pattern that covers every invalidation channel.
pub const ALL_INVALIDATIONS_PATTERN: &str = "cache:invalidate:*";

/// Something that became stale, with the ids that say exactly what.
///
/// Serialised with an internal `kind` tag, e.g.
/// `{"kind":"shard","tenant_id":"t1","shard_id":"s1"}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Invalidation {
    /// One shard's structured data. Channel `cache:invalidate:shard:{t}:{s}`.
    Shard {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The shard.
        shard_id: ShardId,
    },
    /// One user's profile. Channel `cache:invalidate:user:{t}:{u}`.
    User {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The user.
        user_id: UserId,
    },
    /// The structured data of every shard of a tenant. Channel
    /// `cache:invalidate:shard:{t}:*` (what the TypeScript package's
    /// `invalidate(tenant, 'shard')` sends without an id).
    ShardAll {
        /// The tenant whose data it is.
        tenant_id: TenantId,
    },
    /// Every user profile of a tenant. Channel
    /// `cache:invalidate:user:{t}:*` (the TypeScript package's
    /// `invalidate(tenant, 'user')` without an id).
    UserAll {
        /// The tenant whose data it is.
        tenant_id: TenantId,
    },
    /// Every ACL entry of a tenant. Channel `cache:invalidate:acl:{t}:*`.
    Acl {
        /// The tenant whose data it is.
        tenant_id: TenantId,
    },
    /// Every ACL entry of one user. Channel `cache:invalidate:acl:{t}:user:{u}`.
    AclUser {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The user.
        user_id: UserId,
    },
    /// Every ACL entry on one shard. Channel `cache:invalidate:acl:{t}:shard:{s}`.
    AclShard {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The shard.
        shard_id: ShardId,
    },
    /// One ACL entry. Channel `cache:invalidate:acl:{t}:entry:{u}:{s}`.
    AclEntry {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The user.
        user_id: UserId,
        /// The shard.
        shard_id: ShardId,
    },
    /// Every vector-search result of a tenant. Channel `cache:invalidate:vsearch:{t}:*`.
    Vsearch {
        /// The tenant whose data it is.
        tenant_id: TenantId,
    },
    /// One vector-search result. Channel `cache:invalidate:vsearch:{t}:query:{h}`.
    VsearchQuery {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The hash of the normalised search query.
        query_hash: QueryHash,
    },
    /// All cached data of a tenant (not its sessions or counters).
    /// Channel `cache:invalidate:tenant:{t}:*`.
    Tenant {
        /// The tenant whose data it is.
        tenant_id: TenantId,
    },
    /// One session, on revocation. Channel `cache:invalidate:session:{t}:{token_hash}`.
    Session {
        /// The tenant whose data it is.
        tenant_id: TenantId,
        /// The hash of the revoked session's token.
        session_hash: TokenHash,
    },
}

/// What an invalidation covers: one exact key, or one key pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Exactly this key.
    Key(RedisKey),
    /// Every key matching this pattern.
    Pattern(KeyPattern),
}

impl Scope {
    /// Whether `key` is covered.
    pub fn covers(&self, key: &str) -> bool {
        match self {
            Scope::Key(k) => k.as_str() == key,
            Scope::Pattern(p) => p.matches(key),
        }
    }
}

impl Invalidation {
    /// The tenant whose data this invalidation concerns.
    pub fn tenant(&self) -> &TenantId {
        match self {
            Invalidation::Shard { tenant_id, .. }
            | Invalidation::User { tenant_id, .. }
            | Invalidation::ShardAll { tenant_id }
            | Invalidation::UserAll { tenant_id }
            | Invalidation::Acl { tenant_id }
            | Invalidation::AclUser { tenant_id, .. }
            | Invalidation::AclShard { tenant_id, .. }
            | Invalidation::AclEntry { tenant_id, .. }
            | Invalidation::Vsearch { tenant_id }
            | Invalidation::VsearchQuery { tenant_id, .. }
            | Invalidation::Tenant { tenant_id }
            | Invalidation::Session { tenant_id, .. } => tenant_id,
        }
    }

    /// The `kind` tag, as in the JSON payload (`shard`, `acl_user`, ...).
    pub fn kind(&self) -> &'static str {
        self.names().0
    }

    /// The kind's names, in one table: its `kind` tag (as serde writes
    /// it) and its channel's `{type}` segment (one of [`CHANNEL_TYPES`]).
    fn names(&self) -> (&'static str, &'static str) {
        match self {
            Invalidation::Shard { .. } => ("shard", "shard"),
            Invalidation::User { .. } => ("user", "user"),
            Invalidation::ShardAll { .. } => ("shard_all", "shard"),
            Invalidation::UserAll { .. } => ("user_all", "user"),
            Invalidation::Acl { .. } => ("acl", "acl"),
            Invalidation::AclUser { .. } => ("acl_user", "acl"),
            Invalidation::AclShard { .. } => ("acl_shard", "acl"),
            Invalidation::AclEntry { .. } => ("acl_entry", "acl"),
            Invalidation::Vsearch { .. } => ("vsearch", "vsearch"),
            Invalidation::VsearchQuery { .. } => ("vsearch_query", "vsearch"),
            Invalidation::Tenant { .. } => ("tenant", "tenant"),
            Invalidation::Session { .. } => ("session", "session"),
        }
    }

    /// The channel this invalidation is published on:
    /// `cache:invalidate:{channel_type}:{tenant}:{channel_id}`.
    pub fn channel(&self) -> String {
        format!(
            "{CHANNEL_PREFIX}{}:{}:{}",
            self.channel_type(),
            self.tenant(),
            self.channel_id()
        )
    }

    /// The channel's `{type}` segment: the family of what became stale
    /// (`shard`, `user`, `acl`, `vsearch`, `tenant`, `session`). A
    /// TypeScript consumer reads it as the payload's `type`.
    pub fn channel_type(&self) -> &'static str {
        self.names().1
    }

    /// The channel after `{type}:{tenant}:`, which a TypeScript consumer
    /// reads as the payload's `id`: the shard, user or session hash for one
    /// key of those families; `*` for a whole family of the tenant
    /// (`ShardAll`, `UserAll`, `Acl`, `Vsearch`, `Tenant`); and for the
    /// finer ACL and vector-search invalidations, which the TypeScript
    /// package does not send, the rest of the channel (`user:{u}`,
    /// `shard:{s}`, `entry:{u}:{s}`, `query:{h}`).
    pub fn channel_id(&self) -> String {
        match self {
            Invalidation::Shard { shard_id, .. } => shard_id.to_string(),
            Invalidation::User { user_id, .. } => user_id.to_string(),
            Invalidation::ShardAll { .. }
            | Invalidation::UserAll { .. }
            | Invalidation::Acl { .. }
            | Invalidation::Vsearch { .. }
            | Invalidation::Tenant { .. } => "*".to_owned(),
            Invalidation::AclUser { user_id, .. } => format!("user:{user_id}"),
            Invalidation::AclShard { shard_id, .. } => format!("shard:{shard_id}"),
            Invalidation::AclEntry {
                user_id, shard_id, ..
            } => format!("entry:{user_id}:{shard_id}"),
            Invalidation::VsearchQuery { query_hash, .. } => format!("query:{query_hash}"),
            Invalidation::Session { session_hash, .. } => session_hash.to_string(),
        }
    }

    /// Parses a channel name back into its invalidation.
    ///
    /// # Errors
    /// [`ValidationError::Channel`] when the layout is not one of ours, or the
    /// id error when an id in it is invalid.
    pub fn from_channel(channel: &str) -> Result<Self, ValidationError> {
        let rest = channel
            .strip_prefix(CHANNEL_PREFIX)
            .ok_or_else(|| channel_error("does not start with cache:invalidate:"))?;
        let parts: Vec<&str> = rest.split(':').collect();
        let inv = match parts.as_slice() {
            // The whole-family forms first: `*` is never a valid id.
            ["shard", t, "*"] => Invalidation::ShardAll {
                tenant_id: t.parse()?,
            },
            ["user", t, "*"] => Invalidation::UserAll {
                tenant_id: t.parse()?,
            },
            ["shard", t, s] => Invalidation::Shard {
                tenant_id: t.parse()?,
                shard_id: s.parse()?,
            },
            ["user", t, u] => Invalidation::User {
                tenant_id: t.parse()?,
                user_id: u.parse()?,
            },
            ["acl", t, "*"] => Invalidation::Acl {
                tenant_id: t.parse()?,
            },
            ["acl", t, "user", u] => Invalidation::AclUser {
                tenant_id: t.parse()?,
                user_id: u.parse()?,
            },
            ["acl", t, "shard", s] => Invalidation::AclShard {
                tenant_id: t.parse()?,
                shard_id: s.parse()?,
            },
            ["acl", t, "entry", u, s] => Invalidation::AclEntry {
                tenant_id: t.parse()?,
                user_id: u.parse()?,
                shard_id: s.parse()?,
            },
            ["vsearch", t, "*"] => Invalidation::Vsearch {
                tenant_id: t.parse()?,
            },
            ["vsearch", t, "query", h] => Invalidation::VsearchQuery {
                tenant_id: t.parse()?,
                query_hash: h.parse()?,
            },
            ["tenant", t, "*"] => Invalidation::Tenant {
                tenant_id: t.parse()?,
            },
            ["session", t, h] => Invalidation::Session {
                tenant_id: t.parse()?,
                session_hash: h.parse()?,
            },
            _ => return Err(channel_error("unknown kind or layout")),
        };
        Ok(inv)
    }

    /// Exactly what this invalidation makes stale.
    pub fn scope(&self) -> Scope {
        match self {
            Invalidation::Shard {
                tenant_id,
                shard_id,
            } => Scope::Key(RedisKey::shard_structured(tenant_id, shard_id)),
            Invalidation::User { tenant_id, user_id } => {
                Scope::Key(RedisKey::user_profile(tenant_id, user_id))
            }
            Invalidation::ShardAll { tenant_id } => {
                Scope::Pattern(KeyPattern::tenant_shards(tenant_id))
            }
            Invalidation::UserAll { tenant_id } => {
                Scope::Pattern(KeyPattern::tenant_user_profiles(tenant_id))
            }
            Invalidation::Acl { tenant_id } => Scope::Pattern(KeyPattern::tenant_acl(tenant_id)),
            Invalidation::AclUser { tenant_id, user_id } => {
                Scope::Pattern(KeyPattern::user_acl(tenant_id, user_id))
            }
            Invalidation::AclShard {
                tenant_id,
                shard_id,
            } => Scope::Pattern(KeyPattern::shard_acl(tenant_id, shard_id)),
            Invalidation::AclEntry {
                tenant_id,
                user_id,
                shard_id,
            } => Scope::Key(RedisKey::acl(tenant_id, user_id, shard_id)),
            Invalidation::Vsearch { tenant_id } => {
                Scope::Pattern(KeyPattern::tenant_vector_search(tenant_id))
            }
            Invalidation::VsearchQuery {
                tenant_id,
                query_hash,
            } => Scope::Key(RedisKey::vector_search(tenant_id, query_hash)),
            Invalidation::Tenant { tenant_id } => {
                Scope::Pattern(KeyPattern::tenant_cache(tenant_id))
            }
            Invalidation::Session {
                tenant_id,
                session_hash,
            } => Scope::Key(RedisKey::session(tenant_id, session_hash)),
        }
    }

    /// The narrowest invalidation that covers `key`, for the families an L1
    /// may hold (cached data and sessions). `None` for rate-limit windows,
    /// counters and session sets, which are never held in an L1 and so need
    /// no cross-instance invalidation.
    ///
    /// Built from the ids the key was built from (it records where each
    /// went), never by parsing its text.
    pub fn for_key(key: &RedisKey) -> Option<Self> {
        // Only the families that have a tenant read one.
        let tenant_id = || TenantId::from_key_part(key.id(0));
        let inv = match key.family() {
            KeyFamily::ShardStructured => Invalidation::Shard {
                tenant_id: tenant_id(),
                shard_id: ShardId::from_key_part(key.id(1)),
            },
            KeyFamily::UserProfile => Invalidation::User {
                tenant_id: tenant_id(),
                user_id: UserId::from_key_part(key.id(1)),
            },
            KeyFamily::Acl => Invalidation::AclEntry {
                tenant_id: tenant_id(),
                user_id: UserId::from_key_part(key.id(1)),
                shard_id: ShardId::from_key_part(key.id(2)),
            },
            KeyFamily::VectorSearch => Invalidation::VsearchQuery {
                tenant_id: tenant_id(),
                query_hash: QueryHash::from_key_part(key.id(1)),
            },
            KeyFamily::Session => Invalidation::Session {
                tenant_id: tenant_id(),
                session_hash: TokenHash::from_key_part(key.id(1)),
            },
            KeyFamily::UserSessions
            | KeyFamily::RateLimit
            | KeyFamily::Counter
            | KeyFamily::TenantIndex
            | KeyFamily::PurgeJob
            | KeyFamily::PurgeLease
            | KeyFamily::PurgeRunning
            | KeyFamily::InvalidationStream => return None,
        };
        Some(inv)
    }
}

impl Invalidation {
    /// The invalidation that covers exactly `pattern`: every [`KeyPattern`]
    /// builder has its invalidation kind, so this is total.
    pub fn for_pattern(pattern: &KeyPattern) -> Self {
        // A pattern is built with its invalidation: nothing to parse.
        pattern.invalidation().clone()
    }
}

impl fmt::Display for Invalidation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.channel())
    }
}

fn channel_error(reason: &str) -> ValidationError {
    ValidationError::Channel {
        reason: reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        s.parse().unwrap()
    }

    // The channel formats the platform agreed on, exactly.
    #[test]
    fn channel_names_are_the_agreed_formats_exactly() {
        let tenant = t("t1");
        assert_eq!(
            Invalidation::Shard {
                tenant_id: tenant.clone(),
                shard_id: "s1".parse().unwrap()
            }
            .channel(),
            "cache:invalidate:shard:t1:s1"
        );
        assert_eq!(
            Invalidation::User {
                tenant_id: tenant.clone(),
                user_id: "u1".parse().unwrap()
            }
            .channel(),
            "cache:invalidate:user:t1:u1"
        );
        assert_eq!(
            Invalidation::Acl {
                tenant_id: tenant.clone()
            }
            .channel(),
            "cache:invalidate:acl:t1:*"
        );
        assert_eq!(
            Invalidation::ShardAll {
                tenant_id: tenant.clone()
            }
            .channel(),
            "cache:invalidate:shard:t1:*"
        );
        assert_eq!(
            Invalidation::UserAll {
                tenant_id: tenant.clone()
            }
            .channel(),
            "cache:invalidate:user:t1:*"
        );
        assert_eq!(
            Invalidation::Vsearch {
                tenant_id: tenant.clone()
            }
            .channel(),
            "cache:invalidate:vsearch:t1:*"
        );
        assert_eq!(
            Invalidation::Tenant {
                tenant_id: tenant.clone()
            }
            .channel(),
            "cache:invalidate:tenant:t1:*"
        );
        let h = TokenHash::of_token("tok");
        assert_eq!(
            Invalidation::Session {
                tenant_id: tenant,
                session_hash: h.clone()
            }
            .channel(),
            format!("cache:invalidate:session:t1:{h}")
        );
    }

    // What a TypeScript consumer reads as `type` and `id`, for every kind:
    // the channel's segments, `*` for a whole family of the tenant.
    #[test]
    fn channel_type_and_id_of_every_kind() {
        let (tn, u, s): (TenantId, UserId, ShardId) =
            (t("t1"), "u1".parse().unwrap(), "s1".parse().unwrap());
        let (q, h) = (QueryHash::of_query("q"), TokenHash::of_token("x"));
        let cases = [
            (
                Invalidation::Shard {
                    tenant_id: tn.clone(),
                    shard_id: s.clone(),
                },
                "shard",
                "s1".to_owned(),
            ),
            (
                Invalidation::User {
                    tenant_id: tn.clone(),
                    user_id: u.clone(),
                },
                "user",
                "u1".to_owned(),
            ),
            (
                Invalidation::ShardAll {
                    tenant_id: tn.clone(),
                },
                "shard",
                "*".to_owned(),
            ),
            (
                Invalidation::UserAll {
                    tenant_id: tn.clone(),
                },
                "user",
                "*".to_owned(),
            ),
            (
                Invalidation::Acl {
                    tenant_id: tn.clone(),
                },
                "acl",
                "*".to_owned(),
            ),
            (
                Invalidation::AclUser {
                    tenant_id: tn.clone(),
                    user_id: u.clone(),
                },
                "acl",
                "user:u1".to_owned(),
            ),
            (
                Invalidation::AclShard {
                    tenant_id: tn.clone(),
                    shard_id: s.clone(),
                },
                "acl",
                "shard:s1".to_owned(),
            ),
            (
                Invalidation::AclEntry {
                    tenant_id: tn.clone(),
                    user_id: u,
                    shard_id: s,
                },
                "acl",
                "entry:u1:s1".to_owned(),
            ),
            (
                Invalidation::Vsearch {
                    tenant_id: tn.clone(),
                },
                "vsearch",
                "*".to_owned(),
            ),
            (
                Invalidation::VsearchQuery {
                    tenant_id: tn.clone(),
                    query_hash: q.clone(),
                },
                "vsearch",
                format!("query:{q}"),
            ),
            (
                Invalidation::Tenant {
                    tenant_id: tn.clone(),
                },
                "tenant",
                "*".to_owned(),
            ),
            (
                Invalidation::Session {
                    tenant_id: tn,
                    session_hash: h.clone(),
                },
                "session",
                h.to_string(),
            ),
        ];
        for (inv, kind, id) in cases {
            assert_eq!(
                (inv.channel_type(), inv.channel_id()),
                (kind, id.clone()),
                "{inv:?}"
            );
            assert!(CHANNEL_TYPES.contains(&kind), "{kind}");
            let json = serde_json::to_value(&inv).unwrap();
            assert_eq!(json["kind"], inv.kind(), "the kind tag is serde's");
            assert_eq!(inv.channel(), format!("cache:invalidate:{kind}:t1:{id}"));
            assert_eq!(Invalidation::from_channel(&inv.channel()).unwrap(), inv);
        }
    }

    // The JSON payload is small and tagged by kind.
    #[test]
    fn invalidation_json_is_small_and_tagged_by_kind() {
        let inv = Invalidation::AclEntry {
            tenant_id: t("t1"),
            user_id: "u1".parse().unwrap(),
            shard_id: "s1".parse().unwrap(),
        };
        let json = serde_json::to_string(&inv).unwrap();
        assert_eq!(
            json,
            r#"{"kind":"acl_entry","tenant_id":"t1","user_id":"u1","shard_id":"s1"}"#
        );
        assert_eq!(serde_json::from_str::<Invalidation>(&json).unwrap(), inv);
        assert!(
            serde_json::from_str::<Invalidation>(
                r#"{"kind":"shard","tenant_id":"a:b","shard_id":"s"}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<Invalidation>(r#"{"kind":"nope","tenant_id":"a"}"#).is_err()
        );
    }

    // Garbage channels are rejected, not mis-parsed.
    #[test]
    fn rejects_foreign_channels() {
        for bad in [
            "",
            "cache:invalidate:",
            "cache:invalidate:shard:t1",
            "cache:invalidate:shard:t1:s1:extra",
            "cache:invalidate:acl:t1:x",
            "cache:invalidate:tenant:t1:s1",
            "other:invalidate:shard:t1:s1",
            "cache:invalidate:session:t1:nothex",
            "cache:invalidate:shard:t1:s*",
            "cache:invalidate:user:t1:?",
            "cache:invalidate:shard:*:s1",
            "cache:invalidate:session:t1:*",
        ] {
            assert!(Invalidation::from_channel(bad).is_err(), "{bad:?} accepted");
        }
    }

    // Every L1-held family maps to an invalidation whose scope is that very key.
    #[test]
    fn for_key_is_narrowest() {
        let (tn, u, s) = (t("t1"), "u1".parse().unwrap(), "s1".parse().unwrap());
        let keys = [
            RedisKey::shard_structured(&tn, &s),
            RedisKey::user_profile(&tn, &u),
            RedisKey::acl(&tn, &u, &s),
            RedisKey::vector_search(&tn, &QueryHash::of_query("q")),
            RedisKey::session(&tn, &TokenHash::of_token("x")),
        ];
        for key in keys {
            let inv = Invalidation::for_key(&key).expect("mapped");
            assert_eq!(inv.scope(), Scope::Key(key.clone()));
            assert!(inv.scope().covers(key.as_str()));
        }
        let counter = RedisKey::counter(&tn, &"c".parse().unwrap());
        assert_eq!(Invalidation::for_key(&counter), None);
    }

    // Every pattern maps back to the invalidation whose scope is that pattern.
    #[test]
    fn for_pattern_round_trips() {
        let (tn, u, s) = (t("t1"), "u1".parse().unwrap(), "s1".parse().unwrap());
        let patterns = [
            KeyPattern::tenant_cache(&tn),
            KeyPattern::tenant_acl(&tn),
            KeyPattern::user_acl(&tn, &u),
            KeyPattern::shard_acl(&tn, &s),
            KeyPattern::tenant_vector_search(&tn),
            KeyPattern::tenant_shards(&tn),
            KeyPattern::tenant_user_profiles(&tn),
        ];
        for pattern in patterns {
            let inv = Invalidation::for_pattern(&pattern);
            assert_eq!(inv.scope(), Scope::Pattern(pattern));
        }
    }

    // A family has a key invalidation exactly when for_key maps its keys.
    #[test]
    fn key_invalidation_table_is_consistent() {
        let (tn, u, s) = (t("t1"), "u1".parse().unwrap(), "s1".parse().unwrap());
        let tok = TokenHash::of_token("x");
        let name = "c".parse().unwrap();
        let samples = [
            RedisKey::shard_structured(&tn, &s),
            RedisKey::user_profile(&tn, &u),
            RedisKey::acl(&tn, &u, &s),
            RedisKey::vector_search(&tn, &QueryHash::of_query("q")),
            RedisKey::session(&tn, &tok),
            RedisKey::user_sessions(&tn, &u),
            RedisKey::rate_limit(&tn, &u, &name),
            RedisKey::counter(&tn, &name),
            RedisKey::tenant_index(&tn),
            RedisKey::purge_job(&tn, &"j1".parse().unwrap()),
            RedisKey::purge_lease(&tn),
            RedisKey::purge_jobs_running(),
            RedisKey::invalidation_stream(),
        ];
        assert_eq!(samples.len(), KeyFamily::ALL.len());
        for key in samples {
            assert_eq!(
                key.family().has_key_invalidation(),
                Invalidation::for_key(&key).is_some(),
                "{key:?}"
            );
        }
    }
}
