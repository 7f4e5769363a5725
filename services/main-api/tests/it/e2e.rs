//! End to end, as real processes: auth-broker and two main-api instances on
//! one password-protected redis-server, over real HTTP.

use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::json;
use test_support::{RedisServer, ServiceProcess, free_port, http_status, wait_for};

use crate::procs::{
    PASSWORD, SHARD, binary, new_session, ready_status, send, server_env, start, start_at,
    start_on, start_with,
};
use crate::server::stalled;
use crate::{INTERNAL, doc};

// The whole flow: sessions, propagation between instances, revocation,
// an outage and recovery, and a graceful SIGTERM; no secret in any log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_propagation_outage_and_sigterm_work_end_to_end_without_leaking_secrets() {
    let mut redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let mut one = start("main-api", "MAIN_API_ADDR", &redis);
    let mut two = start("main-api", "MAIN_API_ADDR", &redis);
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    let get = |svc: &ServiceProcess| {
        send(
            &client,
            reqwest::Method::GET,
            format!("{}{SHARD}", svc.url()),
            &token,
            None,
        )
    };

    let doomed = propagation_and_revocation(&client, &broker, &one, &two, &token).await;

    // Redis stopped: not ready within 2 s. A session is never authenticated
    // from an L1 that may have missed its revocation, so even what instance
    // 2 holds in its L1 is 503, as is a session never seen; within the
    // request timeout, never 401 or 404.
    let unseen = new_session(&client, &broker, "carol").await;
    redis.stop().await;
    let stopped = Instant::now();
    wait_for("readiness to fail", Duration::from_secs(2), || async {
        ready_status(&client, &one).await == 503
    })
    .await;
    assert!(stopped.elapsed() < Duration::from_secs(2));
    let (status, _, body) = get(&two).await;
    assert_eq!(
        status,
        StatusCode::SERVICE_UNAVAILABLE,
        "a session was authenticated from the L1 during the outage: {body}"
    );
    let asked = Instant::now();
    let (status, _, body) = send(
        &client,
        reqwest::Method::GET,
        format!("{}{SHARD}", one.url()),
        &unseen,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body["error"]["code"].is_string());
    assert!(
        !body.to_string().to_lowercase().contains("redis is"),
        "internal detail leaked: {body}"
    );
    assert!(asked.elapsed() < Duration::from_secs(2));

    // Redis back: ready again, no restart.
    redis.start_again().await;
    for svc in [&one, &two] {
        wait_for("readiness to recover", Duration::from_secs(5), || async {
            ready_status(&client, svc).await == 200
        })
        .await;
    }
    // The restarted Redis is empty: the session must be created again.
    let token = new_session(&client, &broker, "dave").await;
    let (status, _, _) = send(
        &client,
        reqwest::Method::PUT,
        format!("{}{SHARD}", one.url()),
        &token,
        Some(doc(3)),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // SIGTERM with a request in flight (held up by a frozen Redis): the
    // request is answered, then the process exits 0.
    let fresh = new_session(&client, &broker, "erin").await;
    // Requests' log lines name the route template, not the path: the
    // in-flight request is the next GET of a shard to start.
    let shard_gets_started = || {
        one.logs()
            .lines()
            .filter(|l| {
                l.contains("started processing request")
                    && l.contains(r#""method":"GET""#)
                    && l.contains("/shards/{shard_id}/structured")
            })
            .count()
    };
    let before = shard_gets_started();
    redis.pause();
    let in_flight = {
        let (client, url, fresh) = (
            client.clone(),
            format!("{}/v1/tenants/acme/shards/other/structured", one.url()),
            fresh.clone(),
        );
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(fresh)
                .send()
                .await
                .map(|r| r.status())
        })
    };
    wait_for(
        "main-api to start on the request",
        Duration::from_secs(5),
        || async { shard_gets_started() > before },
    )
    .await;
    let status = one.terminate(Duration::from_secs(10));
    let answered = in_flight.await.unwrap();
    redis.resume();
    assert!(
        answered.is_ok(),
        "the in-flight request was dropped: {answered:?}"
    );
    assert!(status.success(), "main-api exited with {status}");
    assert!(two.terminate(Duration::from_secs(10)).success());

    // No secret reached any log line, at any level.
    for (name, logs) in [
        ("auth-broker", broker.logs()),
        ("main-api 1", one.logs()),
        ("main-api 2", two.logs()),
    ] {
        assert!(!logs.is_empty());
        for secret in [INTERNAL, PASSWORD, &token, &doomed, &unseen, &fresh] {
            let secret_part = secret.rsplit('~').next().unwrap();
            assert!(!logs.contains(secret_part), "{name} logged a secret");
        }
    }
}

