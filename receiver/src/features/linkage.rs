//! Trace linkage's probes: span start and end, and GC assists (new
//! goroutines inherit their creator's span in the state-change probe). Their records are drained by the session
//! into the pipeline's linkage stage; what linkage exports is on the
//! service's spans and in other features' exemplars, not metrics of its own.

use gort_common::ProbeId;
use gort_proto::metrics::Metric;

use super::{Feature, Report};

pub struct Linkage;

impl Feature for Linkage {
    fn name(&self) -> &'static str {
        "trace linkage"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::SpanStart, ProbeId::SpanEnd]
    }

    fn export(&self, _: &Report<'_>, _: &mut Vec<Metric>) {}
}
