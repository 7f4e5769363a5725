//! The test-name check of `cargo xtask ci`: `cargo test` and nextest print a
//! failing test's name, not its comment, so a name must say what the test
//! proves. One or two words (`errors`, `full_stack`) cannot; this check fails
//! on any test function whose name has fewer than three words.

use std::fs;
use std::path::{Path, PathBuf};

use crate::cmd::{Result, workspace_root};

/// Fewer words than this cannot say what a test proves.
const MIN_WORDS: usize = 3;

/// The folders holding the workspace's code.
const ROOTS: [&str; 3] = ["crates", "services", "xtask"];

/// Fails listing every `#[test]`/`#[tokio::test]` function, anywhere in the
/// workspace's code, whose name has fewer than [`MIN_WORDS`] words.
pub(crate) fn check() -> Result {
    println!("$ (check) test names have at least {MIN_WORDS} words");
    let root = workspace_root();
    let mut files = Vec::new();
    for dir in ROOTS {
        files_under(&root.join(dir), &is_rust, &mut files)?;
    }
    files.sort();
    let mut offenders = Vec::new();
    for file in &files {
        let text = fs::read_to_string(file).map_err(|e| format!("read {}: {e}", file.display()))?;
        let shown = file.strip_prefix(&root).unwrap_or(file).display();
        for (line, name) in short_test_names(&text) {
            offenders.push(format!("  {shown}:{line}: {name}"));
        }
    }
    if offenders.is_empty() {
        return Ok(());
    }
    Err(format!(
        "{} test name(s) with fewer than {MIN_WORDS} words; rename each to say what it proves \
         (`bad_input_answers_400_with_the_json_error_shape`, not `errors`):\n{}",
        offenders.len(),
        offenders.join("\n")
    ))
}

/// Whether `path` is a Rust source file.
fn is_rust(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "rs")
}

/// Every file under `dir` that `keep` accepts, skipping build output
/// (also the walk of `tidy.rs`).
pub(crate) fn files_under(
    dir: &Path,
    keep: &dyn Fn(&Path) -> bool,
    out: &mut Vec<PathBuf>,
) -> Result {
    let entries = fs::read_dir(dir).map_err(|e| format!("list {}: {e}", dir.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("list {}: {e}", dir.display()))?
            .path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            files_under(&path, keep, out)?;
        } else if keep(&path) {
            out.push(path);
        }
    }
    Ok(())
}

/// The (1-based line, name) of each test function in `source` whose name is
/// too short. A test is a `fn` after a `#[test]` or `#[tokio::test...]`
/// attribute, with other attributes and comments allowed in between.
fn short_test_names(source: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut in_test = false;
    for (index, line) in source.lines().enumerate() {
        let line = line.trim_start();
        if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
            in_test = true;
            continue;
        }
        if !in_test || line.starts_with("#[") || line.starts_with("//") || line.is_empty() {
            continue;
        }
        in_test = false;
        let Some(name) = fn_name(line) else {
            continue;
        };
        if name.split('_').filter(|w| !w.is_empty()).count() < MIN_WORDS {
            found.push((index + 1, name.to_owned()));
        }
    }
    found
}

/// The name in `[pub ][async ]fn name(...`.
fn fn_name(line: &str) -> Option<&str> {
    let after = line.split_once("fn ")?.1;
    let end = after
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(after.len());
    Some(&after[..end]).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    // One- and two-word test names are reported with their lines, for both
    // test attributes; three words or more pass.
    #[test]
    fn one_and_two_word_test_names_are_reported_with_their_lines() {
        let source = "#[test]\nfn errors() {}\n\n#[tokio::test(flavor = \"multi_thread\")]\nasync fn full_stack() {}\n#[test]\nfn bad_input_is_refused() {}\n";
        assert_eq!(
            short_test_names(source),
            vec![(2, "errors".to_owned()), (5, "full_stack".to_owned())]
        );
    }

    // Attributes and comments between the test attribute and the function
    // are skipped; functions that are not tests are not checked.
    #[test]
    fn attributes_and_comments_before_the_fn_are_skipped() {
        let source = "#[tokio::test]\n#[allow(clippy::x)]\n// why\npub(crate) async fn short() {}\nfn helper() {}\n";
        assert_eq!(short_test_names(source), vec![(4, "short".to_owned())]);
    }

    // The workspace as it stands passes, so CI starts green.
    #[test]
    fn the_workspace_has_no_short_test_names() {
        check().unwrap();
    }
}
