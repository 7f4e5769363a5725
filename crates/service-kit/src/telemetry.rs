//! Structured logs: `LOG_FORMAT=json|pretty`, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `format` is `json` or `pretty`; the
/// filter comes from `RUST_LOG` (default `info`). Safe to call twice.
pub fn init(format: &str) {
    let directives = std::env::var("RUST_LOG").unwrap_or_default();
    let filter = EnvFilter::try_new(with_quiet_fred(&directives))
        .unwrap_or_else(|_| EnvFilter::new(with_quiet_fred("info")));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init()
    } else {
        builder.try_init()
    };
}

/// `directives` (default `info`), with fred's own log lines limited to
/// errors unless they name fred. fred logs a WARN per connection for every
/// connection it loses; redis-connection's monitor reports the same events
/// once per outage (see `redis_connection`'s outage log), so at the default
/// level an outage would otherwise be a burst of duplicate warnings.
fn with_quiet_fred(directives: &str) -> String {
    let directives = if directives.trim().is_empty() {
        "info"
    } else {
        directives
    };
    if directives.contains("fred") {
        directives.to_owned()
    } else {
        format!("{directives},fred=error")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fred_is_quieted_unless_the_directives_name_it() {
        assert_eq!(with_quiet_fred(""), "info,fred=error");
        assert_eq!(with_quiet_fred("debug"), "debug,fred=error");
        assert_eq!(with_quiet_fred("info,fred=debug"), "info,fred=debug");
    }
}
