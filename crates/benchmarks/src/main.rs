//! The benchmark harness behind `cargo xtask bench`.
//!
//! Runs every workload of the benchmark issue against `redis-server`
//! processes it starts itself (test-support), prints one markdown table and
//! writes the same as JSON (`--out DIR` → `DIR/results.json` and
//! `DIR/results.md`).
//!
//! ```text
//! benchmarks [--quick] [--out DIR] [--only ID[,ID...]]
//! ```
//!
//! - `--quick`: each workload for about a second, to prove it works (CI).
//!   Its figures are not meant to be compared with the targets.
//! - `--only`: run some workloads (ids: l2, l1, bulk, pattern, propagation,
//!   stampede, http, outage, purge, purge_job, settings, replay, fleet), for
//!   profiling one.
//!
//! Exits non-zero when a workload failed or produced no numbers, so that
//! CI proves every workload ran; whether targets were met never fails the
//! run (timing assertions do not belong in CI on shared machines).
//!
//! Every figure that matters is a ratio against a baseline measured in the
//! same run, on the same server: machines are shared and noisy, absolute
//! numbers are printed for information only.

// A command-line tool: the table goes to stdout, progress to stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod bulk;
mod drive;
mod fixture;
mod fleet;
mod http;
mod l1;
mod l2;
mod latency;
mod machine;
mod outage;
mod pattern;
mod probe;
mod propagation;
mod purge;
mod purge_job;
mod replay;
mod report;
mod services;
mod settings;
mod stampede;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::fixture::Mode;
use crate::report::{Row, Status};

type Run = fn(Mode) -> BoxFuture<'static, Result<Vec<Row>, String>>;

/// One workload of the issue.
struct Workload {
    id: &'static str,
    name: &'static str,
    run: Run,
}

const WORKLOADS: [Workload; 13] = [
    Workload {
        id: "l2",
        name: "1. L2 throughput",
        run: |mode| l2::run(mode).boxed(),
    },
    Workload {
        id: "l1",
        name: "2. L1 hit",
        run: |mode| l1::run(mode).boxed(),
    },
    Workload {
        id: "bulk",
        name: "3. Bulk",
        run: |mode| bulk::run(mode).boxed(),
    },
    Workload {
        id: "pattern",
        name: "4. Pattern invalidation",
        run: |mode| pattern::run(mode).boxed(),
    },
    Workload {
        id: "propagation",
        name: "5. Invalidation propagation",
        run: |mode| propagation::run(mode).boxed(),
    },
    Workload {
        id: "stampede",
        name: "6. Stampede",
        run: |mode| stampede::run(mode).boxed(),
    },
    Workload {
        id: "http",
        name: "7. HTTP",
        run: |mode| http::run(mode).boxed(),
    },
    Workload {
        id: "outage",
        name: "8. Outage",
        run: |mode| outage::run(mode).boxed(),
    },
    Workload {
        id: "purge",
        name: "9. Tenant purge",
        run: |mode| purge::run(mode).boxed(),
    },
    Workload {
        id: "purge_job",
        name: "11. Purge job",
        run: |mode| purge_job::run(mode).boxed(),
    },
    Workload {
        id: "settings",
        name: "10. Connection settings",
        run: |mode| settings::run(mode).boxed(),
    },
    Workload {
        id: "replay",
        name: "12. Replay after a subscriber outage",
        run: |mode| replay::run(mode).boxed(),
    },
    Workload {
        id: "fleet",
        name: "13. Fleet stampede",
        run: |mode| fleet::run(mode).boxed(),
    },
];

#[derive(Debug)]
struct Args {
    mode: Mode,
    out: Option<PathBuf>,
    only: Option<Vec<String>>,
}

