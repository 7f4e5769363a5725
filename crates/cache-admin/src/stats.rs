//! `stats`: what Redis holds, and per tenant asked for, its indexed keys.
//!
//! Per-tenant counts are one `ZCARD` of the tenant's key index each: cheap
//! whatever the keyspace holds. Listing every tenant would take a `SCAN` of
//! the whole keyspace, so tenants are named, not discovered.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use crate::cli;
use crate::connect::Settings;
use crate::error::AdminError;
use crate::output::Output;

/// The report.
#[derive(Debug, Serialize)]
struct Stats {
    /// Keys in Redis (summed over a cluster's primaries).
    keys: u64,
    /// Redis's `used_memory`, in bytes.
    used_memory_bytes: u64,
    /// Per tenant asked for: members of its key index (its cached keys
    /// written within their TTL and half as long again: an upper bound).
    tenants: BTreeMap<String, u64>,
}

/// Runs `stats`.
pub(crate) async fn run(
    settings: &Settings,
    output: Output,
    tenants: &[String],
) -> Result<(), AdminError> {
    let tenants = tenants
        .iter()
        .map(|t| cli::tenant(t))
        .collect::<Result<Vec<_>, _>>()?;
    let cache = settings.cache().await?;
    let server = cache.server_stats().await?;
    let mut counts = BTreeMap::new();
    for tenant in &tenants {
        counts.insert(
            tenant.as_str().to_owned(),
            cache.tenant_indexed_keys(tenant).await?,
        );
    }
    let stats = Stats {
        keys: server.keys,
        used_memory_bytes: server.used_memory_bytes,
        tenants: counts,
    };
    let mut text = format!(
        "keys: {}\nused memory: {} bytes\n",
        stats.keys, stats.used_memory_bytes
    );
    for (tenant, count) in &stats.tenants {
        let _ = writeln!(text, "tenant {tenant}: {count} indexed keys");
    }
    output.result(&stats, &text)
}
