//! The HTTP server against slow and stalled clients, as a real process over
//! real sockets: the header-read timeout, the idle keep-alive timeout, the
//! cap on open connections, and shutdown's deadline.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use reqwest::Client;
use test_support::{RedisServer, http_status, wait_for, wait_for_sync};

use crate::procs::{SHARD, new_session, start, start_with};

/// A margin for the machine's slowness on top of a configured timeout.
const MARGIN: Duration = Duration::from_secs(3);

/// Opens a connection and sends `head` (and nothing more, yet).
pub(crate) fn stalled(addr: &str, head: &str) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    stream
}

/// Whether the server closed `stream` (end of file or a reset) within
/// `timeout`; anything it sent first is read and ignored.
pub(crate) fn closed_within(stream: &mut TcpStream, timeout: Duration) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if start.elapsed() > timeout {
                    return false;
                }
            }
            Err(_) => return true,
        }
    }
}

/// The address of a service, as `host:port`.
fn addr_of(url: &str) -> String {
    url.trim_start_matches("http://").to_owned()
}

// A client that sends half its request headers and stops is disconnected
// by the server once the header-read timeout passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let redis = RedisServer::builder()
        .password(crate::procs::PASSWORD)
        .start()
        .await;
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[("HTTP_HEADER_READ_TIMEOUT_MS", "300"), ("RUST_LOG", "info")],
    );
    let mut half = stalled(
        &addr_of(&api.url()),
        "GET /health/live HTTP/1.1\r\nHost: x\r\n",
    );
    assert!(
        closed_within(&mut half, Duration::from_millis(300) + MARGIN),
        "a half-sent request stayed open past the header timeout"
    );
}

// A keep-alive connection left idle after its response is closed once the
// header-read timeout passes (hyper waits for the next request's headers
// under that timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let redis = RedisServer::builder()
        .password(crate::procs::PASSWORD)
        .start()
        .await;
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[("HTTP_HEADER_READ_TIMEOUT_MS", "300"), ("RUST_LOG", "info")],
    );
    let mut idle = stalled(
        &addr_of(&api.url()),
        "GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    idle.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while !String::from_utf8_lossy(&answer).contains(r#"{"status":"ok"}"#) {
        let n = idle.read(&mut buf).expect("the response");
        assert!(n > 0, "closed before answering");
        answer.extend_from_slice(&buf[..n]);
    }
    assert!(
        closed_within(&mut idle, Duration::from_millis(300) + MARGIN),
        "an idle keep-alive connection stayed open past the timeout"
    );
}

// With HTTP_MAX_CONNECTIONS open (stalled) connections, the server closes
// every further connection at once instead of holding it (and a file
// descriptor); once the stalled ones go, it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_closed_at_once() {
    let redis = RedisServer::builder()
        .password(crate::procs::PASSWORD)
        .start()
        .await;
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("HTTP_MAX_CONNECTIONS", "8"),
            // Long enough that no stalled connection is closed by it here.
            ("HTTP_HEADER_READ_TIMEOUT_MS", "60000"),
            ("RUST_LOG", "info"),
        ],
    );
    let addr = addr_of(&api.url());
    // Eight stalled connections hold the cap once a further one is closed
    // at once while all eight stay open. (One of them may be refused while
    // the readiness probe's connection still holds a slot: it is replaced.)
    let mut held: Vec<TcpStream> = Vec::new();
    let head = "GET /health/live HTTP/1.1\r\nHost: x\r\n";
    wait_for_sync(
        "eight stalled connections to hold the cap",
        Duration::from_secs(10),
        || {
            held.retain_mut(|s| !closed_within(s, Duration::ZERO));
            while held.len() < 8 {
                held.push(stalled(&addr, head));
            }
            let mut probe = stalled(&addr, head);
            closed_within(&mut probe, Duration::from_millis(200)) && {
                held.retain_mut(|s| !closed_within(s, Duration::ZERO));
                held.len() == 8
            }
        },
    );
    // ...and every further one is closed at once.
    let mut extra: Vec<TcpStream> = (0..20)
        .map(|_| stalled(&addr, "GET /health/live HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    for (i, stream) in extra.iter_mut().enumerate() {
        assert!(
            closed_within(stream, MARGIN),
            "connection {i} beyond the cap was held open"
        );
    }
    for (i, stream) in held.iter_mut().enumerate() {
        assert!(
            !closed_within(stream, Duration::from_millis(50)),
            "connection {i} within the cap was closed"
        );
    }
    drop(held);
    wait_for_sync(
        "the service to serve again",
        Duration::from_secs(10),
        || http_status(&addr, "/health/live") == Some(200),
    );
}

// SIGTERM while a client is stuck mid-headers and another mid-body: the
// process drops them once HTTP_SHUTDOWN_GRACE_MS has passed, still closes
// the Redis layer, and exits 0 within the grace plus a margin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_stalled_clients_exits_within_the_grace_period() {
    let redis = RedisServer::builder()
        .password(crate::procs::PASSWORD)
        .start()
        .await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let grace = Duration::from_millis(1000);
    let mut api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("HTTP_SHUTDOWN_GRACE_MS", "1000"),
            // Neither timeout may end the stalled clients before the grace does.
            ("HTTP_HEADER_READ_TIMEOUT_MS", "60000"),
            ("HTTP_REQUEST_TIMEOUT_MS", "60000"),
            // tower_http at debug logs when each request starts.
            ("RUST_LOG", "info,tower_http=debug"),
        ],
    );
    let token = new_session(&Client::new(), &broker, "alice").await;
    let addr = addr_of(&api.url());
    let _half_headers = stalled(&addr, "GET /health/live HTTP/1.1\r\nHost: x\r\n");
    let _half_body = stalled(
        &addr,
        &format!(
            "PUT {SHARD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
        ),
    );
    wait_for(
        "the slow upload to be in flight",
        Duration::from_secs(5),
        || async {
            api.logs()
                .lines()
                .any(|l| l.contains("started processing request") && l.contains("PUT"))
        },
    )
    .await;
    let status = api.terminate(grace + MARGIN);
    assert!(status.success(), "main-api exited with {status}");
    assert!(
        api.logs().contains("Redis layer closed"),
        "the Redis layer was not closed: {}",
        api.logs()
    );
}
