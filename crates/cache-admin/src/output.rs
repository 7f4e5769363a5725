//! Where results go: stdout, as text for people or one JSON document for
//! scripts (`--json`). Diagnostics, progress and resume hints go to stderr,
//! so that a script reading stdout gets only the result.

use std::io::Write;

use serde::Serialize;

use crate::error::AdminError;

/// Text or JSON output on stdout.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Output {
    json: bool,
}

impl Output {
    /// JSON when `json`, text otherwise.
    pub(crate) fn new(json: bool) -> Self {
        Self { json }
    }

    /// Whether results are JSON.
    pub(crate) fn is_json(self) -> bool {
        self.json
    }

    /// Writes `value` as one line of JSON, or `text` (its text form).
    pub(crate) fn result<T: Serialize>(self, value: &T, text: &str) -> Result<(), AdminError> {
        let mut stdout = std::io::stdout().lock();
        if self.json {
            serde_json::to_writer(&mut stdout, value).map_err(std::io::Error::other)?;
            stdout.write_all(b"\n")?;
        } else {
            stdout.write_all(text.as_bytes())?;
            if !text.ends_with('\n') {
                stdout.write_all(b"\n")?;
            }
        }
        stdout.flush()?;
        Ok(())
    }
}

/// A line for the operator on stderr (hints, resume tokens), whatever the
/// output format.
pub(crate) fn note(line: &str) {
    let mut stderr = std::io::stderr().lock();
    // Nothing useful can be done when stderr itself is gone.
    let _ = writeln!(stderr, "{line}");
}
