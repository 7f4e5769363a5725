//! Programs the checks need, installed where they are missing.

use crate::cmd::{Result, on_path, run, succeeds};

/// Tests need a real redis-server; install it where we can, else say how.
pub(crate) fn ensure_redis_server() -> Result {
    if std::env::var_os("REDIS_SERVER_BIN").is_some() {
        return Ok(());
    }
    ensure_from_apt(
        &["redis-server"],
        &["redis-server"],
        "redis-server is not installed: install it (apt-get install redis-server, \
         brew install redis) or set REDIS_SERVER_BIN",
    )
}

/// The interop tests (`services/main-api/tests/it/interop.rs`) play a
/// TypeScript service on ioredis: they need `node` and `npm` (they run
/// `npm ci` of `tests/interop/` themselves).
pub(crate) fn ensure_node() -> Result {
    ensure_from_apt(
        &["node", "npm"],
        &["nodejs", "npm"],
        "node and npm are not installed: the interop tests need Node.js 18 or newer \
         with npm (apt-get install nodejs npm, brew install node)",
    )
}

/// Prometheus and promtool (Debian's `prometheus` package): the shipped
/// alerting rules are checked and unit-tested with promtool, and a test
/// has a real Prometheus scrape the services
/// (`services/main-api/tests/it/prometheus.rs`).
pub(crate) fn ensure_prometheus() -> Result {
    ensure_from_apt(
        &["prometheus", "promtool"],
        &["prometheus"],
        "prometheus and promtool are not installed: the monitoring tests need them \
         (apt-get install prometheus, brew install prometheus)",
    )
}

/// Installs Debian `packages` with apt-get when one of `programs` is not on
/// `PATH` and apt is available; else fails with `missing` (how to install
/// them by hand).
fn ensure_from_apt(programs: &[&str], packages: &[&str], missing: &str) -> Result {
    // No programs to look for: the caller already knows the packages are missing.
    if !programs.is_empty() && programs.iter().all(|p| on_path(p)) {
        return Ok(());
    }
    if !on_path("apt-get") {
        return Err(missing.to_owned());
    }
    let what = if programs.is_empty() {
        packages.join(" ")
    } else {
        programs.join(" or ")
    };
    println!(
        "{what} missing: installing {} with apt-get",
        packages.join(" ")
    );
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(packages);
    run("apt-get", &args)
}

/// cargo-deny (licences, bans, sources), from crates.io where missing.
pub(crate) fn ensure_cargo_deny() -> Result {
    ensure_from_crates_io("cargo-deny", ("cargo", &["deny", "--version"]))
}

/// `cargo machete` (unused dependencies), from crates.io where missing. Its
/// version is asked of the binary itself: run as `cargo machete` from inside
/// `cargo run`, it takes its own name for a folder to analyse.
pub(crate) fn ensure_cargo_machete() -> Result {
    ensure_from_crates_io("cargo-machete", ("cargo-machete", &["--version"]))
}

/// `cargo install --locked --debug crate_name` unless `probe` (a program and
/// its arguments) runs and succeeds.
///
/// `--debug`: these tools are built once per fresh machine, inside CI's time
/// limit, and then run for seconds. An unoptimised build of cargo-deny took
/// 2 minutes on the 2-core CI machine (a release build several times that),
/// and its checks of this workspace still run in about 3 seconds.
fn ensure_from_crates_io(crate_name: &str, (program, args): (&str, &[&str])) -> Result {
    if succeeds(program, args) {
        return Ok(());
    }
    println!("{crate_name} is missing: installing it");
    run("cargo", &["install", "--locked", "--debug", crate_name])
}

/// The schemathesis version `cargo xtask schemathesis` runs: pinned, so
/// that a new release cannot change what CI checks without a commit.
const SCHEMATHESIS_VERSION: &str = "4.32.5";

/// schemathesis (PyPI) in a virtual environment under `target/`, installed
/// where it is missing or another version; returns the program's path.
pub(crate) fn ensure_schemathesis() -> Result<std::path::PathBuf> {
    let venv = crate::target::dir()?.join("schemathesis").join("venv");
    let program = venv.join("bin").join("schemathesis");
    let installed = std::process::Command::new(&program)
        .arg("--version")
        .output()
        .is_ok_and(|out| {
            String::from_utf8_lossy(&out.stdout)
                .contains(&format!("version {SCHEMATHESIS_VERSION}"))
        });
    if installed {
        return Ok(program);
    }
    // Debian's python3 leaves venv (and its pip) to a package of its own.
    if !succeeds("python3", &["-m", "venv", "--help"])
        || !succeeds("python3", &["-c", "import ensurepip"])
    {
        ensure_from_apt(
            &[],
            &["python3-venv"],
            "python3 with venv is needed for schemathesis: install python3 and python3-venv",
        )?;
    }
    println!(
        "schemathesis {SCHEMATHESIS_VERSION} is missing: installing it into {}",
        venv.display()
    );
    let venv_arg = venv.display().to_string();
    run("python3", &["-m", "venv", "--clear", &venv_arg])?;
    let pip = venv.join("bin").join("pip").display().to_string();
    run(
        &pip,
        &[
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("schemathesis=={SCHEMATHESIS_VERSION}"),
        ],
    )?;
    Ok(program)
}
