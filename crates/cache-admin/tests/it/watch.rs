//! `watch`: the bus decoded, filtered by tenant.

use std::process::Stdio;
use std::time::Duration;

use shared_types::{Invalidation, ShardId, UserId};
use test_support::RedisServer;
use test_support::fixtures::{redis_config, two_tier, two_tier_config};

use crate::support::{admin, rest_of_stdout, stderr_lines, tenant};

// watch --tenant t1 prints t1's invalidations, decoded, one JSON line each,
// and none of t10's (whose id starts with t1).
#[tokio::test]
async fn watch_prints_only_the_chosen_tenants_invalidations() {
    let server = RedisServer::start().await;
    let instance = two_tier(redis_config(&server), two_tier_config()).await;
    let mut child = admin(server.port())
        .args(["watch", "--tenant", "t1", "--count", "2", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stderr_lines(&mut child);
    let line = lines
        .recv_timeout(Duration::from_secs(20))
        .expect("watch says it is subscribed");
    assert!(line.contains("watching"), "{line}");

    let shard = ShardId::new("s1").unwrap();
    for invalidation in [
        Invalidation::Shard {
            tenant_id: tenant("t10"),
            shard_id: shard.clone(),
        },
        Invalidation::Tenant {
            tenant_id: tenant("t10"),
        },
        Invalidation::Shard {
            tenant_id: tenant("t1"),
            shard_id: shard,
        },
        Invalidation::User {
            tenant_id: tenant("t1"),
            user_id: UserId::new("u1").unwrap(),
        },
    ] {
        instance.invalidate(&invalidation).await.unwrap();
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = child.wait();
        (status, rest_of_stdout(&mut child))
    });
    let (status, stdout) = tokio::time::timeout(Duration::from_secs(20), status)
        .await
        .expect("watch stops after two invalidations")
        .unwrap();
    assert!(status.unwrap().success());
    let printed: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(printed.len(), 2, "{stdout}");
    assert_eq!(printed[0]["kind"], "shard");
    assert_eq!(printed[0]["id"], "s1");
    assert_eq!(printed[1]["kind"], "user");
    assert_eq!(printed[1]["id"], "u1");
    for line in &printed {
        assert_eq!(line["tenant"], "t1");
        assert!(line["origin"].is_string(), "{line}");
    }
}
