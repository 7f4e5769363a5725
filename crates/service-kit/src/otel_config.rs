//! [`OtelConfig`]: where traces go, read once from the standard `OTEL_*`
//! variables (the names every OpenTelemetry SDK reads, so an operator's
//! collector settings carry over).

use std::time::Duration;

use redis_connection::{ConfigError, Env};
use secrecy::{ExposeSecret, SecretString};

/// The `OTEL_*` variables [`OtelConfig::from_env`] reads.
pub const OTEL_ENV_VARS: [&str; 8] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
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

/// Trace export settings. Export is off unless an endpoint is set.
#[derive(Clone)]
#[non_exhaustive]
pub struct OtelConfig {
    /// The full OTLP/HTTP traces URL (`.../v1/traces`), or `None`: no
    /// export, and no tracing cost beyond the logs'.
    pub traces_endpoint: Option<String>,
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
        let traces_endpoint = match env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            // The signal's own variable is the full URL, as the spec says.
            Some(url) => Some(http_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &url)?),
            None => match env.get("OTEL_EXPORTER_OTLP_ENDPOINT") {
                Some(base) => {
                    let base = http_url("OTEL_EXPORTER_OTLP_ENDPOINT", &base)?;
                    Some(format!("{}/v1/traces", base.trim_end_matches('/')))
                }
                None => None,
            },
        };
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
            service_name,
            sampler,
            headers,
            timeout,
            max_queue,
        })
    }
}

/// `value` if it is an `http://` URL. `https://` needs a TLS-enabled
/// exporter, which this build leaves out to keep compile times down: send
/// to a collector (or agent) next to the service instead.
fn http_url(name: &str, value: &str) -> Result<String, ConfigError> {
    let trimmed = value.trim();
    if trimmed.starts_with("https://") {
        return Err(ConfigError::new(
            name,
            "https is not supported by this build; point it at a local OpenTelemetry collector over http://",
        ));
    }
    if !trimmed.starts_with("http://") || trimmed.len() <= "http://".len() {
        return Err(ConfigError::new(name, "must be an http:// URL"));
    }
    Ok(trimmed.to_owned())
}

/// `key1=value1,key2=value2` (values percent-encoded, as the spec says):
/// names in clear, values kept secret. A bad entry is reported by its
/// position only, since a value may be an API key.
fn parse_headers(text: &SecretString) -> Result<Vec<(String, SecretString)>, ConfigError> {
    const NAME: &str = "OTEL_EXPORTER_OTLP_HEADERS";
    let mut headers = Vec::new();
    for (i, entry) in text.expose_secret().split(',').enumerate() {
        if entry.trim().is_empty() {
            continue;
        }
        let Some((key, value)) = entry.split_once('=') else {
            return Err(ConfigError::new(
                NAME,
                format!("entry {} is not key=value", i + 1),
            ));
        };
        let key = key.trim();
        let valid_name = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid_name {
            return Err(ConfigError::new(
                NAME,
                format!("entry {} has no valid header name", i + 1),
            ));
        }
        let value = percent_decode(value.trim()).ok_or_else(|| {
            ConfigError::new(NAME, format!("entry {} has a bad percent-encoding", i + 1))
        })?;
        headers.push((key.to_owned(), SecretString::from(value)));
    }
    Ok(headers)
}

/// Decodes `%XX` escapes; `None` for a broken escape or non-UTF-8 result.
fn percent_decode(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = value.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(vars: &[(&str, &str)]) -> Result<OtelConfig, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        OtelConfig::from_env(&Env::from_fn(|name| map.get(name).cloned()), "svc")
    }

    // Unset endpoint: export off; the defaults are the spec's.
    #[test]
    fn without_an_endpoint_export_is_off() {
        let config = read(&[]).unwrap();
        assert_eq!(config.traces_endpoint, None);
        assert_eq!(config.service_name, "svc");
        assert_eq!(config.sampler, SamplerChoice::ParentBasedAlwaysOn);
        assert_eq!(config.max_queue, 2048);
    }

    // The base endpoint gets /v1/traces; the traces endpoint is used as is
    // and wins.
    #[test]
    fn endpoints_follow_the_otlp_specification() {
        let base = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]).unwrap();
        assert_eq!(
            base.traces_endpoint.as_deref(),
            Some("http://c:4318/v1/traces")
        );
        let both = read(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:1/x"),
        ])
        .unwrap();
        assert_eq!(both.traces_endpoint.as_deref(), Some("http://t:1/x"));
        let tls = read(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]);
        assert_eq!(tls.unwrap_err().variable, "OTEL_EXPORTER_OTLP_ENDPOINT");
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
