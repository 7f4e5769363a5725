//! Figures tables shared by both parts, and the checks that go with them.

use std::time::Duration;

use redis_connection::fred::interfaces::MetricsInterface;

use crate::cache_load::Instance;
use crate::counters::EpochCheck;
use crate::faults::{Fault, FaultRecord, PLAN, RECOVERY_LIMIT};
use crate::memory::{self, Sample};
use crate::report::{Table, Violations};
use crate::stats::{OpStats, ReadStats, ms};

/// Operations: count, errors by kind, latency, stuck.
pub(crate) fn ops_table(names: &[&str], ops: &[OpStats], stuck_limit: &str) -> Table {
    let title = format!("Operations (stuck: slower than {stuck_limit})");
    let mut table = Table::new(
        &title,
        &[
            "operation",
            "done",
            "ok",
            "errors by kind",
            "errors outside faults",
            "p50",
            "p99",
            "max",
            "stuck",
        ],
    );
    for (name, op) in names.iter().zip(ops) {
        table.row(vec![
            (*name).to_owned(),
            op.total().to_string(),
            op.ok.to_string(),
            op.errors_text(),
            op.errors_outside_faults.to_string(),
            ms(op.latency.quantile(0.5)),
            ms(op.latency.quantile(0.99)),
            ms(op.latency.max()),
            op.stuck.to_string(),
        ]);
    }
    table
}

/// Verdicts on reads; `relaxed_when` says which reads get the relaxed grace.
pub(crate) fn reads_table(
    reads: &ReadStats,
    grace: Duration,
    relaxed_grace: Duration,
    relaxed_when: &str,
) -> Table {
    let mut table = Table::new(
        &format!(
            "Reads against the ledger (grace {} ms; relaxed {} ms)",
            grace.as_millis(),
            relaxed_grace.as_millis()
        ),
        &["verdict", "reads"],
    );
    let relaxed = format!("judged with the relaxed grace ({relaxed_when})");
    let rows: [(&str, String); 8] = [
        ("checked (a value came back)", reads.checked.to_string()),
        ("fresh", reads.fresh.to_string()),
        (
            "lagging within the grace",
            format!(
                "{} (not relaxed: at most {} behind)",
                reads.lagging,
                ms(reads.max_lag)
            ),
        ),
        (
            "a failed change's version (outcome unknown)",
            reads.failed_writes.to_string(),
        ),
        (&relaxed, reads.relaxed.to_string()),
        ("nothing found", reads.absent.to_string()),
        ("**stale**", reads.stale.to_string()),
        ("**phantom / wrong key**", reads.phantom.to_string()),
    ];
    for (verdict, n) in rows {
        table.row(vec![(*verdict).to_owned(), n]);
    }
    table
}

/// Faults and recovery times; late or missing recoveries are violations.
pub(crate) fn faults_table(
    records: &[FaultRecord],
    subscribers: i64,
    violations: &Violations,
) -> Table {
    let mut table = Table::new(
        &format!(
            "Faults (recovery: from Redis answering again; limit {} ms)",
            RECOVERY_LIMIT.as_millis()
        ),
        &["at", "fault", "until Redis answered", "recovery", "verdict"],
    );
    if records.len() != PLAN.len() {
        violations.add(format!(
            "only {} of {} faults ran",
            records.len(),
            PLAN.len()
        ));
    }
    for record in records {
        let recovery = record.recovery.map_or("never".to_owned(), ms);
        let ok = record.recovered_in_time();
        if !ok {
            violations.add(format!(
                "{}: recovery {recovery} (limit {} ms)",
                record.fault.name(),
                RECOVERY_LIMIT.as_millis()
            ));
        }
        let mut name = record.fault.name();
        if record.fault == Fault::KillPubsub {
            let killed = record.killed_subscribers.unwrap_or(0);
            name = format!("{name} ({killed} killed)");
            if killed < subscribers {
                violations.add(format!(
                    "CLIENT KILL TYPE pubsub dropped {killed} connections, expected {subscribers}"
                ));
            }
        }
        table.row(vec![
            format!("{:.1} s", record.injected_at.as_secs_f64()),
            name,
            ms(record.outage),
            recovery,
            if ok { "ok" } else { "**too slow**" }.to_owned(),
        ]);
    }
    table
}

