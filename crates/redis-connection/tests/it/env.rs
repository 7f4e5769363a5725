//! Configuration from environment variables.

use std::collections::HashMap;
use std::time::Duration;

use std::cell::RefCell;
use std::collections::BTreeSet;

use redis_connection::{ConfigError, ENV_VARS, RedisConfig, Topology};
use secrecy::ExposeSecret;

fn from(vars: &[(&str, &str)]) -> Result<RedisConfig, ConfigError> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    RedisConfig::from_lookup(|name| map.get(name).cloned())
}

// With nothing set, the defaults point at a local Redis.
#[test]
fn unset_environment_defaults_to_a_local_redis() {
    let c = from(&[]).unwrap();
    assert_eq!(
        c.topology,
        Topology::Centralized {
            host: "127.0.0.1".into(),
            port: 6379
        }
    );
    assert_eq!(c.command_timeout, Duration::from_millis(500));
    assert_eq!(c.reconnect.max_attempts, 0);
    assert!(c.tls.is_none() && c.password.is_none());
}

// Every variable is read.
#[test]
fn every_variable_parsed() {
    let c = from(&[
        ("REDIS_HOST", "redis.internal"),
        ("REDIS_PORT", "6380"),
        ("REDIS_USERNAME", "svc"),
        ("REDIS_PASSWORD", "pw"),
        ("REDIS_TLS", "true"),
        ("REDIS_TLS_CA_FILE", "/etc/ca.pem"),
        ("REDIS_DB", "2"),
        ("REDIS_POOL_SIZE", "8"),
        ("REDIS_CONNECT_TIMEOUT_MS", "1500"),
        ("REDIS_COMMAND_TIMEOUT_MS", "250"),
        ("REDIS_RECONNECT_MAX_ATTEMPTS", "7"),
        ("REDIS_RECONNECT_BASE_DELAY_MS", "20"),
        ("REDIS_RECONNECT_MAX_DELAY_MS", "900"),
        ("REDIS_HEALTH_DEGRADED_MS", "40"),
        ("REDIS_TCP_NODELAY", "true"),
    ])
    .unwrap();
    assert_eq!(
        c.topology,
        Topology::Centralized {
            host: "redis.internal".into(),
            port: 6380
        }
    );
    assert_eq!(c.username.as_deref(), Some("svc"));
    assert_eq!(c.password.as_ref().unwrap().expose_secret(), "pw");
    assert_eq!(
        c.tls.as_ref().unwrap().ca_file.as_deref(),
        Some(std::path::Path::new("/etc/ca.pem"))
    );
    assert_eq!(c.database, Some(2));
    assert_eq!(c.pool_size, 8);
    assert_eq!(c.connect_timeout, Duration::from_millis(1500));
    assert_eq!(c.command_timeout, Duration::from_millis(250));
    assert_eq!(c.reconnect.max_attempts, 7);
    assert_eq!(c.reconnect.base_delay, Duration::from_millis(20));
    assert_eq!(c.reconnect.max_delay, Duration::from_millis(900));
    assert_eq!(c.health_degraded_threshold, Duration::from_millis(40));
    assert!(c.tcp_nodelay);
    assert!(!from(&[]).unwrap().tcp_nodelay, "off unless asked for");

    let c = from(&[
        ("REDIS_URL", "redis-cluster://a:7000?node=b:7001"),
        ("REDIS_PASSWORD", "x"),
    ])
    .unwrap();
    assert!(c.is_cluster());
    assert_eq!(c.password.unwrap().expose_secret(), "x");
}

