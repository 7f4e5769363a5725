//! Reading [`RedisConfig`] from environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `REDIS_URL` | unset | full URL; when set, `REDIS_HOST`/`PORT`/`TLS`/`DB` must not be |
//! | `REDIS_HOST` | `127.0.0.1` | host, when `REDIS_URL` is unset |
//! | `REDIS_PORT` | `6379` | port, when `REDIS_URL` is unset |
//! | `REDIS_USERNAME` | unset | ACL user (overrides the URL's) |
//! | `REDIS_PASSWORD` | unset | password or access key (overrides the URL's) |
//! | `REDIS_TLS` | `false` | `true` for TLS, when `REDIS_URL` is unset |
//! | `REDIS_TLS_CA_FILE` | unset | PEM CA bundle to trust instead of the system roots |
//! | `REDIS_DB` | unset | database index, when `REDIS_URL` is unset |
//! | `REDIS_POOL_SIZE` | `4` | pooled connections |
//! | `REDIS_CONNECT_TIMEOUT_MS` | `5000` | connection timeout |
//! | `REDIS_COMMAND_TIMEOUT_MS` | `500` | command timeout |
//! | `REDIS_RECONNECT_MAX_ATTEMPTS` | `0` | 0 = retry forever |
//! | `REDIS_RECONNECT_BASE_DELAY_MS` | `50` | first backoff delay |
//! | `REDIS_RECONNECT_MAX_DELAY_MS` | `500` | backoff cap |
//! | `REDIS_HEALTH_DEGRADED_MS` | `100` | PING latency above which health is `degraded` |
//! | `REDIS_TCP_NODELAY` | `false` | `TCP_NODELAY` on every connection (see [`RedisConfig::tcp_nodelay`]) |
//!
//! An empty value counts as unset (as compose files often write `VAR=`).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{RedisConfig, TlsOptions};
use crate::reader::{ConfigError, Env};

/// Every variable [`RedisConfig::from_env`] reads.
pub const ENV_VARS: [&str; 16] = [
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_USERNAME",
    "REDIS_PASSWORD",
    "REDIS_TLS",
    "REDIS_TLS_CA_FILE",
    "REDIS_DB",
    "REDIS_POOL_SIZE",
    "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_COMMAND_TIMEOUT_MS",
    "REDIS_RECONNECT_MAX_ATTEMPTS",
    "REDIS_RECONNECT_BASE_DELAY_MS",
    "REDIS_RECONNECT_MAX_DELAY_MS",
    "REDIS_HEALTH_DEGRADED_MS",
    "REDIS_TCP_NODELAY",
];

impl RedisConfig {
    /// Reads the configuration from the process environment (see the table in
    /// this module's docs and the README).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&Env::process())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (tests pass a map instead of mutating the process environment).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_reader(&Env::from_fn(lookup))
    }

    /// Like [`from_env`](Self::from_env), reading variables through `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    pub fn from_reader<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let mut config = match env.text("REDIS_URL")? {
            Some(url) => {
                for conflicting in ["REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_DB"] {
                    if env.get(conflicting).is_some() {
                        return Err(ConfigError::new(
                            conflicting,
                            "cannot be combined with REDIS_URL",
                        ));
                    }
                }
                RedisConfig::from_url(&url)?
            }
            None => {
                let host = env
                    .text("REDIS_HOST")?
                    .unwrap_or_else(|| "127.0.0.1".to_owned());
                let port = env.number("REDIS_PORT", 6379, 1, u16::MAX)?;
                let mut config = RedisConfig::centralized(host, port);
                if env.flag("REDIS_TLS", false)? {
                    config.tls = Some(TlsOptions::default());
                }
                config.database = env.optional_number("REDIS_DB", 0, 255)?;
                config
            }
        };

        if let Some(user) = env.text("REDIS_USERNAME")? {
            config.username = Some(user);
        }
        if let Some(password) = env.text("REDIS_PASSWORD")? {
            config.password = Some(SecretString::from(password));
        }
        if let Some(path) = env.text("REDIS_TLS_CA_FILE")? {
            let Some(tls) = config.tls.as_mut() else {
                return Err(ConfigError::new(
                    "REDIS_TLS_CA_FILE",
                    "is set but TLS is off (set REDIS_TLS=true or use rediss://)",
                ));
            };
            tls.ca_file = Some(PathBuf::from(path));
        }
        config.pool_size = env.number("REDIS_POOL_SIZE", config.pool_size, 1, 256)?;
        config.connect_timeout = millis(env, "REDIS_CONNECT_TIMEOUT_MS", config.connect_timeout)?;
        config.command_timeout = millis(env, "REDIS_COMMAND_TIMEOUT_MS", config.command_timeout)?;
        let reconnect = &mut config.reconnect;
        reconnect.max_attempts = env.number(
            "REDIS_RECONNECT_MAX_ATTEMPTS",
            reconnect.max_attempts,
            0,
            u32::MAX,
        )?;
        reconnect.base_delay = millis(env, "REDIS_RECONNECT_BASE_DELAY_MS", reconnect.base_delay)?;
        reconnect.max_delay = millis(env, "REDIS_RECONNECT_MAX_DELAY_MS", reconnect.max_delay)?;
        config.health_degraded_threshold = millis(
            env,
            "REDIS_HEALTH_DEGRADED_MS",
            config.health_degraded_threshold,
        )?;
        config.tcp_nodelay = env.flag("REDIS_TCP_NODELAY", config.tcp_nodelay)?;
        config.validate()?;
        Ok(config)
    }
}

/// Every `*_MS` variable: 1 ms to 1 hour.
fn millis<F: Fn(&str) -> Option<String>>(
    env: &Env<F>,
    name: &str,
    default: Duration,
) -> Result<Duration, ConfigError> {
    env.millis(name, default, 1, 3_600_000)
}
