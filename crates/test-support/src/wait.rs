//! Waiting for a condition, with a deadline: the tests' alternative to sleeping.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 10 ms until it returns `true`; panics naming `what`
/// when `timeout` passes first. Returns how long it took.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Synchronous [`wait_for`], for checks that do not need a runtime.
pub fn wait_for_sync(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    loop {
        if check() {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}
