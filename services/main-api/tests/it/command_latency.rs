//! The Redis command latency histogram, checked against Redis's own count
//! of the commands it ran (`INFO commandstats`).

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use test_support::{RedisServer, ServiceProcess, wait_for};

use crate::procs::{PASSWORD, SHARD, new_session, send, start, start_with};

async fn metrics(client: &Client, api: &ServiceProcess) -> String {
    let response = client
        .get(format!("{}/metrics", api.url()))
        .send()
        .await
        .unwrap();
    response.text().await.unwrap()
}

/// `redis_command_duration_seconds_count{family}` in a scrape.
fn family_count(metrics: &str, family: &str) -> u64 {
    let prefix = format!("redis_command_duration_seconds_count{{family=\"{family}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix)?.parse().ok())
        .unwrap_or_else(|| panic!("no count for family {family} in:\n{metrics}"))
}

/// How many times Redis ran `command`, by `INFO commandstats`.
fn redis_calls(redis: &RedisServer, command: &str) -> u64 {
    let info = redis.cmd(&["INFO", "commandstats"]).as_string().unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            rest[..rest.find(',')?].parse().ok()
        })
        .unwrap_or(0)
}

// Five deletes and four reads of a missing shard: the histogram counts
// exactly the commands Redis says it was sent, each under its family, with
// HELP text and buckets. A delete is one script (UNLINK and its PUBLISH,
// atomic: redis-cache's `coherence/atomic_write.rs`): one `script` command
// for us, and Redis also counts the UNLINK and the PUBLISH it ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn command_histogram_counts_agree_with_redis_commandstats() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &[("RUST_LOG", "info")]);
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    let url = format!("{}{SHARD}", api.url());
    // Until its invalidation feed is subscribed, main-api does not trust its
    // L1 and reads every session from Redis (on a loaded machine that can
    // outlast the requests below, which would then count a GET and a PTTL
    // each for the session).
    wait_for(
        "main-api's invalidation feed to be live",
        Duration::from_secs(10),
        || async {
            metrics(&client, &api)
                .await
                .lines()
                .any(|l| l == "cache_invalidation_feed_live 1")
        },
    )
    .await;
    // Warm-up: brings the session into main-api's L1.
    let (status, _, _) = send(&client, Method::DELETE, url.clone(), &token, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    let before = metrics(&client, &api).await;
    let commands = ["evalsha", "get", "pttl", "unlink", "publish"];
    let redis_before = commands.map(|c| redis_calls(&redis, c));
    for _ in 0..5 {
        let (status, _, _) = send(&client, Method::DELETE, url.clone(), &token, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    for _ in 0..4 {
        let (status, _, _) = send(&client, Method::GET, url.clone(), &token, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let after = metrics(&client, &api).await;
    let redis_after = commands.map(|c| redis_calls(&redis, c));

    let ours = ["script", "get", "ttl", "del", "publish"]
        .map(|family| family_count(&after, family) - family_count(&before, family));
    let theirs = [0, 1, 2, 3, 4].map(|i| redis_after[i] - redis_before[i]);
    assert_eq!(
        ours,
        [5, 4, 4, 0, 0],
        "ours by family (script, get, ttl, del, publish)"
    );
    assert_eq!(
        theirs,
        [5, 4, 4, 5, 5],
        "Redis's commandstats (evalsha, get, pttl, and the unlink and publish the scripts ran)"
    );
    assert!(after.contains("# HELP redis_command_duration_seconds "));
    assert!(after.contains("# TYPE redis_command_duration_seconds histogram"));
    assert!(after.contains("redis_command_duration_seconds_bucket{family=\"script\",le=\"+Inf\"}"));
    // Keys never become labels.
    assert!(
        !after
            .lines()
            .any(|l| l.starts_with("redis_command") && l.contains("acme"))
    );
}
