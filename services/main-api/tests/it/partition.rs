//! Sessions revoked while one main-api instance is cut off from Redis, as
//! real processes: auth-broker talks to Redis directly, main-api through a
//! [`TcpProxy`] that cuts or silently stalls its connections. A session is
//! security state, not cache: an instance that may have missed a revocation
//! never authenticates from its L1 copy.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use test_support::{RedisServer, ServiceProcess, TcpProxy, wait_for};

use crate::doc;
use crate::procs::{PASSWORD, SHARD, new_session, send, start_on, start_with};

/// auth-broker on Redis, main-api on Redis through a proxy.
struct Partitioned {
    _redis: RedisServer,
    proxy: TcpProxy,
    broker: ServiceProcess,
    api: ServiceProcess,
    client: Client,
}

async fn partitioned(extra: &[(&str, &str)]) -> Partitioned {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let proxy = TcpProxy::start(redis.port());
    let broker = start_with(
        "auth-broker",
        "AUTH_BROKER_ADDR",
        &redis,
        &[("RUST_LOG", "info")],
    );
    let through_proxy = vec![
        ("REDIS_HOST", "127.0.0.1".to_owned()),
        ("REDIS_PORT", proxy.port().to_string()),
        ("REDIS_PASSWORD", PASSWORD.to_owned()),
    ];
    let mut env = vec![("RUST_LOG", "info")];
    env.extend_from_slice(extra);
    let api = start_on("main-api", "MAIN_API_ADDR", through_proxy, &env);
    Partitioned {
        _redis: redis,
        proxy,
        broker,
        api,
        client: Client::new(),
    }
}

impl Partitioned {
    /// The status main-api answers to a GET of the shard with `token`.
    async fn get(&self, token: &str) -> StatusCode {
        let url = format!("{}{SHARD}", self.api.url());
        send(&self.client, reqwest::Method::GET, url, token, None)
            .await
            .0
    }

    /// A session main-api holds in its L1, with the shard it reads cached too.
    async fn cached_session(&self, user: &str) -> String {
        let token = new_session(&self.client, &self.broker, user).await;
        let url = format!("{}{SHARD}", self.api.url());
        let put = send(
            &self.client,
            reqwest::Method::PUT,
            url.clone(),
            &token,
            Some(doc(1)),
        )
        .await;
        assert_eq!(put.0, StatusCode::NO_CONTENT);
        wait_for(
            "main-api to serve from its L1",
            Duration::from_secs(5),
            || async {
                send(
                    &self.client,
                    reqwest::Method::GET,
                    url.clone(),
                    &token,
                    None,
                )
                .await
                .1 == "hit-l1"
            },
        )
        .await;
        token
    }

    async fn revoke(&self, token: &str) {
        let url = format!("{}/v1/sessions/current", self.broker.url());
        let (status, _, _) = send(&self.client, reqwest::Method::DELETE, url, token, None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }

    /// After the partition heals: the revoked token is refused, the other
    /// accepted again.
    async fn heals(&self, revoked: &str, kept: &str) {
        self.proxy.restore();
        wait_for(
            "the revoked session to be refused after the partition",
            Duration::from_secs(10),
            || async { self.get(revoked).await == StatusCode::UNAUTHORIZED },
        )
        .await;
        wait_for(
            "the kept session to be accepted after the partition",
            Duration::from_secs(10),
            || async { self.get(kept).await == StatusCode::OK },
        )
        .await;
    }
}

// main-api cut off from Redis (its connections reset) while auth-broker
// revokes a session it holds in its L1: it answers 503, never 200, for
// that session (and for any other: it cannot tell them apart), and 401
// once the partition heals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_while_an_instance_is_cut_off_is_not_accepted_there() {
    let net = partitioned(&[]).await;
    let revoked = net.cached_session("alice").await;
    let kept = net.cached_session("bob").await;

    net.proxy.cut();
    wait_for(
        "main-api to notice its invalidation feed is down",
        Duration::from_secs(5),
        || async { net.api.logs().contains("invalidation feed disconnected") },
    )
    .await;
    net.revoke(&revoked).await;
    for _ in 0..3 {
        assert_eq!(
            net.get(&revoked).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "a revoked session was accepted from the L1 of a cut-off instance"
        );
        assert_eq!(net.get(&kept).await, StatusCode::SERVICE_UNAVAILABLE);
    }
    net.heals(&revoked, &kept).await;
}

// main-api's connections silently stop forwarding (nothing is closed)
// while auth-broker revokes a session it holds in its L1: once the pub/sub
// heartbeat notices (about 1 s + 2.5 x REDIS_COMMAND_TIMEOUT_MS, the bound
// SECURITY.md states), it stops accepting the session for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_revoked_while_an_instance_is_stalled_stops_working_within_the_bound() {
    let net = partitioned(&[("REDIS_CONNECT_TIMEOUT_MS", "1000")]).await;
    let revoked = net.cached_session("alice").await;
    let kept = net.cached_session("bob").await;

    net.proxy.stall();
    net.revoke(&revoked).await;
    let revoked_at = Instant::now();
    // 1 s of heartbeat, 2.5 x 300 ms to declare the PING lost, and a margin.
    let bound = Duration::from_millis(1000 + 750) + Duration::from_secs(3);
    wait_for(
        "the stalled instance to stop accepting the revoked session",
        bound,
        || async { net.get(&revoked).await != StatusCode::OK },
    )
    .await;
    assert!(revoked_at.elapsed() < bound);
    for _ in 0..3 {
        assert_eq!(
            net.get(&revoked).await,
            StatusCode::SERVICE_UNAVAILABLE,
            "a revoked session was accepted from the L1 of a stalled instance"
        );
    }
    net.heals(&revoked, &kept).await;
}
