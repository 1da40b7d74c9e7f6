//! Trace linkage's probes: span start and end, and GC assists (new
//! goroutines inherit their creator's span in the state-change probe). Their
//! records are drained by the session into the pipeline's linkage stage;
//! what linkage adds is on the service's spans and in other features'
//! exemplars. Its one metric is its own loss: spans whose in-kernel account
//! was displaced.

use gort_common::{CounterId, ProbeId};
use gort_proto::metrics::Metric;

use super::{Feature, Report};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{Value, sum_metric},
    telemetry::stats::RuntimeCounts,
};

pub struct Linkage;

impl Feature for Linkage {
    fn name(&self) -> &'static str {
        "trace linkage"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::SpanStart, ProbeId::SpanEnd]
    }

    fn read(&self, probes: &Probes, _: Option<&[String]>, into: &mut RuntimeCounts) -> Result<(), BpfError> {
        into.spans_displaced = probes.counter(CounterId::SpansDisplaced)?;
        Ok(())
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        if r.probed(self.probes()) {
            out.push(sum_metric(
                "gort.linkage.spans_displaced",
                "Spans in flight whose in-kernel account a newer span took (its set full, or the same address: a span never ended): they end without gort's totals.",
                "{span}",
                r.window,
                vec![(vec![], Value::Int(r.runtime.spans_displaced))],
            ));
        }
    }
}
