//! `ttl-report --tenant T`: how a tenant's cached keys are spread over
//! their remaining lifetimes. Reads the tenant's key index a page at a
//! time with each page's `PTTL`s pipelined: the cost is the tenant's keys.

use std::fmt::Write;
use std::time::Duration;

use redis_cache::KeyTtl;
use serde::Serialize;

use crate::cli::{self, Family};
use crate::connect::Settings;
use crate::error::AdminError;
use crate::output::Output;
use crate::progress::Progress;

/// Upper bounds of the buckets (the last is open), chosen around the
/// families' TTLs: ACL 10 min, shards 15 to 30 min, vector searches 30 min,
/// profiles 1 h, each ± 10 %.
const BOUNDS: [(Duration, &str); 6] = [
    (Duration::from_secs(60), "< 1 min"),
    (Duration::from_secs(5 * 60), "1-5 min"),
    (Duration::from_secs(15 * 60), "5-15 min"),
    (Duration::from_secs(30 * 60), "15-30 min"),
    (Duration::from_secs(60 * 60), "30-60 min"),
    (Duration::from_secs(2 * 60 * 60), "1-2 h"),
];

/// One bucket of the histogram.
#[derive(Debug, Serialize)]
struct Bucket {
    label: &'static str,
    keys: u64,
}

/// The report.
#[derive(Debug, Serialize)]
struct Report<'a> {
    tenant: &'a str,
    family: &'static str,
    /// Indexed keys that still exist.
    keys: u64,
    /// Index members whose key is gone (expired, deleted).
    missing: u64,
    /// Keys without a TTL (none of ours; another client's write).
    persistent: u64,
    buckets: Vec<Bucket>,
}

/// A TTL in ms, `None` for a persistent or missing key.
pub(crate) fn ttl_ms(ttl: KeyTtl) -> Option<u64> {
    match ttl {
        KeyTtl::ExpiresIn(left) => Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX)),
        _ => None,
    }
}

/// Runs `ttl-report`.
pub(crate) async fn run(
    settings: &Settings,
    output: Output,
    tenant: &str,
    family: Option<Family>,
) -> Result<(), AdminError> {
    let tenant = cli::tenant(tenant)?;
    let cache = settings.cache().await?;
    let progress = Progress::spinner(
        &format!("reading the TTLs of tenant {tenant}'s keys"),
        !output.is_json(),
    );
    let ttls = cache
        .indexed_ttls(&cli::pattern(&tenant, family), settings.scan_count())
        .await;
    progress.finish();
    let ttls = ttls?;
    let mut report = Report {
        tenant: tenant.as_str(),
        family: family.map_or("all", Family::name),
        keys: 0,
        missing: 0,
        persistent: 0,
        buckets: BOUNDS
            .iter()
            .map(|(_, label)| Bucket { label, keys: 0 })
            .chain([Bucket {
                label: ">= 2 h",
                keys: 0,
            }])
            .collect(),
    };
    for ttl in ttls {
        match ttl {
            KeyTtl::Missing => report.missing += 1,
            KeyTtl::Persistent => {
                report.keys += 1;
                report.persistent += 1;
            }
            KeyTtl::ExpiresIn(left) => {
                report.keys += 1;
                let at = BOUNDS
                    .iter()
                    .position(|(bound, _)| left < *bound)
                    .unwrap_or(BOUNDS.len());
                report.buckets[at].keys += 1;
            }
        }
    }
    let mut text = format!(
        "tenant {} ({}): {} keys, {} index entries without a key, {} without a TTL\n",
        report.tenant, report.family, report.keys, report.missing, report.persistent
    );
    let widest = report
        .buckets
        .iter()
        .map(|b| b.keys)
        .max()
        .unwrap_or(0)
        .max(1);
    for bucket in &report.buckets {
        let bar = "#".repeat(usize::try_from(bucket.keys * 40 / widest).unwrap_or(40));
        let _ = writeln!(text, "{:>10} {:>8} {bar}", bucket.label, bucket.keys);
    }
    output.result(&report, &text)
}
