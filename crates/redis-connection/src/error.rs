//! [`ConnectionError`]: the one error type of this crate.

use std::time::Duration;

use fred::error::{Error as FredError, ErrorKind};

use crate::reader::ConfigError;

/// Everything that can go wrong between a caller and Redis.
///
/// The variants separate what a caller does next: [`Unavailable`] and
/// [`Timeout`] mean "Redis cannot answer now" (degrade, retry later), while
/// [`Rejected`] means "Redis answered no" (a bug or bad input: retrying will
/// not help). No variant ever carries a password: messages come from fred's
/// errors, which never include credentials, or from our own text.
///
/// [`Unavailable`]: ConnectionError::Unavailable
/// [`Timeout`]: ConnectionError::Timeout
/// [`Rejected`]: ConnectionError::Rejected
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// A configuration value is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS could not be set up (bad CA file, handshake refused, ...).
    #[error("TLS error: {0}")]
    Tls(String),
    /// Redis refused our credentials.
    #[error("Redis rejected the credentials: {0}")]
    Auth(String),
    /// Redis cannot be reached, or the connection is down.
    #[error("Redis is unavailable: {0}")]
    Unavailable(String),
    /// Redis did not answer within the timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error (`WRONGTYPE`, `ERR ...`).
    #[error("Redis rejected the command: {0}")]
    Rejected(String),
    /// The manager was shut down.
    #[error("the connection manager is shut down")]
    Shutdown,
}

impl ConnectionError {
    /// Classifies a fred error. `timeout` is the timeout the command ran
    /// under, reported in [`ConnectionError::Timeout`].
    pub fn from_fred(error: &FredError, timeout: Duration) -> Self {
        if let Some(inner) = script_error(error.details()) {
            return classify_server_error(inner.to_owned());
        }
        let details = error.details().to_owned();
        match error.kind() {
            ErrorKind::Timeout => ConnectionError::Timeout(timeout),
            ErrorKind::Auth => ConnectionError::Auth(details),
            ErrorKind::Config | ErrorKind::Url => {
                ConnectionError::Config(ConfigError::new("REDIS_URL", details))
            }
            #[cfg(feature = "tls")]
            ErrorKind::Tls => ConnectionError::Tls(details),
            ErrorKind::IO if is_tls_failure(&details) => ConnectionError::Tls(format!(
                "certificate verification failed: {}",
                tls_reason(&details)
            )),
            ErrorKind::IO
            | ErrorKind::Canceled
            | ErrorKind::Backpressure
            | ErrorKind::Routing
            | ErrorKind::Cluster
            | ErrorKind::Sentinel
            | ErrorKind::Protocol => ConnectionError::Unavailable(details),
            ErrorKind::InvalidArgument
            | ErrorKind::InvalidCommand
            | ErrorKind::Parse
            | ErrorKind::NotFound => ConnectionError::Rejected(details),
            ErrorKind::Unknown => classify_server_error(details),
        }
    }

    /// Whether Redis could not answer (down, unreachable, too slow): the
    /// caller may degrade and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ConnectionError::Unavailable(_)
                | ConnectionError::Timeout(_)
                | ConnectionError::Shutdown
        )
    }
}

/// rustls failures reach fred as I/O errors whose text is the `io::Error`'s
/// Debug form (`Custom { kind: InvalidData, error: InvalidCertificate(..) }`).
/// They will not heal by retrying, so they are TLS errors, not unavailability.
fn is_tls_failure(details: &str) -> bool {
    [
        "InvalidCertificate",
        "NoCertificatesPresented",
        "HandshakeFailure",
        "AlertReceived",
    ]
    .iter()
    .any(|marker| details.contains(marker))
}

/// The rustls error inside fred's I/O error text.
fn tls_reason(details: &str) -> &str {
    details
        .split_once("error: ")
        .map_or(details, |(_, rest)| rest.trim_end_matches(" }"))
}

/// fred reports most server error replies as `Unknown` with the reply text.
/// Replies that mean "not now" are unavailability; the rest are refusals.
/// The error a command inside a Lua script replied with, when Redis 6
/// wrapped it (`ERR Error running script (call to f_…): @user_script:1:
/// @user_script: 1: -OOM command not allowed …`). Redis 7 replies with the
/// inner error itself; unwrapping makes both versions classify alike (an
/// `OOM` inside a script is a refusal, a `BUSY` one is "not now").
fn script_error(details: &str) -> Option<&str> {
    let rest = details.strip_prefix("ERR Error running script")?;
    let at = rest.find(": -")?;
    let inner = &rest[at + 3..];
    let code = inner.split_whitespace().next()?;
    code.bytes()
        .all(|b| b.is_ascii_uppercase())
        .then_some(inner)
}

fn classify_server_error(details: String) -> ConnectionError {
    let code = details.split_whitespace().next().unwrap_or("");
    let is_error_code = !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase());
    match code {
        "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" => {
            ConnectionError::Unavailable(details)
        }
        _ if is_error_code => ConnectionError::Rejected(details),
        // fred's own "client is not initialized"-style failures.
        _ => ConnectionError::Unavailable(details),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A command's error inside a script reads the same from Redis 6.2 (which
    // wraps it) as from Redis 7 (which does not).
    #[test]
    fn script_errors_are_unwrapped_as_redis_7_reports_them() {
        let timeout = Duration::from_millis(5);
        let wrapped = "ERR Error running script (call to f_9405b0): @user_script:1: \
                       @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.";
        assert_eq!(
            ConnectionError::from_fred(&FredError::new(ErrorKind::Unknown, wrapped), timeout),
            ConnectionError::Rejected(
                "OOM command not allowed when used memory > 'maxmemory'.".to_owned()
            )
        );
        let busy = "ERR Error running script (call to f_1): @user_script:2: -BUSY Redis is busy";
        assert!(
            ConnectionError::from_fred(&FredError::new(ErrorKind::Unknown, busy), timeout)
                .is_unavailable()
        );
        // A script's own error (no inner reply code) stays as it was.
        let own = "ERR Error running script (call to f_1): @user_script:3: boom";
        assert_eq!(
            ConnectionError::from_fred(&FredError::new(ErrorKind::Unknown, own), timeout),
            ConnectionError::Rejected(own.to_owned())
        );
    }

    // Server replies are sorted into "not now" and "no".
    #[test]
    fn classification() {
        let timeout = Duration::from_millis(5);
        let err = |kind, msg: &'static str| {
            ConnectionError::from_fred(&FredError::new(kind, msg), timeout)
        };
        assert_eq!(
            err(ErrorKind::Timeout, "x"),
            ConnectionError::Timeout(timeout)
        );
        assert!(err(ErrorKind::IO, "refused").is_unavailable());
        assert!(err(ErrorKind::Unknown, "LOADING Redis is loading").is_unavailable());
        assert!(matches!(
            err(ErrorKind::Unknown, "ERR syntax error"),
            ConnectionError::Rejected(_)
        ));
        assert!(matches!(
            err(ErrorKind::InvalidArgument, "WRONGTYPE Operation"),
            ConnectionError::Rejected(_)
        ));
        assert!(matches!(
            err(ErrorKind::Auth, "WRONGPASS"),
            ConnectionError::Auth(_)
        ));
        assert!(err(ErrorKind::Unknown, "Client is not initialized.").is_unavailable());
        let tls = err(
            ErrorKind::IO,
            "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
        );
        assert_eq!(
            tls,
            ConnectionError::Tls(
                "certificate verification failed: InvalidCertificate(UnknownIssuer)".to_owned()
            )
        );
    }
}
