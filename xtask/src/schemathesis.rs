//! `cargo xtask schemathesis`: the services' OpenAPI documents checked
//! against the services themselves.
//!
//! Starts the stack as `cargo xtask up --check` does (a fresh
//! redis-server, both services as real processes on free ports), creates
//! a session through auth-broker, and runs schemathesis (PyPI, pinned, in a
//! virtual environment under `target/`, see `tools.rs`) against each
//! service's `/openapi.json` with every check on: a server error, an answer
//! the document does not describe (status, content type, headers, body
//! schema), bad input accepted or good input refused, an operation that
//! ignores its authentication, and so on, fail the command. The session
//! token and the internal token reach schemathesis through its environment
//! and `xtask/schemathesis.toml`, which maps them to the documents' two
//! bearer schemes.
//!
//! Bounded for CI: at most [`MAX_EXAMPLES`] generated cases per operation
//! and phase; the three runs take about 30 s on two cores.

use std::path::Path;
use std::process::Command;

use crate::cmd::{Result, workspace_root};
use crate::target::dir as target_dir;
use crate::tools::ensure_schemathesis;
use crate::up::{http, start};

/// Generated cases per operation and phase: enough to reach every status
/// of every operation, few enough for CI.
const MAX_EXAMPLES: &str = "25";

pub(crate) fn schemathesis() -> Result {
    let program = ensure_schemathesis()?;
    // Quiet services: schemathesis sends a few thousand requests, and its
    // own report says what failed.
    let running = start(true, &[("HTTP_ACCESS_LOG", "false"), ("RUST_LOG", "warn")])?;
    // An admin of the tenant the documents' examples name, but not the
    // user whose sessions their examples revoke (`alice`): the session
    // lives through auth-broker's run until the step meant to revoke it.
    let session = create_session(&running.auth_addr, &running.token)?;
    let tokens = [
        ("SESSION_TOKEN", session.as_str()),
        ("INTERNAL_API_TOKEN", running.token.as_str()),
    ];
    let check = |addr: &str, filter: &[&str]| run(&program, addr, filter, &tokens);
    check(&running.api_addr, &[])?;
    // Revoking the session in use would turn the rest of the run into
    // 401s: that operation goes last, on its own.
    check(
        &running.auth_addr,
        &["--exclude-operation-id", "revoke_current"],
    )?;
    check(
        &running.auth_addr,
        &["--include-operation-id", "revoke_current"],
    )?;
    println!("schemathesis: both services answer as their documents say");
    Ok(())
}

/// A session from auth-broker (`tenant acme`, user `schemathesis`, role
/// `admin`); its token.
fn create_session(auth: &str, internal: &str) -> Result<String> {
    let (status, body) = http(
        auth,
        "POST",
        "/v1/sessions",
        Some(internal),
        Some(r#"{"tenant_id":"acme","user_id":"schemathesis","roles":["admin"]}"#),
    )
    .ok_or("auth-broker did not answer")?;
    if status != 201 {
        return Err(format!("creating a session: expected 201, got {status}"));
    }
    body.split("\"token\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .map(str::to_owned)
        .ok_or_else(|| "no token in the created session".to_owned())
}

/// One schemathesis run against the service at `addr`, with `filter`.
fn run(program: &Path, addr: &str, filter: &[&str], tokens: &[(&str, &str)]) -> Result {
    let config = workspace_root().join("xtask").join("schemathesis.toml");
    let config = config.display().to_string();
    let url = format!("http://{addr}/openapi.json");
    let mut args = vec![
        "--config-file",
        &config,
        "--no-color",
        "run",
        &url,
        "--checks",
        "all",
        "--max-examples",
        MAX_EXAMPLES,
        "--request-timeout",
        "10",
    ];
    args.extend(filter);
    println!("$ schemathesis {}", args.join(" "));
    // Its example database (.hypothesis/) stays under target/.
    let dir = target_dir()?.join("schemathesis");
    let status = Command::new(program)
        .args(&args)
        .envs(tokens.iter().copied())
        .current_dir(&dir)
        .status()
        .map_err(|e| format!("could not run schemathesis: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "schemathesis found problems in the service at {addr} ({status}): \
             its report above names each failing operation and how to reproduce it"
        ))
    }
}
