//! Goroutines: created and exited (from the state-change probe), and the
//! live ones by state from the census of the target's memory
//! (`go.goroutine.count`, the runtime's own apart).

use gort_common::{CounterId, ProbeId};
use gort_proto::metrics::{self, AggregationTemporality, Metric, Sum};

use super::{Feature, Report};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{Value, Window, number_points, sum_metric},
    telemetry::{census, stats::RuntimeCounts},
};

pub struct Goroutines;

impl Feature for Goroutines {
    fn name(&self) -> &'static str {
        "goroutine counts"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::Casgstatus]
    }

    fn read(&self, probes: &Probes, _: Option<&[String]>, into: &mut RuntimeCounts) -> Result<(), BpfError> {
        into.goroutines_created = probes.counter(CounterId::GoroutinesCreated)?;
        into.goroutines_exited = probes.counter(CounterId::GoroutinesExited)?;
        into.goroutine_states_displaced = probes.counter(CounterId::GoroutineStatesDisplaced)?;
        Ok(())
    }

    fn reads_memory(&self) -> bool {
        true
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        if r.probed(self.probes()) {
            out.push(sum_metric(
                "gort.goroutine.transitions",
                "Goroutines created and exited.",
                "{goroutine}",
                r.window,
                vec![
                    (vec![("gort.goroutine.event", "created")], Value::Int(r.runtime.goroutines_created)),
                    (vec![("gort.goroutine.event", "exited")], Value::Int(r.runtime.goroutines_exited)),
                ],
            ));
            out.push(sum_metric(
                "gort.goroutine.states_displaced",
                "Goroutines whose in-kernel state was displaced by another goroutine's while an interval of theirs was open: intervals gort did not measure.",
                "{goroutine}",
                r.window,
                vec![(vec![], Value::Int(r.runtime.goroutine_states_displaced))],
            ));
        }
        if let Some(live) = r.live {
            out.push(live_metric(
                "go.goroutine.count",
                "Live goroutines of the application (as runtime.NumGoroutine counts them), by state (and wait-reason category when waiting).",
                r.window,
                &live.application,
            ));
            out.push(live_metric(
                "gort.runtime_goroutine.count",
                "Live goroutines of the Go runtime itself (GC workers, sweeper, scavenger, ...), by state.",
                r.window,
                &live.runtime,
            ));
        }
    }
}

/// Live goroutines of one kind as points by state and wait-reason category.
fn live_metric(name: &str, description: &str, w: Window, live: &census::Counts) -> Metric {
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
