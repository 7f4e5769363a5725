//! main-api's configuration: the common variables (see service-kit),
//! `MAIN_API_ADDR` (default `127.0.0.1:8080`) and the purge jobs' settings.
//! Request bodies are limited to `CACHE_MAX_VALUE_BYTES`: a larger document
//! could not be cached anyway.

use service_kit::{CommonConfig, ConfigError, Env};

/// Everything main-api reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings every service has.
    pub common: CommonConfig,
    /// When a tenant purge becomes a background job, and how fast it runs.
    pub jobs: JobConfig,
}

/// Settings of tenant purge jobs (see `jobs.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobConfig {
    /// A tenant purge of more indexed keys than this runs as a background
    /// job (`MAIN_API_PURGE_JOB_THRESHOLD`, default 10 000); at or below it the
    /// request purges synchronously, as before.
    pub threshold: u64,
    /// Most index entries a job reads (and keys it deletes) per second
    /// (`MAIN_API_PURGE_JOB_RATE`, default 20 000), so that a purge leaves Redis
    /// to the other tenants.
    pub rate: u32,
}

impl Default for JobConfig {
    fn default() -> Self {
        // 10 000 keys purge in well under a second; 20 000 a second is
        // about a tenth of one Redis core's UNLINK throughput.
        Self {
            threshold: 10_000,
            rate: 20_000,
        }
    }
}

impl Config {
    /// Reads the configuration.
    ///
    /// # Errors
    /// The first bad variable, by name.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, "MAIN_API_ADDR", "127.0.0.1:8080", |cache| {
            cache.max_value_bytes
        })?;
        let defaults = JobConfig::default();
        let jobs = JobConfig {
            threshold: env.number(
                "MAIN_API_PURGE_JOB_THRESHOLD",
                defaults.threshold,
                0,
                u64::MAX,
            )?,
            rate: env.number("MAIN_API_PURGE_JOB_RATE", defaults.rate, 1, 10_000_000)?,
        };
        Ok(Self { common, jobs })
    }
}
