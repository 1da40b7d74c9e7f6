use gort_proto::metrics::{self, AggregationTemporality};

use super::*;
use crate::{
    bpf::probes::PROBES,
    export::{self, ResourceFacts},
    telemetry::exemplars::{Exemplar, ExemplarFor},
};

#[test]
fn every_probe_feeds_a_feature() {
    for spec in PROBES {
        assert!(
            FEATURES.iter().any(|f| f.probes().contains(&spec.id)),
            "{} feeds no feature: list it in the feature that reads it",
            spec.name
        );
    }
    assert_eq!(
        feeds(ProbeId::Casgstatus),
        "go.schedule.duration and blocked time by wait reason and goroutine counts"
    );
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
    let report = Report {
        runtime: &runtime,
        live: None,
        probe_hits: &[("execute", 10), ("ready", 4)],
        sampling_ratio: 0.05,
        coverage: 0.4,
        exemplars: &exemplars,
        window: Window { start: 100, now: 200 },
    };
    let req = export::metrics_request(&facts, metrics(&report));
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
    let attrs: Vec<&str> = rm.resource.as_ref().unwrap().attributes.iter().map(|a| a.key.as_str()).collect();
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
