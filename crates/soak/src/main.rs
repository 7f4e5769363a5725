//! `soak`: the fault-injection soak harness behind `cargo xtask soak`.
//!
//! Two parts, each on its own `redis-server` (AOF on, see `counters.rs`),
//! each under steady load while the same six faults are injected (three
//! kill + restarts, a 2 s SIGSTOP, `CLIENT KILL TYPE pubsub`, a restart with
//! the data gone; see `faults.rs`):
//!
//! 1. **The two-tier cache pair** (`cache_soak.rs`, `cache_load.rs`): two
//!    `CacheService` instances, tasks mixing `get_or_load`, `get`, `set`,
//!    `invalidate` and `increment`. Every read is judged against a ledger of
//!    acknowledged changes (`ledger.rs` defines "stale"), every operation is
//!    timed, counters are reconciled per epoch, memory is sampled.
//! 2. **The services** (`service_soak.rs`): auth-broker and two main-api
//!    processes behind HTTP, tasks doing PUT/GET/DELETE and session
//!    creation, use and revocation.
//!
//! It prints the figures as Markdown tables and exits non-zero on any
//! violation. `--help` lists the options.

// A command-line tool reports to its user: figures on stdout, violations as
// they happen on stderr.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cache_load;
mod cache_soak;
mod counters;
mod faults;
mod ledger;
mod memory;
mod report;
mod service_load;
mod service_soak;
mod stats;
mod summary;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const USAGE: &str = "usage: soak [options]

options:
  --duration SECS   load time of each part, faults included (default 60)
  --tasks N         concurrent load tasks of the cache part (default 200)
  --http-tasks N    concurrent load tasks of the services part (default 100)
  --pace-ms MS      mean pause between two operations of one task (default 10)
  --part PART       cache, services or all (default all)
  --bin-dir DIR     where the auth-broker and main-api binaries are
                    (default: beside this binary)";

/// Panics anywhere in the process (load tasks, library tasks, fred's).
static PANICS: AtomicU64 = AtomicU64::new(0);

/// The command line.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) duration: Duration,
    pub(crate) tasks: usize,
    pub(crate) http_tasks: usize,
    pub(crate) pace: Duration,
    pub(crate) cache_part: bool,
    pub(crate) services_part: bool,
    pub(crate) bin_dir: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let here = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut options = Options {
        duration: Duration::from_secs(60),
        tasks: 200,
        http_tasks: 100,
        pace: Duration::from_millis(10),
        cache_part: true,
        services_part: true,
        bin_dir: here.parent().map(PathBuf::from).unwrap_or_default(),
    };
    let mut args = args.iter();
    while let Some(flag) = args.next() {
        let mut value = || {
            args.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a whole number"))
        };
        match flag.as_str() {
            "--duration" => options.duration = Duration::from_secs(number(value()?)?.max(1)),
            "--tasks" => options.tasks = usize::try_from(number(value()?)?.max(1)).unwrap_or(1),
            "--http-tasks" => {
                options.http_tasks = usize::try_from(number(value()?)?.max(1)).unwrap_or(1);
            }
            "--pace-ms" => options.pace = Duration::from_millis(number(value()?)?),
            "--bin-dir" => options.bin_dir = PathBuf::from(value()?),
            "--part" => match value()?.as_str() {
                "cache" => options.services_part = false,
                "services" => options.cache_part = false,
                "all" => {}
                other => return Err(format!("--part: unknown part {other:?}")),
            },
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(options)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let options = match parse(&args) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("soak: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The library logs every reconnect; only errors are worth a line here.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("soak: no runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = Instant::now();
    let reports = runtime.block_on(run(&options));
    runtime.shutdown_timeout(Duration::from_secs(5));

    let mut passed = true;
    println!("## Soak figures\n");
    println!(
        "{} s per part, {} cache tasks, {} HTTP tasks, {} ms mean pace; {:.0} s in all\n",
        options.duration.as_secs(),
        options.tasks,
        options.http_tasks,
        options.pace.as_millis(),
        started.elapsed().as_secs_f64()
    );
    for report in reports {
        match report {
            Ok(report) => {
                passed &= report.passed();
                println!("{}", report.markdown());
            }
            Err(e) => {
                passed = false;
                println!("**A part could not run:** {e}\n");
            }
        }
    }
    let panics = PANICS.load(Ordering::SeqCst);
    if panics > 0 {
        passed = false;
        println!("**{panics} panics** (see stderr)\n");
    }
    if passed {
        println!("SOAK PASSED");
        ExitCode::SUCCESS
    } else {
        println!("SOAK FAILED");
        ExitCode::FAILURE
    }
}

async fn run(options: &Options) -> Vec<Result<report::PartReport, String>> {
    let mut reports = Vec::new();
    if options.cache_part {
        eprintln!(
            "soak: part one, the two-tier cache pair, {} s",
            options.duration.as_secs()
        );
        reports.push(cache_soak::run(options).await);
    }
    if options.services_part {
        eprintln!(
            "soak: part two, the services, {} s",
            options.duration.as_secs()
        );
        reports.push(service_soak::run(options).await);
    }
    reports
}
