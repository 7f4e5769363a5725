//! [`CacheConfig`]: limits and behaviour of a cache instance, from code or
//! from `CACHE_*` environment variables.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `CACHE_MAX_VALUE_BYTES` | `1048576` | largest encoded value accepted (1 MiB) |
//! | `CACHE_STRICT_READS` | `false` | `true`: reads return Redis errors instead of degrading to a miss |
//! | `CACHE_PURGE_MODE` | `index` | how pattern deletions and tenant purges find keys: `index` (the tenant's key index: costs the tenant's keys) or `scan` (`SCAN` of the whole keyspace: also finds keys other clients wrote) |
//! | `CACHE_SHARD_TTL_SECS` | `900` | base TTL of shard structured data, 900 to 1800 |
//! | `CACHE_L1_MAX_ENTRIES` | `10000` | entries the in-process L1 holds; `0` disables the L1 |
//! | `CACHE_L1_MAX_BYTES` | `67108864` | bytes the L1 holds (64 MiB): keys, JSON and decoded copies |
//! | `CACHE_L1_MAX_VALUE_BYTES` | `65536` | largest value (JSON bytes) the L1 holds (64 KiB); larger ones are read from Redis every time |
//! | `CACHE_L1_TENANT_SHARE` | `25` | most of the L1 (percent of its bytes and of its entries) one tenant may hold |
//! | `CACHE_L1_TTL_SECS` | `30` | longest an entry stays in L1 (never longer than its Redis TTL); the most stale an L1 read can be while Redis is down |
//! | `CACHE_INVALIDATION_RETENTION` | `600s,100000` | how much of the invalidation stream Redis keeps for instances to replay after a gap: a window (`600s`, `10m`) and/or a number of entries, comma-separated; whichever bound is reached first trims |

use std::time::Duration;

use shared_types::TtlPolicy;

use redis_connection::{ConfigError, Env};

use crate::fail_safe::FailSafePolicy;

/// Every variable [`CacheConfig::from_env`] reads.
pub const CACHE_ENV_VARS: [&str; 10] = [
    "CACHE_MAX_VALUE_BYTES",
    "CACHE_STRICT_READS",
    "CACHE_PURGE_MODE",
    "CACHE_SHARD_TTL_SECS",
    "CACHE_L1_MAX_ENTRIES",
    "CACHE_L1_MAX_BYTES",
    "CACHE_L1_MAX_VALUE_BYTES",
    "CACHE_L1_TENANT_SHARE",
    "CACHE_L1_TTL_SECS",
    "CACHE_INVALIDATION_RETENTION",
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

/// How pattern deletions (`delete_pattern`, `flush_tenant`, pattern
/// invalidations) find the keys to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PurgeMode {
    /// Through the tenant's key index, which every write of this layer
    /// keeps: the work is the tenant's keys, whatever the keyspace holds.
    /// The default. Keys other clients wrote are not in the index.
    #[default]
    Index,
    /// `SCAN` of the whole keyspace (never `KEYS`): finds every matching
    /// key, whoever wrote it, at the cost of walking every key.
    Scan,
}

/// Bounds of the in-process L1.
///
/// Memory is bounded by `max_bytes` whatever callers store: an entry weighs
/// its key, its JSON and an estimate of its decoded copy (as much again as
/// the JSON), plus a fixed overhead. No tenant holds more than
/// `tenant_share_percent` of the bytes or of the entries: a tenant past its
/// share evicts its own oldest entries, never another tenant's, and under
/// pressure the tenant holding the most bytes gives way first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct L1Config {
    /// Most entries held.
    pub max_entries: u64,
    /// Most bytes held (keys, JSON and decoded copies, with overhead).
    pub max_bytes: u64,
    /// Largest value (its JSON) held; larger ones are always read from Redis.
    pub max_value_bytes: usize,
    /// Most of `max_bytes` and of `max_entries` one tenant may hold, in
    /// percent (1 to 100).
    pub tenant_share_percent: u8,
    /// Longest an entry stays in L1. Each entry lives `min(ttl_cap, its
    /// Redis TTL)`, so L1 never outlives L2; while Redis is down this is the
    /// maximum staleness of an L1 read.
    pub ttl_cap: Duration,
}

