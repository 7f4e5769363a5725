//! Our glob matcher against the real one: Redis's own `KEYS`.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use shared_types::glob_match_bytes;
use test_support::{RedisServer, Reply};

// For random patterns over the glob metacharacters, our matcher agrees with Redis.
#[tokio::test(flavor = "current_thread")]
async fn agrees_with_redis_keys() {
    let redis = RedisServer::start().await;
    let client = std::cell::RefCell::new(redis.raw_client().unwrap());
    let mut runner = TestRunner::new(Config::with_cases(600));
    let strategy = (
        proptest::collection::vec(prop::sample::select(b"ab*?[]^-\\".to_vec()), 0..8),
        proptest::collection::vec(prop::sample::select(b"ab*?[]-\\".to_vec()), 1..6),
    );
    runner
        .run(&strategy, |(pattern, subject)| {
            // KEYS special-cases a lone "*" (it skips the matcher).
            prop_assume!(pattern != b"*");
            let mut client = client.borrow_mut();
            client.cmd(&[&b"FLUSHDB"[..]]).unwrap();
            client.cmd(&[&b"SET"[..], &subject, b"1"]).unwrap();
            let redis_says = match client.cmd(&[&b"KEYS"[..], &pattern]).unwrap() {
                Reply::Array(Some(items)) => !items.is_empty(),
                other => panic!("KEYS replied {other:?}"),
            };
            prop_assert_eq!(
                glob_match_bytes(&pattern, &subject),
                redis_says,
                "pattern {:?} subject {:?}",
                String::from_utf8_lossy(&pattern),
                String::from_utf8_lossy(&subject)
            );
            Ok(())
        })
        .unwrap();
}
