//! Tenant purge jobs, as real processes: a large tenant's purge runs in the
//! background while other tenants are served, reports its progress to its
//! tenant's admins only, survives a SIGKILL of the service (resumed, or
//! reported interrupted with what it deleted), and runs on a cluster.

use std::collections::HashMap;
use std::time::Duration;

use redis_cache::{CacheService, Expiry};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};
use service_kit::{Env, Platform};
use shared_types::{RedisKey, ShardId, TenantId};
use test_support::{RedisServer, ServiceProcess, wait_for};

use crate::procs::{PASSWORD, new_session_as, send, start, start_on, start_with};
use crate::{healthy, vars};

/// Keys of the large tenant: enough pages to watch a job run, quick to write.
const LARGE: usize = 20_000;

fn shard_keys(tenant: &str, n: usize) -> Vec<RedisKey> {
    let tenant = TenantId::new(tenant).unwrap();
    (0..n)
        .map(|i| RedisKey::shard_structured(&tenant, &ShardId::new(format!("s{i}")).unwrap()))
        .collect()
}

/// Writes `t1`'s large keyspace and 50 keys each of `t10` (whose id starts
/// with `t1`) and `t2` through the cache (so indexed); answers t1's keys
/// and the others'.
async fn write_keyspace(redis: &RedisServer) -> (Vec<RedisKey>, Vec<RedisKey>) {
    let platform = platform_on(vars(redis, &[("REDIS_PASSWORD", PASSWORD)])).await;
    let keys = write_keyspace_with(&platform.cache).await;
    platform.shutdown().await;
    keys
}

/// A platform configured by `vars`, as main-api would be.
async fn platform_on(vars: HashMap<String, String>) -> Platform {
    let config = main_api::Config::from_env(&Env::from_fn(|n| vars.get(n).cloned())).unwrap();
    let platform = Platform::start(config.common.redis.clone(), config.common.cache.clone())
        .await
        .unwrap();
    healthy(&platform).await;
    platform
}

/// [`write_keyspace`] through `cache`.
async fn write_keyspace_with(cache: &CacheService) -> (Vec<RedisKey>, Vec<RedisKey>) {
    let t1 = shard_keys("t1", LARGE);
    let mut others = shard_keys("t10", 50);
    others.extend(shard_keys("t2", 50));
    let ttl = Expiry::After(Duration::from_secs(600));
    for chunk in t1.chunks(250).chain(others.chunks(250)) {
        let entries: Vec<_> = chunk
            .iter()
            .map(|key| (key.clone(), json!({"rows": 1}), ttl))
            .collect();
        cache.mset(&entries).await.expect("write the keyspace");
    }
    (t1, others)
}

/// How many of `keys` exist.
fn existing(redis: &RedisServer, keys: &[RedisKey]) -> usize {
    keys.chunks(1000)
        .map(|chunk| {
            let mut args = vec!["EXISTS"];
            args.extend(chunk.iter().map(RedisKey::as_str));
            usize::try_from(redis.cmd(&args).as_int().unwrap()).unwrap()
        })
        .sum()
}

