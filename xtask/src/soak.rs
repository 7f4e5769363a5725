//! `cargo xtask soak [--duration SECS] [soak options]`: the fault-injection
//! soak (`crates/soak`, see RELIABILITY.md), in release: timing assertions
//! (command timeout plus slack, 2 s recovery) are about the code, not about
//! an unoptimised build. It builds the release binaries (the soak's own and
//! the services' that part two runs, which the soak finds beside its own;
//! see `target::release_binaries`), then runs the soak; every
//! argument goes to it (`--duration 10` is CI's short run; `--help` lists
//! the rest). It exits non-zero on any violation.

use crate::cmd::{Result, run};

/// The soak's own default duration, for the message only.
const DEFAULT_DURATION: &str = "60";

pub(crate) fn soak(args: &[String]) -> Result {
    crate::tools::ensure_redis_server()?;
    let bin = crate::target::release_binaries()?;
    let duration = args
        .iter()
        .position(|a| a == "--duration")
        .and_then(|i| args.get(i + 1))
        .map_or(DEFAULT_DURATION, String::as_str);
    println!("soak: {duration} s of faults under load per part; figures follow");
    let soak = bin.join("soak").display().to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&soak, &args)
}
