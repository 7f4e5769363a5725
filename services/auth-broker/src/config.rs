//! auth-broker's configuration: the common variables (see service-kit) and
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `AUTH_BROKER_ADDR` | `127.0.0.1:8081` | where to listen |
//! | `INTERNAL_API_TOKEN` | required | guards the internal endpoints; at least 32 characters |
//! | `SESSION_TTL_SECS` | `32400` | session lifetime (9 h) |
//! | `SESSION_RATE_LIMIT` | `5` | session creations per tenant and user per window |
//! | `SESSION_RATE_WINDOW_SECS` | `900` | the rate-limit window |

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use service_kit::{CommonConfig, ConfigError, Env};

/// Largest request body: session requests are a few hundred bytes.
const MAX_BODY_BYTES: usize = 16 * 1024;

/// Everything auth-broker reads from the environment.
#[derive(Debug, Clone)]
pub struct Config {
    /// The settings every service has.
    pub common: CommonConfig,
    /// The internal API token (never printed).
    pub internal_token: Arc<SecretString>,
    /// Session lifetime.
    pub session_ttl: Duration,
    /// Creations allowed per tenant and user per window.
    pub session_rate_limit: i64,
    /// The rate-limit window.
    pub session_rate_window: Duration,
}

impl Config {
    /// Reads the configuration.
    ///
    /// # Errors
    /// The first bad variable, by name.
    pub fn from_env<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let common = CommonConfig::from_env(env, "AUTH_BROKER_ADDR", "127.0.0.1:8081", |_| {
            MAX_BODY_BYTES
        })?;
        Ok(Self {
            common,
            internal_token: Arc::new(env.secret("INTERNAL_API_TOKEN", 32)?),
            session_ttl: Duration::from_secs(env.number(
                "SESSION_TTL_SECS",
                32_400u64,
                1,
                31 * 86_400,
            )?),
            session_rate_limit: env.number("SESSION_RATE_LIMIT", 5i64, 1, 1_000_000)?,
            session_rate_window: Duration::from_secs(env.number(
                "SESSION_RATE_WINDOW_SECS",
                900u64,
                1,
                86_400,
            )?),
        })
    }
}
