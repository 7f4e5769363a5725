//! Prometheus metrics: HTTP requests and latency by route and status, the
//! cache statistics, and whether Redis is up; the same recordings go to
//! OpenTelemetry instruments when metrics are exported over OTLP (see
//! `metrics_bridge.rs`).
//!
//! Each service instance owns its recorder (no global recorder), so several
//! instances can live in one test process without mixing their numbers on
//! `/metrics` (over OTLP, the instances of one process share the process's
//! meter).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
    with_local_recorder,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::FutureExt as _;
use redis_cache::CacheStats;
use redis_connection::RedisConnectionManager;
use redis_pubsub::PubSubStats;
use tracing::info;

use crate::metrics_bridge::Fanout;
use crate::trace_span::ServerSpan;

/// Latency buckets in seconds: sub-millisecond L1 answers to slow outliers.
const LATENCY_BUCKETS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

/// One service's metrics.
#[derive(Clone)]
pub struct Metrics {
    recorder: Arc<Fanout>,
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh recorder, feeding the process's OTLP export too when there
    /// is one.
    ///
    /// # Panics
    /// Never: the bucket list is non-empty.
    pub fn new() -> Self {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("http_request_duration_seconds".to_owned()),
                &LATENCY_BUCKETS,
            )
            .expect("non-empty buckets")
            .build_recorder();
        let handle = recorder.handle();
        let meter = crate::otel_metrics::exporting().map(|(meter, _)| meter.clone());
        let metrics = Self {
            recorder: Arc::new(Fanout::new(recorder, meter, &LATENCY_BUCKETS)),
            handle,
        };
        metrics.record(describe);
        metrics
    }

    /// Runs `f` with this service's recorder installed for the current thread.
    pub fn record(&self, f: impl FnOnce()) {
        with_local_recorder(&*self.recorder, f);
    }

    /// The Prometheus text exposition, with the cache and pub/sub
    /// statistics and the Redis gauges brought up to date first, and the
    /// Redis command latency histogram (`redis_command_duration_seconds{family}`)
    /// at the end.
    pub fn render(
        &self,
        cache: &CacheStats,
        pubsub: &PubSubStats,
        redis: &RedisConnectionManager,
    ) -> String {
        self.refresh(cache, pubsub, redis);
        self.handle.run_upkeep();
        let mut text = self.handle.render();
        text.push_str(&crate::command_metrics::render(redis.commands()));
        text
    }

    /// Brings the metrics read from elsewhere (the cache and pub/sub
    /// statistics, the Redis gauges, the dropped spans) up to date: at each
    /// scrape, and once per OTLP export interval (see `platform.rs`).
    pub(crate) fn refresh(
        &self,
        cache: &CacheStats,
        pubsub: &PubSubStats,
        redis: &RedisConnectionManager,
    ) {
        let redis_up = redis.is_connected();
        let (connected, configured) = redis.pool_connections();
        self.record(|| {
            let tiers = [("l1", cache.l1_hits), ("l2", cache.l2_hits)];
            for (tier, hits) in tiers {
                counter!("cache_hits_total", "tier" => tier).absolute(hits);
            }
            counter!("cache_misses_total").absolute(cache.misses);
            counter!("cache_errors_total").absolute(cache.errors);
            counter!("cache_decode_failures_total").absolute(cache.decode_failures);
            counter!("cache_loads_total").absolute(cache.loads);
            counter!("cache_coalesced_waits_total").absolute(cache.coalesced_waits);
            counter!("cache_stale_served_total").absolute(cache.stale_served);
            counter!("cache_refreshes_total").absolute(cache.refreshes);
            counter!("cache_background_loads_total").absolute(cache.background_loads);
            counter!("cache_fleet_waits_total").absolute(cache.fleet_waits);
            counter!("cache_fleet_wait_timeouts_total").absolute(cache.fleet_wait_timeouts);
            let flows = [
                ("sent", cache.invalidations_sent),
                ("received", cache.invalidations_received),
                ("applied", cache.invalidations_applied),
            ];
            for (direction, n) in flows {
                counter!("cache_invalidations_total", "direction" => direction).absolute(n);
            }
            counter!("cache_l1_flushes_total").absolute(cache.l1_flushes);
            counter!("cache_l1_replays_total").absolute(cache.l1_replays);
            counter!("cache_invalidations_replayed_total").absolute(cache.invalidations_replayed);
            gauge!("cache_l1_bytes").set(u64_gauge(cache.l1_bytes));
            gauge!("cache_l1_entries").set(u64_gauge(cache.l1_entries));
            let evictions = [
                ("size", cache.l1_evicted_size),
                ("tenant_share", cache.l1_evicted_tenant_share),
                ("ttl", cache.l1_expired),
                ("invalidation", cache.l1_invalidated),
            ];
            for (cause, n) in evictions {
                counter!("cache_l1_evictions_total", "cause" => cause).absolute(n);
            }
            counter!("cache_l1_too_large_total").absolute(cache.l1_too_large);
            counter!("cache_malformed_messages_total").absolute(cache.malformed_messages);
            counter!("cache_foreign_payloads_total").absolute(cache.foreign_payloads);
            gauge!("cache_invalidation_feed_live").set(flag(cache.invalidation_feed_live));
            counter!("cache_invalidations_missed_total").absolute(cache.invalidations_missed);
            counter!("cache_invalidations_unreadable_total")
                .absolute(cache.invalidations_unreadable);
            if cache.last_invalidation_applied_ms > 0 {
                gauge!("cache_invalidation_last_applied_timestamp_seconds")
                    .set(u64_gauge(cache.last_invalidation_applied_ms) / 1000.0);
                gauge!("cache_invalidation_delay_seconds")
                    .set(u64_gauge(cache.last_invalidation_delay_ms) / 1000.0);
            }
            counter!("pubsub_resubscriptions_total").absolute(pubsub.resubscriptions);
            counter!("pubsub_refusals_total").absolute(pubsub.refusals);
            counter!("otel_spans_dropped_total").absolute(crate::otel::dropped_spans());
            gauge!("redis_up").set(flag(redis_up));
            gauge!("redis_pool_connections", "state" => "connected")
                .set(u64_gauge(connected as u64));
            gauge!("redis_pool_connections", "state" => "configured")
                .set(u64_gauge(configured as u64));
        });
    }
}

