//! Invalidation channels and payloads round-trip.

use proptest::prelude::*;
use shared_types::{ALL_INVALIDATIONS_PATTERN, Invalidation, glob_match};

use crate::strategies::invalidation;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    // channel -> Invalidation -> channel is the identity, and the one pattern covers it.
    #[test]
    fn channel_round_trip(inv in invalidation()) {
        let channel = inv.channel();
        prop_assert_eq!(&Invalidation::from_channel(&channel).unwrap(), &inv);
        prop_assert!(glob_match(ALL_INVALIDATIONS_PATTERN, &channel));
        let family = inv.kind().split('_').next().unwrap();
        let prefix = format!("cache:invalidate:{family}:{}:", inv.tenant());
        prop_assert!(channel.starts_with(&prefix));
    }

    // The JSON payload round-trips and carries the kind tag.
    #[test]
    fn payload_round_trip(inv in invalidation()) {
        let json = serde_json::to_value(&inv).unwrap();
        prop_assert_eq!(json["kind"].as_str(), Some(inv.kind()));
        prop_assert_eq!(serde_json::from_value::<Invalidation>(json).unwrap(), inv);
    }

    // Parsing arbitrary text never panics.
    #[test]
    fn parse_is_total(s in any::<String>()) {
        let _ = Invalidation::from_channel(&s);
        let _ = Invalidation::from_channel(&format!("cache:invalidate:{s}"));
        let _ = serde_json::from_str::<Invalidation>(&s);
    }
}
