//! `cache-admin`: the operators' CLI of the Redis layer.
//!
//! Looks into the cache and cleans it without writing code, with the same
//! `REDIS_*` (and `CACHE_*`) variables as the services:
//!
//! - `stats [--tenant T]...`: server keys and memory, and per tenant named,
//!   its indexed keys (one `ZCARD` each);
//! - `inspect KEY-SPEC`: type, size, TTL, family and tenant of a key (the
//!   key is parsed by `shared_types::RedisKey::parse`); values are never
//!   read, so no session value is ever printed;
//! - `ttl-report --tenant T [--family F]`: a histogram of remaining TTLs;
//! - `purge --tenant T [--family F] [--rate N/s] [--dry-run]` and
//!   `purge --resume TOKEN`: see `purge.rs`;
//! - `watch [--tenant T] [--count N]`: the invalidation bus, decoded.
//!
//! `--json` prints one JSON document (for `watch`, one per line) on stdout.
//! Exit codes: 0 done, 2 bad input (arguments, environment), 3 Redis
//! unreachable or failing, 130 interrupted (a purge prints how to resume).

mod cli;
mod connect;
mod error;
mod inspect;
mod output;
mod progress;
mod purge;
mod resume_token;
mod stats;
mod ttl_report;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use crate::cli::{Cli, Command};
use crate::connect::Settings;
use crate::error::{AdminError, EXIT_REDIS};
use crate::output::{Output, note};

fn main() -> ExitCode {
    // Bad arguments: clap prints what is wrong and exits 2.
    let cli = Cli::parse();
    // Logs (warnings by default, `RUST_LOG` to change) go to stderr with
    // the notes, never into the results on stdout.
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            note(&format!("cache-admin: cannot start: {error}"));
            return ExitCode::from(EXIT_REDIS);
        }
    };
    let result = runtime.block_on(run(cli));
    // Connection tasks end with their clients; do not wait on stragglers.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            if !matches!(error, AdminError::Interrupted) {
                note(&format!("cache-admin: {error}"));
            }
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run(cli: Cli) -> Result<(), AdminError> {
    let settings = Settings::from_env()?;
    let output = Output::new(cli.json);
    match cli.command {
        Command::Stats { tenants } => stats::run(&settings, output, &tenants).await,
        Command::Inspect { key } => inspect::run(&settings, output, &key).await,
        Command::TtlReport { tenant, family } => {
            ttl_report::run(&settings, output, &tenant, family).await
        }
        Command::Purge {
            tenant,
            family,
            resume,
            rate,
            dry_run,
        } => {
            let args = purge::PurgeArgs {
                tenant,
                family,
                resume,
                rate,
                dry_run,
            };
            purge::run(&settings, output, args).await
        }
        Command::Watch { tenant, count } => {
            watch::run(&settings, output, tenant.as_deref(), count).await
        }
    }
}
