//! [`Fanout`]: a `metrics` recorder that gives every recording to the
//! Prometheus recorder and, when metrics are exported over OTLP, to the
//! OpenTelemetry instrument of the same name and labels, so that
//! `/metrics` and the collector see the same numbers.
//!
//! Why our own: the bridge crates between the `metrics` facade and
//! OpenTelemetry that exist do not follow opentelemetry 0.33, and the
//! mapping we need is small. A counter is an OpenTelemetry `Counter`
//! (an `absolute` value, which the cache statistics use, becomes the
//! increase since the last one), a gauge a `Gauge`, a histogram a
//! `Histogram` with the Prometheus buckets as its boundaries.
//!
//! Each series' pair of handles is made once and kept (the label sets are
//! bounded, see `metrics.rs`), so a recording costs one map look-up more
//! than the Prometheus recorder alone.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use metrics_exporter_prometheus::PrometheusRecorder;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

/// The Prometheus recorder, and the OpenTelemetry side when exporting.
#[derive(Debug)]
pub(crate) struct Fanout {
    prometheus: PrometheusRecorder,
    otel: Option<OtelSide>,
}

impl Fanout {
    /// `prometheus` alone, or fanned out to `meter` too; histograms get
    /// `boundaries`.
    pub(crate) fn new(
        prometheus: PrometheusRecorder,
        meter: Option<Meter>,
        boundaries: &[f64],
    ) -> Self {
        Self {
            prometheus,
            otel: meter.map(|meter| OtelSide {
                meter,
                boundaries: boundaries.to_vec(),
                descriptions: Mutex::default(),
                series: Mutex::default(),
            }),
        }
    }
}

/// The OpenTelemetry half: the meter, what `describe_*` said, and the
/// handles made so far by series.
struct OtelSide {
    meter: Meter,
    boundaries: Vec<f64>,
    descriptions: Mutex<HashMap<String, (Option<Unit>, SharedString)>>,
    series: Mutex<HashMap<Key, Series>>,
}

impl std::fmt::Debug for OtelSide {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OtelSide")
    }
}

/// One series' pair of handles.
#[derive(Clone)]
enum Series {
    Counter(Arc<BothCounter>),
    Gauge(Arc<BothGauge>),
    Histogram(Arc<BothHistogram>),
}

impl OtelSide {
    fn describe(&self, key: &KeyName, unit: Option<Unit>, description: SharedString) {
        lock(&self.descriptions).insert(key.as_str().to_owned(), (unit, description));
    }

    /// The series of `key`, made by `make` (from the instrument's name,
    /// unit and description, and the labels) the first time.
    fn series(
        &self,
        key: &Key,
        make: impl FnOnce(InstrumentInfo, Vec<KeyValue>) -> Series,
    ) -> Series {
        if let Some(series) = lock(&self.series).get(key) {
            return series.clone();
        }
        let (unit, description) = lock(&self.descriptions)
            .get(key.name())
            .cloned()
            .unwrap_or_default();
        let info = InstrumentInfo {
            name: key.name().to_owned(),
            unit: unit.and_then(ucum),
            description: description.into_owned(),
        };
        let labels = key
            .labels()
            .map(|l| KeyValue::new(l.key().to_owned(), l.value().to_owned()))
            .collect();
        let made = make(info, labels);
        // Two threads may make the same series at once: the first kept wins,
        // and the SDK gives both the same instrument, so nothing is lost.
        lock(&self.series)
            .entry(key.clone())
            .or_insert(made)
            .clone()
    }
}

/// What an OpenTelemetry instrument is created with.
struct InstrumentInfo {
    name: String,
    unit: Option<&'static str>,
    description: String,
}

/// The UCUM unit OpenTelemetry expects, for the units we describe with.
fn ucum(unit: Unit) -> Option<&'static str> {
    match unit {
        Unit::Seconds => Some("s"),
        Unit::Milliseconds => Some("ms"),
        Unit::Bytes => Some("By"),
        _ => None,
    }
}