impl Default for L1Config {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_bytes: 64 * 1024 * 1024,
            max_value_bytes: 64 * 1024,
            tenant_share_percent: 25,
            ttl_cap: Duration::from_secs(30),
        }
    }
}

/// Setters in the manner of moka's and reqwest's builders: start from
/// [`L1Config::default`] and change what differs.
impl L1Config {
    /// Most entries held.
    #[must_use]
    pub fn with_max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Most bytes held (keys, JSON and decoded copies, with overhead).
    #[must_use]
    pub fn with_max_bytes(mut self, max_bytes: u64) -> Self {
        self.max_bytes = max_bytes;
        self
    }

    /// Largest value (its JSON) held.
    #[must_use]
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.max_value_bytes = max_value_bytes;
        self
    }

    /// Most of the L1 one tenant may hold, in percent (1 to 100).
    #[must_use]
    pub fn with_tenant_share_percent(mut self, tenant_share_percent: u8) -> Self {
        self.tenant_share_percent = tenant_share_percent;
        self
    }

    /// Longest an entry stays in L1.
    #[must_use]
    pub fn with_ttl_cap(mut self, ttl_cap: Duration) -> Self {
        self.ttl_cap = ttl_cap;
        self
    }
}

/// How much of the invalidation stream Redis keeps: entries older than
/// `window` or beyond the newest `entries` are trimmed (approximately, a
/// macro node at a time, as `XADD … MAXLEN ~` does). An instance whose gap
/// reaches past what is kept flushes its L1 instead of replaying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Oldest entry kept, by the age Redis's entry ids give it.
    pub window: Duration,
    /// Most entries kept.
    pub entries: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            window: Duration::from_secs(600),
            entries: 100_000,
        }
    }
}

impl Retention {
    /// Reads `600s`, `10m`, `100000` or `10m,100000`: a window (seconds
    /// or minutes) and/or a number of entries; what is not given keeps
    /// its default.
    fn parse(text: &str) -> Result<Self, String> {
        let mut retention = Self::default();
        for part in text.split(',').map(str::trim) {
            let number = |digits: &str| {
                digits
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("`{part}` is not a positive number"))
            };
            if let Some(secs) = part.strip_suffix('s') {
                retention.window = Duration::from_secs(number(secs)?);
            } else if let Some(mins) = part.strip_suffix('m') {
                retention.window = Duration::from_secs(number(mins)?.saturating_mul(60));
            } else {
                retention.entries = number(part)?;
            }
        }
        Ok(retention)
    }
}

/// Limits and behaviour of a cache instance.
///
/// Built from [`CacheConfig::default`] or [`CacheConfig::from_env`], then
/// adjusted with the `with_*` setters (the struct is `#[non_exhaustive]`, so
/// that a new field does not break callers):
///
/// ```
/// use std::time::Duration;
/// use redis_cache::{CacheConfig, L1Config, ReadMode};
///
/// let config = CacheConfig::default()
///     .with_read_mode(ReadMode::Strict)
///     .with_l1(Some(L1Config::default().with_ttl_cap(Duration::from_secs(5))));
/// assert_eq!(config.l1.unwrap().ttl_cap, Duration::from_secs(5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheConfig {
    /// Largest encoded value accepted; larger ones are refused before sending.
    pub max_value_bytes: usize,
    /// Behaviour of reads while Redis is unavailable.
    pub read_mode: ReadMode,
    /// `COUNT` hint of each `SCAN`/`ZSCAN` in pattern deletion: large
    /// enough to be quick, small enough that each command stays short on
    /// the server.
    pub scan_count: u32,
    /// How pattern deletions find keys.
    pub purge_mode: PurgeMode,
    /// TTL policy of shard structured data (15 to 30 minutes).
    pub shard_ttl: TtlPolicy,
    /// The in-process L1; `None` for Redis only.
    pub l1: Option<L1Config>,
    /// How much of the invalidation stream this instance's announcements
    /// keep in Redis.
    pub invalidation_retention: Retention,
    /// Which key families `get_or_load_with` may serve stale when their
    /// loader fails (off for all by default; see [`FailSafePolicy`]).
    pub fail_safe: FailSafePolicy,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_value_bytes: 1024 * 1024,
            read_mode: ReadMode::Degrade,
            scan_count: 1000,
            purge_mode: PurgeMode::Index,
            shard_ttl: TtlPolicy::shard_structured(),
            l1: Some(L1Config::default()),
            invalidation_retention: Retention::default(),
            fail_safe: FailSafePolicy::default(),
        }
    }
}

