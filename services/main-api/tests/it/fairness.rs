//! Fairness between tenants, as a real process with real slow uploads: one
//! tenant cannot take the whole concurrency limit, and nobody can spend
//! another tenant's share by naming it.

use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use test_support::RedisServer;

use crate::procs::{PASSWORD, new_session_as, start, start_with};
use crate::server::stalled;

/// A PUT whose body stops after a few bytes of the announced 100.
fn slow_upload(addr: &str, tenant: &str, token: &str) -> TcpStream {
    stalled(
        addr,
        &format!(
            "PUT /v1/tenants/{tenant}/shards/s/structured HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
        ),
    )
}

/// The status the server answered on `stream` within `timeout`, if any.
fn answered_within(stream: &mut TcpStream, timeout: Duration) -> Option<u16> {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    let mut head = Vec::new();
    let mut buf = [0u8; 64];
    while head.len() < 12 {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) if head.is_empty() && start.elapsed() > timeout => return None,
            Ok(n) if n > 0 => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if start.elapsed() > timeout {
                    return None;
                }
            }
            Ok(_) | Err(_) => return None,
        }
    }
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

// A tenant holding slow uploads gets 429 beyond its share
// (HTTP_MAX_CONCURRENCY_PER_TENANT) while another tenant is still served;
// forged tokens naming the victim tenant are refused before their body
// is read, and take none of its share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_holding_slow_uploads_does_not_starve_other_tenants() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("HTTP_MAX_CONCURRENCY", "8"),
            ("HTTP_MAX_CONCURRENCY_PER_TENANT", "4"),
            // The slow uploads must outlive the test's assertions.
            ("HTTP_REQUEST_TIMEOUT_MS", "30000"),
            ("RUST_LOG", "info"),
        ],
    );
    let client = Client::new();
    let greedy = new_session_as(&client, &broker, "greedy", "g", &[]).await;
    let victim = new_session_as(&client, &broker, "victim", "v", &[]).await;
    let addr = api.url().trim_start_matches("http://").to_owned();

    // Forged tokens of the victim tenant: 401 at once, no body read.
    let forged = format!("victim~{}", "A".repeat(43));
    for _ in 0..8 {
        let mut upload = slow_upload(&addr, "victim", &forged);
        assert_eq!(
            answered_within(&mut upload, Duration::from_secs(5)),
            Some(401),
            "a forged token was not refused at once"
        );
    }

    // Eight slow uploads of one tenant: four hold its share, four are
    // answered 429 at once.
    let mut uploads: Vec<TcpStream> = (0..8)
        .map(|_| slow_upload(&addr, "greedy", &greedy))
        .collect();
    let mut answers: Vec<Option<u16>> = vec![None; uploads.len()];
    let deadline = Instant::now() + Duration::from_secs(5);
    while answers.iter().flatten().count() < 4 && Instant::now() < deadline {
        for (upload, answer) in uploads.iter_mut().zip(&mut answers) {
            if answer.is_none() {
                *answer = answered_within(upload, Duration::from_millis(10));
            }
        }
    }
    assert_eq!(
        answers.iter().flatten().copied().collect::<Vec<_>>(),
        [429; 4],
        "uploads beyond the tenant's share of 4"
    );

    // The other tenant is served meanwhile; the greedy one is told to wait.
    let get = |token: &str, tenant: &str| {
        client
            .get(format!(
                "{}/v1/tenants/{tenant}/shards/s/structured",
                api.url()
            ))
            .bearer_auth(token)
            .send()
    };
    let served = get(&victim, "victim").await.unwrap();
    assert_eq!(
        served.status(),
        StatusCode::NOT_FOUND,
        "the victim was not served"
    );
    let told = get(&greedy, "greedy").await.unwrap();
    assert_eq!(told.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: serde_json::Value = told.json().await.unwrap();
    assert_eq!(body["error"]["code"], "tenant_busy", "{body}");
}
