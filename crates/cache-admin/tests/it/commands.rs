//! `stats`, `inspect` and `ttl-report`: what they report, in JSON.

use test_support::RedisServer;
use test_support::fixtures::{redis_config, two_tier, two_tier_config};

use crate::support::{Keyspace, json, run};

// stats counts each named tenant's indexed keys (t1 and t10 apart) and the
// server's keys; its --json output parses.
#[tokio::test]
async fn stats_counts_each_named_tenant_apart() {
    let server = RedisServer::start().await;
    let instance = two_tier(redis_config(&server), two_tier_config()).await;
    let keys = Keyspace::write(&instance, 30).await;
    let output = run(
        server.port(),
        &["stats", "--tenant", "t1", "--tenant", "t10", "--json"],
    );
    let stats = json(&output);
    assert!(output.status.success(), "{stats}");
    assert_eq!(stats["tenants"]["t1"].as_u64(), Some(keys.t1.len() as u64));
    assert_eq!(stats["tenants"]["t10"].as_u64(), Some(20));
    assert_eq!(stats["keys"].as_u64(), Some(server.dbsize() as u64));
    assert!(stats["used_memory_bytes"].as_u64().unwrap() > 0);
}

// inspect reports family, tenant, size and TTL of a key, and of a session
// everything but its value.
#[tokio::test]
async fn inspect_describes_keys_but_never_session_values() {
    let server = RedisServer::start().await;
    let instance = two_tier(redis_config(&server), two_tier_config()).await;
    let keys = Keyspace::write(&instance, 5).await;

    let output = run(server.port(), &["--json", "inspect", keys.t1[0].as_str()]);
    let shard = json(&output);
    assert!(output.status.success(), "{shard}");
    assert_eq!(shard["family"], "shard");
    assert_eq!(shard["tenant"], "t1");
    assert_eq!(shard["cache"], true);
    assert_eq!(shard["redis_type"], "string");
    assert_eq!(
        shard["value_bytes"].as_u64(),
        Some(r#"{"rows":1}"#.len() as u64)
    );
    let ttl = shard["ttl_ms"].as_u64().unwrap();
    assert!(ttl > 500_000 && ttl <= 600_000, "{shard}");

    for format in [&["--json"][..], &[][..]] {
        let mut args = format.to_vec();
        args.extend(["inspect", keys.t1_session.as_str()]);
        let output = run(server.port(), &args);
        assert!(output.status.success());
        let all = [output.stdout, output.stderr].concat();
        let all = String::from_utf8_lossy(&all);
        assert!(all.contains("session"), "{all}");
        assert!(!all.contains("SESSION-VALUE"), "{all}");
    }

    // A key that does not exist is reported as such, not an error.
    let output = run(
        server.port(),
        &["--json", "inspect", "tenant:t3:shard:s1:structured"],
    );
    let missing = json(&output);
    assert!(output.status.success());
    assert_eq!(missing["exists"], false);
    assert_eq!(missing["redis_type"], "none");
}

// ttl-report puts every key of the tenant in a bucket, and only its keys.
#[tokio::test]
async fn ttl_report_buckets_every_key_of_the_tenant() {
    let server = RedisServer::start().await;
    let instance = two_tier(redis_config(&server), two_tier_config()).await;
    let keys = Keyspace::write(&instance, 30).await;
    let output = run(server.port(), &["--json", "ttl-report", "--tenant", "t1"]);
    let report = json(&output);
    assert!(output.status.success(), "{report}");
    assert_eq!(report["keys"].as_u64(), Some(keys.t1.len() as u64));
    let buckets = report["buckets"].as_array().unwrap();
    let in_buckets: u64 = buckets.iter().map(|b| b["keys"].as_u64().unwrap()).sum();
    assert_eq!(in_buckets, keys.t1.len() as u64);
    // Written for 10 minutes: all in the 5-15 min bucket.
    let bucket = buckets.iter().find(|b| b["label"] == "5-15 min").unwrap();
    assert_eq!(bucket["keys"].as_u64(), Some(keys.t1.len() as u64));
}
