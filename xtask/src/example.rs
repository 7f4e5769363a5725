//! Running the cache's usage example against a throwaway redis-server, so
//! that CI proves the README's example command works.

use crate::cmd::{Result, workspace_root};
use crate::redis::TempRedis;

/// `cargo run -p redis-cache --example usage` against a fresh server.
pub(crate) fn run_usage_example() -> Result {
    let redis = TempRedis::start()?;
    println!(
        "$ REDIS_PORT={} cargo run -p redis-cache --example usage",
        redis.port()
    );
    let status = crate::cmd::command("cargo")
        .args(["run", "--quiet", "-p", "redis-cache", "--example", "usage"])
        .env("REDIS_PORT", redis.port().to_string())
        .env_remove("REDIS_URL")
        .current_dir(workspace_root())
        .status()
        .map_err(|e| format!("could not run the example: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the usage example failed ({status})"))
    }
}
