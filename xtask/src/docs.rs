//! `cargo xtask docs`: README.md and ARCHITECTURE.md cannot drift from the
//! code unnoticed.
//!
//! Two checks, both run by `cargo xtask ci`:
//! - every file or folder path the documents name (in backticks or as a
//!   link target) exists in the repository. A path may be written short
//!   (`store.rs`, `redis-cache/src/store.rs`): it must then be the tail of
//!   some tracked path, so a renamed or deleted file is caught while the
//!   documents stay readable;
//! - every environment variable README.md names is read by the code, and
//!   every variable the code reads is in README.md.

use std::collections::BTreeSet;
use std::process::Command;

use crate::cmd::{Result, workspace_root};

/// The documents whose paths are checked.
const DOCUMENTS: &[&str] = &["README.md", "ARCHITECTURE.md"];

/// Where the variables the code reads are looked for: the sources of every
/// crate, service and xtask (not their tests: a test may set anything).
const SOURCE_DIRS: &[&str] = &["crates", "services", "xtask"];

/// Variables that belong to other programs (node, cargo): README.md may
/// name them without our code reading them, and the reverse.
/// `REDIS_PASWORD` is README's example of a misspelt variable;
/// `SESSION_TOKEN` is what `cargo xtask schemathesis` hands schemathesis.
const FOREIGN_VARIABLES: &[&str] = &[
    "NODE_PATH",
    "SESSION_TOKEN",
    "CARGO_MANIFEST_DIR",
    "CARGO_PKG_VERSION",
    "CARGO_TARGET_DIR",
    // Set by cargo for xtask; xtask keeps them from the cargo it runs.
    "CARGO_BIN_NAME",
    "CARGO_CRATE_NAME",
    "CARGO_PRIMARY_PACKAGE",
    "HTTP_PROXY",
    "REDIS_PASWORD",
];

/// Paths the documents name in other projects' sources.
const FOREIGN_PATHS: &[&str] = &["router/clustered.rs"];

/// Where generated files go: the documents name what a command writes
/// there, which a clean clone does not hold yet.
const GENERATED: &str = "target/";

