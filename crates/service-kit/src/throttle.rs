//! Rate-limited logging: a condition that repeats on every request (Redis
//! refusing writes, connections over the cap) is logged once per period,
//! with the number of repeats swallowed since.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one event through per period and counts the rest.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    period: Duration,
    /// When the last event was let through, and how many were swallowed since.
    state: Mutex<Option<(Instant, u64)>>,
}

impl LogThrottle {
    pub(crate) const fn new(period: Duration) -> Self {
        Self {
            period,
            state: Mutex::new(None),
        }
    }

    /// `Some(swallowed)` when this event is to be logged, else `None`.
    pub(crate) fn check(&self) -> Option<u64> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        match state.as_mut() {
            Some((last, swallowed)) if now.duration_since(*last) < self.period => {
                *swallowed += 1;
                None
            }
            _ => {
                let swallowed = state.map_or(0, |(_, n)| n);
                *state = Some((now, 0));
                Some(swallowed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The first event of a period is let through, the rest are counted and
    // reported with the next one let through.
    #[test]
    fn one_event_per_period_and_a_count_of_the_rest() {
        let slow = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(slow.check(), Some(0));
        assert_eq!(slow.check(), None);
        assert_eq!(slow.check(), None);
        let every = LogThrottle::new(Duration::ZERO);
        assert_eq!(every.check(), Some(0));
        assert_eq!(every.check(), Some(0));
    }
}
