//! Pure transforms from what the probes counted to OTLP messages.

use gort_goexe::Analysis;
use gort_proto::{
    common::{InstrumentationScope, KeyValue},
    kv_int, kv_str,
    metrics::{
        self, AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
        ResourceMetrics, ScopeMetrics, Sum,
    },
    metrics_service::ExportMetricsServiceRequest,
    resource::Resource,
};

use crate::{
    target::Process,
    telemetry::{
        census as goroutines,
        exemplars::{Exemplar, ExemplarFor, Exemplars},
        stats::{RuntimeCounts, TimeHistogram},
    },
};

/// Instrumentation scope of everything gort itself produces.
pub const SCOPE_NAME: &str = "gort";

/// Resource attributes of a watched process (OpenTelemetry semantic conventions).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourceFacts {
    pub service_name: String,
    /// `service.namespace`, `service.instance.id`, `deployment.environment.name`
    /// as the service named itself.
    pub service_attributes: Vec<(&'static str, String)>,
    pub pid: u32,
    pub executable_path: String,
    pub runtime_version: String,
}

impl ResourceFacts {
    /// `service` overrides the default service name, which is the main
    /// module path (falling back to the executable's file name).
    pub fn new(process: &Process, analysis: &Analysis, service: Option<&str>) -> Self {
        let exe_name = process.exe.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let default_name = if analysis.build.main.path.is_empty() {
            if analysis.build.path.is_empty() { exe_name } else { analysis.build.path.clone() }
        } else {
            analysis.build.main.path.clone()
        };
        Self {
            service_name: service.map_or(default_name, str::to_owned),
            service_attributes: Vec::new(),
            pid: process.pid,
            executable_path: process.exe.display().to_string(),
            runtime_version: analysis.build.go_version.clone(),
        }
    }

    /// The service's own name for itself (`service.name` and its
    /// companions, from what it exported to gort) replaces the configured or
    /// derived one, so gort's metrics and the service's spans carry one
    /// identity.
    pub fn with_identity(mut self, identity: &[(&'static str, String)]) -> Self {
        for (key, value) in identity {
            match *key {
                "service.name" => self.service_name = value.clone(),
                key => self.service_attributes.push((key, value.clone())),
            }
        }
        self
    }

    pub fn resource(&self) -> Resource {
        let mut attributes = vec![kv_str("service.name", &self.service_name)];
        attributes.extend(self.service_attributes.iter().map(|(k, v)| kv_str(k, v)));
        attributes.extend([
            kv_int("process.pid", i64::from(self.pid)),
            kv_str("process.executable.path", &self.executable_path),
            kv_str("process.runtime.name", "go"),
            kv_str("process.runtime.version", &self.runtime_version),
        ]);
        Resource { attributes, ..Default::default() }
    }
}

/// The start and end of the cumulative window every point shares.
#[derive(Clone, Copy)]
struct Window {
    start: u64,
    now: u64,
}

/// A point's value: integer counts, or seconds as a double.
#[derive(Clone, Copy)]
enum Value {
    Int(u64),
    Seconds(u64),
}

impl Value {
    fn number(self) -> metrics::number_data_point::Value {
        use metrics::number_data_point::Value as V;
        match self {
            Self::Int(v) => V::AsInt(i64::try_from(v).unwrap_or(i64::MAX)),
            Self::Seconds(ns) => V::AsDouble(ns as f64 / 1e9),
        }
    }
}

fn number_points(w: Window, points: Vec<(Vec<(&str, &str)>, Value)>) -> Vec<NumberDataPoint> {
    points
        .into_iter()
        .map(|(attrs, value)| NumberDataPoint {
            attributes: attrs.into_iter().map(|(k, v)| kv_str(k, v)).collect(),
            start_time_unix_nano: w.start,
            time_unix_nano: w.now,
            value: Some(value.number()),
            ..Default::default()
        })
        .collect()
}

fn sum_metric(
    name: &str,
    description: &str,
    unit: &str,
    w: Window,
    points: Vec<(Vec<(&str, &str)>, Value)>,
) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metrics::metric::Data::Sum(Sum {
            data_points: number_points(w, points),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: true,
        })),
        ..Default::default()
    }
}

