//! What operators see, as a real process: metrics with bounded labels that
//! count every response.

use std::io::{ErrorKind, Read};
use std::time::{Duration, Instant};

use reqwest::{Client, Method, StatusCode};
use test_support::{RedisServer, wait_for};

use crate::procs::{PASSWORD, SHARD, metrics_text, new_session, start, start_with};
use crate::server::stalled;

/// The values `label` takes in `http_requests_total` lines.
fn label_values(metrics: &str, label: &str) -> std::collections::BTreeSet<String> {
    let prefix = format!("{label}=\"");
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .filter_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            Some(rest[..rest.find('"')?].to_owned())
        })
        .collect()
}

/// The `http_requests_total` count with all of `labels`, if any.
fn requests_total(metrics: &str, labels: &[(&str, &str)]) -> Option<u64> {
    metrics
        .lines()
        .filter(|l| l.starts_with("http_requests_total{"))
        .find(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

// Requests with 600 made-up methods, on a route and on unknown paths, add
// no label values beyond the standard methods plus `other`, and unknown
// paths share one route value: /metrics stays small.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_stay_bounded_under_made_up_methods_and_paths() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &[("RUST_LOG", "info")]);
    let client = Client::new();
    for i in 0..300 {
        let method = Method::from_bytes(format!("M{i:03}X").as_bytes()).unwrap();
        let on_route = client.request(method.clone(), format!("{}{SHARD}", api.url()));
        assert_eq!(
            on_route.send().await.unwrap().status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
        let unknown = client.request(method, format!("{}/nowhere/{i}", api.url()));
        assert_eq!(
            unknown.send().await.unwrap().status(),
            StatusCode::NOT_FOUND
        );
    }
    let text = metrics_text(&client, &api).await;
    let methods = label_values(&text, "method");
    let allowed = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
    ];
    assert!(
        methods.iter().all(|m| allowed.contains(&m.as_str())),
        "method labels {methods:?}"
    );
    assert!(
        methods.contains("other"),
        "made-up methods were not counted"
    );
    let routes = label_values(&text, "route");
    assert!(
        routes.iter().all(|r| r.starts_with("/v1/")
            || r.starts_with("/health")
            || r == "/metrics"
            || r == "unmatched"),
        "route labels {routes:?}"
    );
    assert_eq!(
        requests_total(
            &text,
            &[
                ("route", "unmatched"),
                ("method", "other"),
                ("status", "404")
            ]
        ),
        Some(300)
    );
    assert!(
        text.len() < 64 * 1024,
        "/metrics grew to {} bytes",
        text.len()
    );
}

// Responses the layers give before any handler (503 `overloaded`, 503
// `timeout`, 400 `headers_too_large`) are counted like any other, and the
// latency histogram counts the same responses as the counter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shed_timed_out_and_refused_requests_are_counted() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("HTTP_MAX_CONCURRENCY", "1"),
            // The shed below must happen while the upload holds the slot,
            // i.e. within this budget: 1 s was too short for a loaded CI
            // machine, where a GET took longer than the whole window.
            ("HTTP_REQUEST_TIMEOUT_MS", "3000"),
            ("RUST_LOG", "info"),
        ],
    );
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    let addr = api.url().trim_start_matches("http://").to_owned();
    // A slow upload takes the only slot. A GET that reaches the server
    // before the upload's request is read takes the slot first, and the
    // upload is then the one shed: start another upload whenever the last
    // one was answered, until a GET is shed while an upload holds the slot.
    let upload = || {
        stalled(
            &addr,
            &format!(
                "PUT {SHARD} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"a\":"
            ),
        )
    };
    let answered = |stream: &std::net::TcpStream| {
        stream.set_nonblocking(true).unwrap();
        let answered =
            !matches!(stream.peek(&mut [0u8; 1]), Err(e) if e.kind() == ErrorKind::WouldBlock);
        stream.set_nonblocking(false).unwrap();
        answered
    };
    let mut slow = upload();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let shed = client.get(format!("{}{SHARD}", api.url())).send().await;
        if shed.unwrap().status() == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no request was shed while an upload held the slot"
        );
        if answered(&slow) {
            slow = upload();
        }
    }
    // The upload is answered 503 `timeout` once its budget is spent.
    slow.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let asked = Instant::now();
    let mut head = Vec::new();
    let mut buf = [0u8; 256];
    while head.len() < 12 && asked.elapsed() < Duration::from_secs(10) {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("reading the slow upload's answer: {e}"),
        }
    }
    assert!(
        head.starts_with(b"HTTP/1.1 503"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    let huge = "h".repeat(service_kit::MAX_HEADER_BYTES + 1);
    let refused = client
        .get(format!("{}{SHARD}", api.url()))
        .header("x-padding", huge)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);

    let text = metrics_text(&client, &api).await;
    let route = "/v1/tenants/{tenant_id}/shards/{shard_id}/structured";
    for (method, status, what) in [
        ("GET", "503", "the shed request"),
        ("PUT", "503", "the timed-out upload"),
        ("GET", "400", "the oversized headers"),
    ] {
        let counted = requests_total(
            &text,
            &[("route", route), ("method", method), ("status", status)],
        );
        assert!(
            counted.is_some_and(|n| n >= 1),
            "{what} was not counted:\n{text}"
        );
    }
    // The latency histogram counts exactly the responses the counter does,
    // label set by label set, and every metric says what it is.
    let counted = series(&text, "http_requests_total");
    let timed = series(&text, "http_request_duration_seconds_count");
    assert!(counted.len() >= 3, "{text}");
    assert_eq!(counted, timed, "counter and histogram disagree:\n{text}");
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP text"
        );
    }
}

