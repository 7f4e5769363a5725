//! The configuration both services share, read once from the environment.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `LOG_FORMAT` | `pretty` | `json` or `pretty` |
//! | `RUST_LOG` | `info` | log filter |
//! | `HTTP_REQUEST_TIMEOUT_MS` | `5000` | longest a request may take (then 503) |
//! | `HTTP_MAX_CONCURRENCY` | `512` | requests in flight at once (beyond: 503) |
//! | `HTTP_MAX_CONCURRENCY_PER_TENANT` | a quarter of `HTTP_MAX_CONCURRENCY` | requests of one tenant in flight at once (beyond: 429) |
//! | `HTTP_HEADER_READ_TIMEOUT_MS` | `10000` | longest a client may take to send its headers, and a keep-alive connection may idle |
//! | `HTTP_MAX_CONNECTIONS` | `1024` | open connections; further ones are closed at once |
//! | `HTTP_SHUTDOWN_GRACE_MS` | `10000` | how long shutdown lets connections finish before dropping them |
//!
//! plus every `REDIS_*` variable of redis-connection and `CACHE_*` variable
//! of redis-cache. A set `REDIS_*`, `CACHE_*` or `HTTP_*` variable that none
//! of them reads is logged at start-up as a likely typo ([`likely_typos`]).

use std::net::SocketAddr;

use redis_cache::{CACHE_ENV_VARS, CacheConfig};
use redis_connection::{ConfigError, ENV_VARS, Env, RedisConfig, unknown_variables};

use crate::middleware::HttpLimits;
use crate::server::ServerLimits;

/// Every `HTTP_*` variable [`CommonConfig::from_env`] reads.
pub const HTTP_ENV_VARS: [&str; 7] = [
    "HTTP_REQUEST_TIMEOUT_MS",
    "HTTP_ACCESS_LOG",
    "HTTP_MAX_CONCURRENCY",
    "HTTP_MAX_CONCURRENCY_PER_TENANT",
    "HTTP_HEADER_READ_TIMEOUT_MS",
    "HTTP_MAX_CONNECTIONS",
    "HTTP_SHUTDOWN_GRACE_MS",
];

/// Variables with our prefixes that other software sets and we do not read
/// (curl, reqwest and most HTTP clients honour `HTTP_PROXY`): not typos.
const FOREIGN: [&str; 1] = ["HTTP_PROXY"];

/// Among the variables `set`, those that look like ours (`REDIS_*`,
/// `CACHE_*`, `HTTP_*`) but that nothing reads: most likely misspellings,
/// which would otherwise be ignored without a word. [`crate::service_main`]
/// logs a warning for each.
pub fn likely_typos<'a>(set: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    let known: Vec<&str> = ENV_VARS
        .iter()
        .chain(&CACHE_ENV_VARS)
        .chain(&HTTP_ENV_VARS)
        .chain(&FOREIGN)
        .copied()
        .collect();
    unknown_variables(set, &["REDIS_", "CACHE_", "HTTP_"], &known)
}

/// Settings every service has, read by [`CommonConfig::from_env`]; its
/// fields may be changed after (it is `#[non_exhaustive]`, so that a new
/// field does not break callers).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CommonConfig {
    /// Where to listen.
    pub addr: SocketAddr,
    /// Redis connection settings.
    pub redis: RedisConfig,
    /// Cache settings.
    pub cache: CacheConfig,
    /// HTTP limits per request.
    pub http: HttpLimits,
    /// HTTP limits per connection, and shutdown's deadline.
    pub server: ServerLimits,
    /// `json` or `pretty`.
    pub log_format: &'static str,
}

