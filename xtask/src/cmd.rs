//! Running programs, with their command line echoed.

use std::path::PathBuf;
use std::process::Command;

/// An error of an xtask step, as text for the user.
pub(crate) type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root (xtask lives one level below it).
pub(crate) fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_owned()
}

/// A command for `program` without the variables `cargo run` set for xtask
/// itself (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `CARGO_CRATE_NAME`, ...).
///
/// Passed on to a cargo that xtask runs, they reach build scripts: some
/// (ring's) declare them as inputs, so every build under xtask saw other
/// values than a plain `cargo build` and each recompiled ring, rustls, fred
/// and everything above them after the other.
pub(crate) fn command(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut command = Command::new(program);
    for (name, _) in std::env::vars_os() {
        if is_xtask_own(&name.to_string_lossy()) {
            command.env_remove(&name);
        }
    }
    command
}

/// Whether `name` is a variable cargo sets for the package being run.
fn is_xtask_own(name: &str) -> bool {
    name.starts_with("CARGO_PKG_")
        || name.starts_with("CARGO_MANIFEST_")
        || matches!(
            name,
            "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
        )
}

/// Runs `program args...` in the workspace root, failing unless it exits 0.
pub(crate) fn run(program: &str, args: &[&str]) -> Result {
    println!("$ {program} {}", args.join(" "));
    let status = command(program)
        .args(args)
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// [`run`] with extra environment variables.
pub(crate) fn run_with_env(program: &str, args: &[&str], env: &[(&str, &str)]) -> Result {
    let shown: Vec<String> = env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    println!("$ {} {program} {}", shown.join(" "), args.join(" "));
    let status = command(program)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not run {program}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed ({status})", args.join(" ")))
    }
}

/// Whether `program args...` runs and exits 0 (output discarded).
pub(crate) fn succeeds(program: &str, args: &[&str]) -> bool {
    command(program)
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `program` is on PATH.
pub(crate) fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // What cargo sets for xtask is not passed on; what the user set is.
    #[test]
    fn only_the_run_packages_variables_are_dropped() {
        for own in [
            "CARGO_PKG_NAME",
            "CARGO_PKG_VERSION",
            "CARGO_MANIFEST_DIR",
            "CARGO_MANIFEST_PATH",
            "CARGO_CRATE_NAME",
            "CARGO_BIN_NAME",
            "CARGO_PRIMARY_PACKAGE",
        ] {
            assert!(is_xtask_own(own), "{own}");
        }
        for kept in [
            "CARGO",
            "CARGO_TARGET_DIR",
            "CARGO_HOME",
            "RUSTFLAGS",
            "PATH",
        ] {
            assert!(!is_xtask_own(kept), "{kept}");
        }
    }
}
