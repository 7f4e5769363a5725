//! What a part found: figures as Markdown tables (readable in a terminal,
//! pasteable into RELIABILITY.md) and the violations that fail the run.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

/// Violations kept in full; beyond this only counted.
const KEEP: usize = 50;

/// Everything that makes the run fail, as it happens.
#[derive(Debug)]
pub(crate) struct Violations {
    started: Instant,
    inner: Mutex<(u64, Vec<String>)>,
}

impl Violations {
    pub(crate) fn new(started: Instant) -> Self {
        Self {
            started,
            inner: Mutex::new((0, Vec::new())),
        }
    }

    /// Records (and prints at once, for the first few) one violation.
    pub(crate) fn add(&self, what: impl Into<String>) {
        let what = format!(
            "[{:.3} s] {}",
            self.started.elapsed().as_secs_f64(),
            what.into()
        );
        let mut inner = self.inner.lock().expect("violations lock");
        inner.0 += 1;
        if inner.1.len() < KEEP {
            eprintln!("VIOLATION {what}");
            inner.1.push(what);
        }
    }

    pub(crate) fn count(&self) -> u64 {
        self.inner.lock().expect("violations lock").0
    }

    pub(crate) fn list(&self) -> Vec<String> {
        self.inner.lock().expect("violations lock").1.clone()
    }
}

/// One table of figures.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub(crate) title: String,
    pub(crate) header: Vec<String>,
    pub(crate) rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(title: &str, header: &[&str]) -> Self {
        Self {
            title: title.to_owned(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    fn markdown(&self) -> String {
        let mut out = format!("#### {}\n\n", self.title);
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        out.push_str(&line(&self.header));
        out.push_str(&line(
            &self
                .header
                .iter()
                .map(|_| "---".to_owned())
                .collect::<Vec<_>>(),
        ));
        for row in &self.rows {
            out.push_str(&line(row));
        }
        out
    }
}

/// A part's figures and verdict.
#[derive(Debug)]
pub(crate) struct PartReport {
    pub(crate) name: String,
    pub(crate) tables: Vec<Table>,
    pub(crate) violations: u64,
    pub(crate) violation_list: Vec<String>,
}

impl PartReport {
    pub(crate) fn passed(&self) -> bool {
        self.violations == 0
    }

    pub(crate) fn markdown(&self) -> String {
        let mut out = format!("### {}\n\n", self.name);
        for table in &self.tables {
            out.push_str(&table.markdown());
            out.push('\n');
        }
        if self.violations == 0 {
            out.push_str("**Verdict: pass** (no violation)\n");
        } else {
            let _ = writeln!(out, "**Verdict: FAIL** ({} violations)\n", self.violations);
            for v in &self.violation_list {
                let _ = writeln!(out, "- {v}");
            }
        }
        out
    }
}