const USAGE: &str = "usage: benchmarks [--quick] [--out DIR] [--only ID[,ID...]]
ids: l2, l1, bulk, pattern, propagation, stampede, http, outage, purge, purge_job, settings, replay,
     fleet";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        mode: Mode { quick: false },
        out: None,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.mode.quick = true,
            "--out" => args.out = Some(it.next().ok_or("--out needs a directory")?.into()),
            "--only" => {
                let ids: Vec<String> = it
                    .next()
                    .ok_or("--only needs workload ids")?
                    .split(',')
                    .map(str::to_owned)
                    .collect();
                if let Some(bad) = ids.iter().find(|id| WORKLOADS.iter().all(|w| w.id != *id)) {
                    return Err(format!("unknown workload {bad:?}"));
                }
                args.only = Some(ids);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("benchmarks: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Library warnings are expected while the outage workload has Redis
    // down; they would drown the table. RUST_LOG=warn shows them.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("benchmarks: no tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let started = Instant::now();
    let selected: Vec<&Workload> = WORKLOADS
        .iter()
        .filter(|w| {
            args.only
                .as_ref()
                .is_none_or(|only| only.iter().any(|id| id == w.id))
        })
        .collect();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for workload in &selected {
        eprintln!("benchmarks: {} ...", workload.name);
        let began = Instant::now();
        // Each workload in its own task: a panic (test-support panics when
        // it cannot start a server) becomes that workload's error row.
        let result = match tokio::spawn((workload.run)(args.mode)).await {
            Ok(result) => result,
            Err(e) => Err(format!("panicked: {}", panic_message(e))),
        };
        let produced = match result {
            Ok(produced) if produced.is_empty() => {
                vec![Row::error(workload.id, workload.name, "no rows".to_owned())]
            }
            Ok(produced) => produced,
            Err(e) => vec![Row::error(workload.id, workload.name, e)],
        };
        for row in &produced {
            if !row.acceptable() {
                problems.push(format!("{}: {}", row.id, describe(&row.status)));
            }
        }
        eprintln!(
            "benchmarks: {} done in {:.1} s",
            workload.name,
            began.elapsed().as_secs_f64()
        );
        rows.extend(produced);
    }

    let machine = machine::Machine::detect().await;
    let table = report::markdown(&rows);
    println!("{}", machine.markdown(args.mode, started.elapsed()));
    println!("{table}");
    if let Some(dir) = &args.out
        && let Err(e) = write_results(dir, &machine, args.mode, &rows, &table)
    {
        eprintln!("benchmarks: {e}");
        return ExitCode::FAILURE;
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        for problem in &problems {
            eprintln!("benchmarks: no numbers from {problem}");
        }
        ExitCode::FAILURE
    }
}

fn describe(status: &Status) -> String {
    match status {
        Status::Error(e) => format!("error: {e}"),
        Status::Skipped(r) => format!("skipped: {r}"),
        Status::Met | Status::NotMet | Status::Info => "a missing or non-finite figure".to_owned(),
    }
}

fn panic_message(error: tokio::task::JoinError) -> String {
    match error.try_into_panic() {
        Ok(panic) => panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned()),
        Err(e) => e.to_string(),
    }
}

fn write_results(
    dir: &std::path::Path,
    machine: &machine::Machine,
    mode: Mode,
    rows: &[Row],
    table: &str,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let document = serde_json::json!({
        "mode": if mode.quick { "quick" } else { "full" },
        "machine": machine,
        "rows": rows,
    });
    let json = serde_json::to_string_pretty(&document).map_err(|e| e.to_string())?;
    let json_path = dir.join("results.json");
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    let md_path = dir.join("results.md");
    let markdown = format!(
        "{}\n{table}",
        machine.markdown(mode, std::time::Duration::ZERO)
    );
    std::fs::write(&md_path, markdown)
        .map_err(|e| format!("writing {}: {e}", md_path.display()))?;
    eprintln!(
        "benchmarks: wrote {} and {}",
        json_path.display(),
        md_path.display()
    );
    Ok(())
}