/// The samples of `name`, by label set.
fn series(
    metrics: &str,
    name: &str,
) -> std::collections::BTreeMap<std::collections::BTreeSet<String>, String> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once("} ")?;
            let labels = labels
                .split("\",")
                .map(|l| l.trim_end_matches('"').to_owned());
            Some((labels.collect(), value.to_owned()))
        })
        .collect()
}

// Redis refusing writes (out of memory under `maxmemory` with
// `noeviction`) is answered 503 `redis_refused`, not 500, and logged once
// per throttle window rather than once per request (never as an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_refusal_is_503_redis_refused_and_logged_once() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &[("RUST_LOG", "info")]);
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    redis.cmd(&["CONFIG", "SET", "maxmemory-policy", "noeviction"]);
    redis.cmd(&["CONFIG", "SET", "maxmemory", "1"]);
    let started = Instant::now();
    for _ in 0..20 {
        let answer = client
            .put(format!("{}{SHARD}", api.url()))
            .bearer_auth(&token)
            .json(&crate::doc(1))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
        let body: serde_json::Value = answer.json().await.unwrap();
        assert_eq!(body["error"]["code"], "redis_refused", "{body}");
        assert!(
            !body.to_string().contains("OOM"),
            "internal detail leaked: {body}"
        );
    }
    let windows = usize::try_from(started.elapsed().as_secs() / 10).unwrap() + 1;
    redis.cmd(&["CONFIG", "SET", "maxmemory", "0"]);
    let logs = api.logs();
    let mentions: Vec<&str> = logs.lines().filter(|l| l.contains("OOM")).collect();
    assert!(
        !mentions.is_empty() && mentions.len() <= windows,
        "20 refusals in {windows} throttle window(s) logged {mentions:#?}"
    );
    assert!(
        mentions.iter().all(|l| !l.contains("ERROR")),
        "{mentions:#?}"
    );
}

