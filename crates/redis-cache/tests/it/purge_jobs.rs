//! Purge jobs' storage: leases that compare and change in one step, and the
//! registry of running jobs that a starting instance reads.

use redis_cache::{Claim, JobProgress, JobState, LoadedJob};
use shared_types::{JobId, RedisKey};
use test_support::{RawClient, RedisServer, Reply};

use crate::{cache_on, tenant};

fn job(id: &str) -> JobId {
    id.parse().unwrap()
}

// One job per tenant: a second job's claim names the holder, and neither
// renews nor releases a lease it does not hold; the holder does both.
#[tokio::test]
async fn a_lease_is_claimed_renewed_and_released_only_by_its_holder() {
    let redis = RedisServer::start().await;
    let jobs = cache_on(&redis).await.purge_jobs();
    let t1 = tenant("t1");
    assert_eq!(jobs.claim(&t1, &job("a")).await.unwrap(), Claim::Taken);
    assert_eq!(
        jobs.claim(&t1, &job("b")).await.unwrap(),
        Claim::HeldBy(job("a"))
    );
    assert!(!jobs.renew(&t1, &job("b")).await.unwrap());
    assert!(!jobs.release(&t1, &job("b")).await.unwrap());
    assert_eq!(
        jobs.claim(&t1, &job("b")).await.unwrap(),
        Claim::HeldBy(job("a"))
    );
    // Another tenant's lease is its own.
    assert_eq!(
        jobs.claim(&tenant("t10"), &job("b")).await.unwrap(),
        Claim::Taken
    );
    assert!(jobs.renew(&t1, &job("a")).await.unwrap());
    assert!(jobs.release(&t1, &job("a")).await.unwrap());
    assert_eq!(jobs.claim(&t1, &job("b")).await.unwrap(), Claim::Taken);
    // A lease that expired under a slow runner is taken again on renewal.
    redis.cmd(&["DEL", RedisKey::purge_lease(&t1).as_str()]);
    assert!(jobs.renew(&t1, &job("b")).await.unwrap());
    assert_eq!(
        jobs.claim(&t1, &job("c")).await.unwrap(),
        Claim::HeldBy(job("b"))
    );
}

// Claim, renew and release each reach Redis as one script, never as a read
// followed by a write of the lease: between two commands the lease could
// expire and go to another job, which the write would then extend or
// delete. MONITOR lists every command a client sends.
#[tokio::test]
async fn lease_operations_are_one_script_each() {
    let redis = RedisServer::start().await;
    let jobs = cache_on(&redis).await.purge_jobs();
    let t1 = tenant("t1");
    // The scripts, loaded, so that each operation is one EVALSHA.
    jobs.claim(&t1, &job("warm")).await.unwrap();
    jobs.renew(&t1, &job("warm")).await.unwrap();
    jobs.release(&t1, &job("warm")).await.unwrap();

    let mut monitor = RawClient::connect(&redis.addr(), None).unwrap();
    assert!(matches!(
        monitor.cmd(&["MONITOR"]).unwrap(),
        Reply::Simple(_)
    ));
    let watcher = std::thread::spawn(move || {
        let mut lines = Vec::new();
        loop {
            let Reply::Simple(line) = monitor.read_reply().unwrap() else {
                panic!("MONITOR sends simple strings");
            };
            if line.contains("\"monitor-end\"") {
                return lines;
            }
            lines.push(line);
        }
    });
    assert_eq!(jobs.claim(&t1, &job("a")).await.unwrap(), Claim::Taken);
    assert_eq!(
        jobs.claim(&t1, &job("b")).await.unwrap(),
        Claim::HeldBy(job("a"))
    );
    assert!(jobs.renew(&t1, &job("a")).await.unwrap());
    assert!(!jobs.renew(&t1, &job("b")).await.unwrap());
    assert!(jobs.release(&t1, &job("a")).await.unwrap());
    redis.cmd(&["ECHO", "monitor-end"]);
    let lines = watcher.join().unwrap();
    // Commands clients sent (not the ones a script ran, marked `lua`).
    let sent: Vec<&String> = lines.iter().filter(|l| !l.contains(" lua]")).collect();
    assert_eq!(sent.len(), 5, "{lines:#?}");
    for line in sent {
        assert!(
            line.contains("\"evalsha\"") || line.contains("\"EVALSHA\""),
            "{line}"
        );
    }
}

// A job saved running is listed by `running` (one SMEMBERS, whatever the
// keyspace); once saved ended it is not, and its hash expires.
#[tokio::test]
async fn running_lists_the_jobs_saved_running_and_no_ended_one() {
    let redis = RedisServer::start().await;
    let jobs = cache_on(&redis).await.purge_jobs();
    let mut a = JobProgress::new(job("a"), tenant("t1"), 10);
    let b = JobProgress::new(job("b"), tenant("t2"), 20);
    jobs.save(&a).await.unwrap();
    jobs.save(&b).await.unwrap();
    let mut running = jobs.running().await.unwrap();
    running.sort_by(|x, y| x.1.as_str().cmp(y.1.as_str()));
    assert_eq!(
        running,
        vec![(tenant("t1"), job("a")), (tenant("t2"), job("b"))]
    );

    a.state = JobState::Done;
    a.scanned = 10;
    a.deleted = 9;
    a.cursor = 7.into();
    jobs.save(&a).await.unwrap();
    assert_eq!(
        jobs.running().await.unwrap(),
        vec![(tenant("t2"), job("b"))]
    );
    assert_eq!(
        jobs.load(&tenant("t1"), &job("a")).await.unwrap(),
        LoadedJob::Found(a.clone())
    );
    let key = RedisKey::purge_job(&tenant("t1"), &job("a"));
    assert!(redis.cmd(&["TTL", key.as_str()]).as_int().unwrap() > 0);

    // A registry entry whose job is gone is dropped by `forget`; garbage
    // in the registry is skipped.
    let running = RedisKey::purge_jobs_running();
    redis.cmd(&["SADD", running.as_str(), "not-a-job-key"]);
    jobs.forget(&tenant("t2"), &job("b")).await.unwrap();
    assert_eq!(jobs.running().await.unwrap(), vec![]);
    assert_eq!(
        jobs.load(&tenant("t9"), &job("a")).await.unwrap(),
        LoadedJob::Missing
    );
}

// A job hash whose fields do not parse loads as damaged, with the counts
// that did parse.
#[tokio::test]
async fn a_job_with_unreadable_fields_loads_as_damaged_with_its_counts() {
    let redis = RedisServer::start().await;
    let jobs = cache_on(&redis).await.purge_jobs();
    let key = RedisKey::purge_job(&tenant("t1"), &job("a"));
    redis.cmd(&[
        "HSET",
        key.as_str(),
        "state",
        "running",
        "cursor",
        "x",
        "scanned",
        "40",
        "deleted",
        "30",
        "total",
        "100",
    ]);
    assert_eq!(
        jobs.load(&tenant("t1"), &job("a")).await.unwrap(),
        LoadedJob::Damaged {
            scanned: 40,
            deleted: 30
        }
    );
}
