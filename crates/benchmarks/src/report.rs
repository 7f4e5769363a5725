//! Rows of the result table, the markdown rendering and the JSON document.
//!
//! A row is one figure of one workload: ours, the baseline it is compared
//! with in the same run (when there is one), their ratio, the target and
//! whether it was met. Rows with nothing to meet (reference figures such as
//! `redis-benchmark`) are `info`; a workload that could not run is one
//! `error` row; one that cannot run here yet is one `skipped` row.

use std::fmt::Write as _;
use std::time::Duration;

use serde::Serialize;

/// What a figure counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Unit {
    /// Operations per second.
    #[serde(rename = "ops/s")]
    PerSecond,
    /// A duration, in seconds.
    #[serde(rename = "s")]
    Seconds,
    /// A plain count.
    #[serde(rename = "count")]
    Count,
}

/// A number with its unit. In JSON, durations are in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Figure {
    pub(crate) value: f64,
    pub(crate) unit: Unit,
}

impl Figure {
    pub(crate) fn rate(per_second: f64) -> Self {
        Self {
            value: per_second,
            unit: Unit::PerSecond,
        }
    }

    pub(crate) fn time(d: Duration) -> Self {
        Self {
            value: d.as_secs_f64(),
            unit: Unit::Seconds,
        }
    }

    pub(crate) fn count(n: u64) -> Self {
        Self {
            value: to_f64(n),
            unit: Unit::Count,
        }
    }

    fn render(self) -> String {
        match self.unit {
            Unit::PerSecond => format!("{}/s", thousands(self.value)),
            Unit::Seconds => human_duration(self.value),
            Unit::Count => thousands(self.value),
        }
    }
}

/// Whether a row's target was met.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub(crate) enum Status {
    Met,
    NotMet,
    /// A reference figure, with no target of its own.
    Info,
    /// The workload cannot run here yet; the reason says why.
    Skipped(String),
    /// The workload failed; the reason says how.
    Error(String),
}

impl Status {
    pub(crate) fn met_if(condition: bool) -> Self {
        if condition { Self::Met } else { Self::NotMet }
    }
}

/// One line of the table.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Row {
    /// Stable identifier, `<workload id>.<figure>`.
    pub(crate) id: String,
    /// What was measured, for people.
    pub(crate) workload: String,
    pub(crate) ours: Option<Figure>,
    pub(crate) baseline: Option<Figure>,
    /// How ours compares with the baseline, in the direction the target is
    /// stated (higher is better unless the target says otherwise).
    pub(crate) ratio: Option<f64>,
    pub(crate) target: String,
    #[serde(flatten)]
    pub(crate) status: Status,
    /// Supporting figures (percentiles, counts), information only.
    pub(crate) note: String,
    /// Whether the run may succeed with this row skipped (a workload that
    /// cannot run here yet, a reference tool that is not installed).
    #[serde(skip)]
    pub(crate) may_skip: bool,
}

impl Row {
    /// A row with our figure and nothing else yet.
    pub(crate) fn new(id: &str, workload: &str, ours: Figure) -> Self {
        Self {
            id: id.to_owned(),
            workload: workload.to_owned(),
            ours: Some(ours),
            baseline: None,
            ratio: None,
            target: String::new(),
            status: Status::Info,
            note: String::new(),
            may_skip: false,
        }
    }

    pub(crate) fn baseline(mut self, baseline: Figure, ratio: f64) -> Self {
        self.baseline = Some(baseline);
        self.ratio = Some(ratio);
        self
    }

    /// A figure printed beside ours for comparison, without a ratio (the
    /// target is absolute).
    pub(crate) fn beside(mut self, baseline: Figure) -> Self {
        self.baseline = Some(baseline);
        self
    }

    pub(crate) fn target(mut self, target: &str, status: Status) -> Self {
        target.clone_into(&mut self.target);
        self.status = status;
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.note = note.into();
        self
    }

    /// The row of a workload that failed.
    pub(crate) fn error(id: &str, workload: &str, reason: String) -> Self {
        Self {
            id: format!("{id}.error"),
            workload: workload.to_owned(),
            ours: None,
            baseline: None,
            ratio: None,
            target: String::new(),
            status: Status::Error(reason),
            note: String::new(),
            may_skip: false,
        }
    }

    /// The row of a workload, or a reference figure, that cannot be had
    /// here (yet); it does not fail the run.
    pub(crate) fn skipped(id: &str, workload: &str, target: &str, reason: &str) -> Self {
        Self {
            id: id.to_owned(),
            workload: workload.to_owned(),
            ours: None,
            baseline: None,
            ratio: None,
            target: target.to_owned(),
            status: Status::Skipped(reason.to_owned()),
            note: String::new(),
            may_skip: true,
        }
    }