/// Counter epochs; a lost acknowledged increment is a violation.
pub(crate) fn counters_table(checks: &[EpochCheck], violations: &Violations) -> Table {
    let mut table = Table::new(
        "Counters (epochs end at the data-loss restart and at the end)",
        &[
            "epoch",
            "counter",
            "acked",
            "failed (unknown outcome)",
            "value read",
            "lost",
            "extra",
        ],
    );
    for check in checks {
        let value = check
            .value
            .map_or("unreadable".to_owned(), |v| v.to_string());
        if check.lost() > 0 || check.value.is_none() {
            violations.add(format!(
                "counter {} lost {} acknowledged increments in epoch {} ({} acked, {value} in Redis)",
                check.counter,
                check.lost(),
                check.epoch,
                check.acked,
            ));
        }
        table.row(vec![
            check.epoch.to_string(),
            format!("`{}`", check.counter),
            check.acked.to_string(),
            check.failed.to_string(),
            value,
            check.lost().to_string(),
            check.extra().to_string(),
        ]);
    }
    table
}

/// Each instance's own statistics.
pub(crate) fn instances_table(instances: &[Instance]) -> Table {
    let mut table = Table::new(
        "Cache instances",
        &[
            "instance",
            "L1 hits",
            "L2 hits",
            "misses",
            "loads",
            "coalesced",
            "invalidations sent / applied",
            "L1 flushes",
            "L1 replays (invalidations replayed)",
            "errors",
            "fred redeliveries",
        ],
    );
    for instance in instances {
        let s = instance.cache.stats();
        // Commands sent again after their connection closed mid-flight.
        let redeliveries: usize = instance
            .cache
            .manager()
            .pool()
            .clients()
            .iter()
            .map(MetricsInterface::read_redelivery_count)
            .sum();
        table.row(vec![
            instance.name.to_owned(),
            s.l1_hits.to_string(),
            s.l2_hits.to_string(),
            s.misses.to_string(),
            s.loads.to_string(),
            s.coalesced_waits.to_string(),
            format!("{} / {}", s.invalidations_sent, s.invalidations_applied),
            s.l1_flushes.to_string(),
            format!("{} ({})", s.l1_replays, s.invalidations_replayed),
            s.errors.to_string(),
            redeliveries.to_string(),
        ]);
    }
    table
}

/// Memory figures; unbounded growth is a violation.
pub(crate) fn memory_table(
    samples: &[Sample],
    l1_bound: u64,
    tasks: usize,
    violations: &Violations,
) -> Table {
    let verdict = memory::judge(samples, l1_bound, tasks);
    for problem in &verdict.problems {
        violations.add(format!("memory: {problem}"));
    }
    let mut table = Table::new("Memory", &["figure", "value"]);
    let mib = |b: u64| format!("{:.1} MiB", b as f64 / f64::from(1 << 20));
    table.row(vec![
        "RSS, early (max over 12-25 % of the run)".into(),
        mib(verdict.early_rss),
    ]);
    table.row(vec![
        "RSS, late (max over the last 25 %)".into(),
        mib(verdict.late_rss),
    ]);
    table.row(vec![
        "L1 entries, max per instance (bound)".into(),
        format!(
            "{} ({l1_bound})",
            verdict
                .max_l1
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(" / ")
        ),
    ]);
    table.row(vec![
        "fred commands queued, max / last second".into(),
        format!("{} / {}", verdict.max_queued, verdict.final_queued),
    ]);
    table
}
