//! `cargo xtask tidy`: the architecture invariants that a text search can
//! check (ARCHITECTURE.md, "Invariants"), as rust-analyzer's `tidy` test
//! does. Run by `cargo xtask ci`.
//!
//! - **fred stays behind the Redis-access layer.** Only the files in
//!   [`FRED_ALLOWED`] name `fred` in code, and only the crates in
//!   [`FRED_ALLOWED_CRATES`] declare it in their manifest: a service or
//!   service-kit that names fred depends on a client library's types that
//!   the libraries exist to hide (and that change with every fred release).
//! - **redis-pubsub is a transport**: its code names no invalidation
//!   type, nothing of shared-types but the glob matcher, and no
//!   invalidation channel (`transport.rs`).
//! - **The documents name real paths**, and README.md's variables are the
//!   ones the code reads (`docs.rs`).
//! - **Test names say what they prove** (`test_names.rs`).

use std::fs;
use std::path::Path;

use crate::cmd::{Result, workspace_root};

/// Path prefixes (from the workspace root) whose code may name fred:
/// - redis-connection is the Redis-access layer;
/// - redis-cache's and redis-pubsub's Redis-access files, one by one, so
///   that a new file naming fred is a decision written here;
/// - the benchmarks, the soak and test-support measure or drive fred
///   directly (a plain fred client is the benchmarks' baseline);
/// - test code (`tests/`, `examples/`) may talk to Redis directly to check
///   what the libraries did.
const FRED_ALLOWED: &[&str] = &[
    "crates/redis-connection/",
    "crates/redis-cache/src/batched.rs",
    "crates/redis-cache/src/coherence/",
    "crates/redis-cache/src/counters.rs",
    "crates/redis-cache/src/delete_pattern.rs",
    "crates/redis-cache/src/index.rs",
    "crates/redis-cache/src/inspect.rs",
    "crates/redis-cache/src/lease.rs",
    "crates/redis-cache/src/members.rs",
    "crates/redis-cache/src/mset.rs",
    "crates/redis-cache/src/purge_jobs.rs",
    "crates/redis-cache/src/store.rs",
    "crates/redis-pubsub/src/home.rs",
    "crates/redis-pubsub/src/pubsub.rs",
    "crates/redis-pubsub/src/pump.rs",
    "crates/benchmarks/",
    "crates/soak/",
    "crates/test-support/",
];

/// Folders of test code, anywhere: tests may check Redis directly.
const TEST_FOLDERS: &[&str] = &["/tests/", "/examples/"];

/// The crates whose manifest may declare fred.
const FRED_ALLOWED_CRATES: &[&str] = &["crates/redis-connection/"];

/// The folders searched.
const ROOTS: &[&str] = &["crates", "services"];

/// Every tidy check; fails naming every violation.
pub(crate) fn tidy() -> Result {
    let mut problems = fred_boundary()?;
    problems.extend(crate::transport::check()?);
    if let Err(drift) = crate::docs::check() {
        problems.push(drift);
    }
    if let Err(names) = crate::test_names::check() {
        problems.push(names);
    }
    if problems.is_empty() {
        println!("tidy: every invariant holds");
        Ok(())
    } else {
        Err(format!("tidy:\n  {}", problems.join("\n  ")))
    }
}

/// Where fred is named outside [`FRED_ALLOWED`] (code) or
/// [`FRED_ALLOWED_CRATES`] (manifests).
fn fred_boundary() -> Result<Vec<String>> {
    println!("$ (check) fred is named only by the Redis-access files");
    let root = workspace_root();
    let mut found = Vec::new();
    let is_source = |path: &Path| {
        path.extension().is_some_and(|e| e == "rs")
            || path.file_name().is_some_and(|n| n == "Cargo.toml")
    };
    for dir in ROOTS {
        crate::test_names::files_under(&root.join(dir), &is_source, &mut found)?;
    }
    let mut files: Vec<String> = found
        .iter()
        .map(|path| {
            let relative = path.strip_prefix(&root).unwrap_or(path);
            relative.to_string_lossy().replace('\\', "/")
        })
        .collect();
    files.sort();
    let mut problems = Vec::new();
    for path in &files {
        let text = fs::read_to_string(root.join(path)).map_err(|e| format!("read {path}: {e}"))?;
        if path.ends_with("Cargo.toml") {
            if declares_fred(&text) && !FRED_ALLOWED_CRATES.iter().any(|p| path.starts_with(p)) {
                problems.push(format!(
                    "{path} declares fred; only redis-connection may (ARCHITECTURE.md, Invariants)"
                ));
            }
        } else if !fred_allowed(path) {
            for line in lines_naming_fred(&text) {
                problems.push(format!(
                    "{path}:{line} names fred outside the Redis-access files \
                     (ARCHITECTURE.md, Invariants; use the libraries' API)"
                ));
            }
        }
    }
    Ok(problems)
}