    /// Whether the row is what CI needs: a measured row with a finite
    /// figure of ours (and of its baseline, if compared), or a skip that is
    /// allowed.
    pub(crate) fn acceptable(&self) -> bool {
        self.has_numbers() || (self.may_skip && matches!(self.status, Status::Skipped(_)))
    }

    /// Whether the row carries the numbers its status promises.
    pub(crate) fn has_numbers(&self) -> bool {
        let finite = |f: &Option<Figure>| f.is_some_and(|f| f.value.is_finite());
        match self.status {
            Status::Met | Status::NotMet | Status::Info => {
                finite(&self.ours)
                    && (self.baseline.is_none() || finite(&self.baseline))
                    && self.ratio.is_none_or(f64::is_finite)
            }
            Status::Skipped(_) | Status::Error(_) => false,
        }
    }
}

/// The markdown table of `rows`.
pub(crate) fn markdown(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | ours | baseline | ratio | target | met | notes |\n\
         |---|---:|---:|---:|---|---|---|\n",
    );
    for row in rows {
        let figure = |f: Option<Figure>| f.map_or_else(|| "-".to_owned(), Figure::render);
        let ratio = row
            .ratio
            .map_or_else(|| "-".to_owned(), |r| format!("{r:.2}x"));
        let met = match &row.status {
            Status::Met => "yes".to_owned(),
            Status::NotMet => "**NO**".to_owned(),
            Status::Info => "info".to_owned(),
            Status::Skipped(reason) => format!("skipped: {reason}"),
            Status::Error(reason) => format!("**ERROR**: {reason}"),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            cell(&row.workload),
            figure(row.ours),
            figure(row.baseline),
            ratio,
            cell(&row.target),
            cell(&met),
            cell(&row.note),
        );
    }
    out
}

/// Table cells cannot hold `|` or line breaks.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `1234567.8` as `1,234,568`; below 100, two decimals.
fn thousands(value: f64) -> String {
    if !value.is_finite() {
        return value.to_string();
    }
    if value.abs() < 100.0 && value.fract() != 0.0 {
        return format!("{value:.2}");
    }
    let digits = format!("{:.0}", value.abs());
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    if value < 0.0 {
        grouped.insert(0, '-');
    }
    grouped
}

/// Seconds in the unit that keeps three significant digits readable.
pub(crate) fn human_duration(secs: f64) -> String {
    if !secs.is_finite() {
        return secs.to_string();
    }
    if secs >= 1.0 {
        format!("{secs:.2} s")
    } else if secs >= 1e-3 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{:.2} µs", secs * 1e6)
    }
}

/// A count as a float, for rates and ratios. Counts here stay far below
/// 2^52, where the conversion would start to round.
#[allow(clippy::cast_precision_loss)]
pub(crate) fn to_f64(n: u64) -> f64 {
    n as f64
}

/// Operations per second.
pub(crate) fn per_second(ops: u64, elapsed: Duration) -> f64 {
    to_f64(ops) / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Figures render in the unit a reader expects.
    #[test]
    fn figures_render_with_thousands_separators_and_time_units() {
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1.0), "1");
        assert_eq!(thousands(0.25), "0.25");
        assert_eq!(human_duration(1.5), "1.50 s");
        assert_eq!(human_duration(0.0015), "1.50 ms");
        assert_eq!(human_duration(0.000_001_5), "1.50 µs");
    }

    // A measured row needs finite numbers; skipped and failed rows have none.
    #[test]
    fn numbers_are_required() {
        let row = Row::new("a.b", "a", Figure::rate(10.0)).target("x", Status::Met);
        assert!(row.has_numbers());
        let nan = Row::new("a.b", "a", Figure::rate(f64::NAN));
        assert!(!nan.has_numbers());
        let no_baseline =
            Row::new("a.b", "a", Figure::rate(1.0)).baseline(Figure::rate(0.0), f64::INFINITY);
        assert!(!no_baseline.has_numbers());
        let skipped = Row::skipped("h", "h", "t", "not yet");
        assert!(!skipped.has_numbers() && skipped.acceptable());
        let failed = Row::error("h", "h", "boom".to_owned());
        assert!(!failed.has_numbers() && !failed.acceptable());
    }

    // The table escapes cell separators and marks misses loudly.
    #[test]
    fn markdown_table_escapes_separators_and_flags_missed_targets() {
        let rows = [Row::new("a.b", "a | b", Figure::count(1))
            .baseline(Figure::count(2), 0.5)
            .target(">= 1x", Status::NotMet)];
        let table = markdown(&rows);
        assert!(
            table.contains("| a \\| b | 1 | 2 | 0.50x | >= 1x | **NO** |"),
            "{table}"
        );
    }
}