/// A poisoned lock still holds a usable map: recording must not panic.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Recorder for Fanout {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(otel) = &self.otel {
            otel.describe(&key, unit, description.clone());
        }
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(otel) = &self.otel {
            otel.describe(&key, unit, description.clone());
        }
        self.prometheus.describe_gauge(key, unit, description);
    }

    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        if let Some(otel) = &self.otel {
            otel.describe(&key, unit, description.clone());
        }
        self.prometheus.describe_histogram(key, unit, description);
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        let Some(otel) = &self.otel else {
            return self.prometheus.register_counter(key, metadata);
        };
        let series = otel.series(key, |info, labels| {
            let mut builder = otel
                .meter
                .u64_counter(info.name)
                .with_description(info.description);
            if let Some(unit) = info.unit {
                builder = builder.with_unit(unit);
            }
            Series::Counter(Arc::new(BothCounter {
                prometheus: self.prometheus.register_counter(key, metadata),
                otel: builder.build(),
                labels,
                last_absolute: AtomicU64::new(0),
            }))
        });
        match series {
            Series::Counter(both) => Counter::from_arc(both),
            // The same name registered as another kind: Prometheus alone.
            _ => self.prometheus.register_counter(key, metadata),
        }
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        let Some(otel) = &self.otel else {
            return self.prometheus.register_gauge(key, metadata);
        };
        let series = otel.series(key, |info, labels| {
            let mut builder = otel
                .meter
                .f64_gauge(info.name)
                .with_description(info.description);
            if let Some(unit) = info.unit {
                builder = builder.with_unit(unit);
            }
            Series::Gauge(Arc::new(BothGauge {
                prometheus: self.prometheus.register_gauge(key, metadata),
                otel: builder.build(),
                labels,
                value: AtomicU64::new(0f64.to_bits()),
            }))
        });
        match series {
            Series::Gauge(both) => Gauge::from_arc(both),
            _ => self.prometheus.register_gauge(key, metadata),
        }
    }

    fn register_histogram(&self, key: &Key, metadata: &Metadata<'_>) -> Histogram {
        let Some(otel) = &self.otel else {
            return self.prometheus.register_histogram(key, metadata);
        };
        let series = otel.series(key, |info, labels| {
            let mut builder = otel
                .meter
                .f64_histogram(info.name)
                .with_description(info.description)
                .with_boundaries(otel.boundaries.clone());
            if let Some(unit) = info.unit {
                builder = builder.with_unit(unit);
            }
            Series::Histogram(Arc::new(BothHistogram {
                prometheus: self.prometheus.register_histogram(key, metadata),
                otel: builder.build(),
                labels,
            }))
        });
        match series {
            Series::Histogram(both) => Histogram::from_arc(both),
            _ => self.prometheus.register_histogram(key, metadata),
        }
    }
}

struct BothCounter {
    prometheus: Counter,
    otel: opentelemetry::metrics::Counter<u64>,
    labels: Vec<KeyValue>,
    /// The last `absolute` value: OpenTelemetry counters only add, so an
    /// absolute value is given as its increase over this one.
    last_absolute: AtomicU64,
}

impl CounterFn for BothCounter {
    fn increment(&self, value: u64) {
        self.prometheus.increment(value);
        self.otel.add(value, &self.labels);
    }

    fn absolute(&self, value: u64) {
        self.prometheus.absolute(value);
        let before = self.last_absolute.fetch_max(value, Ordering::AcqRel);
        if value > before {
            self.otel.add(value - before, &self.labels);
        }
    }
}

struct BothGauge {
    prometheus: Gauge,
    otel: opentelemetry::metrics::Gauge<f64>,
    labels: Vec<KeyValue>,
    /// The current value (as `f64` bits), which `increment` and
    /// `decrement` need: an OpenTelemetry gauge only takes values.
    value: AtomicU64,
}

impl BothGauge {
    fn update(&self, change: impl Fn(f64) -> f64) {
        let mut now = 0.0;
        let _ = self
            .value
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                now = change(f64::from_bits(bits));
                Some(now.to_bits())
            });
        self.otel.record(now, &self.labels);
    }
}

impl GaugeFn for BothGauge {
    fn increment(&self, value: f64) {
        self.prometheus.increment(value);
        self.update(|v| v + value);
    }

    fn decrement(&self, value: f64) {
        self.prometheus.decrement(value);
        self.update(|v| v - value);
    }

    fn set(&self, value: f64) {
        self.prometheus.set(value);
        self.update(|_| value);
    }
}

struct BothHistogram {
    prometheus: Histogram,
    otel: opentelemetry::metrics::Histogram<f64>,
    labels: Vec<KeyValue>,
}

impl HistogramFn for BothHistogram {
    fn record(&self, value: f64) {
        self.prometheus.record(value);
        self.otel.record(value, &self.labels);
    }
}
