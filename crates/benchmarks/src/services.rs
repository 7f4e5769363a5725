//! The services as real processes, for the workloads that measure them over
//! HTTP (7, 11): the release binaries beside this harness, how they are
//! started on a benchmark's Redis, and a session to call them with.

use std::path::PathBuf;

use serde_json::{Value, json};
use test_support::{RedisServer, ServiceProcess, free_port};

/// The internal API token the benchmarks start services with.
const TOKEN: &str = "bench-internal-token-0123456789abcdef";

/// main-api and auth-broker, built beside this binary.
pub(crate) fn binaries() -> Option<(PathBuf, PathBuf)> {
    let dir = std::env::current_exe().ok()?.parent()?.to_owned();
    let (api, broker) = (dir.join("main-api"), dir.join("auth-broker"));
    (api.is_file() && broker.is_file()).then_some((api, broker))
}

/// A service's environment on `redis`, listening on `addr` (`addr_var`),
/// logging warnings only (its log is not what is measured).
pub(crate) fn env(
    redis: &RedisServer,
    addr_var: &'static str,
    addr: &str,
) -> Vec<(&'static str, String)> {
    vec![
        (addr_var, addr.to_owned()),
        ("REDIS_URL", redis.url()),
        ("INTERNAL_API_TOKEN", TOKEN.to_owned()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
    ]
}

/// auth-broker and main-api (with `extra` variables) on `redis`, each
/// started once it answers `/health/ready`.
pub(crate) struct Services {
    pub(crate) broker: ServiceProcess,
    pub(crate) api: ServiceProcess,
}

impl Services {
    pub(crate) fn start(
        redis: &RedisServer,
        (api_bin, broker_bin): &(PathBuf, PathBuf),
        extra: &[(&'static str, &str)],
    ) -> Self {
        let broker_addr = format!("127.0.0.1:{}", free_port());
        let broker = ServiceProcess::start(
            broker_bin,
            &broker_addr,
            &env(redis, "AUTH_BROKER_ADDR", &broker_addr),
        );
        let api_addr = format!("127.0.0.1:{}", free_port());
        let mut api_env = env(redis, "MAIN_API_ADDR", &api_addr);
        api_env.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
        let api = ServiceProcess::start(api_bin, &api_addr, &api_env);
        Self { broker, api }
    }

    /// A session token of `user` of `tenant` with `roles`.
    pub(crate) async fn session(
        &self,
        client: &reqwest::Client,
        tenant: &str,
        user: &str,
        roles: &[&str],
    ) -> Result<String, String> {
        let session: Value = client
            .post(format!("{}/v1/sessions", self.broker.url()))
            .bearer_auth(TOKEN)
            .json(&json!({"tenant_id": tenant, "user_id": user, "roles": roles}))
            .send()
            .await
            .map_err(|e| format!("creating a session: {e}"))?
            .json()
            .await
            .map_err(|e| format!("reading the session: {e}"))?;
        session["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| "no token in the session".to_owned())
    }
}
