//! proptest strategies for valid ids and invalidations.

use proptest::prelude::*;
use shared_types::{Invalidation, QueryHash, ShardId, TenantId, TokenHash, UserId};

/// The id alphabet, as a regex.
pub(crate) const ID_REGEX: &str = "[A-Za-z0-9._@+-]{1,128}";

pub(crate) fn tenant() -> impl Strategy<Value = TenantId> + Clone {
    ID_REGEX.prop_map(|s| TenantId::new(s).unwrap())
}

pub(crate) fn user() -> impl Strategy<Value = UserId> {
    ID_REGEX.prop_map(|s| UserId::new(s).unwrap())
}

pub(crate) fn shard() -> impl Strategy<Value = ShardId> {
    ID_REGEX.prop_map(|s| ShardId::new(s).unwrap())
}

pub(crate) fn query_hash() -> impl Strategy<Value = QueryHash> {
    ".*".prop_map(|q| QueryHash::of_query(&q))
}

pub(crate) fn token_hash() -> impl Strategy<Value = TokenHash> {
    ".*".prop_map(|t| TokenHash::of_token(&t))
}

/// Every kind of invalidation.
pub(crate) fn invalidation() -> impl Strategy<Value = Invalidation> {
    let tenant = tenant();
    prop_oneof![
        (tenant.clone(), shard()).prop_map(|(t, s)| Invalidation::Shard {
            tenant_id: t,
            shard_id: s
        }),
        (tenant.clone(), user()).prop_map(|(t, u)| Invalidation::User {
            tenant_id: t,
            user_id: u
        }),
        tenant
            .clone()
            .prop_map(|t| Invalidation::ShardAll { tenant_id: t }),
        tenant
            .clone()
            .prop_map(|t| Invalidation::UserAll { tenant_id: t }),
        tenant
            .clone()
            .prop_map(|t| Invalidation::Acl { tenant_id: t }),
        (tenant.clone(), user()).prop_map(|(t, u)| Invalidation::AclUser {
            tenant_id: t,
            user_id: u
        }),
        (tenant.clone(), shard()).prop_map(|(t, s)| Invalidation::AclShard {
            tenant_id: t,
            shard_id: s
        }),
        (tenant.clone(), user(), shard()).prop_map(|(t, u, s)| Invalidation::AclEntry {
            tenant_id: t,
            user_id: u,
            shard_id: s
        }),
        tenant
            .clone()
            .prop_map(|t| Invalidation::Vsearch { tenant_id: t }),
        (tenant.clone(), query_hash()).prop_map(|(t, h)| Invalidation::VsearchQuery {
            tenant_id: t,
            query_hash: h
        }),
        tenant
            .clone()
            .prop_map(|t| Invalidation::Tenant { tenant_id: t }),
        (tenant, token_hash()).prop_map(|(t, h)| Invalidation::Session {
            tenant_id: t,
            session_hash: h
        }),
    ]
}
