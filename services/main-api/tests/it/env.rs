//! Every environment variable either service reads, with a bad value:
//! start-up refuses, naming that variable.

use std::collections::HashMap;

use service_kit::{ConfigError, Env};

use crate::INTERNAL;

/// (variable, a bad value) for every variable the services read that can
/// have a bad value. `REDIS_USERNAME` and `REDIS_PASSWORD` cannot: any
/// string is a possible credential, and a wrong one is refused by Redis at
/// connection time (see redis-connection's auth tests).
const BAD: [(&str, &str); 37] = [
    ("REDIS_URL", "http://not-redis"),
    ("REDIS_PORT", "70000"),
    ("REDIS_TLS", "maybe"),
    ("REDIS_TLS_CA_FILE", "/ca.pem"),
    ("REDIS_DB", "x"),
    ("REDIS_POOL_SIZE", "0"),
    ("REDIS_CONNECT_TIMEOUT_MS", "-5"),
    ("REDIS_COMMAND_TIMEOUT_MS", "0"),
    ("REDIS_RECONNECT_MAX_ATTEMPTS", "lots"),
    ("REDIS_RECONNECT_BASE_DELAY_MS", "0"),
    ("REDIS_RECONNECT_MAX_DELAY_MS", "1.5"),
    ("REDIS_HEALTH_DEGRADED_MS", "soon"),
    ("CACHE_MAX_VALUE_BYTES", "0"),
    ("CACHE_STRICT_READS", "sometimes"),
    ("CACHE_SHARD_TTL_SECS", "60"),
    ("CACHE_L1_MAX_ENTRIES", "-1"),
    ("CACHE_L1_TTL_SECS", "0"),
    ("HTTP_REQUEST_TIMEOUT_MS", "100"),
    ("HTTP_MAX_CONCURRENCY", "0"),
    ("HTTP_MAX_CONCURRENCY_PER_TENANT", "0"),
    ("HTTP_HEADER_READ_TIMEOUT_MS", "5"),
    ("HTTP_MAX_CONNECTIONS", "0"),
    ("HTTP_SHUTDOWN_GRACE_MS", "-1"),
    ("LOG_FORMAT", "xml"),
    ("MAIN_API_ADDR", "localhost"),
    ("MAIN_API_PURGE_JOB_THRESHOLD", "-1"),
    ("MAIN_API_PURGE_JOB_RATE", "0"),
    ("AUTH_BROKER_ADDR", "8081"),
    ("INTERNAL_API_TOKEN", "short"),
    ("SESSION_TTL_SECS", "0"),
    ("SESSION_RATE_LIMIT", "0"),
    ("SESSION_RATE_WINDOW_SECS", "forever"),
    // Values that are fine alone but not together.
    ("REDIS_TLS_CA_FILE", "/ca.pem"),
    ("REDIS_HOST", "redis-with-url"),
    ("REDIS_RECONNECT_MAX_DELAY_MS", "10"),
    ("HTTP_REQUEST_TIMEOUT_MS", "300"),
    ("HTTP_MAX_CONCURRENCY_PER_TENANT", "9"),
];

/// Some variables are only wrong in context: give them that context.
fn context(variable: &str, value: &str) -> Vec<(&'static str, String)> {
    match (variable, value) {
        ("REDIS_HOST", "redis-with-url") => vec![("REDIS_URL", "redis://h:1".to_owned())],
        ("REDIS_RECONNECT_MAX_DELAY_MS", "10") => {
            vec![("REDIS_RECONNECT_BASE_DELAY_MS", "100".to_owned())]
        }
        ("HTTP_REQUEST_TIMEOUT_MS", "300") => vec![("REDIS_COMMAND_TIMEOUT_MS", "500".to_owned())],
        ("HTTP_MAX_CONCURRENCY_PER_TENANT", "9") => vec![("HTTP_MAX_CONCURRENCY", "8".to_owned())],
        _ => Vec::new(),
    }
}

fn check(variable: &str, value: &str, result: Result<(), ConfigError>) {
    let error = result.expect_err(&format!("{variable}={value:?} was accepted"));
    assert_eq!(
        error.variable, variable,
        "{variable}={value:?} blamed {}",
        error.variable
    );
    assert!(error.to_string().contains(variable));
}

// Each bad value stops both services' configuration, naming its variable
// (each service only for the variables it reads).
#[test]
fn every_bad_variable_is_named() {
    for (variable, value) in BAD {
        let mut vars: HashMap<String, String> = HashMap::new();
        vars.insert("INTERNAL_API_TOKEN".into(), INTERNAL.into());
        vars.extend(
            context(variable, value)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
        vars.insert(variable.into(), value.into());
        let env = Env::from_fn(|n| vars.get(n).cloned());
        if variable != "AUTH_BROKER_ADDR"
            && !variable.starts_with("SESSION_")
            && variable != "INTERNAL_API_TOKEN"
        {
            check(
                variable,
                value,
                main_api::Config::from_env(&env).map(|_| ()),
            );
        }
        if !variable.starts_with("MAIN_API_") {
            check(
                variable,
                value,
                auth_broker::Config::from_env(&env).map(|_| ()),
            );
        }
    }
}

// Secrets never reach Debug output: the internal token and the Redis
// password are redacted in both services' configurations.
#[test]
fn secrets_are_redacted_in_debug_output() {
    let password = "redis-Secret/Pass+word=";
    let vars: HashMap<String, String> = [
        ("INTERNAL_API_TOKEN", INTERNAL),
        ("REDIS_PASSWORD", password),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let env = Env::from_fn(|n| vars.get(n).cloned());
    let broker = format!("{:?}", auth_broker::Config::from_env(&env).unwrap());
    let api = format!("{:?}", main_api::Config::from_env(&env).unwrap());
    for debug in [&broker, &api] {
        assert!(!debug.contains(password), "{debug}");
        assert!(!debug.contains(INTERNAL), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }
}
