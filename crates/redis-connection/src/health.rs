//! Health checks: is Redis answering, and how fast?

use std::time::{Duration, Instant};

use fred::interfaces::ClientLike;
use fred::prelude::Client;
use fred::types::config::Options;
use serde::{Serialize, Serializer};

use crate::error::ConnectionError;

/// The verdict of a health check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    /// Every connection answers PING within the threshold.
    Healthy,
    /// Redis answers, but slower than the threshold, or part of the pool (or
    /// of the cluster) does not.
    Degraded,
    /// No answer within the timeout.
    Unhealthy,
}

/// The result of [`crate::RedisConnectionManager::health_check`]; serialises
/// to exactly `{"status", "connected", "latency_ms", "error"}`, which the
/// services return as is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    /// The verdict.
    pub status: HealthStatus,
    /// Whether the pool holds at least one live connection.
    pub connected: bool,
    /// The slowest successful PING round trip (`latency_ms`, a float with
    /// sub-millisecond precision); `None` when nothing answered.
    #[serde(rename = "latency_ms", serialize_with = "as_millis_f64")]
    pub latency: Option<Duration>,
    /// What is wrong, when something is.
    pub error: Option<String>,
}

fn as_millis_f64<S: Serializer>(latency: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match latency {
        Some(d) => s.serialize_f64(d.as_secs_f64() * 1000.0),
        None => s.serialize_none(),
    }
}

/// One PING's outcome.
pub(crate) type Probe = Result<Duration, ConnectionError>;

/// PINGs through `client` (at `node` when given), bounded by `timeout`, and
/// failing at once when the client is not connected.
pub(crate) async fn ping(
    client: &Client,
    node: Option<fred::types::config::Server>,
    timeout: Duration,
) -> Probe {
    let options = Options {
        timeout: Some(timeout),
        fail_fast: true,
        max_attempts: Some(1),
        cluster_node: node,
        ..Options::default()
    };
    let start = Instant::now();
    let result: Result<String, _> = client.with_options(&options).ping(None).await;
    match result {
        Ok(_) => Ok(start.elapsed()),
        Err(e) if e.is_canceled() => Err(ConnectionError::unavailable("not connected")),
        Err(e) => Err(ConnectionError::from_fred(&e, timeout)),
    }
}

/// Turns probe results into a report.
///
/// `what` names the probed things in messages ("pooled connections",
/// "cluster primaries"); `down_elsewhere` counts pooled clients known to be
/// down that were not probed.
pub(crate) fn assess(
    probes: &[Probe],
    what: &str,
    down_elsewhere: usize,
    connected: bool,
    threshold: Duration,
) -> HealthReport {
    let latency = probes.iter().filter_map(|p| p.as_ref().ok()).max().copied();
    let failures: Vec<&ConnectionError> = probes.iter().filter_map(|p| p.as_ref().err()).collect();
    let (status, error) = match latency {
        None => (
            HealthStatus::Unhealthy,
            Some(
                failures
                    .first()
                    .map_or_else(|| "no connection".to_owned(), |e| e.to_string()),
            ),
        ),
        Some(_) if !failures.is_empty() => (
            HealthStatus::Degraded,
            Some(format!(
                "{} of {} {what} did not answer: {}",
                failures.len(),
                probes.len(),
                failures[0]
            )),
        ),
        Some(_) if down_elsewhere > 0 => (
            HealthStatus::Degraded,
            Some(format!("{down_elsewhere} pooled connections are down")),
        ),
        Some(latency) if latency > threshold => (
            HealthStatus::Degraded,
            Some(format!(
                "PING took {:.3} ms, above the {} ms threshold",
                latency.as_secs_f64() * 1000.0,
                threshold.as_millis()
            )),
        ),
        Some(_) => (HealthStatus::Healthy, None),
    };
    HealthReport {
        status,
        connected,
        latency,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: Duration = Duration::from_millis(100);

    // The JSON has exactly the four documented fields, latency as float milliseconds.
    #[test]
    fn health_json_has_the_four_documented_fields() {
        let report = assess(&[Ok(Duration::from_micros(1500))], "x", 0, true, T);
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"status": "healthy", "connected": true, "latency_ms": 1.5, "error": null})
        );
    }

    // Each condition maps to its verdict.
    #[test]
    fn each_probe_outcome_maps_to_its_health_verdict() {
        let down = || Err(ConnectionError::Timeout(T));
        let fast = || Ok(Duration::from_millis(1));
        assert_eq!(
            assess(&[down(), down()], "x", 0, false, T).status,
            HealthStatus::Unhealthy
        );
        assert_eq!(
            assess(&[fast(), down()], "x", 0, true, T).status,
            HealthStatus::Degraded
        );
        assert_eq!(
            assess(&[fast()], "x", 1, true, T).status,
            HealthStatus::Degraded
        );
        let slow = assess(&[Ok(Duration::from_millis(150))], "x", 0, true, T);
        assert_eq!(slow.status, HealthStatus::Degraded);
        assert!(slow.error.unwrap().contains("above the 100 ms threshold"));
        assert_eq!(
            assess(&[fast(), fast()], "x", 0, true, T).status,
            HealthStatus::Healthy
        );
    }
}
