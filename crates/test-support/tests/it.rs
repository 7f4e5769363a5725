//! The harness itself: each capability the other crates' tests rely on.

use std::time::{Duration, Instant};

use test_support::{RedisServer, Reply, wait_for};

// A server starts on a free port (never 6379), answers, and dies with its handle.
#[tokio::test]
async fn starts_answers_and_dies_on_drop() {
    let redis = RedisServer::start().await;
    assert_ne!(redis.port(), 6379);
    assert_eq!(redis.url(), format!("redis://127.0.0.1:{}", redis.port()));
    assert_eq!(redis.cmd(&["SET", "k", "v"]), Reply::Simple("OK".into()));
    assert_eq!(redis.cmd(&["GET", "k"]).as_string().as_deref(), Some("v"));
    assert_eq!(redis.dbsize(), 1);
    // No persistence: a restart loses data.
    assert_eq!(
        redis.cmd(&["CONFIG", "GET", "save"]).as_strings(),
        ["save", ""]
    );
    let addr = redis.addr();
    drop(redis);
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "server survived its handle"
    );
}

// stop() makes the port refuse connections; start_again() brings the server
// back on the same port, empty.
#[tokio::test]
async fn stop_and_start_again_on_same_port() {
    let mut redis = RedisServer::start().await;
    let port = redis.port();
    redis.cmd(&["SET", "k", "v"]);
    redis.stop().await;
    assert!(!redis.is_running());
    assert!(redis.try_cmd(&["PING"]).is_err());
    redis.start_again().await;
    assert_eq!(redis.port(), port);
    assert!(redis.cmd(&["GET", "k"]).is_nil());
}

// A paused server accepts connections but answers nothing; resumed, it answers.
#[tokio::test]
async fn pause_and_resume() {
    let redis = RedisServer::start().await;
    redis.pause();
    let start = Instant::now();
    assert!(
        redis.try_cmd(&["PING"]).is_err(),
        "a paused server answered"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    redis.resume();
    wait_for(
        "the resumed server to answer",
        Duration::from_secs(5),
        || async { redis.try_cmd(&["PING"]).is_ok() },
    )
    .await;
}

// requirepass and ACL users are configured, and the harness authenticates itself.
#[tokio::test]
async fn password_and_acl_user() {
    let redis = RedisServer::builder().password("s3cret").start().await;
    assert_eq!(redis.cmd(&["PING"]), Reply::Simple("PONG".into()));
    let anonymous = test_support::RawClient::connect(&redis.addr(), None)
        .unwrap()
        .cmd(&["GET", "k"])
        .unwrap();
    assert!(matches!(anonymous, Reply::Error(e) if e.starts_with("NOAUTH")));

    let redis = RedisServer::builder()
        .acl_user("alice", "wonder")
        .start()
        .await;
    assert_eq!(
        redis.cmd(&["ACL", "WHOAMI"]).as_string().as_deref(),
        Some("alice")
    );
}

// Servers started concurrently get distinct ports and do not share data.
#[tokio::test]
async fn parallel_servers_are_isolated() {
    let (a, b) = tokio::join!(RedisServer::start(), RedisServer::start());
    assert_ne!(a.port(), b.port());
    a.cmd(&["SET", "only-in-a", "1"]);
    assert!(b.cmd(&["GET", "only-in-a"]).is_nil());
}

// The proxy forwards; a cut closes what it carries and refuses new
// connections; a stall silences them without closing; restore forwards again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_proxy_forwards_cuts_stalls_and_restores() {
    let redis = RedisServer::start().await;
    let proxy = test_support::TcpProxy::start(redis.port());
    let through = format!("127.0.0.1:{}", proxy.port());
    let mut client = test_support::RawClient::connect(&through, None).unwrap();
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
    assert_eq!(proxy.open_connections(), 1);

    proxy.cut();
    assert!(client.cmd(&["PING"]).is_err(), "a cut connection answered");
    let refused =
        test_support::RawClient::connect(&through, None).and_then(|mut c| c.cmd(&["PING"]));
    assert!(refused.is_err(), "a new connection got through a cut");

    proxy.restore();
    let mut client = test_support::RawClient::connect(&through, None).unwrap();
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));

    proxy.stall();
    let start = Instant::now();
    assert!(
        client.cmd(&["PING"]).is_err(),
        "a stalled connection answered"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    assert_eq!(proxy.open_connections(), 1, "a stall closed the connection");

    proxy.restore();
    let mut client = test_support::RawClient::connect(&through, None).unwrap();
    assert_eq!(client.cmd(&["PING"]).unwrap(), Reply::Simple("PONG".into()));
}