/// Runs both checks, naming every problem found.
pub(crate) fn check() -> Result {
    let root = workspace_root();
    let tracked = tracked_paths()?;
    let mut problems = Vec::new();
    for document in DOCUMENTS {
        let text = std::fs::read_to_string(root.join(document))
            .map_err(|e| format!("cannot read {document}: {e}"))?;
        for path in named_paths(&text) {
            if !FOREIGN_PATHS.contains(&path.as_str()) && !names_a_tracked_path(&path, &tracked) {
                problems.push(format!("{document} names `{path}`, which does not exist"));
            }
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md"))
        .map_err(|e| format!("cannot read README.md: {e}"))?;
    let documented = named_variables(&readme);
    let read = variables_read_by_the_code(&tracked)?;
    for name in documented.difference(&read) {
        if !FOREIGN_VARIABLES.contains(&name.as_str()) {
            problems.push(format!("README.md names `{name}`, which no code reads"));
        }
    }
    for name in read.difference(&documented) {
        if FOREIGN_VARIABLES.contains(&name.as_str()) {
            continue;
        }
        problems.push(format!(
            "the code reads `{name}`, which README.md does not document"
        ));
    }
    if problems.is_empty() {
        println!("docs: every path and variable the documents name is real");
        Ok(())
    } else {
        Err(format!(
            "the documents drifted:\n  {}",
            problems.join("\n  ")
        ))
    }
}

/// Every file git tracks, and every folder holding one (as `dir/`).
fn tracked_paths() -> Result<BTreeSet<String>> {
    let output = Command::new("git")
        .args(["ls-files"])
        .current_dir(workspace_root())
        .output()
        .map_err(|e| format!("could not run git ls-files: {e}"))?;
    if !output.status.success() {
        return Err("git ls-files failed".to_owned());
    }
    let mut paths = BTreeSet::new();
    for file in String::from_utf8_lossy(&output.stdout).lines() {
        let mut end = 0;
        while let Some(slash) = file[end..].find('/') {
            end += slash + 1;
            paths.insert(file[..end].to_owned());
        }
        paths.insert(file.to_owned());
    }
    Ok(paths)
}

/// Whether `named` is a tracked path (a folder with or without its final
/// `/`), or the tail of one at a `/` boundary.
fn names_a_tracked_path(named: &str, tracked: &BTreeSet<String>) -> bool {
    let named = named.trim_start_matches("./");
    let folder = format!("{}/", named.trim_end_matches('/'));
    [named, folder.as_str()].iter().any(|named| {
        tracked
            .iter()
            .any(|path| path == named || path.ends_with(&format!("/{named}")))
    })
}

/// The text between each pair of backticks (a code span), and the target of
/// each Markdown link.
fn spans(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        let mut parts = line.split('`');
        parts.next();
        while let (Some(inside), Some(_)) = (parts.next(), parts.next()) {
            found.push(inside);
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            rest = &rest[start + 2..];
            if let Some(end) = rest.find(')') {
                found.push(&rest[..end]);
                rest = &rest[end..];
            }
        }
    }
    found
}

/// File extensions that make a code span a file name.
const FILE_EXTENSIONS: &[&str] = &[
    ".rs", ".md", ".toml", ".yml", ".yaml", ".json", ".sh", ".js", ".ts",
];

/// The code spans and link targets that look like repository paths: a file
/// name with a known extension, or a relative path with a `/`. Spans that
/// are patterns, URLs, HTTP routes or commands are not paths.
fn named_paths(text: &str) -> BTreeSet<String> {
    spans(text)
        .into_iter()
        .map(|span| span.split('#').next().unwrap_or(span))
        .map(|span| match span.rsplit_once(':') {
            // `crates/x/src/a.rs:12` names a line of a file.
            Some((file, line)) if line.parse::<u32>().is_ok() => file,
            _ => span,
        })
        .filter(|span| {
            !span.is_empty()
                && !span.contains(|c: char| c.is_whitespace() || "{}<>*$:=,'\"()|".contains(c))
                && !span.starts_with('/')
                && !span.starts_with(['-', '@'])
                && !span.starts_with(GENERATED)
                && !span.contains("..")
                && (FILE_EXTENSIONS.iter().any(|ext| span.ends_with(ext))
                    || (span.contains('/') && !span.contains("::")))
        })
        .map(str::to_owned)
        .collect()
}

/// Whether `word` has the shape of our environment variables:
/// `PREFIX_REST`, capitals, digits and underscores.
fn is_variable_name(word: &str) -> bool {
    word.len() > 3
        && word.contains('_')
        && word.starts_with(|c: char| c.is_ascii_uppercase())
        && !word.ends_with('_')
        && word
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The variables a document names in code spans.
fn named_variables(text: &str) -> BTreeSet<String> {
    spans(text)
        .into_iter()
        .map(|span| span.split('=').next().unwrap_or(span))
        .filter(|span| is_variable_name(span))
        .map(str::to_owned)
        .collect()
}

/// The string literals of the tracked sources (tests excluded) that have
/// the shape of a variable name: what the code reads from the environment.
fn variables_read_by_the_code(tracked: &BTreeSet<String>) -> Result<BTreeSet<String>> {
    let root = workspace_root();
    let mut read = BTreeSet::new();
    let sources = tracked.iter().filter(|path| {
        path.ends_with(".rs")
            && SOURCE_DIRS.iter().any(|dir| path.starts_with(dir))
            && path.contains("/src/")
            && !path.contains("/tests/")
    });
    for path in sources {
        let text = std::fs::read_to_string(root.join(path))
            .map_err(|e| format!("cannot read {path}: {e}"))?;
        read.extend(
            string_literals(&text)
                .filter(|s| is_variable_name(s))
                .map(str::to_owned),
        );
    }
    Ok(read)
}

/// The contents of the simple `"..."` literals of Rust source, skipping
/// comments (a rustdoc line may name a variable it does not read) and the
/// unit tests at the end of a file (they make up misspelt names on purpose).
fn string_literals(source: &str) -> impl Iterator<Item = &str> {
    source
        .lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .filter(|line| !line.trim_start().starts_with("//"))
        .flat_map(|line| line.split('"').skip(1).step_by(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_read_from_code_spans_and_links_but_not_from_patterns_or_routes() {
        let text = "see `crates/a/src/b.rs` and `store.rs` (`unlink_on`), [x](docs/y.md#part),\n\
                    `tenant:{t}:*`, `/v1/health`, `cargo xtask ci`, `tests/interop/`, \
                    `a.rs:12`, `fred::Pool`, `target/bench/x.json`, `@scope/pkg`\n```\nnot/a/span.rs\n```\n";
        let paths = named_paths(text);
        let expected: BTreeSet<String> = [
            "crates/a/src/b.rs",
            "store.rs",
            "docs/y.md",
            "tests/interop/",
            "a.rs",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(paths, expected);
    }

    #[test]
    fn a_short_path_must_be_the_tail_of_a_tracked_path_at_a_slash() {
        let tracked: BTreeSet<String> = ["crates/", "crates/a/", "crates/a/src/store.rs"]
            .into_iter()
            .map(str::to_owned)
            .collect();
        assert!(names_a_tracked_path("store.rs", &tracked));
        assert!(names_a_tracked_path("a/src/store.rs", &tracked));
        assert!(names_a_tracked_path("crates/a/", &tracked));
        assert!(names_a_tracked_path("crates/a", &tracked));
        assert!(!names_a_tracked_path("ore.rs", &tracked));
        assert!(!names_a_tracked_path("b/src/store.rs", &tracked));
    }

    #[test]
    fn variables_are_read_from_code_spans_and_from_literals_outside_comments() {
        let readme =
            "| `REDIS_URL` | unset |\nset `LOG_FORMAT=json`; `HTTP_` and `PING` are not variables";
        let named = named_variables(readme);
        assert_eq!(
            named.into_iter().collect::<Vec<_>>(),
            vec!["LOG_FORMAT".to_owned(), "REDIS_URL".to_owned()]
        );
        let source =
            "// reads \"CACHE_DOC_ONLY\"\nlet x = env.get(\"CACHE_L1_TTL_SECS\", \"900\");";
        let literals: Vec<&str> = string_literals(source)
            .filter(|s| is_variable_name(s))
            .collect();
        assert_eq!(literals, vec!["CACHE_L1_TTL_SECS"]);
    }
}
