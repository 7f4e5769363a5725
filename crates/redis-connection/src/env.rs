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
//!
//! An empty value counts as unset (as compose files often write `VAR=`).

use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;

use crate::config::{RedisConfig, TlsOptions, Topology};
use crate::error::ConnectionError;

/// Every variable [`RedisConfig::from_env`] reads.
pub const ENV_VARS: [&str; 15] = [
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
];

impl RedisConfig {
    /// Reads the configuration from the process environment (see the table in
    /// this module's docs and the README).
    ///
    /// # Errors
    /// [`ConnectionError::Config`] naming the first variable with a bad value.
    pub fn from_env() -> Result<Self, ConnectionError> {
        for variable in ENV_VARS {
            if let Err(std::env::VarError::NotUnicode(_)) = std::env::var(variable) {
                return Err(invalid(variable, "is not valid UTF-8"));
            }
        }
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading variables through `lookup`
    /// (tests pass a map instead of mutating the process environment).
    ///
    /// # Errors
    /// [`ConnectionError::Config`] naming the first variable with a bad value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConnectionError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());

        let mut config = match get("REDIS_URL") {
            Some(url) => {
                for conflicting in ["REDIS_HOST", "REDIS_PORT", "REDIS_TLS", "REDIS_DB"] {
                    if get(conflicting).is_some() {
                        return Err(invalid(conflicting, "cannot be combined with REDIS_URL"));
                    }
                }
                RedisConfig::from_url(&url)?
            }
            None => {
                let host = get("REDIS_HOST").unwrap_or_else(|| "127.0.0.1".to_owned());
                let port = match get("REDIS_PORT") {
                    Some(v) => parse_port("REDIS_PORT", &v)?,
                    None => 6379,
                };
                let mut config = RedisConfig {
                    topology: Topology::Centralized { host, port },
                    ..RedisConfig::default()
                };
                if let Some(v) = get("REDIS_TLS") {
                    config.tls = parse_bool("REDIS_TLS", &v)?.then(TlsOptions::default);
                }
                if let Some(v) = get("REDIS_DB") {
                    config.database = Some(parse_num("REDIS_DB", &v, 0, 255)?);
                }
                config
            }
        };

        if let Some(user) = get("REDIS_USERNAME") {
            config.username = Some(user);
        }
        if let Some(password) = get("REDIS_PASSWORD") {
            config.password = Some(SecretString::from(password));
        }
        if let Some(path) = get("REDIS_TLS_CA_FILE") {
            let Some(tls) = config.tls.as_mut() else {
                return Err(invalid(
                    "REDIS_TLS_CA_FILE",
                    "is set but TLS is off (set REDIS_TLS=true or use rediss://)",
                ));
            };
            tls.ca_file = Some(PathBuf::from(path));
        }
        if let Some(v) = get("REDIS_POOL_SIZE") {
            config.pool_size = parse_num("REDIS_POOL_SIZE", &v, 1, 256)?;
        }
        if let Some(v) = get("REDIS_CONNECT_TIMEOUT_MS") {
            config.connect_timeout = parse_ms("REDIS_CONNECT_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("REDIS_COMMAND_TIMEOUT_MS") {
            config.command_timeout = parse_ms("REDIS_COMMAND_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("REDIS_RECONNECT_MAX_ATTEMPTS") {
            config.reconnect.max_attempts =
                parse_num("REDIS_RECONNECT_MAX_ATTEMPTS", &v, 0, u32::MAX)?;
        }
        if let Some(v) = get("REDIS_RECONNECT_BASE_DELAY_MS") {
            config.reconnect.base_delay = parse_ms("REDIS_RECONNECT_BASE_DELAY_MS", &v)?;
        }
        if let Some(v) = get("REDIS_RECONNECT_MAX_DELAY_MS") {
            config.reconnect.max_delay = parse_ms("REDIS_RECONNECT_MAX_DELAY_MS", &v)?;
        }
        if let Some(v) = get("REDIS_HEALTH_DEGRADED_MS") {
            config.health_degraded_threshold = parse_ms("REDIS_HEALTH_DEGRADED_MS", &v)?;
        }
        config.validate()?;
        Ok(config)
    }
}

fn invalid(variable: &'static str, reason: impl Into<String>) -> ConnectionError {
    ConnectionError::Config {
        variable,
        reason: reason.into(),
    }
}

/// Echoes `value` only when it is short: these variables hold numbers and
/// flags, never secrets, but a long value is noise in an error.
fn shown(value: &str) -> String {
    if value.len() <= 32 {
        format!("{value:?}")
    } else {
        "the value".to_owned()
    }
}

fn parse_num<T>(variable: &'static str, value: &str, min: T, max: T) -> Result<T, ConnectionError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = value
        .trim()
        .parse()
        .map_err(|_| invalid(variable, format!("{} is not a whole number", shown(value))))?;
    if n < min || n > max {
        return Err(invalid(
            variable,
            format!("{n} is out of range ({min} to {max})"),
        ));
    }
    Ok(n)
}

fn parse_port(variable: &'static str, value: &str) -> Result<u16, ConnectionError> {
    parse_num(variable, value, 1, u16::MAX)
}

/// Milliseconds, 1 ms to 1 hour.
fn parse_ms(variable: &'static str, value: &str) -> Result<Duration, ConnectionError> {
    parse_num(variable, value, 1_u64, 3_600_000).map(Duration::from_millis)
}

fn parse_bool(variable: &'static str, value: &str) -> Result<bool, ConnectionError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(invalid(
            variable,
            format!("{} is not true or false", shown(value)),
        )),
    }
}