/// What every metric means, as `# HELP` lines: a dashboard's reader (or
/// an alert's author) should not need our source to know what a series is.
fn describe() {
    describe_counter!(
        "http_requests_total",
        "HTTP responses, by route template (or `unmatched`), method (or `other`) and status; every response, including shed, timed-out and refused ones"
    );
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "Time from a request's arrival to its response, by route, method and status"
    );
    describe_counter!(
        "cache_hits_total",
        "Reads answered from the cache, by tier: l1 (in-process, trusted) or l2 (Redis); values served stale are in cache_stale_served_total"
    );
    describe_counter!(
        "cache_misses_total",
        "Reads that found nothing (including reads degraded to a miss)"
    );
    describe_counter!(
        "cache_errors_total",
        "Cache operations that failed because Redis was unavailable or refused"
    );
    describe_counter!(
        "cache_decode_failures_total",
        "Stored values that did not decode as the requested type (each deleted)"
    );
    describe_counter!("cache_loads_total", "Loader calls made by get_or_load");
    describe_counter!(
        "cache_coalesced_waits_total",
        "get_or_load callers that waited for another caller's load instead of loading"
    );
    describe_counter!(
        "cache_stale_served_total",
        "Values served stale: by get_or_load_with past their expiry because the loader failed or timed out (fail-safe), and by reads from the L1 because Redis could not answer (x-cache: stale)"
    );
    describe_counter!(
        "cache_refreshes_total",
        "Eager refreshes started by this instance: background reloads of values read in the last part of their TTL"
    );
    describe_counter!(
        "cache_background_loads_total",
        "Loads that passed their soft timeout and finished in the background while callers got the kept value"
    );
    describe_counter!(
        "cache_fleet_waits_total",
        "get_or_load calls that waited for another instance's load of the key instead of loading"
    );
    describe_counter!(
        "cache_fleet_wait_timeouts_total",
        "Waits for another instance's load that ran out (holder dead or slow); the loader then ran here, not cached"
    );
    describe_counter!(
        "cache_invalidations_total",
        "Invalidations by direction: sent by this instance, received from others, applied to the L1"
    );
    describe_counter!(
        "cache_l1_flushes_total",
        "Whole-L1 flushes after a gap in the invalidations that the invalidation stream no longer held (older than CACHE_INVALIDATION_RETENTION, or Redis lost its data)"
    );
    describe_counter!(
        "cache_l1_replays_total",
        "Gaps in the invalidations (a re-subscribe, a lag, a missed message) caught up from the invalidation stream without flushing the L1"
    );
    describe_counter!(
        "cache_invalidations_replayed_total",
        "Invalidations applied to the L1 from the invalidation stream by replays"
    );
    describe_gauge!(
        "cache_l1_bytes",
        Unit::Bytes,
        "Bytes the in-process L1 holds: keys, JSON and decoded copies"
    );
    describe_gauge!("cache_l1_entries", "Entries the in-process L1 holds");
    describe_counter!(
        "cache_l1_evictions_total",
        "L1 entries removed, by cause: size (over the byte bound), tenant_share, ttl, invalidation"
    );
    describe_counter!(
        "cache_l1_too_large_total",
        "Values not held in the L1 for being larger than CACHE_L1_MAX_VALUE_BYTES"
    );
    describe_counter!(
        "cache_malformed_messages_total",
        "Messages on invalidation channels whose channel does not parse: ignored"
    );
    describe_counter!(
        "cache_foreign_payloads_total",
        "Invalidations applied whose payload was not ours (TypeScript services, redis-cli, garbage)"
    );
    describe_gauge!(
        "cache_invalidation_feed_live",
        "1 while the invalidation feed is subscribed and the L1 serves; 0 while reads go through to Redis"
    );
    describe_counter!(
        "cache_invalidations_missed_total",
        "Invalidations lost because the feed lagged behind (each loss flushed the L1)"
    );
    describe_counter!(
        "cache_invalidations_unreadable_total",
        "Invalidations from a newer version of the layer that this one could not read (each dropped its tenant from the L1)"
    );
    describe_gauge!(
        "cache_invalidation_last_applied_timestamp_seconds",
        Unit::Seconds,
        "Unix time at which the last invalidation from elsewhere was applied (absent before the first)"
    );
    describe_gauge!(
        "cache_invalidation_delay_seconds",
        Unit::Seconds,
        "Publish-to-apply delay of the last applied invalidation of another instance (absent before the first)"
    );
    describe_counter!(
        "pubsub_resubscriptions_total",
        "Times the pub/sub subscriptions (the invalidation feed's among them) were restored after a reconnection or a missed connection event"
    );
    describe_counter!(
        "pubsub_refusals_total",
        "Times Redis refused to subscribe routes again after a reconnection (the ACL user lost channel rights): the invalidation feed stays down, reads go to Redis, until it is allowed again"
    );
    describe_counter!(
        "otel_spans_dropped_total",
        "Trace spans dropped because the OTLP export queue (OTEL_BSP_MAX_QUEUE_SIZE) was full: the collector is slow or unreachable"
    );
    describe_gauge!(
        "redis_up",
        "1 while at least one pooled Redis connection is up, else 0"
    );
    describe_gauge!(
        "redis_pool_connections",
        "Pooled Redis connections, by state: connected now, configured in all"
    );
}

