//! [`ConnectionError`]: the one error type of this crate.

use std::time::Duration;

use fred::error::{Error as FredError, ErrorKind};

use crate::reader::ConfigError;

/// Everything that can go wrong between a caller and Redis.
///
/// The variants separate what a caller does next: [`Unavailable`] and
/// [`Timeout`] mean "Redis cannot answer now" (degrade, retry later), while
/// [`Rejected`] means "Redis answered no" (a bug or bad input: retrying will
/// not help; its [`Rejection::kind`] says which no). No variant ever carries
/// a password: messages come from fred's errors, which never include
/// credentials, or from our own text. Where fred reported the failure, its
/// error is kept as the [`source`](std::error::Error::source).
///
/// [`Unavailable`]: ConnectionError::Unavailable
/// [`Timeout`]: ConnectionError::Timeout
/// [`Rejected`]: ConnectionError::Rejected
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectionError {
    /// A configuration value is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// TLS could not be set up (bad CA file, handshake refused, ...).
    #[error("TLS error: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
        /// fred's error, when it reported the failure.
        #[source]
        cause: Option<FredError>,
    },
    /// Redis refused our credentials.
    #[error("Redis rejected the credentials: {reason}")]
    Auth {
        /// Redis's reply.
        reason: String,
        /// fred's error.
        #[source]
        cause: Option<FredError>,
    },
    /// Redis cannot be reached, or the connection is down.
    #[error("Redis is unavailable: {reason}")]
    Unavailable {
        /// What went wrong.
        reason: String,
        /// fred's error, when it reported the failure.
        #[source]
        cause: Option<FredError>,
    },
    /// Redis did not answer within the timeout.
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    /// Redis answered with an error (`WRONGTYPE`, `ERR ...`).
    #[error(transparent)]
    Rejected(Rejection),
    /// The manager was shut down.
    #[error("the connection manager is shut down")]
    Shutdown,
    /// Called outside a tokio runtime, which the manager's background
    /// tasks need.
    #[error("no tokio runtime: the connection manager must be created within one")]
    NoRuntime,
}

/// Which "no" a Redis error reply is, read once from its error code (the
/// reply's first word) in [`ConnectionError::from_fred`], so that no caller
/// tests message prefixes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejectionKind {
    /// `WRONGTYPE`: the key holds another Redis type.
    WrongType,
    /// `NOSCRIPT`: the server's script cache does not hold the script
    /// (load it and run it again).
    NoScript,
    /// `OOM`: out of memory under `noeviction`.
    OutOfMemory,
    /// `MISCONF`: Redis cannot persist and refuses writes.
    Misconfigured,
    /// `NOREPLICAS`: too few replicas acknowledge writes.
    NoReplicas,
    /// `NOPERM`: the ACL user lacks the permission.
    NoPermission,
    /// Anything else (`ERR ...`, or a refusal of this layer's own making).
    Other,
}

impl RejectionKind {
    /// The kind of a reply whose first word is `code`.
    fn from_code(code: &str) -> Self {
        match code {
            "WRONGTYPE" => Self::WrongType,
            "NOSCRIPT" => Self::NoScript,
            "OOM" => Self::OutOfMemory,
            "MISCONF" => Self::Misconfigured,
            "NOREPLICAS" => Self::NoReplicas,
            "NOPERM" => Self::NoPermission,
            _ => Self::Other,
        }
    }

    /// Whether Redis refuses for the state it is in (memory, persistence,
    /// replicas, permissions) rather than for the command: the request was
    /// fine, and retrying later (or an operator) fixes it. Other refusals
    /// are bugs.
    pub fn is_refusal_of_state(self) -> bool {
        matches!(
            self,
            Self::OutOfMemory | Self::Misconfigured | Self::NoReplicas | Self::NoPermission
        )
    }
}

/// Redis's refusal of a command: its [`RejectionKind`], its message and,
/// when fred reported it, fred's error as the
/// [`source`](std::error::Error::source).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Redis rejected the command: {message}")]
pub struct Rejection {
    kind: RejectionKind,
    message: String,
    #[source]
    cause: Option<FredError>,
}