/// Starts t1's purge; answers the job's id, checking the 202 and Location.
async fn start_purge(client: &Client, api: &ServiceProcess, token: &str) -> String {
    let response = client
        .post(format!("{}/v1/tenants/t1/cache/invalidate", api.url()))
        .bearer_auth(token)
        .json(&json!({"kind": "tenant"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let location = response
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = response.json().await.unwrap();
    // A refusal says why, and the service's log what failed underneath.
    if status != StatusCode::ACCEPTED {
        let tail = api.log_tail(40);
        panic!("the purge answered {status}: {body}; the service's log ends with:\n{tail}");
    }
    let id = body["job"].as_str().expect("a job id").to_owned();
    assert_eq!(location, format!("/v1/tenants/t1/cache/jobs/{id}"));
    id
}

async fn job(client: &Client, api: &ServiceProcess, token: &str, id: &str) -> (StatusCode, Value) {
    let url = format!("{}/v1/tenants/t1/cache/jobs/{id}", api.url());
    let (status, _, body) = send(client, Method::GET, url, token, None).await;
    (status, body)
}

async fn wait_until_done(client: &Client, api: &ServiceProcess, token: &str, id: &str) -> Value {
    wait_for("the purge job to end", Duration::from_secs(60), || async {
        let (status, body) = job(client, api, token, id).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["state"] != "running"
    })
    .await;
    // An ended job does not change any more.
    job(client, api, token, id).await.1
}

// A tenant above the threshold is purged by a job: 202 with a Location, a
// second request joins the running job, other tenants are served meanwhile,
// and the job ends with exactly that tenant's keys gone; its progress is
// for the tenant's admins only (t10's admin gets 404, t1's user 403).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_tenant_purge_runs_as_a_background_job() {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let (t1, others) = write_keyspace(&redis).await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let env = [
        ("MAIN_API_PURGE_JOB_THRESHOLD", "1000"),
        ("MAIN_API_PURGE_JOB_RATE", "10000"),
    ];
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &env);
    let client = Client::new();
    let admin = new_session_as(&client, &broker, "t1", "root", &["admin"]).await;
    let t2_user = new_session_as(&client, &broker, "t2", "u2", &[]).await;

    let id = start_purge(&client, &api, &admin).await;
    let (status, _, again) = send(
        &client,
        Method::POST,
        format!("{}/v1/tenants/t1/cache/invalidate", api.url()),
        &admin,
        Some(json!({"kind": "tenant"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The job reads 10 000 keys a second: it is still running.
    assert_eq!(again["job"], id.as_str(), "{again}");
    assert_eq!(again["existing"], true);

    // Another tenant is served while the job runs.
    let shard = format!("{}/v1/tenants/t2/shards/live/structured", api.url());
    let doc = json!({"rows": [1, 2]});
    let (status, _, _) = send(
        &client,
        Method::PUT,
        shard.clone(),
        &t2_user,
        Some(doc.clone()),
    )
    .await;
    assert!(status.is_success(), "{status}");
    let (status, _, body) = send(&client, Method::GET, shard, &t2_user, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, doc);
    let (_, running) = job(&client, &api, &admin, &id).await;
    assert_eq!(running["state"], "running", "{running}");

    let done = wait_until_done(&client, &api, &admin, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["tenant"], "t1");
    assert_eq!(done["deleted"], LARGE, "{done}");
    assert_eq!(done["total"], LARGE, "{done}");
    assert_eq!(existing(&redis, &t1), 0);
    assert_eq!(existing(&redis, &others), others.len());

    // Only t1's admins see the job.
    let t10_admin = new_session_as(&client, &broker, "t10", "root", &["admin"]).await;
    let url = format!("{}/v1/tenants/t10/cache/jobs/{id}", api.url());
    let (status, _, _) = send(&client, Method::GET, url, &t10_admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let t1_user = new_session_as(&client, &broker, "t1", "u1", &[]).await;
    assert_eq!(
        job(&client, &api, &t1_user, &id).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        job(&client, &api, &t10_admin, &id).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        job(&client, &api, "not-a-session", &id).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        job(&client, &api, &admin, "0123456789abcdef").await.0,
        StatusCode::NOT_FOUND
    );
}

/// 2 000 keys a second: a job takes about 10 s, time to kill it.
const SLOW: [(&str, &str); 2] = [
    ("MAIN_API_PURGE_JOB_THRESHOLD", "1000"),
    ("MAIN_API_PURGE_JOB_RATE", "2000"),
];

/// What [`start_then_kill`] leaves: t1's job started, its service killed.
struct Killed {
    redis: RedisServer,
    t1: Vec<RedisKey>,
    others: Vec<RedisKey>,
    _broker: ServiceProcess,
    client: Client,
    admin: String,
    id: String,
    /// t1's keys left after the kill (some).
    left: usize,
}

/// Starts t1's purge job on a slow main-api, and SIGKILLs the service once
/// the job has deleted something.
async fn start_then_kill() -> Killed {
    let redis = RedisServer::builder().password(PASSWORD).start().await;
    let (t1, others) = write_keyspace(&redis).await;
    let broker = start("auth-broker", "AUTH_BROKER_ADDR", &redis);
    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &SLOW);
    let client = Client::new();
    let admin = new_session_as(&client, &broker, "t1", "root", &["admin"]).await;
    let id = start_purge(&client, &api, &admin).await;
    wait_for(
        "the job to make progress",
        Duration::from_secs(10),
        || async { job(&client, &api, &admin, &id).await.1["deleted"].as_u64() > Some(0) },
    )
    .await;
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &api.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let left = existing(&redis, &t1);
    assert!(left > 0, "the job ended before the kill");
    Killed {
        redis,
        t1,
        others,
        _broker: broker,
        client,
        admin,
        id,
        left,
    }
}

// A service SIGKILLed mid-job: the restarted service takes the job over
// from its saved cursor once the dead runner's lease expires, and ends it
// `done` with every t1 key gone and no other tenant's key touched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_service_resumes_its_purge_job_on_restart() {
    let killed = start_then_kill().await;
    let redis = &killed.redis;

    let api = start_with("main-api", "MAIN_API_ADDR", redis, &SLOW);
    let (client, admin) = (&killed.client, &killed.admin);
    let done = wait_until_done(client, &api, admin, &killed.id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["resumed"].as_u64() >= Some(1), "{done}");
    // A page deleted but not yet saved when the process died is redone,
    // finding its keys gone: `deleted` may count fewer than were deleted.
    assert!(done["deleted"].as_u64().unwrap() <= LARGE as u64, "{done}");
    assert_eq!(existing(redis, &killed.t1), 0);
    assert_eq!(existing(redis, &killed.others), killed.others.len());
}

// A service that restarts while Redis does not answer (frozen for longer
// than the command timeout, so its first reads of the registry and of the
// job fail): it keeps trying rather than leave the job `running` with
// nobody running it, and resumes it once Redis answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_resumed_by_a_service_that_restarts_while_redis_does_not_answer() {
    let killed = start_then_kill().await;
    let redis = &killed.redis;

    redis.pause();
    let api = std::thread::scope(|scope| {
        scope.spawn(|| {
            // The fault lasts several command timeouts (300 ms) of the
            // service starting meanwhile.
            std::thread::sleep(Duration::from_millis(1500));
            redis.resume();
        });
        start_with("main-api", "MAIN_API_ADDR", redis, &SLOW)
    });
    let (client, admin) = (&killed.client, &killed.admin);
    let done = wait_until_done(client, &api, admin, &killed.id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert!(done["resumed"].as_u64() >= Some(1), "{done}");
    assert_eq!(existing(redis, &killed.t1), 0);
    assert_eq!(existing(redis, &killed.others), killed.others.len());
}

// A service SIGKILLed mid-job whose saved progress is then damaged: the
// restarted service cannot resume from it, so it reports the job
// `interrupted` with the counts that were saved, never leaving it
// `running` with nobody running it; a new purge request finishes the work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_whose_saved_progress_is_damaged_is_reported_interrupted_with_what_it_deleted() {
    let Killed {
        redis,
        t1,
        others,
        _broker,
        client,
        admin,
        id,
        left,
    } = start_then_kill().await;
    let key = RedisKey::purge_job(&TenantId::new("t1").unwrap(), &id.parse().unwrap());
    let saved = redis.cmd(&["HGET", key.as_str(), "deleted"]);
    let saved: u64 = saved.as_string().unwrap().parse().unwrap();
    redis.cmd(&["HSET", key.as_str(), "cursor", "not-a-cursor"]);

    let api = start_with("main-api", "MAIN_API_ADDR", &redis, &SLOW);
    // Damaged, the job reads as an error until the resumer marks it, once
    // the dead runner's lease has expired.
    wait_for("the job to be marked", Duration::from_secs(30), || async {
        job(&client, &api, &admin, &id).await.1["state"] == "interrupted"
    })
    .await;
    let (status, body) = job(&client, &api, &admin, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["deleted"].as_u64(), Some(saved), "{body}");
    // Nothing was deleted after the kill, and nothing of another tenant.
    assert_eq!(existing(&redis, &t1), left);
    assert_eq!(existing(&redis, &others), others.len());

    let again = start_purge(&client, &api, &admin).await;
    assert_ne!(again, id);
    let done = wait_until_done(&client, &api, &admin, &again).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(existing(&redis, &t1), 0);
}

// On a 3-primary cluster (t1's keys and index on one slot each, the job's
// hash, lease and the registry of running jobs on whichever primaries their
// slots say), a purge job runs to `done` with exactly t1's keys gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_job_runs_to_completion_on_a_cluster() {
    let cluster = test_support::RedisCluster::start(3, 0).await;
    let env = || vec![("REDIS_URL", cluster.seed_url())];
    let vars = || {
        env()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .chain([("REDIS_COMMAND_TIMEOUT_MS".to_owned(), "1000".to_owned())])
            .collect()
    };
    let writer = platform_on(vars()).await;
    let (t1, others) = write_keyspace_with(&writer.cache).await;
    writer.shutdown().await;
    let broker = start_on("auth-broker", "AUTH_BROKER_ADDR", env(), &[]);
    let extra = [
        ("MAIN_API_PURGE_JOB_THRESHOLD", "1000"),
        ("MAIN_API_PURGE_JOB_RATE", "20000"),
        // Three primaries and the test on two cores: room for a slow reply.
        ("REDIS_COMMAND_TIMEOUT_MS", "1000"),
    ];
    let api = start_on("main-api", "MAIN_API_ADDR", env(), &extra);
    let client = Client::new();
    let admin = new_session_as(&client, &broker, "t1", "root", &["admin"]).await;
    let id = start_purge(&client, &api, &admin).await;
    let done = wait_until_done(&client, &api, &admin, &id).await;
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(done["deleted"], LARGE, "{done}");

    // Read back by a new platform, whose L1 holds nothing yet.
    let platform = platform_on(vars()).await;
    let count = |keys: Vec<RedisKey>| {
        let cache = platform.cache.clone();
        async move {
            let mut n = 0;
            for chunk in keys.chunks(500) {
                let found: Vec<Option<Value>> = cache.mget(chunk).await.unwrap();
                n += found.iter().flatten().count();
            }
            n
        }
    };
    assert_eq!(count(t1).await, 0);
    assert_eq!(count(others.clone()).await, others.len());
    platform.shutdown().await;
}
