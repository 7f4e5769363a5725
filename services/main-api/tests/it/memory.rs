//! Memory under a hostile workload: what one user stores cannot grow a
//! service without bound through its L1.

use reqwest::{Client, Method, StatusCode};
use serde_json::json;
use test_support::RedisServer;

use crate::procs::{PASSWORD, new_session_as, send, start, start_with};

/// `VmRSS` of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

// One user (no admin role) writing and reading back 300 documents of about
// 1 MB grows main-api's resident memory by less than 100 MiB: values above
// the L1's per-value bound are not held, and the L1 is bounded in bytes.
// (Before the byte bound it took main-api from 45 MiB to 626 MiB.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_documents_do_not_grow_the_service_through_its_l1() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &[("RUST_LOG", "warn")]);
    let client = Client::new();
    let token = new_session_as(&client, &broker, "acme", "mallory", &[]).await;
    let document = json!({"blob": "x".repeat(1_000_000)});
    let before = rss(api.pid());
    for i in 0..300 {
        let url = format!("{}/v1/tenants/acme/shards/s{i}/structured", api.url());
        let (status, _, body) = send(
            &client,
            Method::PUT,
            url.clone(),
            &token,
            Some(document.clone()),
        )
        .await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _, body) = send(&client, Method::GET, url, &token, None).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["blob"].as_str().map(str::len), Some(1_000_000));
    }
    let grown = rss(api.pid()).saturating_sub(before);
    assert!(
        grown < 100 * 1024 * 1024,
        "main-api grew by {} MiB",
        grown / (1024 * 1024)
    );
}
