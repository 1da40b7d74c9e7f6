//! GC stop-the-world pauses (`go.memory.gc.pause.duration`), GC cycles and
//! other stop-the-worlds, from the stop/start-the-world probes.

use gort_common::{CounterId, HistogramId, ProbeId};
use gort_proto::metrics::Metric;

use super::{Feature, Report};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{Value, histogram_metric, histogram_point, sum_metric},
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

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        let exemplars = r.exemplars.of(ExemplarFor::GcPause);
        out.push(histogram_metric(
            "go.memory.gc.pause.duration",
            "Duration of each GC stop-the-world pause.",
            vec![histogram_point(r.window, &r.runtime.gc_pause, vec![], &exemplars)],
        ));
        out.push(sum_metric(
            "gort.gc.cycles",
            "Completed GC cycles.",
            "{gc_cycle}",
            r.window,
            vec![(vec![], Value::Int(r.runtime.gc_cycles))],
        ));
    }
}