// Every variable with a bad value is refused, naming that variable.
#[test]
fn every_bad_value_names_its_variable() {
    let cases: &[(&str, &str)] = &[
        ("REDIS_URL", "http://nope"),
        ("REDIS_URL", "not a url"),
        ("REDIS_PORT", "0"),
        ("REDIS_PORT", "65536"),
        ("REDIS_PORT", "abc"),
        ("REDIS_TLS", "maybe"),
        ("REDIS_TLS_CA_FILE", "/ca.pem"), // without TLS on
        ("REDIS_DB", "-1"),
        ("REDIS_DB", "256"),
        ("REDIS_POOL_SIZE", "0"),
        ("REDIS_POOL_SIZE", "1000"),
        ("REDIS_CONNECT_TIMEOUT_MS", "0"),
        ("REDIS_COMMAND_TIMEOUT_MS", "soon"),
        ("REDIS_RECONNECT_MAX_ATTEMPTS", "-3"),
        ("REDIS_RECONNECT_BASE_DELAY_MS", "0"),
        ("REDIS_RECONNECT_MAX_DELAY_MS", "1.5"),
        ("REDIS_HEALTH_DEGRADED_MS", "0"),
        ("REDIS_TCP_NODELAY", "sometimes"),
    ];
    for (variable, value) in cases {
        let err = from(&[(variable, value)]).unwrap_err();
        assert_eq!(
            err.variable, *variable,
            "{variable}={value:?} blamed {}",
            err.variable
        );
        assert!(err.to_string().contains(variable), "{err}");
    }
    // Ordering problems name the variable that is out of line.
    let err = from(&[
        ("REDIS_RECONNECT_BASE_DELAY_MS", "500"),
        ("REDIS_RECONNECT_MAX_DELAY_MS", "100"),
    ])
    .unwrap_err();
    assert!(
        err.to_string().contains("REDIS_RECONNECT_MAX_DELAY_MS"),
        "{err}"
    );
    let err = from(&[("REDIS_URL", "redis://h:1"), ("REDIS_HOST", "other")]).unwrap_err();
    assert!(err.to_string().contains("REDIS_HOST"), "{err}");
    let err = from(&[("REDIS_URL", "redis-cluster://h:1/3")]).unwrap_err();
    assert!(err.to_string().contains("REDIS_DB"), "{err}");
}

// The password never shows in Debug output or error messages, from either source.
#[test]
fn password_never_printed() {
    let secret = "Sup3r/Secret+Key=";
    let c = from(&[("REDIS_PASSWORD", secret)]).unwrap();
    let debug = format!("{c:?}");
    assert!(
        !debug.contains(secret) && debug.contains("[REDACTED]"),
        "{debug}"
    );

    let c = from(&[("REDIS_URL", "rediss://:Sup3r%2FSecret%2BKey%3D@host:6380")]).unwrap();
    assert_eq!(c.password.as_ref().unwrap().expose_secret(), secret);
    assert!(!format!("{c:?}").contains("Sup3r"));

    let err = from(&[("REDIS_URL", "rediss://:Sup3r%2FSecret@host:notaport")]).unwrap_err();
    assert!(!err.to_string().contains("Sup3r"), "{err}");
    assert!(!format!("{err:?}").contains("Sup3r"), "{err:?}");
}

// ENV_VARS, the list start-up checks for likely typos, is exactly the
// list of variables the parser asks for.
#[test]
fn the_known_variables_are_the_ones_read() {
    let asked = RefCell::new(BTreeSet::new());
    RedisConfig::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        None
    })
    .unwrap();
    // REDIS_TLS_CA_FILE is only consulted once TLS is on; REDIS_URL's
    // conflicts only once a URL is set: ask with both set.
    RedisConfig::from_lookup(|name| {
        asked.borrow_mut().insert(name.to_owned());
        (name == "REDIS_URL").then(|| "rediss://h:1".to_owned())
    })
    .unwrap();
    assert_eq!(asked.into_inner(), ENV_VARS.map(str::to_owned).into());
}

// The documented list is the list the parser reads.
#[test]
fn every_variable_read_is_documented_in_the_readme() {
    assert!(ENV_VARS.contains(&"REDIS_URL") && ENV_VARS.contains(&"REDIS_HEALTH_DEGRADED_MS"));
    let readme = include_str!("../../../../README.md");
    for variable in ENV_VARS {
        assert!(
            readme.contains(variable),
            "README does not document {variable}"
        );
    }
}
