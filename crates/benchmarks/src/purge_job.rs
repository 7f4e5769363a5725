//! Workload 11, purge job: a 200 000-key tenant purged through main-api's
//! job API (`POST .../cache/invalidate {"kind":"tenant"}` answers `202`,
//! then `GET .../cache/jobs/{id}` is polled until the job ends) while
//! another tenant is served. Figures: the other tenant's p99 during the
//! purge against its p99 with no purge, in the same run (a ratio; target:
//! at most 2x, the job's pacing being what keeps it there), and the job's
//! duration and rate (at main-api's default `MAIN_API_PURGE_JOB_RATE`).
//!
//! main-api and auth-broker run as real processes (the release builds
//! `cargo xtask bench` makes). The other tenant's traffic is 8 concurrent
//! clients, each a `PUT` then a `GET` of one of 100 shards (a write reaches
//! Redis, a read is served from L1). The no-purge windows come before and
//! after the purge, as long as it together, so that whatever else the
//! machine does falls on both sides.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_cache::Expiry;
use serde_json::{Value, json};
use test_support::RedisServer;

use crate::fixture::{Doc, Mode, TTL, connect, redis_only, shard_key};
use crate::latency::Latencies;
use crate::report::{Figure, Row, Status, per_second};
use crate::services::{self, Services};

const WORKLOAD: &str = "11. Purge job: other tenant's p99 during a tenant purge job vs without";
const TARGET: &str = "<= 2x p99 without a purge";
const CLIENTS: usize = 8;

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let Some(binaries) = services::binaries() else {
        return Ok(vec![Row::skipped(
            "purge_job.p99",
            WORKLOAD,
            TARGET,
            "the main-api and auth-broker release binaries are missing (run `cargo xtask bench`)",
        )]);
    };
    let keys: u64 = mode.pick(200_000, 20_000);
    let redis = RedisServer::start().await;
    let cache = redis_only(connect(&redis).await?);
    for start in (0..keys).step_by(250) {
        let entries: Vec<_> = (start..(start + 250).min(keys))
            .map(|i| (shard_key("big", i), Doc::new(i), Expiry::After(TTL)))
            .collect();
        cache
            .mset(&entries)
            .await
            .map_err(|e| format!("mset: {e}"))?;
    }

    let services = Services::start(
        &redis,
        &binaries,
        &[("MAIN_API_PURGE_JOB_THRESHOLD", "1000")],
    );
    let client = reqwest::Client::new();
    let admin = services
        .session(&client, "big", "bench", &["admin"])
        .await?;
    let user = services.session(&client, "other", "bench", &[]).await?;
    let base = services.api.url();

    // Without a purge, the purge, without again: the first window as long
    // as the purge is expected to take at the default rate (20 000 a second).
    let expected = Duration::from_millis(keys / 20);
    let before = serve(&client, &base, &user, Until::Elapsed(expected)).await?;
    let started = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (client, base, user, done) = (client.clone(), base.clone(), user.clone(), done.clone());
        tokio::spawn(async move { serve(&client, &base, &user, Until::Flag(done)).await })
    };
    let job = purge(&client, &base, &admin).await;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let during = traffic.await.map_err(|e| format!("traffic task: {e}"))??;
    let job = job?;
    let after = serve(&client, &base, &user, Until::Elapsed(took)).await?;

    if job["state"] != "done" || job["deleted"].as_u64() != Some(keys) {
        return Err(format!(
            "the purge job ended as {job}, expected done with {keys} deleted"
        ));
    }
    let mut idle = before;
    idle.merge(&after);
    let ratio = ratio(during.p99(), idle.p99());
    let scale = format!("{keys} keys");
    Ok(vec![
        Row::new("purge_job.p99", WORKLOAD, Figure::time(during.p99()))
            .baseline(Figure::time(idle.p99()), ratio)
            .target(TARGET, Status::met_if(ratio <= 2.0))
            .note(format!(
                "{CLIENTS} clients, PUT then GET; during: {}; without: {}",
                during.summary(),
                idle.summary()
            )),
        Row::new(
            "purge_job.time",
            &format!("11. Purge job of {scale}: start to `done`, polled"),
            Figure::time(took),
        )
        .note("at the default MAIN_API_PURGE_JOB_RATE (20 000 keys a second)"),
        Row::new(
            "purge_job.rate",
            &format!("11. Purge job of {scale}: keys deleted a second"),
            Figure::rate(per_second(keys, took)),
        ),
    ])
}

fn ratio(ours: Duration, baseline: Duration) -> f64 {
    ours.as_secs_f64() / baseline.as_secs_f64().max(1e-9)
}

/// Starts the purge of tenant `big` and polls it until it ends; its last
/// progress.
async fn purge(client: &reqwest::Client, base: &str, admin: &str) -> Result<Value, String> {
    let response = client
        .post(format!("{base}/v1/tenants/big/cache/invalidate"))
        .bearer_auth(admin)
        .json(&json!({"kind": "tenant"}))
        .send()
        .await
        .map_err(|e| format!("starting the purge: {e}"))?;
    if response.status().as_u16() != 202 {
        return Err(format!("the purge answered {}, not 202", response.status()));
    }
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    let id = body["job"].as_str().ok_or("no job id")?.to_owned();
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        let progress: Value = client
            .get(format!("{base}/v1/tenants/big/cache/jobs/{id}"))
            .bearer_auth(admin)
            .send()
            .await
            .map_err(|e| format!("polling the job: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading the job: {e}"))?;
        if progress["state"] != "running" {
            return Ok(progress);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err("the purge job did not end within 300 s".to_owned())
}

/// How long [`serve`] runs.
#[derive(Clone)]
enum Until {
    Elapsed(Duration),
    Flag(Arc<AtomicBool>),
}

impl Until {
    fn reached(&self, started: Instant) -> bool {
        match self {
            Until::Elapsed(d) => started.elapsed() >= *d,
            Until::Flag(flag) => flag.load(Ordering::Relaxed),
        }
    }
}

/// The other tenant's traffic until `until`: each client a `PUT` then a
/// `GET` of its shards in turn; the latency of every request.
async fn serve(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    until: Until,
) -> Result<Latencies, String> {
    let started = Instant::now();
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (client, base, token, until) = (
                client.clone(),
                base.to_owned(),
                token.to_owned(),
                until.clone(),
            );
            tokio::spawn(async move {
                let mut latencies = Latencies::default();
                let mut i = c;
                while !until.reached(started) {
                    let url = format!("{base}/v1/tenants/other/shards/s{}/structured", i % 100);
                    i += CLIENTS;
                    let put = Instant::now();
                    let ok = client
                        .put(&url)
                        .bearer_auth(&token)
                        .json(&json!({"rows": i}))
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success());
                    latencies.record(put.elapsed());
                    let get = Instant::now();
                    let read = client.get(&url).bearer_auth(&token).send().await;
                    latencies.record(get.elapsed());
                    if !ok || !read.is_ok_and(|r| r.status().is_success()) {
                        return Err(format!("serving {url} failed"));
                    }
                }
                Ok(latencies)
            })
        })
        .collect();
    let mut all = Latencies::default();
    for task in tasks {
        all.merge(&task.await.map_err(|e| format!("client task: {e}"))??);
    }
    Ok(all)
}
