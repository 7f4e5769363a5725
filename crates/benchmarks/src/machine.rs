//! What the run ran on: recorded beside every result, because absolute
//! numbers mean nothing without it.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fixture::Mode;

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Machine {
    /// When the report was made (UTC, RFC 3339).
    pub(crate) date: String,
    pub(crate) cpus: usize,
    pub(crate) cpu_model: String,
    pub(crate) kernel: String,
    pub(crate) redis_version: String,
    /// `/proc/loadavg` at the end of the run: how busy the shared machine was.
    pub(crate) load_average: String,
}

impl Machine {
    pub(crate) async fn detect() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .and_then(|rest| rest.split_once(':'))
            .map_or_else(|| "unknown".to_owned(), |(_, m)| m.trim().to_owned());
        let read = |path: &str| {
            std::fs::read_to_string(path)
                .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
        };
        Self {
            date: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_else(|_| "unknown".to_owned()),
            cpus: std::thread::available_parallelism().map_or(0, usize::from),
            cpu_model,
            kernel: read("/proc/sys/kernel/osrelease"),
            redis_version: redis_version().await,
            load_average: read("/proc/loadavg"),
        }
    }

    /// The header printed above the table.
    pub(crate) fn markdown(&self, mode: Mode, took: Duration) -> String {
        let mode = if mode.quick {
            "quick (proves every workload runs; not for comparing with targets)"
        } else {
            "full"
        };
        let took = if took.is_zero() {
            String::new()
        } else {
            format!(", took {:.0} s", took.as_secs_f64())
        };
        format!(
            "benchmark run {} ({mode}{took})\n\n\
             - machine: {} CPUs, {}, kernel {}\n\
             - redis-server {}\n\
             - load average at the end: {}\n",
            self.date,
            self.cpus,
            self.cpu_model,
            self.kernel,
            self.redis_version,
            self.load_average
        )
    }
}

/// `7.0.15` from `redis-server --version` (the binary test-support starts).
async fn redis_version() -> String {
    let binary = std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned());
    let Ok(output) = tokio::process::Command::new(binary)
        .arg("--version")
        .output()
        .await
    else {
        return "unknown".to_owned();
    };
    String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .find_map(|word| word.strip_prefix("v="))
        .unwrap_or("unknown")
        .to_owned()
}
