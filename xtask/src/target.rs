//! Where cargo puts what it builds, and the one release build that the
//! soak and the benchmarks share.

use std::path::PathBuf;
use std::process::Stdio;

use crate::cmd::{Result, run, workspace_root};

/// The packages of every release binary an xtask runs. They are always
/// built together, in one cargo invocation: cargo unifies features over the
/// packages it is asked for, so building them one `-p` at a time resolves
/// different feature sets and compiles much of the dependency tree twice.
const RELEASE_PACKAGES: [&str; 4] = ["auth-broker", "main-api", "soak", "benchmarks"];

/// Builds the release binaries (services, soak, benchmark harness) and
/// returns the directory that holds them.
pub(crate) fn release_binaries() -> Result<PathBuf> {
    let mut args = vec!["build", "--release"];
    for package in RELEASE_PACKAGES {
        args.extend(["-p", package]);
    }
    run("cargo", &args)?;
    Ok(dir()?.join("release"))
}

/// Cargo's target directory for this workspace, as `cargo metadata` reports
/// it: `CARGO_TARGET_DIR` and `build.target-dir` included.
pub(crate) fn dir() -> Result<PathBuf> {
    let output = crate::cmd::command("cargo")
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(workspace_root())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("could not run cargo metadata: {e}"))?;
    if !output.status.success() {
        return Err(format!("cargo metadata failed ({})", output.status));
    }
    let json = String::from_utf8_lossy(&output.stdout);
    json_string_field(&json, "target_directory")
        .map(PathBuf::from)
        .ok_or_else(|| "cargo metadata names no target_directory".to_owned())
}

/// The value of the string field `"name":"..."` in `json`, unescaped (xtask
/// has no JSON parser; cargo writes this field once, at the top level).
fn json_string_field(json: &str, name: &str) -> Option<String> {
    let start = json.find(&format!("\"{name}\":\""))? + name.len() + 4;
    let mut value = String::new();
    let mut chars = json[start..].chars();
    loop {
        match chars.next()? {
            '"' => return Some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                't' => value.push('\t'),
                'u' => {
                    let code: String = chars.by_ref().take(4).collect();
                    value.push(char::from_u32(u32::from_str_radix(&code, 16).ok()?)?);
                }
                other => value.push(other),
            },
            c => value.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The target directory is read from cargo metadata's JSON, escapes and all.
    #[test]
    fn the_target_directory_is_read_from_cargo_metadata() {
        let json = r#"{"packages":[],"target_directory":"/tmp/a \"b\"\\c","version":1}"#;
        assert_eq!(
            json_string_field(json, "target_directory").as_deref(),
            Some(r#"/tmp/a "b"\c"#)
        );
        assert_eq!(json_string_field(json, "workspace_root"), None);
    }
}
