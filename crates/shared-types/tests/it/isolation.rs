//! Tenant isolation: no key of one tenant is covered by anything built for another.

use proptest::prelude::*;
use shared_types::{CounterName, Invalidation, KeyPattern, RedisKey, Scope, TenantId, glob_match};

use crate::strategies::{invalidation, query_hash, shard, tenant, token_hash, user};

fn all_keys(
    t: &TenantId,
    u: &shared_types::UserId,
    s: &shared_types::ShardId,
    q: &shared_types::QueryHash,
    h: &shared_types::TokenHash,
) -> Vec<RedisKey> {
    let name = CounterName::new("c").unwrap();
    vec![
        RedisKey::shard_structured(t, s),
        RedisKey::user_profile(t, u),
        RedisKey::acl(t, u, s),
        RedisKey::vector_search(t, q),
        RedisKey::session(t, h),
        RedisKey::user_sessions(t, u),
        RedisKey::rate_limit(t, u, &name),
        RedisKey::counter(t, &name),
        RedisKey::tenant_index(t),
    ]
}

fn all_patterns(
    t: &TenantId,
    u: &shared_types::UserId,
    s: &shared_types::ShardId,
) -> Vec<KeyPattern> {
    vec![
        KeyPattern::tenant_cache(t),
        KeyPattern::tenant_acl(t),
        KeyPattern::user_acl(t, u),
        KeyPattern::shard_acl(t, s),
        KeyPattern::tenant_vector_search(t),
        KeyPattern::tenant_shards(t),
        KeyPattern::tenant_user_profiles(t),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    // Whatever the ids' lengths, a key's invalidation, built from the ids
    // the key recorded (not parsed from its text), covers exactly that key
    // and names its tenant; a pattern's covers exactly that pattern.
    #[test]
    fn invalidations_built_from_a_keys_ids_cover_exactly_that_key(
        t in tenant(), u in user(), s in shard(), q in query_hash(), h in token_hash(),
    ) {
        for key in all_keys(&t, &u, &s, &q, &h) {
            if let Some(inv) = Invalidation::for_key(&key) {
                prop_assert_eq!(inv.scope(), Scope::Key(key.clone()));
                prop_assert_eq!(inv.tenant(), &t);
            }
        }
        for pattern in all_patterns(&t, &u, &s) {
            let inv = Invalidation::for_pattern(&pattern);
            prop_assert_eq!(inv.scope(), Scope::Pattern(pattern.clone()));
            prop_assert_eq!(pattern.tenant(), &t);
        }
    }

    // Every key names the tenant it was built for, whatever the other ids.
    #[test]
    fn every_key_knows_its_tenant(
        t in tenant(), u in user(), s in shard(), q in query_hash(), h in token_hash(),
    ) {
        for key in all_keys(&t, &u, &s, &q, &h) {
            prop_assert_eq!(key.tenant_str(), t.as_str(), "{:?}", key);
        }
    }

    // Every key's text parses back to the same key, family and tenant
    // (`RedisKey::parse`, what the cache-admin CLI reads operators' keys with).
    #[test]
    fn every_key_parses_back_to_itself(
        t in tenant(), u in user(), s in shard(), q in query_hash(), h in token_hash(),
    ) {
        for key in all_keys(&t, &u, &s, &q, &h) {
            let parsed = RedisKey::parse(key.as_str());
            prop_assert_eq!(parsed.as_ref(), Ok(&key));
            let parsed = parsed.unwrap();
            prop_assert_eq!(parsed.family(), key.family());
            prop_assert_eq!(parsed.tenant_str(), t.as_str());
        }
    }

    // For two different tenants, no key of one matches any pattern of the other.
    #[test]
    fn patterns_never_cross_tenants(
        a in tenant(), b in tenant(),
        (u1, u2) in (user(), user()), (s1, s2) in (shard(), shard()),
        q in query_hash(), h in token_hash(),
    ) {
        prop_assume!(a != b);
        for key in all_keys(&a, &u1, &s1, &q, &h) {
            for pattern in all_patterns(&b, &u2, &s2) {
                prop_assert!(!glob_match(pattern.as_str(), key.as_str()),
                    "{} matches {}", pattern, key);
            }
        }
    }

    // A key's load lease matches a pattern's lease glob exactly when the key
    // matches the pattern (a purge by SCAN finds the leases of what it
    // purges, and no other), and no key pattern ever matches a lease.
    #[test]
    fn lease_globs_cover_the_leases_of_covered_keys_only(
        (a, b) in (tenant(), tenant()), u in user(), s in shard(),
        q in query_hash(), h in token_hash(),
    ) {
        for key in all_keys(&a, &u, &s, &q, &h) {
            let lease = RedisKey::load_lease_of(key.as_str());
            prop_assert!(RedisKey::parse(&lease).is_err(), "{} parses", lease);
            for pattern in all_patterns(&a, &u, &s).into_iter().chain(all_patterns(&b, &u, &s)) {
                prop_assert_eq!(
                    glob_match(&pattern.load_leases(), &lease),
                    pattern.matches(key.as_str()),
                    "{} against {}", pattern, key
                );
                prop_assert!(!pattern.matches(&lease), "{} matches {}", pattern, lease);
            }
        }
    }

    // Look-alike tenants (one a prefix of the other) are the dangerous case: test it directly.
    #[test]
    fn prefix_tenants_isolated(base in "[a-z]{1,20}", tail in "[a-z0-9.-]{1,5}",
                               u in user(), s in shard(), q in query_hash(), h in token_hash()) {
        let a = TenantId::new(base.as_str()).unwrap();
        let ab = TenantId::new(format!("{base}{tail}")).unwrap();
        for (x, y) in [(&a, &ab), (&ab, &a)] {
            for key in all_keys(x, &u, &s, &q, &h) {
                for pattern in all_patterns(y, &u, &s) {
                    prop_assert!(!pattern.matches(key.as_str()), "{} matches {}", pattern, key);
                }
            }
        }
    }

    // An invalidation of one tenant never covers a key of another, and the
    // tenant-wide invalidation covers all cached keys and no state keys.
    #[test]
    fn invalidations_stay_in_tenant(
        a in tenant(), b in tenant(), inv in invalidation(),
        u in user(), s in shard(), q in query_hash(), h in token_hash(),
    ) {
        prop_assume!(a != b);
        // Re-home the generated invalidation onto tenant b.
        let inv_b = retenant(&inv, &b);
        for key in all_keys(&a, &u, &s, &q, &h) {
            prop_assert!(!inv_b.scope().covers(key.as_str()), "{} covers {}", inv_b, key);
        }
        let whole = Invalidation::Tenant { tenant_id: a.clone() };
        for key in all_keys(&a, &u, &s, &q, &h) {
            prop_assert_eq!(whole.scope().covers(key.as_str()), key.family().is_cache());
        }
    }
}

fn retenant(inv: &Invalidation, t: &TenantId) -> Invalidation {
    let mut json = serde_json::to_value(inv).unwrap();
    json["tenant_id"] = serde_json::Value::String(t.to_string());
    serde_json::from_value(json).unwrap()
}
