//! Bad input and an unreachable Redis: a non-zero exit with a clear
//! message, and nothing changed.

use std::process::Stdio;
use std::time::{Duration, Instant};

use test_support::fixtures::{redis_config, two_tier, two_tier_config};
use test_support::{RedisServer, free_port};

use crate::support::{Keyspace, admin, run};

// Each bad argument exits 2, names what is wrong on stderr, prints nothing
// on stdout and leaves every key in place.
#[tokio::test]
async fn bad_arguments_exit_two_and_change_nothing() {
    let server = RedisServer::start().await;
    let instance = two_tier(redis_config(&server), two_tier_config()).await;
    let keys = Keyspace::write(&instance, 5).await;
    let before = server.dbsize();
    let cases: &[(&[&str], &str)] = &[
        (&["purge", "--tenant", "t:1"], "invalid --tenant"),
        (&["purge", "--tenant", "t*"], "invalid --tenant"),
        (&["purge", "--tenant", ""], "invalid --tenant"),
        (&["purge"], "--tenant"),
        (&["purge", "--tenant", "t1", "--rate", "0"], "at least 1"),
        (
            &["purge", "--tenant", "t1", "--rate", "fast"],
            "keys a second",
        ),
        (
            &["purge", "--tenant", "t1", "--family", "session"],
            "--family",
        ),
        (
            &[
                "purge",
                "--tenant",
                "t1",
                "--resume",
                "v1~purge~t1~all~0~0~0",
            ],
            "cannot be used",
        ),
        (
            &["purge", "--resume", "not-a-token"],
            "invalid --resume token",
        ),
        (&["purge", "--resume", "v1~purge~t1~all~zz~0~0"], "cursor"),
        (&["inspect", "tenant:t1:shard"], "invalid KEY-SPEC"),
        (&["inspect", "whatever"], "invalid KEY-SPEC"),
        (&["ttl-report", "--tenant", "t 1"], "invalid --tenant"),
        (&["watch", "--tenant", "t1:x"], "invalid --tenant"),
        (&["stats", "--tenant", "a/b"], "invalid --tenant"),
        (&["explode"], "unrecognized subcommand"),
    ];
    for (args, expected) in cases {
        let output = run(server.port(), args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(server.dbsize(), before);
    assert_eq!(Keyspace::existing(&server, &keys.t1), keys.t1.len());

    // A bad variable is named (its value never printed: it may be a password).
    let output = admin(server.port())
        .env("REDIS_PORT", "seventy")
        .args(["stats"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("REDIS_PORT"), "{stderr}");
}

// Against a port where no Redis listens, every command that needs Redis
// exits 3 with a clear message within the connect timeout (1 s here, 5 s
// by default; 30 s is the generous bound).
#[test]
fn unreachable_redis_fails_in_bounded_time() {
    let port = free_port();
    let started = Instant::now();
    // Run together: each waits out the connect timeout.
    let children: Vec<_> = [
        &["stats"][..],
        &["purge", "--tenant", "t1"],
        &["watch"],
        &["inspect", "tenant:t1:shard:s1:structured"],
    ]
    .into_iter()
    .map(|args| {
        let child = admin(port)
            .env("REDIS_CONNECT_TIMEOUT_MS", "1000")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        (args, child)
    })
    .collect();
    for (args, child) in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(3), "{args:?}: {stderr}");
        assert!(stderr.contains("unreachable"), "{args:?}: {stderr}");
        assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
        assert!(stderr.contains("within 1000 ms"), "{stderr}");
    }
    let took = started.elapsed();
    assert!(took < Duration::from_secs(30), "took {took:?}");
}