/// A boolean as a gauge value.
fn flag(on: bool) -> f64 {
    if on { 1.0 } else { 0.0 }
}

/// A count as a gauge value: exact below 2^53, which memory sizes and entry
/// counts stay far from.
#[allow(clippy::cast_precision_loss)]
fn u64_gauge(n: u64) -> f64 {
    n as f64
}

/// What [`track`] needs: the recorder, and whether to log each response.
#[derive(Clone)]
pub(crate) struct Tracking {
    pub(crate) metrics: Metrics,
    pub(crate) access_log: bool,
}

/// Middleware: counts each request and times it, by route template (never
/// the raw path, which holds ids), method and status; with trace export
/// on, the request's server span covers the same ground (`trace_span.rs`).
///
/// Every label has few values whatever clients send: the route is one of
/// the router's templates or `unmatched`, the method one of the standard
/// nine or `other` (hyper accepts any token as a method, and each new
/// label value is a new time series kept forever). It wraps every other
/// layer, so that shed, timed-out and refused requests are counted too.
///
/// With the access log on, each response is also one INFO line (target
/// `access`) with the same labels, the latency and the request id: the
/// route template stands for the path, so ids in paths, tokens and bodies
/// never reach it.
pub(crate) async fn track(
    State(Tracking {
        metrics,
        access_log,
    }): State<Tracking>,
    request: Request,
    next: Next,
) -> Response {
    let matched = request.extensions().get::<MatchedPath>();
    let server_span = ServerSpan::start(&request, matched.map(MatchedPath::as_str));
    let route = matched.map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = method_label(request.method());
    let request_id = access_log
        .then(|| {
            request
                .headers()
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .flatten();
    let start = Instant::now();
    let response = match &server_span {
        // Current while the request is handled: the cache-operation and
        // Redis-command spans are its children.
        Some(span) => next.run(request).with_context(span.context()).await,
        None => next.run(request).await,
    };
    if let Some(span) = server_span {
        span.end(&response);
    }
    let status = response.status().as_u16().to_string();
    let elapsed = start.elapsed().as_secs_f64();
    if access_log {
        info!(
            target: "access",
            method,
            route = %route,
            status = %status,
            latency_ms = elapsed * 1000.0,
            request_id = request_id.as_deref().unwrap_or("-"),
            "request"
        );
    }
    metrics.record(|| {
        let labels = [
            ("route", route),
            ("method", method.to_owned()),
            ("status", status),
        ];
        counter!("http_requests_total", &labels).increment(1);
        histogram!("http_request_duration_seconds", &labels).record(elapsed);
    });
    response
}

/// The method as a label: a standard method's name, else `other`.
fn method_label(method: &Method) -> &'static str {
    const STANDARD: [Method; 9] = [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::OPTIONS,
        Method::CONNECT,
        Method::TRACE,
    ];
    STANDARD
        .iter()
        .find(|m| *m == method)
        .map_or("other", Method::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Standard methods keep their name; anything else is one value.
    #[test]
    fn made_up_methods_collapse_to_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::PATCH), "PATCH");
        let made_up = Method::from_bytes(b"BREW").unwrap();
        assert_eq!(method_label(&made_up), "other");
    }
}
