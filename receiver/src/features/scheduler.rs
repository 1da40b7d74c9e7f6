//! Scheduling latency: how long goroutines waited runnable before they ran
//! (`go.schedule.duration`): the runtime's own histogram read from its
//! memory, or, when that cannot be read, every runnable -> running
//! transition the state-change probe sees.

use gort_common::{HistogramId, ProbeId};
use gort_proto::metrics::Metric;

use super::{Feature, Report, Source};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{histogram_metric, histogram_point, histogram_point_without_sum},
    telemetry::{
        exemplars::ExemplarFor,
        stats::{RuntimeCounts, TimeHistogram},
    },
};

pub struct Scheduler;

impl Feature for Scheduler {
    fn name(&self) -> &'static str {
        "go.schedule.duration"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::Casgstatus]
    }

    fn read(&self, probes: &Probes, _: Option<&[String]>, into: &mut RuntimeCounts) -> Result<(), BpfError> {
        into.schedule_latency = TimeHistogram::from_slots(&probes.histogram(HistogramId::ScheduleLatency)?);
        Ok(())
    }

    fn reads_memory(&self) -> bool {
        true
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        let exemplars = r.exemplars.of(ExemplarFor::Schedule);
        let point = match r.histogram(|s| &s.schedule_latency, &r.runtime.schedule_latency, self.probes()) {
            Some(Source::Runtime(h)) => histogram_point_without_sum(r.window, h, vec![], &exemplars),
            Some(Source::Probes(h)) => histogram_point(r.window, h, vec![], &exemplars),
            None => return,
        };
        out.push(histogram_metric(
            "go.schedule.duration",
            "Time goroutines spent runnable before running (the runtime's own histogram, which tracks one transition in eight, when its memory can be read; else every transition gort's probes saw).",
            vec![point],
        ));
    }
}
