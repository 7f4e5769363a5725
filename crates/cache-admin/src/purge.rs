//! `purge`: a tenant's cached data (or one family of it) deleted a page of
//! its key index at a time, paced, announced, and resumable.
//!
//! - **Cost**: each page is one `ZSCAN` of the tenant's key index and one
//!   `UNLINK` of its keys (`redis_cache::CacheService::purge_step`): the
//!   work is the tenant's keys, never the keyspace's, and another tenant's
//!   keys (`t10` beside `t1`) are never in the index read.
//! - **Announced as it goes**: every page's deletion publishes the
//!   pattern's invalidation on the bus the services listen to, so their L1s
//!   drop the tenant's entries while the purge runs.
//! - **Paced**: `--rate N/s` sleeps between pages so that no more than N
//!   index entries a second are read (and at most that many keys deleted).
//! - **Resumable**: Ctrl-C (or SIGTERM) is honoured between pages (a page is never cut
//!   in half: its announcement must go out before the process ends), and
//!   the run prints a resume token with the cursor of the next page and the
//!   totals; `--resume TOKEN` continues from there. A Redis failure prints
//!   one too.

use std::time::{Duration, Instant};

use redis_cache::PurgeCursor;
use serde::Serialize;
use tokio::signal::unix::{SignalKind, signal};
use tracing::debug;

use crate::cli::{self, Family};
use crate::connect::Settings;
use crate::error::AdminError;
use crate::output::{Output, note};
use crate::progress::Progress;
use crate::resume_token::ResumeToken;

/// What the command line asked for.
#[derive(Debug)]
pub(crate) struct PurgeArgs {
    pub(crate) tenant: Option<String>,
    pub(crate) family: Option<Family>,
    pub(crate) resume: Option<String>,
    pub(crate) rate: Option<u32>,
    pub(crate) dry_run: bool,
}

/// The result, printed when the run ends (completed or not).
#[derive(Debug, Serialize)]
struct Outcome {
    tenant: String,
    family: &'static str,
    dry_run: bool,
    /// Whether the whole index was walked.
    complete: bool,
    /// Index entries read, over every run of this purge.
    scanned: u64,
    /// Keys deleted (in a dry run: that would be), over every run.
    deleted: u64,
    /// How long this run took.
    seconds: f64,
    /// What `--resume` takes to continue, when not complete.
    resume_token: Option<String>,
}

/// Runs `purge`.
pub(crate) async fn run(
    settings: &Settings,
    output: Output,
    args: PurgeArgs,
) -> Result<(), AdminError> {
    // Registered before anything slow, so that an early Ctrl-C is ours to
    // handle, not the default handler's (which would lose the token).
    let mut interrupt = signal(SignalKind::interrupt())?;
    // A supervisor stopping the run (SIGTERM) gets a token too.
    let mut terminate = signal(SignalKind::terminate())?;
    let mut state = match (&args.resume, &args.tenant) {
        (Some(token), _) => ResumeToken::parse(token)?,
        (None, Some(tenant)) => ResumeToken {
            dry_run: args.dry_run,
            tenant: cli::tenant(tenant)?,
            family: args.family,
            cursor: PurgeCursor::START,
            scanned: 0,
            deleted: 0,
        },
        // clap requires one of them.
        (None, None) => {
            return Err(AdminError::Input {
                what: "purge",
                reason: "--tenant or --resume is required".to_owned(),
            });
        }
    };
    let cache = if state.dry_run {
        settings.cache().await?
    } else {
        settings.announcing_cache().await?
    };
    let pattern = cli::pattern(&state.tenant, state.family);
    let total = state.scanned + cache.tenant_indexed_keys(&state.tenant).await?;
    let progress = Progress::new(total, state.scanned, !output.is_json());
    // A page is at most about a second of the rate, so that pacing is smooth.
    let count = args
        .rate
        .map_or(settings.scan_count(), |rate| {
            rate.min(settings.scan_count())
        })
        .max(1);
    let started = Instant::now();
    let mut scanned_here = 0;
    let ended = loop {
        let step = match cache
            .purge_step(&pattern, state.cursor, count, state.dry_run)
            .await
        {
            Ok(step) => step,
            Err(error) => break Err(AdminError::from(error)),
        };
        state.scanned += step.scanned;
        state.deleted += step.deleted;
        scanned_here += step.scanned;
        progress.update(state.scanned, state.deleted);
        debug!(scanned = step.scanned, deleted = step.deleted, "purge page");
        let Some(next) = step.next else {
            break Ok(true);
        };
        state.cursor = next;
        let pause = args
            .rate
            .map_or(Duration::ZERO, |rate| pace(started, scanned_here, rate));
        tokio::select! {
            biased;
            _ = interrupt.recv() => break Ok(false),
            _ = terminate.recv() => break Ok(false),
            () = tokio::time::sleep(pause) => {}
        }
    };
    progress.finish();
    // The pages' announcements went out with them (`purge_step` awaits
    // them), so nothing is pending when the process ends.
    finish(output, &state, ended, started.elapsed())
}

/// How long to wait so that `scanned` entries since `started` keep to `rate`
/// a second.
fn pace(started: Instant, scanned: u64, rate: u32) -> Duration {
    let due = Duration::from_secs_f64(scanned as f64 / f64::from(rate));
    due.saturating_sub(started.elapsed())
}

/// Prints the outcome (with a resume token unless complete) and turns an
/// incomplete run into its error.
fn finish(
    output: Output,
    state: &ResumeToken,
    ended: Result<bool, AdminError>,
    took: Duration,
) -> Result<(), AdminError> {
    let complete = matches!(ended, Ok(true));
    let token = (!complete).then(|| state.to_string());
    let outcome = Outcome {
        tenant: state.tenant.as_str().to_owned(),
        family: state.family.map_or("all", Family::name),
        dry_run: state.dry_run,
        complete,
        scanned: state.scanned,
        deleted: state.deleted,
        seconds: took.as_secs_f64(),
        resume_token: token.clone(),
    };
    let verb = if state.dry_run {
        "would delete"
    } else {
        "deleted"
    };
    let text = format!(
        "tenant {} ({}): {verb} {} keys of {} index entries{} in {:.1} s",
        outcome.tenant,
        outcome.family,
        outcome.deleted,
        outcome.scanned,
        if complete { "" } else { " so far" },
        outcome.seconds
    );
    output.result(&outcome, &text)?;
    if let Some(token) = token {
        note(&format!(
            "purge stopped before the end; continue it with:\n  cache-admin purge --resume {token}"
        ));
    }
    match ended {
        Ok(true) => Ok(()),
        Ok(false) => Err(AdminError::Interrupted),
        Err(error) => Err(error),
    }
}
