//! [`OtelConfig`]: where traces and metrics go, read once from the
//! standard `OTEL_*` variables (the names every OpenTelemetry SDK reads, so
//! an operator's collector settings carry over).

use std::path::PathBuf;
use std::time::Duration;

use redis_connection::{ConfigError, Env};
use secrecy::SecretString;

use crate::otel_headers::parse_headers;

/// The `OTEL_*` variables [`OtelConfig::from_env`] reads.
pub const OTEL_ENV_VARS: [&str; 11] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "OTEL_EXPORTER_OTLP_CERTIFICATE",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_SERVICE_NAME",
    "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",
    "OTEL_BSP_MAX_QUEUE_SIZE",
];

/// Which traces are kept (`OTEL_TRACES_SAMPLER`, with
/// `OTEL_TRACES_SAMPLER_ARG` as the ratio where one is taken).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum SamplerChoice {
    /// `always_on`.
    AlwaysOn,
    /// `always_off`.
    AlwaysOff,
    /// `traceidratio`: this share of traces, by trace id.
    Ratio(f64),
    /// `parentbased_always_on` (the default): follow the caller's
    /// decision, keep every root.
    ParentBasedAlwaysOn,
    /// `parentbased_always_off`: follow the caller's decision, keep no root.
    ParentBasedAlwaysOff,
    /// `parentbased_traceidratio`: follow the caller's decision, keep this
    /// share of roots.
    ParentBasedRatio(f64),
}

/// Trace and metric export settings. Each signal's export is off unless
/// an endpoint is set for it.
#[derive(Clone)]
#[non_exhaustive]
pub struct OtelConfig {
    /// The full OTLP/HTTP traces URL (`.../v1/traces`), or `None`: no
    /// export, and no tracing cost beyond the logs'.
    pub traces_endpoint: Option<String>,
    /// The full OTLP/HTTP metrics URL (`.../v1/metrics`), or `None`: the
    /// metrics are on `/metrics` only.
    pub metrics_endpoint: Option<String>,
    /// How often the metrics are exported.
    pub metric_interval: Duration,
    /// A PEM file of CA certificates trusted for `https://` endpoints, on
    /// top of the system's roots.
    pub certificate: Option<PathBuf>,
    /// `service.name` of every span.
    pub service_name: String,
    /// Which traces are kept.
    pub sampler: SamplerChoice,
    /// Headers sent with every export (often an API key): never logged.
    pub headers: Vec<(String, SecretString)>,
    /// Longest one export may take.
    pub timeout: Duration,
    /// Spans waiting for export at most; beyond it they are dropped and
    /// counted (`otel_spans_dropped_total`).
    pub max_queue: usize,
}

impl std::fmt::Debug for OtelConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OtelConfig")
            .field("traces_endpoint", &self.traces_endpoint)
            .field("metrics_endpoint", &self.metrics_endpoint)
            .field("metric_interval", &self.metric_interval)
            .field("certificate", &self.certificate)
            .field("service_name", &self.service_name)
            .field("sampler", &self.sampler)
            .field("headers", &self.headers.len())
            .field("timeout", &self.timeout)
            .field("max_queue", &self.max_queue)
            .finish()
    }
}

impl OtelConfig {
    /// Reads the `OTEL_*` variables; `service` is the default service name.
    ///
    /// # Errors
    /// The first bad variable, by name (a header's value is never shown).
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        service: &str,
    ) -> Result<Self, ConfigError> {
        Self::read(env, service, cfg!(feature = "otlp-tls"))
    }

    /// [`from_env`](Self::from_env) for a build with (`tls_built`) or
    /// without TLS in the exporter, so that both are tested in one build.
    fn read<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        service: &str,
        tls_built: bool,
    ) -> Result<Self, ConfigError> {
        let endpoint = |signal: &str, path: &str| -> Result<Option<String>, ConfigError> {
            // The signal's own variable is the full URL, as the spec says;
            // the base one gets the signal's path.
            let own = format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT");
            if let Some(url) = env.get(&own) {
                return Ok(Some(otlp_url(&own, &url, tls_built)?));
            }
            let Some(base) = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") else {
                return Ok(None);
            };
            let base = otlp_url("OTEL_EXPORTER_OTLP_ENDPOINT", &base, tls_built)?;
            Ok(Some(format!("{}/{path}", base.trim_end_matches('/'))))
        };
        let traces_endpoint = endpoint("TRACES", "v1/traces")?;
        let metrics_endpoint = endpoint("METRICS", "v1/metrics")?;
        // The spec's default is a minute; the floor keeps a typo from
        // turning export into a busy loop.
        let metric_interval = env.millis(
            "OTEL_METRIC_EXPORT_INTERVAL",
            Duration::from_secs(60),
            50,
            3_600_000,
        )?;
        let certificate = env.get("OTEL_EXPORTER_OTLP_CERTIFICATE").map(PathBuf::from);
        let service_name = env
            .get("OTEL_SERVICE_NAME")
            .unwrap_or_else(|| service.to_owned());
        let ratio = match env.get("OTEL_TRACES_SAMPLER_ARG") {
            None => 1.0,
            Some(arg) => arg
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    ConfigError::new("OTEL_TRACES_SAMPLER_ARG", "must be a number from 0 to 1")
                })?,
        };
        let sampler = match env.choice(
            "OTEL_TRACES_SAMPLER",
            "parentbased_always_on",
            &[
                "always_on",
                "always_off",
                "traceidratio",
                "parentbased_always_on",
                "parentbased_always_off",
                "parentbased_traceidratio",
            ],
        )? {
            "always_on" => SamplerChoice::AlwaysOn,
            "always_off" => SamplerChoice::AlwaysOff,
            "traceidratio" => SamplerChoice::Ratio(ratio),
            "parentbased_always_off" => SamplerChoice::ParentBasedAlwaysOff,
            "parentbased_traceidratio" => SamplerChoice::ParentBasedRatio(ratio),
            _ => SamplerChoice::ParentBasedAlwaysOn,
        };
        let headers = match env.get("OTEL_EXPORTER_OTLP_HEADERS") {
            None => Vec::new(),
            Some(text) => parse_headers(&SecretString::from(text))?,
        };
        let timeout = env.millis(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            Duration::from_secs(10),
            1,
            600_000,
        )?;
        let max_queue = env.number("OTEL_BSP_MAX_QUEUE_SIZE", 2048, 1, 1_000_000)?;
        Ok(Self {
            traces_endpoint,
            metrics_endpoint,
            metric_interval,
            certificate,
            service_name,
            sampler,
            headers,
            timeout,
            max_queue,
        })
    }
}

