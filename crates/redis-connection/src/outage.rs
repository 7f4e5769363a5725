//! What an outage looks like in the logs: one WARN when Redis goes, one
//! INFO when it is back, and in between one summary per period of the
//! connection attempts that failed; never a line per attempt (each pooled
//! connection retries on its own) nor per request.
//!
//! An operator grepping for WARN sees one line per outage; one looking at
//! INFO sees that the process is still trying, and how hard.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use crate::error::ConnectionError;
use crate::status::ConnectionStatus;

/// How often an ongoing outage is summarised.
pub(crate) const SUMMARY_EVERY: Duration = Duration::from_secs(10);

/// Which connections a monitor watches: the pool's outage is the one that
/// matters to callers (WARN); the subscriber's follows it (INFO), and the
/// pub/sub layer reports what it means for invalidations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    Pool,
    Subscriber,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Pool => "pool",
            Role::Subscriber => "subscriber",
        }
    }
}

/// The log of one monitor's outages.
#[derive(Debug)]
pub(crate) struct OutageLog {
    role: Role,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// When the current outage began; `None` while connected.
    since: Option<Instant>,
    /// Failures since the last summary, and since the outage began.
    failed_since_summary: u64,
    failed_in_outage: u64,
    last_summary: Option<Instant>,
}

impl OutageLog {
    pub(crate) fn new(role: Role) -> Self {
        Self {
            role,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The monitor's status went from `before` to `after`: an outage begins
    /// when no connection is left, and ends at the first one back.
    pub(crate) fn status_changed(
        &self,
        before: ConnectionStatus,
        after: ConnectionStatus,
        cause: Option<&ConnectionError>,
    ) {
        let mut state = self.state();
        let role = self.role.as_str();
        match after {
            ConnectionStatus::Disconnected if state.since.is_none() => {
                let now = Instant::now();
                *state = State {
                    since: Some(now),
                    last_summary: Some(now),
                    ..State::default()
                };
                let cause = cause.map_or_else(|| "connection lost".to_owned(), ToString::to_string);
                match self.role {
                    Role::Pool => warn!(
                        redis.role = role,
                        error = %cause,
                        "Redis is unreachable: commands fail until a connection is back; retrying with backoff"
                    ),
                    Role::Subscriber => info!(
                        redis.role = role,
                        error = %cause,
                        "Redis subscriber connection lost; retrying with backoff"
                    ),
                }
            }
            ConnectionStatus::Connected => {
                if let Some(since) = state.since.take() {
                    let outage_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX);
                    let failed_attempts = state.failed_in_outage;
                    match self.role {
                        Role::Pool => info!(
                            redis.role = role,
                            outage_ms, failed_attempts, "Redis is reachable again"
                        ),
                        Role::Subscriber => info!(
                            redis.role = role,
                            outage_ms, failed_attempts, "Redis subscriber connection is back"
                        ),
                    }
                } else {
                    debug!(redis.role = role, from = before.as_str(), "Redis connected");
                }
            }
            _ => debug!(
                redis.role = role,
                from = before.as_str(),
                to = after.as_str(),
                "Redis connection status changed"
            ),
        }
    }

    /// A connection attempt failed (or a connection was found unresponsive).
    /// During an outage it is counted into the next summary and `true` is
    /// returned: the caller logs it at DEBUG only. Outside one (other
    /// connections still serve) the caller logs it itself.
    pub(crate) fn attempt_failed(&self, error: &dyn std::fmt::Display) -> bool {
        let mut state = self.state();
        let Some(since) = state.since else {
            return false;
        };
        state.failed_since_summary += 1;
        state.failed_in_outage += 1;
        let now = Instant::now();
        if state
            .last_summary
            .is_none_or(|last| now.duration_since(last) >= SUMMARY_EVERY)
        {
            info!(
                redis.role = self.role.as_str(),
                failed_attempts = state.failed_since_summary,
                outage_ms = u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX),
                last_error = %error,
                "Redis still unreachable"
            );
            state.failed_since_summary = 0;
            state.last_summary = Some(now);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_counted_only_during_an_outage_and_the_outage_ends_at_the_first_connection() {
        let log = OutageLog::new(Role::Pool);
        assert!(
            !log.attempt_failed(&"refused"),
            "no outage yet: the caller logs"
        );
        log.status_changed(
            ConnectionStatus::Connected,
            ConnectionStatus::Disconnected,
            None,
        );
        assert!(log.attempt_failed(&"refused"));
        assert!(log.attempt_failed(&"refused"));
        assert_eq!(log.state().failed_in_outage, 2);
        log.status_changed(
            ConnectionStatus::Disconnected,
            ConnectionStatus::Connected,
            None,
        );
        assert!(log.state().since.is_none());
        assert!(!log.attempt_failed(&"refused"));
    }
}
