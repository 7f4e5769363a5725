//! The one error type of the CLI, and the exit code each failure maps to.
//!
//! Messages name what was wrong (a variable, an argument, Redis's address),
//! never a value that could be secret: no password, no session value.

use std::time::Duration;

use redis_cache::CacheError;
use redis_connection::{ConfigError, ConnectionError};
use redis_pubsub::PubSubError;
use shared_types::ValidationError;

/// Exit code of bad input: arguments or environment (clap uses it too).
pub(crate) const EXIT_BAD_INPUT: u8 = 2;
/// Exit code when Redis cannot be reached or fails a command.
pub(crate) const EXIT_REDIS: u8 = 3;
/// Exit code of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AdminError {
    /// A `REDIS_*` or `CACHE_*` variable is invalid.
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    /// An argument is not valid (an id, a key, a rate, a resume token).
    #[error("invalid {what}: {reason}")]
    Input {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it (never the secret part of a value).
        reason: String,
    },
    /// Redis did not become reachable within the connect timeout.
    #[error(
        "Redis at {addresses} is unreachable: no connection within {} ms (REDIS_CONNECT_TIMEOUT_MS)",
        waited.as_millis()
    )]
    Unreachable {
        /// Where it was looked for (host:port, never credentials).
        addresses: String,
        /// How long it was tried.
        waited: Duration,
    },
    /// Connecting failed for good (authentication, TLS).
    #[error("cannot connect to Redis: {0}")]
    Connect(#[from] ConnectionError),
    /// A cache command failed.
    #[error("Redis failed: {0}")]
    Cache(#[from] CacheError),
    /// The invalidation bus failed.
    #[error("Redis pub/sub failed: {0}")]
    PubSub(#[from] PubSubError),
    /// Writing the output failed (a closed pipe).
    #[error("cannot write output: {0}")]
    Output(#[from] std::io::Error),
    /// Stopped by Ctrl-C; what to do next was already printed.
    #[error("interrupted")]
    Interrupted,
}

impl AdminError {
    /// An invalid id or key given as `what`.
    pub(crate) fn input(what: &'static str, error: &ValidationError) -> Self {
        AdminError::Input {
            what,
            reason: error.to_string(),
        }
    }

    /// The process's exit code for this failure.
    pub(crate) fn exit_code(&self) -> u8 {
        match self {
            AdminError::Config(_) | AdminError::Input { .. } => EXIT_BAD_INPUT,
            AdminError::Interrupted => EXIT_INTERRUPTED,
            AdminError::Unreachable { .. }
            | AdminError::Connect(_)
            | AdminError::Cache(_)
            | AdminError::PubSub(_)
            | AdminError::Output(_) => EXIT_REDIS,
        }
    }
}
