//! Scheduling latency: how long goroutines waited runnable before they ran
//! (`go.schedule.duration`), from every runnable -> running transition.

use gort_common::{HistogramId, ProbeId};
use gort_proto::metrics::Metric;

use super::{Feature, Report};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{histogram_metric, histogram_point},
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

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        let exemplars = r.exemplars.of(ExemplarFor::Schedule);
        out.push(histogram_metric(
            "go.schedule.duration",
            "Time goroutines spent runnable before running.",
            vec![histogram_point(r.window, &r.runtime.schedule_latency, vec![], &exemplars)],
        ));
    }
}
