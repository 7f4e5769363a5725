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
//! of redis-cache.

use std::net::SocketAddr;
use std::time::Duration;

use redis_cache::CacheConfig;
use redis_connection::RedisConfig;

use crate::env::{ConfigError, Env};
use crate::middleware::HttpLimits;
use crate::server::ServerLimits;

/// Settings every service has.
#[derive(Debug, Clone)]
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
        let redis = RedisConfig::from_lookup(env.lookup())?;
        let cache = CacheConfig::from_lookup(env.lookup())?;
        let timeout_ms = env.number("HTTP_REQUEST_TIMEOUT_MS", 5000u64, 10, 600_000)?;
        let request_timeout = Duration::from_millis(timeout_ms);
        if request_timeout <= redis.command_timeout {
            return Err(ConfigError::new(
                "HTTP_REQUEST_TIMEOUT_MS",
                "must be longer than REDIS_COMMAND_TIMEOUT_MS, or requests time out before Redis does",
            ));
        }
        let max_concurrency = env.number("HTTP_MAX_CONCURRENCY", 512usize, 1, 1_000_000)?;
        // A quarter by default: a tenant can use much of an idle service but
        // leaves most of it to the others when it floods it.
        let max_concurrency_per_tenant = env.number(
            "HTTP_MAX_CONCURRENCY_PER_TENANT",
            (max_concurrency / 4).max(1),
            1,
            max_concurrency,
        )?;
        let http = HttpLimits {
            request_timeout,
            max_concurrency,
            max_concurrency_per_tenant,
            max_body_bytes: max_body(&cache),
        };
        let server = ServerLimits {
            header_read_timeout: Duration::from_millis(env.number(
                "HTTP_HEADER_READ_TIMEOUT_MS",
                10_000u64,
                10,
                600_000,
            )?),
            max_connections: env.number("HTTP_MAX_CONNECTIONS", 1024usize, 1, 1_000_000)?,
            shutdown_grace: Duration::from_millis(env.number(
                "HTTP_SHUTDOWN_GRACE_MS",
                10_000u64,
                0,
                600_000,
            )?),
        };
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
