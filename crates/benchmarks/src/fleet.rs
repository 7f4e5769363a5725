//! Workload 13, fleet stampede: workload 6 (`stampede.rs`) on three
//! two-tier instances of one Redis at once, 1 000 concurrent `get_or_load`
//! calls on each, one cold key per round, a loader that takes 50 ms.
//! Targets: one loader call per round in the whole fleet (the instances
//! without the key's lease wait for the holder's value, woken by its
//! announcement), and every caller answered within 100 ms.

use crate::fixture::{Mode, shard_key, two_tier};
use crate::latency::{Latencies, show};
use crate::report::{Figure, Row, Status};
use crate::stampede::{ANSWER_TARGET, CALLERS, LOADER_TAKES, one_round};
use test_support::RedisServer;

const INSTANCES: usize = 3;

pub(crate) async fn run(mode: Mode) -> Result<Vec<Row>, String> {
    let server = RedisServer::start().await;
    let mut fleet = Vec::with_capacity(INSTANCES);
    for _ in 0..INSTANCES {
        fleet.push(two_tier(&server).await);
    }
    let rounds = mode.pick(20, 2);
    let mut calls_per_round = Vec::new();
    let mut slowest_per_round = Vec::new();
    let mut latencies = Latencies::default();
    for round in 0..rounds {
        let key = shard_key("fleet", round);
        let (calls, round_latencies) = one_round(&fleet, &key, round).await?;
        calls_per_round.push(calls);
        slowest_per_round.push(show(round_latencies.max()));
        latencies.merge(&round_latencies);
    }
    let waits: u64 = fleet.iter().map(|c| c.stats().fleet_waits).sum();
    let timeouts: u64 = fleet.iter().map(|c| c.stats().fleet_wait_timeouts).sum();
    let worst_calls = calls_per_round.iter().copied().max().unwrap_or(0);
    let all_one = calls_per_round.iter().all(|&c| c == 1);
    let slowest = latencies.max();
    Ok(vec![
        Row::new(
            "fleet.loader_calls",
            &format!(
                "13. loader calls for {INSTANCES} two-tier instances x {CALLERS} concurrent `get_or_load` of one cold key (worst round)"
            ),
            Figure::count(worst_calls),
        )
        .target("exactly 1 per round", Status::met_if(all_one))
        .note(format!(
            "{rounds} rounds: {calls_per_round:?}; waits for another instance {waits}, ran out {timeouts}"
        )),
        Row::new(
            "fleet.slowest",
            &format!(
                "13. slowest of the {} callers in the fleet (loader takes {})",
                INSTANCES * CALLERS,
                show(LOADER_TAKES)
            ),
            Figure::time(slowest),
        )
        .target(
            &format!("< {}", show(ANSWER_TARGET)),
            Status::met_if(slowest < ANSWER_TARGET),
        )
        .note(format!(
            "{}; slowest per round {}",
            latencies.summary(),
            slowest_per_round.join(", ")
        )),
    ])
}
