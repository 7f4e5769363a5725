//! `inspect KEY-SPEC`: what a key is (family, tenant) and what Redis holds
//! under it (type, size, TTL). Values are never read, so a session's never
//! reaches the output.

use serde::Serialize;
use shared_types::RedisKey;

use crate::connect::Settings;
use crate::error::AdminError;
use crate::output::Output;
use crate::ttl_report::ttl_ms;

/// The report.
#[derive(Debug, Serialize)]
struct Inspection<'a> {
    key: &'a str,
    family: &'static str,
    tenant: &'a str,
    /// Cached data (under `tenant:{t}:`), as opposed to state.
    cache: bool,
    exists: bool,
    /// Redis's type (`none` when the key does not exist).
    redis_type: String,
    value_bytes: Option<u64>,
    members: Option<u64>,
    /// Remaining TTL in ms; `null` when the key never expires or is missing.
    ttl_ms: Option<u64>,
}

/// Runs `inspect`.
pub(crate) async fn run(settings: &Settings, output: Output, spec: &str) -> Result<(), AdminError> {
    let key = RedisKey::parse(spec).map_err(|e| AdminError::input("KEY-SPEC", &e))?;
    let cache = settings.cache().await?;
    let info = cache.key_info(&key).await?;
    let report = Inspection {
        key: key.as_str(),
        family: key.family().name(),
        tenant: key.tenant_str(),
        cache: key.family().is_cache(),
        exists: info.redis_type != "none",
        value_bytes: info.value_bytes,
        members: info.members,
        ttl_ms: ttl_ms(info.ttl),
        redis_type: info.redis_type,
    };
    let size = match (report.value_bytes, report.members) {
        (Some(bytes), _) => format!("{bytes} bytes"),
        (_, Some(members)) => format!("{members} members"),
        _ => "-".to_owned(),
    };
    let ttl = match (report.exists, report.ttl_ms) {
        (false, _) => "-".to_owned(),
        (true, Some(ms)) => format!("{:.1} s", ms as f64 / 1000.0),
        (true, None) => "none (persistent)".to_owned(),
    };
    let text = format!(
        "key:    {}\nfamily: {} ({})\ntenant: {}\nexists: {}\ntype:   {}\nsize:   {size}\nttl:    {ttl}",
        report.key,
        report.family,
        if report.cache { "cache" } else { "state" },
        report.tenant,
        report.exists,
        report.redis_type,
    );
    output.result(&report, &text)
}