fn gauge_metric(name: &str, description: &str, unit: &str, w: Window, value: f64) -> Metric {
    let point = NumberDataPoint {
        time_unix_nano: w.now,
        value: Some(metrics::number_data_point::Value::AsDouble(value)),
        ..Default::default()
    };
    Metric {
        name: name.into(),
        description: description.into(),
        unit: unit.into(),
        data: Some(metrics::metric::Data::Gauge(Gauge { data_points: vec![point] })),
        ..Default::default()
    }
}

/// One cumulative explicit-bucket data point in seconds, with the runtime's
/// buckets folded to powers of two (runtime/metrics' four sub-buckets per
/// power would make ~160 Prometheus series per histogram).
fn histogram_point(
    w: Window,
    h: &TimeHistogram,
    attributes: Vec<KeyValue>,
    exemplars: &[Exemplar],
) -> HistogramDataPoint {
    let (explicit_bounds, bucket_counts) = h.power_of_two_buckets();
    HistogramDataPoint {
        attributes,
        exemplars: exemplars.iter().map(exemplar).collect(),
        start_time_unix_nano: w.start,
        time_unix_nano: w.now,
        count: h.count(),
        sum: Some(h.sum_ns as f64 / 1e9),
        bucket_counts,
        explicit_bounds,
        ..Default::default()
    }
}

/// An OTLP exemplar: the observation (seconds) and the span it belongs to.
fn exemplar(e: &Exemplar) -> metrics::Exemplar {
    metrics::Exemplar {
        time_unix_nano: e.time_unix_ns,
        value: Some(metrics::exemplar::Value::AsDouble(e.value_ns as f64 / 1e9)),
        span_id: e.span_id.to_vec(),
        trace_id: e.trace_id.to_vec(),
        ..Default::default()
    }
}

fn histogram_metric(name: &str, description: &str, data_points: Vec<HistogramDataPoint>) -> Metric {
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "s".into(),
        data: Some(metrics::metric::Data::Histogram(Histogram {
            data_points,
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
        })),
        ..Default::default()
    }
}

/// `gort.goroutine.blocked.duration`: time parked, one point per wait-reason
/// category (`go.wait.reason`, a fixed set of about ten values).
fn blocked_metric(w: Window, runtime: &RuntimeCounts, exemplars: &Exemplars) -> Metric {
    let points = runtime
        .blocked_by_category()
        .into_iter()
        .map(|(category, h)| {
            let ex = exemplars.of(ExemplarFor::Blocked(category));
            histogram_point(w, &h, vec![kv_str("go.wait.reason", category)], &ex)
        })
        .collect();
    histogram_metric(
        "gort.goroutine.blocked.duration",
        "Time the application's goroutines spent parked, by wait-reason category (the runtime's own goroutines are in gort.runtime_goroutine.blocked.duration).",
        points,
    )
}

/// The runtime's own goroutines' parked time, by the runtime's wait reason
/// (a small, fixed set: GC workers idle, sweeper, scavenger, finalizers).
/// Mark workers marking ("GC worker (active)") are `gort.gc.mark_worker.time`.
fn runtime_blocked_metric(w: Window, runtime: &RuntimeCounts) -> Metric {
    let points = runtime
        .runtime_blocked
        .iter()
        .filter(|(reason, _)| *reason != gort_goexe::wait_reasons::GC_WORKER_ACTIVE)
        .map(|(reason, h)| histogram_point(w, h, vec![kv_str("go.runtime.wait_reason", reason)], &[]))
        .collect();
    histogram_metric(
        "gort.runtime_goroutine.blocked.duration",
        "Time the Go runtime's own goroutines (GC workers, sweeper, scavenger, finalizers) spent parked, by wait reason: their normal idle state, not time the application waited.",
        points,
    )
}