impl CommonConfig {
    /// Reads the common variables; `addr_var` names the service's bind
    /// address variable, and `max_body` its body limit.
    ///
    /// # Errors
    /// The first bad variable, by name.
    pub fn from_env<F: Fn(&str) -> Option<String>>(
        env: &Env<F>,
        addr_var: &str,
        default_addr: &str,
        max_body: impl FnOnce(&CacheConfig) -> usize,
    ) -> Result<Self, ConfigError> {
        let addr = env.addr(addr_var, default_addr)?;
        let redis = RedisConfig::from_reader(env)?;
        let cache = CacheConfig::from_reader(env)?;
        // The defaults are the limits' own.
        let (http, server) = (HttpLimits::default(), ServerLimits::default());
        let request_timeout =
            env.millis("HTTP_REQUEST_TIMEOUT_MS", http.request_timeout, 10, 600_000)?;
        if request_timeout <= redis.command_timeout {
            return Err(ConfigError::new(
                "HTTP_REQUEST_TIMEOUT_MS",
                "must be longer than REDIS_COMMAND_TIMEOUT_MS, or requests time out before Redis does",
            ));
        }
        let max_concurrency =
            env.number("HTTP_MAX_CONCURRENCY", http.max_concurrency, 1, 1_000_000)?;
        // A quarter by default: a tenant can use much of an idle service but
        // leaves most of it to the others when it floods it.
        let max_concurrency_per_tenant = env.number(
            "HTTP_MAX_CONCURRENCY_PER_TENANT",
            (max_concurrency / 4).max(1),
            1,
            max_concurrency,
        )?;
        let http = http
            .with_request_timeout(request_timeout)
            .with_max_concurrency(max_concurrency)
            .with_max_concurrency_per_tenant(max_concurrency_per_tenant)
            .with_max_body_bytes(max_body(&cache))
            .with_access_log(env.flag("HTTP_ACCESS_LOG", http.access_log)?);
        let server = server
            .with_header_read_timeout(env.millis(
                "HTTP_HEADER_READ_TIMEOUT_MS",
                server.header_read_timeout,
                10,
                600_000,
            )?)
            .with_max_connections(env.number(
                "HTTP_MAX_CONNECTIONS",
                server.max_connections,
                1,
                1_000_000,
            )?)
            .with_shutdown_grace(env.millis(
                "HTTP_SHUTDOWN_GRACE_MS",
                server.shutdown_grace,
                0,
                600_000,
            )?);
        let log_format = env.choice("LOG_FORMAT", "pretty", &["json", "pretty"])?;
        Ok(Self {
            addr,
            redis,
            cache,
            http,
            server,
            log_format,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::BTreeSet;

    use super::*;

    // A misspelt variable of ours is a likely typo; ours, other software's
    // (HTTP_PROXY) and unprefixed ones are not.
    #[test]
    fn misspelt_variables_of_ours_are_likely_typos() {
        let set = [
            "REDIS_PASWORD",
            "REDIS_PASSWORD",
            "CACHE_L1_TTL",
            "CACHE_L1_TTL_SECS",
            "HTTP_MAX_CONNECTION",
            "HTTP_MAX_CONNECTIONS",
            "HTTP_PROXY",
            "MAIN_API_ADDR",
            "PATH",
        ];
        assert_eq!(
            likely_typos(set),
            ["CACHE_L1_TTL", "HTTP_MAX_CONNECTION", "REDIS_PASWORD"]
        );
    }

    // HTTP_ENV_VARS is exactly the HTTP_ variables the parser asks for.
    #[test]
    fn the_known_http_variables_are_the_ones_read() {
        let asked = RefCell::new(BTreeSet::new());
        let env = Env::from_fn(|name: &str| {
            asked.borrow_mut().insert(name.to_owned());
            None
        });
        CommonConfig::from_env(&env, "ADDR", "127.0.0.1:1", |_| 1).unwrap();
        let http: BTreeSet<String> = asked
            .into_inner()
            .into_iter()
            .filter(|name| name.starts_with("HTTP_"))
            .collect();
        assert_eq!(http, HTTP_ENV_VARS.map(str::to_owned).into());
    }
}
