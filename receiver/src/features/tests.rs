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
        runtime_stats: None,
        probe_hits: &[("execute", 10), ("ready", 4)],
        planned: &ProbeId::ALL,
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

/// The histograms come from one source for the whole session: the runtime's
/// when its statistics are read (a failed read skips the report), else the
/// probes'.
#[test]
fn runtime_statistics_replace_the_probes_histograms_and_add_the_conventions_metrics() {
    let mut probed = RuntimeCounts::default();
    probed.schedule_latency.counts = vec![0; gort_common::time_hist::COUNTS as usize];
    probed.schedule_latency.counts[10] = 3;
    probed.schedule_latency.sum_ns = 3_000;
    let mut stats = RuntimeStats::default();
    stats.schedule_latency.counts = vec![0; gort_common::time_hist::COUNTS as usize];
    stats.schedule_latency.counts[12] = 5;
    (stats.memory_used, stats.memory_stacks, stats.gogc, stats.memory_limit) = (1000, 300, -1, i64::MAX);
    let exemplars = Exemplars::default();
    let export_with = |runtime_stats, planned: &[ProbeId]| {
        metrics(&whole_report(&probed, runtime_stats, planned, &exemplars))
    };
    let export = |runtime_stats| export_with(runtime_stats, &ProbeId::ALL);
    let schedule = |ms: &[Metric]| {
        ms.iter().find(|m| m.name == "go.schedule.duration").map(|m| match &m.data {
            Some(metrics::metric::Data::Histogram(h)) => (h.data_points[0].count, h.data_points[0].sum),
            _ => panic!("not a histogram"),
        })
    };
    let from_runtime = export(Some(Some(&stats)));
    assert_eq!(schedule(&from_runtime), Some((5, None)), "the runtime's count, and no sum");
    let number = |ms: &[Metric], name: &str| -> Vec<(Vec<String>, i64, bool)> {
        let m = ms.iter().find(|m| m.name == name).unwrap_or_else(|| panic!("no {name}"));
        let Some(metrics::metric::Data::Sum(s)) = &m.data else { panic!("{name}: not a sum") };
        s.data_points
            .iter()
            .map(|p| {
                let attrs = p.attributes.iter().map(|a| format!("{}={:?}", a.key, a.value)).collect();
                let Some(metrics::number_data_point::Value::AsInt(v)) = p.value else {
                    panic!("{name}: not an int")
                };
                (attrs, v, s.is_monotonic)
            })
            .collect()
    };
    let used = number(&from_runtime, "go.memory.used");
    assert_eq!(used.iter().map(|(_, v, m)| (*v, *m)).collect::<Vec<_>>(), [(300, false), (700, false)]);
    assert_eq!(number(&from_runtime, "go.config.gogc")[0].1, -1, "GOGC=off");
    assert!(number(&from_runtime, "go.memory.allocated")[0].2, "a counter");
    assert!(!from_runtime.iter().any(|m| m.name == "go.memory.limit"), "no limit set, none exported");
    // A failed read: no runtime histogram this report, and never the probes'.
    let failed = export(Some(None));
    assert_eq!(schedule(&failed), None);
    assert!(!failed.iter().any(|m| m.name.starts_with("go.memory.used")));
    // Not read for this target: the probes' histogram, with its sum.
    assert_eq!(schedule(&export(None)), Some((3, Some(3e-6))));
    // No probe at all (`run.probes: none`): what the runtime keeps, and
    // nothing a probe would have had to count.
    let names = |ms: Vec<Metric>| ms.into_iter().map(|m| m.name).collect::<Vec<_>>();
    let memory_only = names(export_with(Some(Some(&stats)), &[]));
    for name in
        ["go.schedule.duration", "go.memory.gc.pause.duration", "go.memory.used", "go.memory.gc.cycles"]
    {
        assert!(memory_only.iter().any(|n| n == name), "{name} missing: {memory_only:?}");
    }
    for name in
        ["gort.gc.cycles", "gort.goroutine.blocked.duration", "gort.goroutine.transitions", "gort.probe.hits"]
    {
        assert!(!memory_only.iter().any(|n| n == name), "{name} without its probe: {memory_only:?}");
    }
    assert!(!names(export_with(None, &[])).iter().any(|n| n == "go.schedule.duration"));
}

/// Linkage's own loss is exported only where its probes are planned.
#[test]
fn displaced_spans_are_counted_where_linkage_runs() {
    let runtime = RuntimeCounts { spans_displaced: 3, ..Default::default() };
    let exemplars = Exemplars::default();
    let export = |planned: &[ProbeId]| metrics(&whole_report(&runtime, None, planned, &exemplars));
    let displaced = |ms: &[Metric]| {
        ms.iter().find(|m| m.name == "gort.linkage.spans_displaced").map(|m| match &m.data {
            Some(metrics::metric::Data::Sum(s)) => s.data_points[0].value,
            _ => panic!("not a sum"),
        })
    };
    let linked = export(&[ProbeId::Casgstatus, ProbeId::SpanStart, ProbeId::SpanEnd]);
    assert_eq!(displaced(&linked), Some(Some(metrics::number_data_point::Value::AsInt(3))));
    assert_eq!(displaced(&export(&[ProbeId::Casgstatus])), None);
}

/// A report of one window over `runtime`: no census, no hits, the hot probe
/// attached throughout.
fn whole_report<'a>(
    runtime: &'a RuntimeCounts,
    runtime_stats: Option<Option<&'a RuntimeStats>>,
    planned: &'a [ProbeId],
    exemplars: &'a Exemplars,
) -> Report<'a> {
    Report {
        runtime,
        live: None,
        runtime_stats,
        probe_hits: &[],
        planned,
        sampling_ratio: 1.0,
        coverage: 1.0,
        exemplars,
        window: Window { start: 1, now: 2 },
    }
}
