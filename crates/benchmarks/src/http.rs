//! Workload 7, HTTP: `wrk` against main-api's authenticated
//! `GET /v1/tenants/{t}/shards/{s}/structured`, served from L1, against
//! `GET /health/live` of the same process in the same run. Target: at least
//! 0.5x the health route's requests per second; p50 and p99 printed.
//!
//! The services (`services/auth-broker`, `services/main-api`) do not exist
//! on this branch yet, so this reports a skipped row, which the harness
//! accepts for this workload only.
//!
//! TODO(services): wire it up once main-api builds:
//! 1. build it in release (`cargo build --release -p main-api`, or let the
//!    xtask build it beside this binary) and start it on a free port with
//!    `MAIN_API_ADDR=127.0.0.1:<port>` and `REDIS_URL` pointing at a server
//!    from test-support; start auth-broker the same way;
//! 2. get a session token from auth-broker's `POST /v1/sessions`,
//!    authenticated with `INTERNAL_API_TOKEN`;
//! 3. seed shard `{s}` of tenant `{t}` and read it once, so it is in L1;
//! 4. run `wrk --latency -t2 -c64 -d<window>` (installable with
//!    `apt-get install -y wrk`) on `/health/live`, then on the structured
//!    route with `-H "Authorization: Bearer <token>"`, alternating as the
//!    other workloads do, and read `Requests/sec` and the 50% / 99% lines
//!    of wrk's latency distribution;
//! 5. rows: structured rps vs health rps (ratio, target >= 0.5x), and the
//!    structured route's p50 / p99.

use crate::fixture::Mode;
use crate::report::Row;

pub(crate) async fn run(_mode: Mode) -> Result<Vec<Row>, String> {
    Ok(vec![Row::skipped(
        "http.structured",
        "7. HTTP: main-api structured route (from L1) vs `/health/live`, wrk",
        ">= 0.5x health rps",
        "main-api not built yet",
    )])
}
