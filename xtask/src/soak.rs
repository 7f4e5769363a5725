//! `cargo xtask soak [--duration SECS] [soak options]`: the fault-injection
//! soak (`crates/soak`, see RELIABILITY.md), in release: timing assertions
//! (command timeout plus slack, 2 s recovery) are about the code, not about
//! an unoptimised build. It builds the service binaries that part two runs
//! (the soak finds them beside its own binary), then runs the soak; every
//! argument goes to it (`--duration 10` is CI's short run; `--help` lists
//! the rest). It exits non-zero on any violation.

use crate::cmd::{Result, run};

/// The soak's own default duration, for the message only.
const DEFAULT_DURATION: &str = "60";

pub(crate) fn soak(args: &[String]) -> Result {
    crate::tools::ensure_redis_server()?;
    run(
        "cargo",
        &["build", "--release", "-p", "auth-broker", "-p", "main-api"],
    )?;
    let duration = args
        .iter()
        .position(|a| a == "--duration")
        .and_then(|i| args.get(i + 1))
        .map_or(DEFAULT_DURATION, String::as_str);
    println!("soak: {duration} s of faults under load per part; figures follow");
    let mut cargo = vec!["run", "--release", "--quiet", "-p", "soak", "--"];
    cargo.extend(args.iter().map(String::as_str));
    run("cargo", &cargo)
}