// ServiceProcess::start returns only once the service answers /health/ready
// 200: a test's first request never races the service's lazy connection to
// Redis (here Redis only comes up once the process is live).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_service_is_ready_for_its_first_request() {
    let mut redis = RedisServer::builder().password(PASSWORD).start().await;
    let redis_env = server_env(&redis);
    redis.stop().await;
    let addr = format!("127.0.0.1:{}", free_port());
    let live_addr = addr.clone();
    let comes_back = tokio::spawn(async move {
        wait_for(
            "the service to be live",
            Duration::from_secs(20),
            || async { http_status(&live_addr, "/health/live") == Some(200) },
        )
        .await;
        redis.start_again().await;
        redis
    });
    let started_addr = addr.clone();
    let api = tokio::task::spawn_blocking(move || {
        start_at("main-api", "MAIN_API_ADDR", &started_addr, redis_env, &[])
    })
    .await
    .unwrap();
    assert_eq!(
        http_status(&addr, "/health/ready"),
        Some(200),
        "start returned before the service was ready"
    );
    let _redis = comes_back.await.unwrap();
    drop(api);
}

// A missing or bad variable stops start-up with a message naming it (and
// never the value of a secret).
#[test]
fn bad_environment_stops_start_up() {
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 5] = [
        (
            "main-api",
            &[("MAIN_API_ADDR", "nonsense")],
            "MAIN_API_ADDR",
        ),
        ("main-api", &[("REDIS_PORT", "99999")], "REDIS_PORT"),
        (
            "main-api",
            &[("CACHE_MAX_VALUE_BYTES", "big")],
            "CACHE_MAX_VALUE_BYTES",
        ),
        ("auth-broker", &[], "INTERNAL_API_TOKEN"),
        (
            "auth-broker",
            &[("INTERNAL_API_TOKEN", "too-short-secret")],
            "INTERNAL_API_TOKEN",
        ),
    ];
    for (service, env, variable) in cases {
        let output = std::process::Command::new(binary(service))
            .env_clear()
            .envs(env.iter().copied())
            .output()
            .expect("run the service");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{service} started with {env:?}");
        assert!(
            stderr.contains(variable),
            "{service}: {stderr:?} does not name {variable}"
        );
        assert!(
            !stderr.contains("too-short-secret"),
            "a secret was printed: {stderr}"
        );
    }
}