/// Live goroutines of one kind as points by state and wait-reason category.
fn live_metric(name: &str, description: &str, w: Window, live: &goroutines::Counts) -> Metric {
    let points = live
        .iter()
        .map(|((state, category), n)| {
            let mut attrs = vec![("go.goroutine.state", *state)];
            if !category.is_empty() {
                attrs.push(("go.wait.reason", *category));
            }
            (attrs, Value::Int(*n))
        })
        .collect();
    Metric {
        name: name.into(),
        description: description.into(),
        unit: "{goroutine}".into(),
        data: Some(metrics::metric::Data::Sum(Sum {
            data_points: number_points(w, points),
            aggregation_temporality: AggregationTemporality::Cumulative as i32,
            is_monotonic: false,
        })),
        ..Default::default()
    }
}

/// Everything gort measured in one process, as one cumulative OTLP export:
/// `go.schedule.duration`, `go.memory.gc.pause.duration` (semantic-convention
/// names), GC cycles, goroutines created/exited, and per-probe hits. The
/// histograms carry `exemplars` (spans that suffered their observations).
#[expect(clippy::too_many_arguments, reason = "one report's inputs, each from a different room")]
pub fn metrics_request(
    resource: &ResourceFacts,
    probe_hits: &[(&str, u64)],
    runtime: &RuntimeCounts,
    sampling_ratio: f64,
    coverage: f64,
    live: Option<&goroutines::Live>,
    exemplars: &Exemplars,
    start_unix_nanos: u64,
    now_unix_nanos: u64,
) -> ExportMetricsServiceRequest {
    let w = Window { start: start_unix_nanos, now: now_unix_nanos };
    let mut metrics = vec![
        histogram_metric(
            "go.schedule.duration",
            "Time goroutines spent runnable before running.",
            vec![histogram_point(w, &runtime.schedule_latency, vec![], &exemplars.of(ExemplarFor::Schedule))],
        ),
        histogram_metric(
            "go.memory.gc.pause.duration",
            "Duration of each GC stop-the-world pause.",
            vec![histogram_point(w, &runtime.gc_pause, vec![], &exemplars.of(ExemplarFor::GcPause))],
        ),
        blocked_metric(w, runtime, exemplars),
        runtime_blocked_metric(w, runtime),
        sum_metric(
            "gort.gc.cycles",
            "Completed GC cycles.",
            "{gc_cycle}",
            w,
            vec![(vec![], Value::Int(runtime.gc_cycles))],
        ),
        sum_metric(
            "gort.goroutine.transitions",
            "Goroutines created and exited.",
            "{goroutine}",
            w,
            vec![
                (vec![("gort.goroutine.event", "created")], Value::Int(runtime.goroutines_created)),
                (vec![("gort.goroutine.event", "exited")], Value::Int(runtime.goroutines_exited)),
            ],
        ),
        sum_metric(
            "gort.probe.hits",
            "Times each gort uprobe fired in the target process.",
            "{hit}",
            w,
            probe_hits
                .iter()
                .map(|(probe, hits)| (vec![("gort.probe", *probe)], Value::Int(*hits)))
                .collect(),
        ),
        sum_metric(
            "gort.gc.mark_worker.time",
            "Time GC background mark workers held a P and marked: CPU the GC took from goroutines.",
            "s",
            w,
            vec![(vec![], Value::Seconds(runtime.gc_mark_worker_ns()))],
        ),
        gauge_metric(
            "gort.probe.sampling.ratio",
            "Fraction of time the hot probe is attached; the goroutine-level metrics are scaled by its inverse.",
            "1",
            w,
            sampling_ratio,
        ),
        gauge_metric(
            "gort.probe.sampling.coverage",
            "Fraction of the time since attach the hot probe recorded; below 1, the goroutine-level metrics are estimates scaled by its inverse.",
            "1",
            w,
            coverage,
        ),
    ];
    if let Some(live) = live {
        metrics.push(live_metric(
            "go.goroutine.count",
            "Live goroutines of the application (as runtime.NumGoroutine counts them), by state (and wait-reason category when waiting).",
            w,
            &live.application,
        ));
        metrics.push(live_metric(
            "gort.runtime_goroutine.count",
            "Live goroutines of the Go runtime itself (GC workers, sweeper, scavenger, ...), by state.",
            w,
            &live.runtime,
        ));
    }
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            resource: Some(resource.resource()),
            scope_metrics: vec![ScopeMetrics {
                scope: Some(InstrumentationScope {
                    name: SCOPE_NAME.into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                    ..Default::default()
                }),
                metrics,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_s_own_identity_replaces_the_derived_name() {
        let facts = ResourceFacts {
            service_name: "gort.dev/svc".into(),
            service_attributes: Vec::new(),
            pid: 7,
            executable_path: "/bin/x".into(),
            runtime_version: "go1.26.8".into(),
        }
        .with_identity(&[("service.name", "svc".into()), ("deployment.environment.name", "prod".into())]);
        let attrs = facts.resource().attributes;
        assert_eq!(attrs[0], kv_str("service.name", "svc"));
        assert_eq!(attrs[1], kv_str("deployment.environment.name", "prod"));
        assert_eq!(attrs[2], kv_int("process.pid", 7));
    }

    #[test]
    fn metrics_are_cumulative_with_the_process_resource() {
        let facts = ResourceFacts {
            service_name: "svc".into(),
            service_attributes: Vec::new(),
            pid: 7,
            executable_path: "/bin/x".into(),
            runtime_version: "go1.26.8".into(),
        };
        let mut runtime = RuntimeCounts::default();
        runtime.schedule_latency.counts = vec![0; gort_common::time_hist::COUNTS as usize];
        runtime.schedule_latency.counts[10] = 3;
        runtime.schedule_latency.sum_ns = 3_000;
        runtime.gc_cycles = 2;
        let mut exemplars = Exemplars::default();
        let e = Exemplar { value_ns: 3_000_000, time_unix_ns: 150, trace_id: [7; 16], span_id: [8; 8] };
        exemplars.offer(ExemplarFor::Schedule, e);
        let req = metrics_request(
            &facts,
            &[("execute", 10), ("ready", 4)],
            &runtime,
            0.05,
            0.4,
            None,
            &exemplars,
            100,
            200,
        );
        let rm = &req.resource_metrics[0];
        let metrics = &rm.scope_metrics[0].metrics;
        let by_name = |n: &str| metrics.iter().find(|m| m.name == n).unwrap_or_else(|| panic!("no {n}"));
        let Some(metrics::metric::Data::Histogram(h)) = &by_name("go.schedule.duration").data else {
            panic!("not a histogram")
        };
        assert_eq!(by_name("go.schedule.duration").unit, "s");
        assert_eq!(h.aggregation_temporality, AggregationTemporality::Cumulative as i32);
        let p = &h.data_points[0];
        assert_eq!((p.count, p.sum), (3, Some(3e-6)));
        assert_eq!(p.bucket_counts.len(), p.explicit_bounds.len() + 1);
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), 3);
        assert!(p.attributes.is_empty(), "no per-goroutine or per-trace attributes on histograms");
        assert_eq!(p.exemplars.len(), 1, "the trace goes in an exemplar");
        assert_eq!(
            (p.exemplars[0].trace_id.as_slice(), p.exemplars[0].span_id.as_slice()),
            (&[7u8; 16][..], &[8u8; 8][..])
        );
        assert_eq!(p.exemplars[0].value, Some(metrics::exemplar::Value::AsDouble(0.003)));
        let attrs: Vec<&str> =
            rm.resource.as_ref().unwrap().attributes.iter().map(|a| a.key.as_str()).collect();
        assert_eq!(
            attrs,
            [
                "service.name",
                "process.pid",
                "process.executable.path",
                "process.runtime.name",
                "process.runtime.version"
            ]
        );
        let metric = by_name("gort.probe.hits");
        let Some(metrics::metric::Data::Sum(sum)) = &metric.data else { panic!("not a sum") };
        assert_eq!(sum.aggregation_temporality, AggregationTemporality::Cumulative as i32);
        assert!(sum.is_monotonic);
        assert_eq!(sum.data_points.len(), 2);
        assert_eq!(sum.data_points[1].value, Some(metrics::number_data_point::Value::AsInt(4)));
        assert_eq!(sum.data_points[0].start_time_unix_nano, 100);
    }
}
