//! [`CacheConfig`]: limits and behaviour of a cache instance, from code or
//! from `CACHE_*` environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CACHE_MAX_VALUE_BYTES` | `1048576` | largest encoded value accepted (1 MiB) |
//! | `CACHE_STRICT_READS` | `false` | `true`: reads return Redis errors instead of degrading to a miss |
//! | `CACHE_SHARD_TTL_SECS` | `900` | base TTL of shard structured data, 900 to 1800 |
//! | `CACHE_L1_MAX_ENTRIES` | `10000` | entries the in-process L1 holds; `0` disables the L1 |
//! | `CACHE_L1_TTL_SECS` | `30` | longest an entry stays in L1 (never longer than its Redis TTL); the most stale an L1 read can be while Redis is down |

use std::time::Duration;

use shared_types::TtlPolicy;

use crate::error::CacheError;

/// Every variable [`CacheConfig::from_env`] reads.
pub const CACHE_ENV_VARS: [&str; 5] = [
    "CACHE_MAX_VALUE_BYTES",
    "CACHE_STRICT_READS",
    "CACHE_SHARD_TTL_SECS",
    "CACHE_L1_MAX_ENTRIES",
    "CACHE_L1_TTL_SECS",
];

/// What a read does when Redis is unavailable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMode {
    /// Count and log the error (rate-limited) and answer "miss", so the
    /// caller falls back to its source of truth. The default.
    #[default]
    Degrade,
    /// Return the error.
    Strict,
}

/// Bounds of the in-process L1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct L1Config {
    /// Most entries held; the least valuable are evicted beyond it.
    pub max_entries: u64,
    /// Longest an entry stays in L1. Each entry lives `min(ttl_cap, its
    /// Redis TTL)`, so L1 never outlives L2; while Redis is down this is the
    /// maximum staleness of an L1 read.
    pub ttl_cap: Duration,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            ttl_cap: Duration::from_secs(30),
        }
    }
}

/// Limits and behaviour of a cache instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheConfig {
    /// Largest encoded value accepted; larger ones are refused before sending.
    pub max_value_bytes: usize,
    /// Behaviour of reads while Redis is unavailable.
    pub read_mode: ReadMode,
    /// `COUNT` hint of each `SCAN` in pattern deletion: large enough to be
    /// quick, small enough that each command stays short on the server.
    pub scan_count: u32,
    /// TTL policy of shard structured data (15 to 30 minutes).
    pub shard_ttl: TtlPolicy,
    /// The in-process L1; `None` for Redis only.
    pub l1: Option<L1Config>,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: 1024 * 1024,
            read_mode: ReadMode::Degrade,
            scan_count: 1000,
            shard_ttl: TtlPolicy::shard_structured(),
            l1: Some(L1Config::default()),
        }
    }
}

impl CacheConfig {
    /// Reads `CACHE_*` variables (see the module docs); unset means default.
    ///
    /// # Errors
    /// [`CacheError::Config`] naming the first variable with a bad value.
    pub fn from_env() -> Result<Self, CacheError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`from_env`](Self::from_env), reading through `lookup`.
    ///
    /// # Errors
    /// [`CacheError::Config`] naming the first variable with a bad value.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CacheError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let mut config = Self::default();
        if let Some(v) = get("CACHE_MAX_VALUE_BYTES") {
            config.max_value_bytes = parse("CACHE_MAX_VALUE_BYTES", &v, 1, 512 * 1024 * 1024)?;
        }
        if let Some(v) = get("CACHE_STRICT_READS") {
            config.read_mode = match v.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => ReadMode::Strict,
                "false" | "0" | "no" | "off" => ReadMode::Degrade,
                _ => return Err(invalid("CACHE_STRICT_READS", "is not true or false")),
            };
        }
        if let Some(v) = get("CACHE_SHARD_TTL_SECS") {
            let secs = parse("CACHE_SHARD_TTL_SECS", &v, 900, 1800)?;
            config.shard_ttl = TtlPolicy::shard_structured_with(Duration::from_secs(secs))
                .map_err(|e| invalid("CACHE_SHARD_TTL_SECS", &e.to_string()))?;
        }
        let mut l1 = L1Config::default();
        if let Some(v) = get("CACHE_L1_MAX_ENTRIES") {
            l1.max_entries = parse("CACHE_L1_MAX_ENTRIES", &v, 0, 100_000_000)?;
        }
        if let Some(v) = get("CACHE_L1_TTL_SECS") {
            l1.ttl_cap = Duration::from_secs(parse("CACHE_L1_TTL_SECS", &v, 1, 86_400)?);
        }
        config.l1 = (l1.max_entries > 0).then_some(l1);
        Ok(config)
    }
}

fn invalid(variable: &'static str, reason: &str) -> CacheError {
    CacheError::Config {
        variable,
        reason: reason.to_owned(),
    }
}

fn parse<T>(variable: &'static str, value: &str, min: T, max: T) -> Result<T, CacheError>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    let n: T = value
        .trim()
        .parse()
        .map_err(|_| invalid(variable, "is not a whole number"))?;
    if n < min || n > max {
        return Err(invalid(
            variable,
            &format!("{n} is out of range ({min} to {max})"),
        ));
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<CacheConfig, CacheError> {
        CacheConfig::from_lookup(|n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    // Every variable is read, and 0 L1 entries disables the L1.
    #[test]
    fn parses_every_variable() {
        let c = from(&[
            ("CACHE_MAX_VALUE_BYTES", "2048"),
            ("CACHE_STRICT_READS", "true"),
            ("CACHE_SHARD_TTL_SECS", "1800"),
            ("CACHE_L1_MAX_ENTRIES", "50"),
            ("CACHE_L1_TTL_SECS", "5"),
        ])
        .unwrap();
        assert_eq!(c.max_value_bytes, 2048);
        assert_eq!(c.read_mode, ReadMode::Strict);
        assert_eq!(c.shard_ttl.base(), Duration::from_secs(1800));
        assert_eq!(
            c.l1,
            Some(L1Config {
                max_entries: 50,
                ttl_cap: Duration::from_secs(5)
            })
        );
        assert_eq!(from(&[("CACHE_L1_MAX_ENTRIES", "0")]).unwrap().l1, None);
        assert_eq!(from(&[]).unwrap(), CacheConfig::default());
    }

    // Every bad value is refused naming its variable.
    #[test]
    fn bad_values_name_their_variable() {
        for (variable, value) in [
            ("CACHE_MAX_VALUE_BYTES", "0"),
            ("CACHE_MAX_VALUE_BYTES", "lots"),
            ("CACHE_STRICT_READS", "sometimes"),
            ("CACHE_SHARD_TTL_SECS", "899"),
            ("CACHE_SHARD_TTL_SECS", "1801"),
            ("CACHE_L1_MAX_ENTRIES", "-1"),
            ("CACHE_L1_TTL_SECS", "0"),
        ] {
            let err = from(&[(variable, value)]).unwrap_err();
            assert!(
                matches!(&err, CacheError::Config { variable: v, .. } if *v == variable),
                "{variable}={value}: {err:?}"
            );
        }
    }
}