impl CacheConfig {
    /// Largest encoded value accepted.
    #[must_use]
    pub fn with_max_value_bytes(mut self, max_value_bytes: usize) -> Self {
        self.max_value_bytes = max_value_bytes;
        self
    }

    /// Behaviour of reads while Redis is unavailable.
    #[must_use]
    pub fn with_read_mode(mut self, read_mode: ReadMode) -> Self {
        self.read_mode = read_mode;
        self
    }

    /// `COUNT` hint of each `SCAN`/`ZSCAN` in pattern deletion.
    #[must_use]
    pub fn with_scan_count(mut self, scan_count: u32) -> Self {
        self.scan_count = scan_count;
        self
    }

    /// How pattern deletions find keys.
    #[must_use]
    pub fn with_purge_mode(mut self, purge_mode: PurgeMode) -> Self {
        self.purge_mode = purge_mode;
        self
    }

    /// TTL policy of shard structured data.
    #[must_use]
    pub fn with_shard_ttl(mut self, shard_ttl: TtlPolicy) -> Self {
        self.shard_ttl = shard_ttl;
        self
    }

    /// Which key families may be served stale (see [`FailSafePolicy`]).
    #[must_use]
    pub fn with_fail_safe(mut self, fail_safe: FailSafePolicy) -> Self {
        self.fail_safe = fail_safe;
        self
    }

    /// The in-process L1; `None` for Redis only.
    #[must_use]
    pub fn with_l1(mut self, l1: Option<L1Config>) -> Self {
        self.l1 = l1;
        self
    }

    /// How much of the invalidation stream is kept.
    #[must_use]
    pub fn with_invalidation_retention(mut self, retention: Retention) -> Self {
        self.invalidation_retention = retention;
        self
    }