/// A PUT on `one` is seen by `two` (from Redis, then its L1), a new PUT
/// within 1 s; a session revoked on auth-broker is refused by both within
/// 1 s. Returns the revoked token.
async fn propagation_and_revocation(
    client: &Client,
    broker: &ServiceProcess,
    one: &ServiceProcess,
    two: &ServiceProcess,
    token: &str,
) -> String {
    let put = |svc: &ServiceProcess, n: u32| {
        let url = format!("{}{SHARD}", svc.url());
        send(client, reqwest::Method::PUT, url, token, Some(doc(n)))
    };
    let get = |svc: &ServiceProcess| {
        send(
            client,
            reqwest::Method::GET,
            format!("{}{SHARD}", svc.url()),
            token,
            None,
        )
    };
    // A PUT on 1 is seen by 2, from Redis then from its L1; a new PUT within 1 s.
    assert_eq!(put(one, 1).await.0, StatusCode::NO_CONTENT);
    let (status, tier, body) = get(two).await;
    assert_eq!(
        (status, tier.as_str()),
        (StatusCode::OK, "hit-l2"),
        "instance 2's first read: {body}; its log ends with:\n{}",
        two.log_tail(40)
    );
    // 1's announcement of its PUT may reach 2 just after that read and
    // (rightly) keep it out of 2's L1: a later read fills it.
    wait_for(
        "instance 2 to serve from its L1",
        Duration::from_secs(1),
        || async { get(two).await.1 == "hit-l1" },
    )
    .await;
    assert_eq!(put(one, 2).await.0, StatusCode::NO_CONTENT);
    let changed = Instant::now();
    wait_for(
        "instance 2 to serve the new PUT",
        Duration::from_secs(1),
        || async { get(two).await.2 == doc(2) },
    )
    .await;
    assert!(changed.elapsed() < Duration::from_secs(1));

    // Revocation on auth-broker: both main-api instances refuse within 1 s.
    let doomed = new_session(client, broker, "bob").await;
    for svc in [one, two] {
        let (status, _, _) = send(
            client,
            reqwest::Method::GET,
            format!("{}{SHARD}", svc.url()),
            &doomed,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _, _) = send(
        client,
        reqwest::Method::DELETE,
        format!("{}/v1/sessions/current", broker.url()),
        &doomed,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for svc in [one, two] {
        wait_for(
            "the revoked token to be refused",
            Duration::from_secs(1),
            || async {
                send(
                    client,
                    reqwest::Method::GET,
                    format!("{}{SHARD}", svc.url()),
                    &doomed,
                    None,
                )
                .await
                .0 == StatusCode::UNAUTHORIZED
            },
        )
        .await;
    }

    doomed
}

// Slow clients cannot exhaust a service: clients stuck mid-body hold a slot
// only until the request timeout, a full service answers 503 at once (and
// still answers probes), and clients stuck mid-headers hold no slot at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_cannot_exhaust_the_service() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("HTTP_MAX_CONCURRENCY", "2"),
            // One tenant's two slow uploads are the point here.
            ("HTTP_MAX_CONCURRENCY_PER_TENANT", "2"),
            ("HTTP_REQUEST_TIMEOUT_MS", "3000"),
            // tower_http at debug logs when each request starts.
            ("RUST_LOG", "info,tower_http=debug"),
        ],
    );
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    let addr = api.url().trim_start_matches("http://").to_owned();
    let get = || async {
        let url = format!("{}{SHARD}", api.url());
        client
            .get(url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status()
    };
    assert_eq!(get().await, StatusCode::NOT_FOUND);

    // 50 clients that never finish their headers: no slot is taken.
    let _slowloris: Vec<_> = (0..50)
        .map(|_| stalled(&addr, "GET /health/live HTTP/1.1\r\nHost: x\r\n"))
        .collect();
    assert_eq!(
        get().await,
        StatusCode::NOT_FOUND,
        "half-sent headers took a slot"
    );

    // Two clients that stop mid-body hold both slots...
    let head = format!(
        "PUT {SHARD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
    );
    let started = Instant::now();
    let _slow: Vec<_> = (0..2).map(|_| stalled(&addr, &head)).collect();
    // Both must be inside the service before anyone else asks: a probe that
    // got in first would hold a slot and turn one of them away.
    let slow_started = || {
        api.logs()
            .lines()
            .filter(|l| l.contains("started processing request") && l.contains("PUT"))
            .count()
    };
    wait_for(
        "both slow requests to start",
        Duration::from_secs(5),
        || async { slow_started() >= 2 },
    )
    .await;
    assert_eq!(
        get().await,
        StatusCode::SERVICE_UNAVAILABLE,
        "the slow bodies hold every slot"
    );
    // ...while probes still answer...
    assert_eq!(ready_status(&client, &api).await, 200);
    // ...and only until the request timeout.
    wait_for("the slots to free up", Duration::from_secs(6), || async {
        get().await == StatusCode::NOT_FOUND
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "slots freed before the request timeout"
    );
}

// The core flow once against a 3-primary Redis Cluster (REDIS_URL pointing
// at it): sessions, propagation between instances, revocation, and a tenant
// invalidation that spans every node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn core_flow_on_a_cluster() {
    let cluster = test_support::RedisCluster::start(3, 0).await;
    // A 1 s command timeout: a cluster on a loaded CI machine can take
    // longer than these tests' 300 ms to answer a first read.
    const CLUSTER_EXTRA: &[(&str, &str)] =
        &[("RUST_LOG", "info"), ("REDIS_COMMAND_TIMEOUT_MS", "1000")];
    let env = || vec![("REDIS_URL", cluster.seed_url())];
    let broker = start_on("auth-broker", "AUTH_BROKER_ADDR", env(), CLUSTER_EXTRA);
    let one = start_on("main-api", "MAIN_API_ADDR", env(), CLUSTER_EXTRA);
    let two = start_on("main-api", "MAIN_API_ADDR", env(), CLUSTER_EXTRA);
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    propagation_and_revocation(&client, &broker, &one, &two, &token).await;

    // Data of many shards lands on every primary; a tenant invalidation
    // removes all of it, everywhere, and leaves the session.
    for i in 0..30 {
        let url = format!("{}/v1/tenants/acme/shards/s{i}/structured", one.url());
        let (status, _, _) = send(&client, reqwest::Method::PUT, url, &token, Some(doc(i))).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    let url = format!("{}/v1/tenants/acme/cache/invalidate", two.url());
    let (status, _, body) = send(
        &client,
        reqwest::Method::POST,
        url,
        &token,
        Some(json!({"kind": "tenant"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        body["deleted"].as_u64(),
        Some(31),
        "30 shards and the one left by the flow"
    );
    // Instance 1 held the shards in its L1; it drops them on hearing 2.
    for svc in [&one, &two] {
        let url = format!("{}/v1/tenants/acme/shards/s7/structured", svc.url());
        wait_for(
            "the tenant's data to be gone",
            Duration::from_secs(1),
            || async {
                send(&client, reqwest::Method::GET, url.clone(), &token, None)
                    .await
                    .0
                    == StatusCode::NOT_FOUND
            },
        )
        .await;
    }
}
