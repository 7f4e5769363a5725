//! `cargo xtask bench [--quick]`: the benchmark harness (crates/benchmarks),
//! always in a release build, writing `target/bench/results.json` and
//! `results.md` and printing the table.

use std::time::SystemTime;

use crate::cmd::{Result, run, workspace_root};

/// Runs the benchmarks with `extra` arguments (`--quick`, `--only ...`).
///
/// The harness itself exits non-zero when a workload failed or produced no
/// numbers; whether targets were met never fails this command (timing
/// assertions do not belong in CI on shared machines).
pub(crate) fn bench(extra: &[String]) -> Result {
    let out = workspace_root().join("target").join("bench");
    let out_arg = out.display().to_string();
    // Workload 7 runs the services as real processes, built beside the
    // harness (one release build for the harness, the services and the soak).
    let bin = crate::target::release_binaries()?;
    let harness = bin.join("benchmarks").display().to_string();
    let mut args = vec!["--out", &out_arg];
    args.extend(extra.iter().map(String::as_str));
    ensure_wrk();
    let started = SystemTime::now();
    run(&harness, &args)?;
    // A stale file from an earlier run must not pass for this one's results.
    let results = out.join("results.json");
    let written = std::fs::metadata(&results)
        .and_then(|m| m.modified())
        .map_err(|e| format!("no {}: {e}", results.display()))?;
    if written < started {
        return Err(format!("{} was not written by this run", results.display()));
    }
    Ok(())
}

/// Installs wrk for workload 7 where apt allows; without it, that workload
/// reports itself skipped rather than failing the run.
fn ensure_wrk() {
    if crate::cmd::on_path("wrk") || !crate::cmd::on_path("apt-get") {
        return;
    }
    println!("wrk is missing: installing it with apt-get");
    if run(
        "apt-get",
        &["install", "-y", "--no-install-recommends", "wrk"],
    )
    .is_err()
    {
        println!("could not install wrk; the HTTP workload will be skipped");
    }
}