/// Whether the file at `path` (from the workspace root) may name fred.
fn fred_allowed(path: &str) -> bool {
    FRED_ALLOWED.iter().any(|allowed| path.starts_with(allowed))
        || TEST_FOLDERS.iter().any(|folder| path.contains(folder))
}

/// The 1-based lines of `source` that name fred in code: `fred::` as a
/// path, or `fred` imported from redis-connection (`use
/// redis_connection::{fred, ..}`). Comments, which often explain fred's
/// behaviour, do not count.
fn lines_naming_fred(source: &str) -> Vec<usize> {
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| {
            let code = line.split("//").next().unwrap_or("");
            let imported = code.trim_start().starts_with("use ")
                && code.contains("redis_connection")
                && has_word(code, "fred");
            imported || has_path_to(code, "fred")
        })
        .map(|(index, _)| index + 1)
        .collect()
}

/// Whether `code` holds the word `word` followed by `::`.
fn has_path_to(code: &str, word: &str) -> bool {
    word_starts(code, word).any(|end| code[end..].starts_with("::"))
}

/// Whether `code` holds `word` as a whole word.
pub(crate) fn has_word(code: &str, word: &str) -> bool {
    word_starts(code, word).next().is_some()
}

/// The end offsets of each whole-word occurrence of `word` in `code`.
fn word_starts<'a>(code: &'a str, word: &'a str) -> impl Iterator<Item = usize> + 'a {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    code.match_indices(word).filter_map(move |(at, _)| {
        let end = at + word.len();
        let before = code[..at].chars().next_back().is_some_and(is_ident);
        let after = code[end..].chars().next().is_some_and(is_ident);
        (!before && !after).then_some(end)
    })
}

/// Whether a manifest declares fred as a dependency.
fn declares_fred(manifest: &str) -> bool {
    manifest.lines().any(|line| {
        let line = line.trim_start();
        line.starts_with("fred ") || line.starts_with("fred.") || line.starts_with("fred=")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // A path through fred and an import of fred from redis-connection are
    // found with their lines; fred in a comment, or a word that merely
    // contains it, is not.
    #[test]
    fn fred_named_in_code_is_found_and_in_comments_is_not() {
        let source = "use redis_connection::fred::interfaces::KeysInterface;\n\
                      // fred queues a command when first polled\n\
                      let x = frederick::y;\n\
                      use redis_connection::{fred, RedisOp};\n\
                      let e: fred::error::Error = todo!(); // fred\n";
        assert_eq!(lines_naming_fred(source), vec![1, 4, 5]);
    }

    // A service file is outside the boundary; redis-connection, the
    // listed Redis-access files and test code are inside.
    #[test]
    fn services_may_not_name_fred_but_the_access_layer_and_tests_may() {
        assert!(!fred_allowed("services/auth-broker/src/sessions.rs"));
        assert!(!fred_allowed("crates/service-kit/src/error.rs"));
        assert!(!fred_allowed("crates/redis-cache/src/read.rs"));
        assert!(fred_allowed("crates/redis-connection/src/manager.rs"));
        assert!(fred_allowed("crates/redis-cache/src/store.rs"));
        assert!(fred_allowed("services/auth-broker/tests/it/main.rs"));
        assert!(fred_allowed("crates/benchmarks/src/l2.rs"));
    }

    // A manifest declaring fred, in either form, is found.
    #[test]
    fn a_manifest_declaring_fred_is_found() {
        assert!(declares_fred("[dependencies]\nfred.workspace = true\n"));
        assert!(declares_fred(
            "[dependencies]\nfred = { version = \"10\" }\n"
        ));
        assert!(!declares_fred(
            "[dependencies]\nredis-connection.workspace = true\n"
        ));
    }

    // The workspace as it stands keeps fred inside the boundary.
    #[test]
    fn the_workspace_keeps_fred_inside_the_redis_access_layer() {
        let problems = fred_boundary().unwrap();
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
