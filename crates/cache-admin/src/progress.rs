//! The purge's progress bar: keys scanned of the tenant's index, deleted,
//! rate and ETA (and a spinner for `ttl-report`, whose reads take seconds
//! on a large tenant), on stderr and only on a terminal (indicatif draws nothing
//! when stderr is not one, so scripts and tests see clean output), never
//! with `--json`.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar that may be hidden.
#[derive(Debug)]
pub(crate) struct Progress {
    bar: ProgressBar,
    /// Where this run started: the rate shown is this run's, not the
    /// totals' carried over by a resume token.
    started: Instant,
    scanned_at_start: u64,
}

impl Progress {
    /// A bar of `total` index entries (an estimate: the index's size when
    /// the run starts), starting at `scanned`, drawn on stderr when `visible`
    /// and stderr is a terminal.
    pub(crate) fn new(total: u64, scanned: u64, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(total.max(scanned)), target)
            .with_message("0 deleted");
        // The template is a constant: it parses.
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:24}] {pos}/{len} scanned, {msg}, ETA {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_position(scanned);
        Self {
            bar,
            started: Instant::now(),
            scanned_at_start: scanned,
        }
    }

    /// A spinner saying `message` while a report whose size is unknown is
    /// read (drawn on the same conditions as the bar).
    pub(crate) fn spinner(message: &str, visible: bool) -> Self {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target).with_message(message.to_owned());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {elapsed_precise} {msg}") {
            bar.set_style(style);
        }
        // Ticks on a thread of indicatif's while the caller awaits Redis.
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self {
            bar,
            started: Instant::now(),
            scanned_at_start: 0,
        }
    }

    /// Shows the totals so far.
    pub(crate) fn update(&self, scanned: u64, deleted: u64) {
        if scanned > self.bar.length().unwrap_or(0) {
            self.bar.set_length(scanned);
        }
        self.bar.set_position(scanned);
        let seconds = self.started.elapsed().as_secs_f64();
        // The first page comes at once: a rate over no time says nothing.
        let rate = if seconds < 0.5 {
            "-".to_owned()
        } else {
            format!("{:.0}", (scanned - self.scanned_at_start) as f64 / seconds)
        };
        self.bar.set_message(format!("{deleted} deleted, {rate}/s"));
    }

    /// Removes the bar (the result is printed after it).
    pub(crate) fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
