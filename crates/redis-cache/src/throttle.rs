//! Rate-limited logging: while Redis is down every read fails, and one log
//! line per read would flood the logs exactly when they are most needed.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Lets one event through per `period`, counting the ones it swallowed.
#[derive(Debug)]
pub(crate) struct LogThrottle {
    period: Duration,
    state: Mutex<(Option<Instant>, u64)>,
}

impl LogThrottle {
    pub(crate) fn new(period: Duration) -> Self {
        Self {
            period,
            state: Mutex::new((None, 0)),
        }
    }

    /// `Some(suppressed)` when this event should be logged, with the number
    /// of events swallowed since the last one; `None` to stay quiet.
    pub(crate) fn check(&self) -> Option<u64> {
        let mut state = self.state.lock().expect("throttle lock");
        let now = Instant::now();
        match state.0 {
            Some(last) if now.duration_since(last) < self.period => {
                state.1 += 1;
                None
            }
            _ => {
                let suppressed = state.1;
                *state = (Some(now), 0);
                Some(suppressed)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Within one period only the first event passes; the next reports the count.
    #[test]
    fn one_per_period() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.check(), Some(0));
        assert_eq!(throttle.check(), None);
        assert_eq!(throttle.check(), None);
        let quick = LogThrottle::new(Duration::ZERO);
        assert_eq!(quick.check(), Some(0));
        assert_eq!(quick.check(), Some(0));
    }
}