    /// Reads `CACHE_*` variables (see the module docs); unset means default.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    ///
    /// # Examples
    ///
    /// ```
    /// let config = redis_cache::CacheConfig::from_env().expect("valid CACHE_* variables");
    /// ```
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_reader(&Env::process())
    }

    /// Like [`from_env`](Self::from_env), reading through `lookup`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    ///
    /// # Examples
    ///
    /// ```
    /// use redis_cache::{CacheConfig, ReadMode};
    ///
    /// let strict = CacheConfig::from_lookup(|name| {
    ///     (name == "CACHE_STRICT_READS").then(|| "true".to_owned())
    /// })
    /// .unwrap();
    /// assert_eq!(strict.read_mode, ReadMode::Strict);
    /// // A bad value is an error naming the variable, not a default.
    /// let bad = CacheConfig::from_lookup(|name| {
    ///     (name == "CACHE_L1_MAX_ENTRIES").then(|| "many".to_owned())
    /// });
    /// assert!(bad.unwrap_err().to_string().contains("CACHE_L1_MAX_ENTRIES"));
    /// ```
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_reader(&Env::from_fn(lookup))
    }

    /// Like [`from_env`](Self::from_env), reading through `env`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable with a bad value.
    pub fn from_reader<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<Self, ConfigError> {
        let mut config = Self::default();
        config.max_value_bytes = env.number(
            "CACHE_MAX_VALUE_BYTES",
            config.max_value_bytes,
            1,
            512 * 1024 * 1024,
        )?;
        if env.flag("CACHE_STRICT_READS", false)? {
            config.read_mode = ReadMode::Strict;
        }
        config.purge_mode = match env.choice("CACHE_PURGE_MODE", "index", &["index", "scan"])? {
            "scan" => PurgeMode::Scan,
            _ => PurgeMode::Index,
        };
        if let Some(secs) = env.optional_number("CACHE_SHARD_TTL_SECS", 900, 1800)? {
            config.shard_ttl = TtlPolicy::shard_structured_with(Duration::from_secs(secs))
                .map_err(|e| ConfigError::new("CACHE_SHARD_TTL_SECS", e.to_string()))?;
        }
        let default = L1Config::default();
        let l1 = L1Config {
            max_entries: env.number("CACHE_L1_MAX_ENTRIES", default.max_entries, 0, 100_000_000)?,
            max_bytes: env.number("CACHE_L1_MAX_BYTES", default.max_bytes, 64 * 1024, 1 << 40)?,
            max_value_bytes: env.number(
                "CACHE_L1_MAX_VALUE_BYTES",
                default.max_value_bytes,
                1,
                512 * 1024 * 1024,
            )?,
            tenant_share_percent: env
                .percent("CACHE_L1_TENANT_SHARE", default.tenant_share_percent)?,
            ttl_cap: env.secs("CACHE_L1_TTL_SECS", default.ttl_cap, 1, 86_400)?,
        };
        config.l1 = (l1.max_entries > 0).then_some(l1);
        if let Some(text) = env.text("CACHE_INVALIDATION_RETENTION")? {
            config.invalidation_retention = Retention::parse(&text)
                .map_err(|e| ConfigError::new("CACHE_INVALIDATION_RETENTION", e))?;
        }
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(vars: &[(&str, &str)]) -> Result<CacheConfig, ConfigError> {
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
            ("CACHE_PURGE_MODE", "scan"),
            ("CACHE_SHARD_TTL_SECS", "1800"),
            ("CACHE_L1_MAX_ENTRIES", "50"),
            ("CACHE_L1_MAX_BYTES", "1048576"),
            ("CACHE_L1_MAX_VALUE_BYTES", "4096"),
            ("CACHE_L1_TENANT_SHARE", "10%"),
            ("CACHE_L1_TTL_SECS", "5"),
            ("CACHE_INVALIDATION_RETENTION", "2m,500"),
        ])
        .unwrap();
        assert_eq!(
            c.invalidation_retention,
            Retention {
                window: Duration::from_secs(120),
                entries: 500
            }
        );
        let entries_only = from(&[("CACHE_INVALIDATION_RETENTION", "42")]).unwrap();
        assert_eq!(entries_only.invalidation_retention.entries, 42);
        assert_eq!(
            entries_only.invalidation_retention.window,
            Duration::from_secs(600)
        );
        assert_eq!(c.max_value_bytes, 2048);
        assert_eq!(c.read_mode, ReadMode::Strict);
        assert_eq!(c.purge_mode, PurgeMode::Scan);
        assert_eq!(c.shard_ttl.base(), Duration::from_secs(1800));
        assert_eq!(
            c.l1,
            Some(L1Config {
                max_entries: 50,
                max_bytes: 1_048_576,
                max_value_bytes: 4096,
                tenant_share_percent: 10,
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
            ("CACHE_PURGE_MODE", "keys"),
            ("CACHE_SHARD_TTL_SECS", "899"),
            ("CACHE_SHARD_TTL_SECS", "1801"),
            ("CACHE_L1_MAX_ENTRIES", "-1"),
            ("CACHE_L1_TTL_SECS", "0"),
            ("CACHE_L1_MAX_BYTES", "1000"),
            ("CACHE_L1_MAX_VALUE_BYTES", "0"),
            ("CACHE_L1_TENANT_SHARE", "0"),
            ("CACHE_L1_TENANT_SHARE", "101"),
            ("CACHE_L1_TENANT_SHARE", "a quarter"),
            ("CACHE_INVALIDATION_RETENTION", "0s"),
            ("CACHE_INVALIDATION_RETENTION", "ten minutes"),
            ("CACHE_INVALIDATION_RETENTION", "10m,"),
        ] {
            let err = from(&[(variable, value)]).unwrap_err();
            assert_eq!(err.variable, variable, "{variable}={value}: {err:?}");
        }
    }

    // CACHE_ENV_VARS, the list start-up checks for likely typos, is exactly
    // the list of variables the parser asks for.
    #[test]
    fn the_known_variables_are_the_ones_read() {
        let asked = std::cell::RefCell::new(std::collections::BTreeSet::new());
        CacheConfig::from_lookup(|name| {
            asked.borrow_mut().insert(name.to_owned());
            None
        })
        .unwrap();
        assert_eq!(asked.into_inner(), CACHE_ENV_VARS.map(str::to_owned).into());
    }
}
