//! `cargo xtask ci` and `cargo xtask test`.

use crate::cmd::{Result, run, run_with_env, succeeds};
use crate::tools::{ensure_cargo_deny, ensure_node, ensure_prometheus, ensure_redis_server};

/// Every check CI runs, in order; stops at the first failure.
pub(crate) fn ci() -> Result {
    ensure_redis_server()?;
    ensure_node()?;
    run("cargo", &["fmt", "--all", "--check"])?;
    crate::docs::check()?;
    // The committed HTTP contract is what the code generates. Its debug
    // build of the two services is the one `up --check` makes below, which
    // then finds it done: moved earlier, not added.
    crate::openapi::openapi(&["--check".to_owned()])?;
    crate::deps::check()?;
    ensure_prometheus()?;
    // The shipped alerting rules: valid, and firing when their unit tests
    // say (deploy/prometheus/alerts.test.yml).
    run(
        "promtool",
        &["check", "rules", "deploy/prometheus/alerts.yml"],
    )?;
    run(
        "promtool",
        &["test", "rules", "deploy/prometheus/alerts.test.yml"],
    )?;
    crate::test_names::check()?;
    run(
        "cargo",
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // Broken intra-doc links and other rustdoc warnings fail CI, as
    // missing docs do (the `missing_docs` workspace lint, under clippy's -D).
    run_with_env(
        "cargo",
        &["doc", "--no-deps", "--workspace"],
        &[("RUSTDOCFLAGS", "-D warnings")],
    )?;
    // The Docker fallback of test-support is off by default; keep it compiling.
    run(
        "cargo",
        &["check", "-p", "test-support", "--features", "docker"],
    )?;
    // Without its `tls` feature, redis-connection must refuse rediss://
    // rather than connect in plain text: run that build's unit tests.
    run(
        "cargo",
        &[
            "test",
            "-p",
            "redis-connection",
            "--no-default-features",
            "--lib",
        ],
    )?;
    ensure_cargo_deny()?;
    // The advisory database cannot be fetched from CI machines; see README.
    run("cargo", &["deny", "check", "bans", "licenses", "sources"])?;
    test(&[])?;
    // Many managed Redis services run 6.2: the services must work there too.
    crate::redis62::test_services()?;
    crate::example::run_usage_example()?;
    // Faults under load, short: every invariant checked, figures printed.
    crate::soak::soak(&["--duration".to_owned(), "10".to_owned()])?;
    // The README's command that runs the stack, end to end.
    crate::up::up(&["--check".to_owned()])?;
    // The services answer as their OpenAPI documents say, bad input
    // included (the same build as `up`; about 30 s of requests).
    crate::schemathesis::schemathesis()?;
    // Proves every benchmark workload runs and produces numbers; the
    // figures of a quick run are not compared with the targets.
    crate::bench::bench(&["--quick".to_owned()])
}

/// The test suite: every crate's tests against real redis-server processes,
/// plus doc tests (which nextest does not run).
pub(crate) fn test(extra: &[String]) -> Result {
    ensure_redis_server()?;
    ensure_node()?;
    ensure_prometheus()?;
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    if succeeds("cargo", &["nextest", "--version"]) {
        let mut args = vec!["nextest", "run", "--workspace", "--no-fail-fast"];
        args.extend(&extra);
        run("cargo", &args)?;
        run("cargo", &["test", "--workspace", "--doc"])
    } else {
        let mut args = vec!["test", "--workspace", "--no-fail-fast"];
        args.extend(&extra);
        run("cargo", &args)
    }
}
