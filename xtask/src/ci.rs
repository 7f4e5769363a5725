//! `cargo xtask ci` and `cargo xtask test`.

use crate::cmd::{Result, on_path, run, succeeds};

/// Every check CI runs, in order; stops at the first failure.
pub(crate) fn ci() -> Result {
    ensure_redis_server()?;
    ensure_node()?;
    run("cargo", &["fmt", "--all", "--check"])?;
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
    // Proves every benchmark workload runs and produces numbers; the
    // figures of a quick run are not compared with the targets.
    crate::bench::bench(&["--quick".to_owned()])
}

/// The test suite: every crate's tests against real redis-server processes,
/// plus doc tests (which nextest does not run).
pub(crate) fn test(extra: &[String]) -> Result {
    ensure_redis_server()?;
    ensure_node()?;
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

/// Tests need a real redis-server; install it where we can, else say how.
pub(crate) fn ensure_redis_server() -> Result {
    if std::env::var_os("REDIS_SERVER_BIN").is_some() || on_path("redis-server") {
        return Ok(());
    }
    if on_path("apt-get") {
        println!("redis-server is missing: installing it with apt-get");
        run(
            "apt-get",
            &["install", "-y", "--no-install-recommends", "redis-server"],
        )?;
        return Ok(());
    }
    Err(
        "redis-server is not installed: install it (apt-get install redis-server, \
         brew install redis) or set REDIS_SERVER_BIN"
            .to_owned(),
    )
}

/// The interop tests (`services/main-api/tests/it/interop.rs`) play a
/// TypeScript service on ioredis: they need `node` and `npm` (they run
/// `npm ci` of `tests/interop/` themselves). Installed with apt-get where
/// they are missing and apt is available, else a clear error.
pub(crate) fn ensure_node() -> Result {
    if on_path("node") && on_path("npm") {
        return Ok(());
    }
    if on_path("apt-get") {
        println!("node or npm is missing: installing them with apt-get");
        run(
            "apt-get",
            &["install", "-y", "--no-install-recommends", "nodejs", "npm"],
        )?;
        return Ok(());
    }
    Err(
        "node and npm are not installed: the interop tests need Node.js 18 or newer \
         with npm (apt-get install nodejs npm, brew install node)"
            .to_owned(),
    )
}

fn ensure_cargo_deny() -> Result {
    if succeeds("cargo", &["deny", "--version"]) {
        return Ok(());
    }
    println!("cargo-deny is missing: installing it");
    run("cargo", &["install", "--locked", "cargo-deny"])
}
