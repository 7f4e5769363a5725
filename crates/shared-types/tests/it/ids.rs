//! Property tests of id validation.

use proptest::prelude::*;
use shared_types::{CounterName, IdRejection, ShardId, TenantId, UserId, ValidationError};

use crate::strategies::ID_REGEX;

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-_.@+".contains(c)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    // Every valid id round-trips through Display/FromStr and serde, for every id type.
    #[test]
    fn valid_ids_round_trip(s in ID_REGEX) {
        let t = TenantId::new(s.as_str()).unwrap();
        prop_assert_eq!(&t.to_string(), &s);
        prop_assert_eq!(&t.to_string().parse::<TenantId>().unwrap(), &t);
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<TenantId>(&json).unwrap(), t);
        prop_assert!(UserId::new(s.as_str()).is_ok());
        prop_assert!(ShardId::new(s.as_str()).is_ok());
        prop_assert!(CounterName::new(s.as_str()).is_ok());
    }

    // A forbidden character anywhere is rejected, and the error points at it.
    #[test]
    fn forbidden_char_rejected(
        prefix in "[a-z]{0,20}",
        bad in any::<char>().prop_filter("forbidden", |c| !allowed(*c)),
        suffix in "[a-z]{0,20}",
    ) {
        let input = format!("{prefix}{bad}{suffix}");
        match UserId::new(input.as_str()) {
            Err(ValidationError::Id { field: "user_id", reason: IdRejection::Forbidden { ch, at, .. } }) => {
                prop_assert_eq!(ch, bad);
                prop_assert_eq!(at, prefix.len());
            }
            Err(ValidationError::Id { field: "user_id", reason: IdRejection::TooLong { .. } }) => {
                prop_assert!(input.len() > 128);
            }
            other => prop_assert!(false, "unexpected {:?}", other),
        }
    }

    // For any input at all: no panic, and acceptance is exactly the documented rule.
    #[test]
    fn validation_is_total(input in any::<String>()) {
        let expected = !input.is_empty() && input.len() <= 128 && input.chars().all(allowed);
        prop_assert_eq!(TenantId::new(input.as_str()).is_ok(), expected);
    }

    // Ids longer than 128 characters are rejected even if every character is allowed.
    #[test]
    fn too_long_rejected(s in "[a-z]{129,300}") {
        let rejected = matches!(
            ShardId::new(s.as_str()),
            Err(ValidationError::Id { reason: IdRejection::TooLong { .. }, .. })
        );
        prop_assert!(rejected);
    }
}

// Each explicitly forbidden character of the spec is rejected.
#[test]
fn spec_characters_rejected() {
    for c in [
        ':', '*', '?', '[', ']', '\\', '{', '}', ' ', '\t', '\n', '\0', '\u{7f}', 'é', '/',
    ] {
        let input = format!("a{c}b");
        assert!(TenantId::new(input.as_str()).is_err(), "{input:?} accepted");
    }
    assert!(TenantId::new("").is_err());
}
