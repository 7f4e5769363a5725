//! docker-compose.yml, checked statically (no Docker engine runs here): the
//! services would start with the environment it gives them, and its ports,
//! bind addresses and health checks agree.

use std::collections::HashMap;

use serde_yaml::Value;
use service_kit::Env;

const COMPOSE: &str = include_str!("../../../../docker-compose.yml");
const DOCKERFILE: &str = include_str!("../../../../Dockerfile");

fn compose() -> Value {
    let mut value: Value = serde_yaml::from_str(COMPOSE).expect("docker-compose.yml is YAML");
    value.apply_merge().expect("merge keys resolve");
    value
}

/// The operator's environment for `docker compose up`: what `${VAR:?...}`
/// (a variable compose refuses to start without) takes in these tests.
const OPERATOR: [(&str, &str); 1] = [(
    "INTERNAL_API_TOKEN",
    "operator-chosen-token-0123456789abcdefghij",
)];

/// A service's environment, with `${VAR:-default}` resolved to its default
/// (what compose does when the variable is unset) and `${VAR:?message}` to
/// the operator's value.
fn environment(compose: &Value, service: &str) -> HashMap<String, String> {
    let env = compose["services"][service]["environment"]
        .as_mapping()
        .expect("an environment map");
    env.iter()
        .map(|(k, v)| {
            let value = v
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{}", v.as_i64().unwrap()));
            let value = match value.strip_prefix("${") {
                Some(rest) if rest.contains(":-") => {
                    let (_, default) = rest.split_once(":-").unwrap();
                    default.trim_end_matches('}').to_owned()
                }
                Some(rest) if rest.contains(":?") => {
                    let (name, _) = rest.split_once(":?").unwrap();
                    let (_, given) = OPERATOR
                        .iter()
                        .find(|(n, _)| *n == name)
                        .expect("the operator sets every required variable");
                    (*given).to_owned()
                }
                _ => value,
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// Checks ports, health check and dependencies of one service.
fn check_wiring(compose: &Value, service: &str, addr: &str) {
    let port = port_of(addr);
    assert!(
        addr.starts_with("0.0.0.0:"),
        "{service} must listen on all interfaces in its container"
    );
    let ports: Vec<&str> = compose["services"][service]["ports"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        ports.contains(&format!("127.0.0.1:{port}:{port}").as_str()),
        "{service} ports {ports:?} do not publish {port} on the loopback interface"
    );
    let health: Vec<&str> = compose["services"][service]["healthcheck"]["test"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap())
        .collect();
    assert!(
        health
            .iter()
            .any(|part| part.ends_with(&format!(":{port}/health/live"))),
        "{service} health check {health:?} does not probe /health/live on {port}"
    );
    assert_eq!(
        compose["services"][service]["depends_on"]["redis"]["condition"].as_str(),
        Some("service_healthy"),
        "{service} must wait for a healthy Redis"
    );
    assert_eq!(
        compose["services"][service]["build"]["dockerfile"].as_str(),
        Some("Dockerfile")
    );
}

// Both services' configurations load from the environment compose gives
// them, with every required variable set and ports that match.
#[test]
fn services_start_with_the_compose_environment() {
    let compose = compose();
    assert!(compose["services"]["redis"]["healthcheck"]["test"].is_sequence());

    let broker = environment(&compose, "auth-broker");
    let config = auth_broker::Config::from_env(&Env::from_fn(|n| broker.get(n).cloned()))
        .expect("auth-broker starts with the compose environment");
    assert_eq!(
        config.common.addr.port(),
        port_of(&broker["AUTH_BROKER_ADDR"])
    );
    check_wiring(&compose, "auth-broker", &broker["AUTH_BROKER_ADDR"]);

    let api = environment(&compose, "main-api");
    let config = main_api::Config::from_env(&Env::from_fn(|n| api.get(n).cloned()))
        .expect("main-api starts with the compose environment");
    assert_eq!(config.common.addr.port(), port_of(&api["MAIN_API_ADDR"]));
    check_wiring(&compose, "main-api", &api["MAIN_API_ADDR"]);

    for env in [&broker, &api] {
        assert_eq!(
            env["REDIS_URL"], "redis://redis:6379",
            "services reach Redis by its compose name"
        );
    }
}

// No secret has a default: compose refuses to start without an
// INTERNAL_API_TOKEN from the operator (`${INTERNAL_API_TOKEN:?...}`), and
// nothing in the file looks like a token.
#[test]
fn compose_has_no_default_internal_token() {
    let compose = compose();
    let token = compose["services"]["auth-broker"]["environment"]["INTERNAL_API_TOKEN"]
        .as_str()
        .expect("auth-broker gets an INTERNAL_API_TOKEN");
    assert!(
        token.starts_with("${INTERNAL_API_TOKEN:?") && token.ends_with('}'),
        "INTERNAL_API_TOKEN must be required from the operator, not defaulted: {token}"
    );
    for line in COMPOSE.lines().filter(|l| l.contains("INTERNAL_API_TOKEN")) {
        assert!(
            !line.contains(":-"),
            "a default for the internal token: {line}"
        );
    }
}

// Every published port is bound to 127.0.0.1: nothing of the stack is
// reachable from other hosts unless an operator changes that on purpose.
#[test]
fn compose_publishes_ports_on_loopback_only() {
    let compose = compose();
    let services = compose["services"].as_mapping().unwrap();
    for (name, service) in services {
        for port in service["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().expect("ports as strings");
            assert!(
                port.starts_with("127.0.0.1:"),
                "{name:?} publishes {port} on every interface"
            );
        }
    }
}

// The image is multi-stage, caches dependencies in their own layer, and
// runs as a non-root user.
#[test]
fn dockerfile_is_multi_stage_with_cached_deps_and_non_root() {
    for needle in [
        "AS planner",
        "cargo chef cook",
        "AS runtime",
        "USER app",
        "FROM debian:bookworm-slim",
    ] {
        assert!(DOCKERFILE.contains(needle), "Dockerfile lacks {needle:?}");
    }
    let cook = DOCKERFILE.find("cargo chef cook").unwrap();
    let sources = DOCKERFILE.rfind("COPY . .").unwrap();
    assert!(
        cook < sources,
        "dependencies must build before the sources are copied"
    );
}