impl Rejection {
    /// A refusal of this layer's own making, with no Redis error behind it
    /// (a reply of the wrong shape, a counter that would overflow).
    pub fn new(kind: RejectionKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            cause: None,
        }
    }

    /// A server reply, classified by its code.
    fn from_reply(message: String, cause: &FredError) -> Self {
        let code = message.split_whitespace().next().unwrap_or("");
        // Redis 7.0 and 7.1 refuse a command a script may not run (the
        // user's ACL) with a plain `ERR`; 7.2 says `NOPERM`. Either way
        // the request was fine and the user's rights are what to change.
        let kind = if message.starts_with(SCRIPT_ACL_REFUSAL) {
            RejectionKind::NoPermission
        } else {
            RejectionKind::from_code(code)
        };
        Self {
            kind,
            message,
            cause: Some(cause.clone()),
        }
    }

    /// Which refusal this is.
    pub fn kind(&self) -> RejectionKind {
        self.kind
    }

    /// Redis's reply (or our own text), without the "rejected" preamble.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl ConnectionError {
    /// Classifies a fred error; the one place where Redis's replies are
    /// read for their meaning. `timeout` is the timeout the command ran
    /// under, reported in [`ConnectionError::Timeout`].
    pub fn from_fred(error: &FredError, timeout: Duration) -> Self {
        if let Some(inner) = script_error(error.details()) {
            return classify_server_error(inner.to_owned(), error);
        }
        let details = error.details().to_owned();
        let cause = Some(error.clone());
        match error.kind() {
            ErrorKind::Timeout => ConnectionError::Timeout(timeout),
            ErrorKind::Auth => ConnectionError::Auth {
                reason: details,
                cause,
            },
            ErrorKind::Config | ErrorKind::Url => {
                ConnectionError::Config(ConfigError::new("REDIS_URL", details))
            }
            #[cfg(feature = "tls")]
            ErrorKind::Tls => ConnectionError::Tls {
                reason: details,
                cause,
            },
            ErrorKind::IO if is_tls_failure(&details) => ConnectionError::Tls {
                reason: format!("certificate verification failed: {}", tls_reason(&details)),
                cause,
            },
            ErrorKind::IO
            | ErrorKind::Canceled
            | ErrorKind::Backpressure
            | ErrorKind::Routing
            | ErrorKind::Cluster
            | ErrorKind::Sentinel
            | ErrorKind::Protocol => ConnectionError::Unavailable {
                reason: details,
                cause,
            },
            ErrorKind::InvalidArgument
            | ErrorKind::InvalidCommand
            | ErrorKind::Parse
            | ErrorKind::NotFound => {
                ConnectionError::Rejected(Rejection::from_reply(details, error))
            }
            ErrorKind::Unknown => classify_server_error(details, error),
        }
    }

    /// Classifies the text of a Redis error reply (`OOM command not
    /// allowed ...`) exactly as [`from_fred`](Self::from_fred) classifies
    /// that reply arriving from the server: for code that holds a reply's
    /// text but no fred error (a relayed reply, the tests of the crates
    /// that map these errors), so that it need not name fred.
    pub fn from_server_reply(reply: &str) -> Self {
        let error = FredError::new(ErrorKind::Unknown, reply.to_owned());
        // A reply is never a timeout: the duration is never reported.
        Self::from_fred(&error, Duration::ZERO)
    }

    /// "Redis is unavailable" for a reason of our own, with no fred error
    /// behind it.
    pub(crate) fn unavailable(reason: impl Into<String>) -> Self {
        ConnectionError::Unavailable {
            reason: reason.into(),
            cause: None,
        }
    }

    /// Whether Redis could not answer (down, unreachable, too slow): the
    /// caller may degrade and retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            ConnectionError::Unavailable { .. }
                | ConnectionError::Timeout(_)
                | ConnectionError::Shutdown
        )
    }

    /// The refusal, when Redis answered no.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            ConnectionError::Rejected(rejection) => Some(rejection),
            _ => None,
        }
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
/// How Redis 7.0 and 7.1 begin an ACL refusal of a command inside a script
/// (`... run this command`, `... access at least one of the keys`, ...).
const SCRIPT_ACL_REFUSAL: &str = "ERR The user executing the script can't ";

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