/// `value` if it is an `http://` URL, or an `https://` one in a build with
/// TLS in the exporter (`tls_built`, the `otlp-tls` feature). Without it an
/// https endpoint is refused rather than tried in plain text.
fn otlp_url(name: &str, value: &str, tls_built: bool) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    let scheme = ["http://", "https://"]
        .into_iter()
        .find(|s| trimmed.starts_with(s));
    match scheme {
        Some(scheme) if trimmed.len() > scheme.len() => {}
        _ => return Err(ConfigError::new(name, "must be an http:// or https:// URL")),
    }
    if scheme == Some("https://") && !tls_built {
        return Err(ConfigError::new(
            name,
            "https is not supported by this build (built without service-kit's otlp-tls feature); use http:// to a local OpenTelemetry collector",
        ));
    }
    Ok(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use secrecy::ExposeSecret;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<OtelConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtelConfig::read(&Env::from_fn(|name| map.get(name).cloned()), "svc", true)
    }

    // Unset endpoint: export off; the defaults are the spec's.
    #[test]
    fn without_an_endpoint_export_is_off() {
        let config = read(&[]).unwrap();
        assert_eq!(config.traces_endpoint, None);
        assert_eq!(config.metrics_endpoint, None);
        assert_eq!(config.metric_interval, Duration::from_secs(60));
        assert_eq!(config.service_name, "svc");
        assert_eq!(config.sampler, SamplerChoice::ParentBasedAlwaysOn);
        assert_eq!(config.max_queue, 2048);
    }

    // The base endpoint gets /v1/traces and /v1/metrics; a signal's own
    // endpoint is used as is and wins.
    #[test]
    fn endpoints_follow_the_otlp_specification() {
        let base = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
        assert_eq!(
            base.traces_endpoint.as_deref(),
            Some("http://c:4318/v1/traces")
        );
        assert_eq!(
            base.metrics_endpoint.as_deref(),
            Some("http://c:4318/v1/metrics")
        );
        let own = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "https://m:1/y"),
        ])
        .unwrap();
        assert_eq!(own.traces_endpoint.as_deref(), Some("http://t:1/x"));
        assert_eq!(own.metrics_endpoint.as_deref(), Some("https://m:1/y"));
        let only_metrics = read(&[("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:1")]).unwrap();
        assert_eq!(only_metrics.traces_endpoint, None);
        let bad = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "c:4318")]);
        assert_eq!(bad.unwrap_err().variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
        let slow = read(&[("OTEL_METRIC_EXPORT_INTERVAL", "1")]);
        assert_eq!(slow.unwrap_err().variable, "OTEL_METRIC_EXPORT_INTERVAL");
    }

    // A build without TLS in the exporter refuses https endpoints by name
    // (never a silent plain-text export); a build with it takes them.
    #[test]
    fn https_endpoints_are_refused_only_without_tls_built_in() {
        let env = |name: &str| {
            (name == "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").then(|| "https://c:4318".to_owned())
        };
        let refused = OtelConfig::read(&Env::from_fn(env), "svc", false).unwrap_err();
        assert_eq!(refused.variable, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
        assert!(refused.reason.contains("otlp-tls"), "{}", refused.reason);
        let taken = OtelConfig::read(&Env::from_fn(env), "svc", true).unwrap();
        assert_eq!(taken.metrics_endpoint.as_deref(), Some("https://c:4318"));
    }

    // Sampler names and the ratio argument are validated.
    #[test]
    fn sampler_and_ratio_are_read_and_checked() {
        let ratio = read(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
        ])
        .unwrap();
        assert_eq!(ratio.sampler, SamplerChoice::Ratio(0.25));
        let bad = read(&[("OTEL_TRACES_SAMPLER_ARG", "2")]).unwrap_err();
        assert_eq!(bad.variable, "OTEL_TRACES_SAMPLER_ARG");
        let unknown = read(&[("OTEL_TRACES_SAMPLER", "sometimes")]).unwrap_err();
        assert_eq!(unknown.variable, "OTEL_TRACES_SAMPLER");
    }

    // Headers decode; a bad one is named by position, its value never shown.
    #[test]
    fn header_errors_never_show_the_secret_value() {
        let ok = read(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s%3Dcret,x=1")]).unwrap();
        assert_eq!(ok.headers.len(), 2);
        assert_eq!(ok.headers[0].0, "api-key");
        assert_eq!(ok.headers[0].1.expose_secret(), "s=cret");
        let bad = read(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=ok,topsecretvalue")]).unwrap_err();
        assert!(!bad.to_string().contains("topsecret"), "{bad}");
        assert!(!format!("{ok:?}").contains("cret"));
    }
}
