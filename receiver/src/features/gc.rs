//! GC stop-the-world pauses (`go.memory.gc.pause.duration`: the runtime's
//! own histogram when its memory can be read, else the probes'), and GC
//! cycles and other stop-the-worlds from the stop/start-the-world probes.

use gort_common::{CounterId, HistogramId, ProbeId};
use gort_proto::metrics::Metric;

use super::{Feature, Report, Source};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{Value, histogram_metric, histogram_point, histogram_point_without_sum, sum_metric},
    telemetry::{
        exemplars::ExemplarFor,
        stats::{RuntimeCounts, TimeHistogram},
    },
};

pub struct Gc;

impl Feature for Gc {
    fn name(&self) -> &'static str {
        "go.memory.gc.pause.duration and GC cycles"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::StopTheWorld, ProbeId::StartTheWorldArgs, ProbeId::StartTheWorldReturn]
    }

    fn read(&self, probes: &Probes, _: Option<&[String]>, into: &mut RuntimeCounts) -> Result<(), BpfError> {
        into.gc_pause = TimeHistogram::from_slots(&probes.histogram(HistogramId::GcPause)?);
        into.gc_cycles = probes.counter(CounterId::GcCycles)?;
        into.other_stw_pauses = probes.counter(CounterId::OtherStw)?;
        Ok(())
    }

    fn reads_memory(&self) -> bool {
        true
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        let exemplars = r.exemplars.of(ExemplarFor::GcPause);
        let point = match r.histogram(|s| &s.gc_pauses, &r.runtime.gc_pause, self.probes()) {
            Some(Source::Runtime(h)) => Some(histogram_point_without_sum(r.window, h, vec![], &exemplars)),
            Some(Source::Probes(h)) => Some(histogram_point(r.window, h, vec![], &exemplars)),
            None => None,
        };
        if let Some(point) = point {
            out.push(histogram_metric(
                "go.memory.gc.pause.duration",
                "Duration of each GC stop-the-world pause (the runtime's own /gc/pauses:seconds when its memory can be read, else the stop-the-world probes).",
                vec![point],
            ));
        }
        if r.probed(self.probes()) {
            out.push(sum_metric(
                "gort.gc.cycles",
                "Completed GC cycles.",
                "{gc_cycle}",
                r.window,
                vec![(vec![], Value::Int(r.runtime.gc_cycles))],
            ));
        }
    }
}