fn classify_server_error(details: String, error: &FredError) -> ConnectionError {
    let code = details.split_whitespace().next().unwrap_or("");
    let is_error_code = !code.is_empty() && code.bytes().all(|b| b.is_ascii_uppercase());
    match code {
        "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN" | "READONLY" => {
            ConnectionError::Unavailable {
                reason: details,
                cause: Some(error.clone()),
            }
        }
        _ if is_error_code => ConnectionError::Rejected(Rejection::from_reply(details, error)),
        // fred's own "client is not initialized"-style failures.
        _ => ConnectionError::Unavailable {
            reason: details,
            cause: Some(error.clone()),
        },
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn classify(kind: ErrorKind, message: &str) -> ConnectionError {
        let fred = FredError::new(kind, message.to_owned());
        ConnectionError::from_fred(&fred, Duration::from_millis(5))
    }

    fn rejection(error: &ConnectionError) -> (RejectionKind, &str) {
        let rejection = error.rejection().expect("a rejection");
        (rejection.kind(), rejection.message())
    }

    // A command's error inside a script reads the same from Redis 6.2 (which
    // wraps it) as from Redis 7 (which does not).
    #[test]
    fn script_errors_are_unwrapped_as_redis_7_reports_them() {
        let wrapped = "ERR Error running script (call to f_9405b0): @user_script:1: \
                       @user_script: 1: -OOM command not allowed when used memory > 'maxmemory'.";
        assert_eq!(
            rejection(&classify(ErrorKind::Unknown, wrapped)),
            (
                RejectionKind::OutOfMemory,
                "OOM command not allowed when used memory > 'maxmemory'."
            )
        );
        let busy = "ERR Error running script (call to f_1): @user_script:2: -BUSY Redis is busy";
        assert!(classify(ErrorKind::Unknown, busy).is_unavailable());
        // A script's own error (no inner reply code) stays as it was.
        let own = "ERR Error running script (call to f_1): @user_script:3: boom";
        assert_eq!(
            rejection(&classify(ErrorKind::Unknown, own)),
            (RejectionKind::Other, own)
        );
    }

    // WRONGTYPE and NOSCRIPT are told apart here, once, whatever kind fred
    // gave the reply and whether a Redis 6 script wrapped it.
    #[test]
    fn wrongtype_and_noscript_are_classified_once_here() {
        let wrongtype = "WRONGTYPE Operation against a key holding the wrong kind of value";
        for kind in [ErrorKind::Unknown, ErrorKind::InvalidArgument] {
            assert_eq!(
                rejection(&classify(kind, wrongtype)),
                (RejectionKind::WrongType, wrongtype)
            );
        }
        let in_script =
            format!("ERR Error running script (call to f_1): @user_script:1: -{wrongtype}");
        assert_eq!(
            rejection(&classify(ErrorKind::Unknown, &in_script)).0,
            RejectionKind::WrongType
        );
        let noscript = "NOSCRIPT No matching script. Please use EVAL.";
        assert_eq!(
            rejection(&classify(ErrorKind::Unknown, noscript)),
            (RejectionKind::NoScript, noscript)
        );
        // A code that merely starts like one is not it.
        assert_eq!(
            rejection(&classify(ErrorKind::Unknown, "WRONGTYPEX no")).0,
            RejectionKind::Other
        );
        let state = ["OOM x", "MISCONF x", "NOREPLICAS x", "NOPERM x"];
        for message in state {
            let kind = rejection(&classify(ErrorKind::Unknown, message)).0;
            assert!(kind.is_refusal_of_state(), "{message}: {kind:?}");
        }
        assert!(!RejectionKind::WrongType.is_refusal_of_state());
    }

    // Redis 7.0 and 7.1 report an ACL refusal inside a script as `ERR The
    // user executing the script can't ...` (7.2 says `NOPERM`): it is the
    // same refusal of state, not a bug of the command.
    #[test]
    fn a_scripts_acl_refusal_is_no_permission_on_every_redis_7() {
        for message in [
            "ERR The user executing the script can't run this command or subcommand script: e85e, on @user_script:37.",
            "ERR The user executing the script can't access at least one of the keys mentioned in the command script: e85e, on @user_script:3.",
            "NOPERM User w has no permissions to run the 'publish' command script: e85e, on @user_script:37.",
        ] {
            let kind = rejection(&classify(ErrorKind::Unknown, message)).0;
            assert_eq!(kind, RejectionKind::NoPermission, "{message}");
        }
        assert_eq!(
            rejection(&classify(ErrorKind::Unknown, "ERR The user said no")).0,
            RejectionKind::Other
        );
    }

    // A classified Redis error keeps fred's error as its source; so does the
    // rejection, and an error of our own making has none.
    #[test]
    fn a_wrapped_redis_error_keeps_fred_as_its_source() {
        for error in [
            classify(ErrorKind::Unknown, "WRONGTYPE Operation"),
            classify(ErrorKind::IO, "connection reset"),
            classify(ErrorKind::Auth, "WRONGPASS invalid password"),
        ] {
            let source = error.source().expect("a source");
            let fred = source.downcast_ref::<FredError>().expect("fred's error");
            assert!(error.to_string().contains(fred.details()), "{error}");
        }
        let rejection = classify(ErrorKind::Unknown, "ERR syntax error");
        assert!(rejection.rejection().unwrap().source().is_some());
        assert!(
            ConnectionError::unavailable("not connected")
                .source()
                .is_none()
        );
        assert!(
            Rejection::new(RejectionKind::Other, "ours")
                .source()
                .is_none()
        );
    }

    // Server replies are sorted into "not now" and "no".
    #[test]
    fn server_errors_are_sorted_into_unavailable_and_rejected() {
        let timeout = Duration::from_millis(5);
        assert_eq!(
            classify(ErrorKind::Timeout, "x"),
            ConnectionError::Timeout(timeout)
        );
        assert!(classify(ErrorKind::IO, "refused").is_unavailable());
        assert!(classify(ErrorKind::Unknown, "LOADING Redis is loading").is_unavailable());
        assert!(matches!(
            classify(ErrorKind::Unknown, "ERR syntax error"),
            ConnectionError::Rejected(_)
        ));
        assert!(matches!(
            classify(ErrorKind::Auth, "WRONGPASS"),
            ConnectionError::Auth { .. }
        ));
        assert!(classify(ErrorKind::Unknown, "Client is not initialized.").is_unavailable());
        let tls = classify(
            ErrorKind::IO,
            "Custom { kind: InvalidData, error: InvalidCertificate(UnknownIssuer) }",
        );
        assert_eq!(
            tls.to_string(),
            "TLS error: certificate verification failed: InvalidCertificate(UnknownIssuer)"
        );
    }
}
