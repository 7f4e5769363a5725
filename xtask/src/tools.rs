//! Programs the checks need, installed where they are missing.

use crate::cmd::{Result, on_path, run, succeeds};

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

pub(crate) fn ensure_cargo_deny() -> Result {
    if succeeds("cargo", &["deny", "--version"]) {
        return Ok(());
    }
    println!("cargo-deny is missing: installing it");
    run("cargo", &["install", "--locked", "cargo-deny"])
}

/// `cargo machete` (unused dependencies): installed from crates.io where it
/// is missing, as cargo-deny is.
pub(crate) fn ensure_cargo_machete() -> Result {
    if succeeds("cargo-machete", &["--version"]) {
        return Ok(());
    }
    println!("cargo-machete is missing: installing it");
    run("cargo", &["install", "--locked", "cargo-machete"])
}

/// Prometheus and promtool (Debian's `prometheus` package): the shipped
/// alerting rules are checked and unit-tested with promtool, and a test
/// has a real Prometheus scrape the services
/// (`services/main-api/tests/it/prometheus.rs`).
pub(crate) fn ensure_prometheus() -> Result {
    if on_path("prometheus") && on_path("promtool") {
        return Ok(());
    }
    if on_path("apt-get") {
        println!("prometheus is missing: installing it with apt-get");
        run(
            "apt-get",
            &["install", "-y", "--no-install-recommends", "prometheus"],
        )?;
        return Ok(());
    }
    Err(
        "prometheus and promtool are not installed: the monitoring tests need them \
         (apt-get install prometheus, brew install prometheus)"
            .to_owned(),
    )
}
