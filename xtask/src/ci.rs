//! `cargo xtask ci` and `cargo xtask test`.

use std::time::{Duration, Instant};

use crate::cmd::{Result, run, run_with_env, succeeds};
use crate::tools::{ensure_cargo_deny, ensure_node, ensure_prometheus, ensure_redis_server};

/// Every check CI runs, in order; stops at the first failure. Each step's
/// wall time is printed as it ends, and all of them at the end (or at the
/// failure): CI has a time limit, and this says where the time goes.
pub(crate) fn ci() -> Result {
    let mut clock = StepClock::default();
    let result = ci_steps(&mut clock);
    clock.print_summary();
    result
}

fn ci_steps(clock: &mut StepClock) -> Result {
    clock.step("tools", || {
        ensure_redis_server()?;
        ensure_node()?;
        ensure_prometheus()
    })?;
    clock.step("fmt", || run("cargo", &["fmt", "--all", "--check"]))?;
    // The invariants of ARCHITECTURE.md a search can check (fred behind
    // the Redis-access files, the documents' paths and variables, test
    // names), then no unused dependency.
    clock.step("tidy and deps", || {
        crate::tidy::tidy()?;
        crate::deps::check()
    })?;
    // The committed HTTP contract is what the code generates. Its debug
    // build of the two services is the one `up --check` makes below, which
    // then finds it done: moved earlier, not added.
    clock.step("openapi --check", || {
        crate::openapi::openapi(&["--check".to_owned()])
    })?;
    // The shipped alerting rules: valid, and firing when their unit tests
    // say (deploy/prometheus/alerts.test.yml).
    clock.step("promtool", || {
        run(
            "promtool",
            &["check", "rules", "deploy/prometheus/alerts.yml"],
        )?;
        run(
            "promtool",
            &["test", "rules", "deploy/prometheus/alerts.test.yml"],
        )
    })?;
    clock.step("clippy", || {
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
        )
    })?;
    // Broken intra-doc links and other rustdoc warnings fail CI, as
    // missing docs do (the `missing_docs` workspace lint, under clippy's -D).
    clock.step("rustdoc", || {
        run_with_env(
            "cargo",
            &["doc", "--no-deps", "--workspace"],
            &[("RUSTDOCFLAGS", "-D warnings")],
        )
    })?;
    // The Docker fallback of test-support is off by default; keep it compiling.
    clock.step("docker feature", || {
        run(
            "cargo",
            &["check", "-p", "test-support", "--features", "docker"],
        )
    })?;
    // Without its `tls` feature, redis-connection must refuse rediss://
    // rather than connect in plain text: the refusal is unit-tested in the
    // default build (`validate_for(false)`); this keeps that build compiling.
    // The same for service-kit's `otlp-tls` (https OTLP endpoints), whose
    // refusal is unit-tested in the default build (`OtelConfig::read`).
    clock.step("no-tls check", || {
        for krate in ["redis-connection", "service-kit"] {
            run(
                "cargo",
                &["check", "-p", krate, "--no-default-features", "--lib"],
            )?;
        }
        Ok(())
    })?;
    // The advisory database cannot be fetched from CI machines; see README.
    clock.step("cargo deny", || {
        ensure_cargo_deny()?;
        run("cargo", &["deny", "check", "bans", "licenses", "sources"])
    })?;
    clock.step("tests", || test(&[]))?;
    // Many managed Redis services run 6.2: the services must work there too.
    clock.step("services on Redis 6.2", crate::redis62::test_services)?;
    clock.step("usage example", crate::example::run_usage_example)?;
    // Faults under load, short: every invariant checked, figures printed.
    clock.step("soak", || {
        crate::soak::soak(&["--duration".to_owned(), "10".to_owned()])
    })?;
    // The README's command that runs the stack, end to end.
    clock.step("up --check", || crate::up::up(&["--check".to_owned()]))?;
    // The services answer as their OpenAPI documents say, bad input
    // included (the same build as `up`; about 30 s of requests).
    clock.step("schemathesis", crate::schemathesis::schemathesis)?;
    // Proves every benchmark workload runs and produces numbers; the
    // figures of a quick run are not compared with the targets.
    clock.step("bench --quick", || {
        crate::bench::bench(&["--quick".to_owned()])
    })
}

/// The wall time of each CI step, in order.
#[derive(Default)]
struct StepClock {
    steps: Vec<(&'static str, Duration)>,
}

impl StepClock {
    fn step(&mut self, name: &'static str, f: impl FnOnce() -> Result) -> Result {
        let started = Instant::now();
        let result = f();
        let took = started.elapsed();
        println!("xtask ci: {name}: {:.0} s", took.as_secs_f64());
        self.steps.push((name, took));
        result
    }

    fn print_summary(&self) {
        let total: Duration = self.steps.iter().map(|(_, took)| *took).sum();
        println!(
            "xtask ci: time per step (total {:.0} s)",
            total.as_secs_f64()
        );
        for (name, took) in &self.steps {
            println!("  {name:<24} {:>6.0} s", took.as_secs_f64());
        }
    }
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
