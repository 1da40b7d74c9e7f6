//! gort's own figures about the target: probe hits, and how much of the
//! time the hot probe covered (what the estimates rest on).

use gort_common::ProbeId;
use gort_proto::metrics::Metric;

use super::{Feature, Report};
use crate::export::points::{Value, gauge_metric, sum_metric};

pub struct SelfStats;

impl Feature for SelfStats {
    fn name(&self) -> &'static str {
        "probe hit counts"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::Execute, ProbeId::Ready]
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        out.push(sum_metric(
            "gort.probe.hits",
            "Times each gort uprobe fired in the target process.",
            "{hit}",
            r.window,
            r.probe_hits
                .iter()
                .map(|(probe, hits)| (vec![("gort.probe", *probe)], Value::Int(*hits)))
                .collect(),
        ));
        out.push(gauge_metric(
            "gort.probe.sampling.ratio",
            "Fraction of time the hot probe is attached; the goroutine-level metrics are scaled by its inverse.",
            "1",
            r.window,
            r.sampling_ratio,
        ));
        out.push(gauge_metric(
            "gort.probe.sampling.coverage",
            "Fraction of the time since attach the hot probe recorded; below 1, the goroutine-level metrics are estimates scaled by its inverse.",
            "1",
            r.window,
            r.coverage,
        ));
    }
}
