//! main-api's configuration: the common variables (see service-kit) and
//! `MAIN_API_ADDR` (default `127.0.0.1:8080`). Request bodies are limited to
//! `CACHE_MAX_VALUE_BYTES`: a larger document could not be cached anyway.

use service_kit::{CommonConfig, ConfigError, Env};

/// Everything main-api reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings every service has.
    pub common: CommonConfig,
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
        Ok(Self { common })
    }
}