// A Redis outage shows in a service's logs as one WARN when it begins, an
// INFO summary per period while it lasts (connection attempts failed,
// requests answered 503), and one INFO when it ends: never a line per
// request, probe or connection attempt, and never an ERROR.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_is_logged_as_one_warn_periodic_summaries_and_one_info_at_its_end() {
    let mut redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with(
        "main-api",
        "MAIN_API_ADDR",
        &redis,
        &[
            ("RUST_LOG", "info"),
            // Many attempts during the outage: each must stay out of the logs.
            ("REDIS_RECONNECT_MAX_DELAY_MS", "200"),
        ],
    );
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    redis.stop().await;
    // Longer than one summary period (10 s), with a request every 50 ms.
    let outage = Instant::now();
    let mut unavailable = 0;
    while outage.elapsed() < Duration::from_secs(11) {
        let answer = client
            .get(format!("{}{SHARD}", api.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        if answer.status() == StatusCode::SERVICE_UNAVAILABLE {
            unavailable += 1;
        }
        // An orchestrator probes readiness throughout.
        client
            .get(format!("{}/health/ready", api.url()))
            .send()
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(unavailable > 20, "only {unavailable} requests answered 503");
    redis.start_again().await;
    wait_for(
        "the end of the outage to be logged",
        Duration::from_secs(15),
        || async { api.logs().contains("Redis is reachable again") },
    )
    .await;
    let logs = api.logs();
    let at = |level: &str| -> Vec<&str> {
        let field = format!("\"level\":\"{level}\"");
        logs.lines().filter(|l| l.contains(&field)).collect()
    };
    let warnings = at("WARN");
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("Redis is unreachable"),
        "{warnings:#?}"
    );
    assert!(at("ERROR").is_empty(), "{:#?}", at("ERROR"));
    let count = |needle: &str| logs.lines().filter(|l| l.contains(needle)).count();
    assert_eq!(count("Redis is reachable again"), 1, "{logs}");
    // The pool's summaries (the subscriber connection has its own, at INFO).
    let summaries = logs
        .lines()
        .filter(|l| l.contains("Redis still unreachable") && l.contains(r#""redis.role":"pool""#))
        .count();
    assert!(
        (1..=3).contains(&summaries),
        "{summaries} summaries:\n{logs}"
    );
    let request_lines = count("answered 503 unavailable");
    assert!(
        (1..=3).contains(&request_lines),
        "{unavailable} requests answered 503 gave {request_lines} lines"
    );
}

// Each response is one INFO access-log line with its method, route
// template, status, latency and request id, and never the token, the
// path's ids or the body; HTTP_ACCESS_LOG=false turns the lines off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_response_is_one_access_log_line_without_secrets_unless_switched_off() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let client = Client::new();
    let token = new_session(&client, &broker, "alice").await;
    let path = "/v1/tenants/acme/shards/secret-shard-7/structured";
    for (access_log, expected) in [("true", 3), ("false", 0)] {
        let api = start_with(
            "main-api",
            "MAIN_API_ADDR",
            &redis,
            &[("RUST_LOG", "info"), ("HTTP_ACCESS_LOG", access_log)],
        );
        let put = client
            .put(format!("{}{path}", api.url()))
            .bearer_auth(&token)
            .header("x-request-id", "req-put-1")
            .json(&serde_json::json!({"marker": "body-marker-42"}))
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), StatusCode::NO_CONTENT);
        let get = client
            .get(format!("{}{path}", api.url()))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(get.status(), StatusCode::OK);
        let missing = client
            .get(format!("{}/v1/nothing/here", api.url()))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        let lines = |logs: &str| -> Vec<String> {
            // The readiness probes of the start-up are requests too.
            logs.lines()
                .filter(|l| l.contains(r#""target":"access""#) && !l.contains("/health"))
                .map(str::to_owned)
                .collect()
        };
        wait_for("the access log lines", Duration::from_secs(5), || async {
            lines(&api.logs()).len() >= expected
        })
        .await;
        let logs = api.logs();
        let access = lines(&logs);
        assert_eq!(access.len(), expected, "{access:#?}");
        if expected == 0 {
            continue;
        }
        let route = "/v1/tenants/{tenant_id}/shards/{shard_id}/structured";
        let put_line = access
            .iter()
            .find(|l| l.contains(r#""method":"PUT""#))
            .unwrap();
        for field in [
            format!(r#""route":"{route}""#),
            r#""status":"204""#.to_owned(),
            r#""request_id":"req-put-1""#.to_owned(),
            r#""level":"INFO""#.to_owned(),
            r#""latency_ms":"#.to_owned(),
        ] {
            assert!(put_line.contains(&field), "{field} missing from {put_line}");
        }
        assert!(
            access
                .iter()
                .any(|l| l.contains(r#""route":"unmatched""#) && l.contains(r#""status":"404""#)),
            "{access:#?}"
        );
        for secret in [token.as_str(), "secret-shard-7", "body-marker-42"] {
            assert!(
                access.iter().all(|l| !l.contains(secret)),
                "{secret} reached the access log: {access:#?}"
            );
        }
    }
}

/// `PING`s Redis has answered so far (`INFO commandstats`).
fn pings(redis: &RedisServer) -> u64 {
    let info = redis
        .cmd(&["INFO", "commandstats"])
        .as_string()
        .unwrap_or_default();
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_ping:calls="))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

// 200 readiness probes, 20 at a time, send Redis no more PINGs than one
// health check per 250 ms (4 pooled connections each) plus the pub/sub
// heartbeat: probes cannot amplify load on Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_probes_cannot_amplify_load_on_redis() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &[("RUST_LOG", "info")]);
    let client = Client::new();
    let before = pings(&redis);
    let started = Instant::now();
    let probes: Vec<_> = (0..20)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{}/health/ready", api.url()));
            tokio::spawn(async move {
                for _ in 0..10 {
                    let status = client.get(&url).send().await.unwrap().status();
                    assert_eq!(status, StatusCode::OK);
                }
            })
        })
        .collect();
    for probe in probes {
        probe.await.unwrap();
    }
    let elapsed = started.elapsed();
    let sent = pings(&redis) - before;
    let checks = elapsed.as_millis() / 250 + 2;
    let heartbeats = elapsed.as_secs() + 2;
    let bound = u64::try_from(checks * 4).unwrap() + heartbeats;
    assert!(
        sent <= bound,
        "200 probes in {elapsed:?} sent {sent} PINGs (at most {bound} expected)"
    );
}

// The readiness body says what state the service and Redis are in, and
// nothing of why (no error text, no address): the cause goes to the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_without_internal_detail() {
    let mut redis = RedisServer::builder().password(PASSWORD).start().await;
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &[("RUST_LOG", "info")]);
    let client = Client::new();
    let ready = || async {
        let answer = client
            .get(format!("{}/health/ready", api.url()))
            .send()
            .await
            .unwrap();
        let status = answer.status();
        (status, answer.json::<serde_json::Value>().await.unwrap())
    };
    // Degraded (a pooled connection still connecting, a slow PING) is ready too.
    let (status, body) = ready().await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        body == serde_json::json!({"status": "ok", "redis": "healthy"})
            || body == serde_json::json!({"status": "degraded", "redis": "degraded"}),
        "{body}"
    );
    redis.stop().await;
    wait_for("readiness to fail", Duration::from_secs(5), || async {
        ready().await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert_eq!(
        ready().await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "unavailable", "redis": "unhealthy"})
        )
    );
}
