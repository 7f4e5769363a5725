//! Running the cache's usage example against a throwaway redis-server, so
//! that CI proves the README's example command works.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::cmd::{Result, workspace_root};

/// A redis-server on a free port, killed on drop.
struct TempRedis {
    child: Child,
    port: u16,
}

impl TempRedis {
    fn start() -> Result<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| format!("no free port: {e}"))?
            .port();
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start redis-server: {e}"))?;
        let redis = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("redis-server did not start".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(redis)
    }
}

impl Drop for TempRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `cargo run -p redis-cache --example usage` against a fresh server.
pub(crate) fn run_usage_example() -> Result {
    let redis = TempRedis::start()?;
    println!(
        "$ REDIS_PORT={} cargo run -p redis-cache --example usage",
        redis.port
    );
    let status = Command::new("cargo")
        .args(["run", "--quiet", "-p", "redis-cache", "--example", "usage"])
        .env("REDIS_PORT", redis.port.to_string())
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
