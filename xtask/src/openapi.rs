//! `cargo xtask openapi [--check]`: the services' OpenAPI documents,
//! committed under `docs/openapi/`, generated from the code.
//!
//! Each service binary prints its document when given the argument
//! `openapi` (nothing is started, no configuration read). The build is the
//! one `cargo xtask up` makes (`cargo build -p auth-broker -p main-api`),
//! so in CI the two share their artifacts. Without `--check` the files are
//! written; with it, a file that differs from what the code generates fails
//! the command, naming the file.

use std::path::Path;
use std::process::Command;

use crate::cmd::{Result, run, workspace_root};
use crate::target::dir as target_dir;

/// The services, and where their documents are committed.
const SERVICES: [(&str, &str); 2] = [
    ("auth-broker", "docs/openapi/auth-broker.json"),
    ("main-api", "docs/openapi/main-api.json"),
];

pub(crate) fn openapi(args: &[String]) -> Result {
    let check = args.iter().any(|a| a == "--check");
    if let Some(other) = args.iter().find(|a| *a != "--check") {
        return Err(format!(
            "openapi: unknown argument {other:?} (only --check)"
        ));
    }
    run("cargo", &["build", "-p", "auth-broker", "-p", "main-api"])?;
    let bin = target_dir()?.join("debug");
    let root = workspace_root();
    for (service, file) in SERVICES {
        let generated = generate(&bin.join(service))?;
        let path = root.join(file);
        if check {
            compare(&path, file, service, &generated)?;
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("could not create {}: {e}", dir.display()))?;
            }
            std::fs::write(&path, &generated)
                .map_err(|e| format!("could not write {file}: {e}"))?;
            println!("wrote {file}");
        }
    }
    if check {
        println!("docs/openapi/ matches what the services generate");
    }
    Ok(())
}

/// The document `binary openapi` prints.
fn generate(binary: &Path) -> Result<String> {
    let output = Command::new(binary)
        .arg("openapi")
        .output()
        .map_err(|e| format!("could not run {}: {e}", binary.display()))?;
    if !output.status.success() {
        return Err(format!(
            "`{} openapi` failed ({}): {}",
            binary.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    String::from_utf8(output.stdout)
        .map_err(|_| format!("`{} openapi` printed invalid UTF-8", binary.display()))
}

/// Fails unless the committed `file` holds exactly `generated`.
fn compare(path: &Path, file: &str, service: &str, generated: &str) -> Result {
    let fix = "run `cargo xtask openapi` and commit the result";
    let committed = std::fs::read_to_string(path)
        .map_err(|e| format!("{file}: cannot read it ({e}); {fix}"))?;
    match first_difference(&committed, generated) {
        None => Ok(()),
        Some(line) => Err(format!(
            "{file} differs from the document {service} generates (first at line {line}): \
             the HTTP contract changed without its committed document; {fix}"
        )),
    }
}

/// The first line (1-based) where `a` and `b` differ, if they do.
fn first_difference(a: &str, b: &str) -> Option<usize> {
    if a == b {
        return None;
    }
    let mut lines = a.split('\n').zip(b.split('\n'));
    Some(match lines.position(|(x, y)| x != y) {
        Some(at) => at + 1,
        // One is the other plus more lines.
        None => a.split('\n').count().min(b.split('\n').count()) + 1,
    })
}

#[cfg(test)]
mod tests {
    use super::first_difference;

    // The message names where the committed file and the code part ways.
    #[test]
    fn the_first_differing_line_is_reported() {
        assert_eq!(first_difference("a\nb\n", "a\nb\n"), None);
        assert_eq!(first_difference("a\nb\n", "a\nc\n"), Some(2));
        assert_eq!(first_difference("a\n", "a\nb\n"), Some(2));
        assert_eq!(first_difference("a", "a\n"), Some(2));
    }
}
