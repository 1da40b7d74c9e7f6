//! Goroutines: created and exited (from the state-change probe), and the
//! live ones by state from the census of the target's memory
//! (`go.goroutine.count`, the runtime's own apart; waiting ones by wait
//! reason and the function they wait in), and the places suspected of
//! leaking them.

use std::{collections::BTreeMap, sync::Arc};

use gort_common::{CounterId, ProbeId};
use gort_proto::metrics::{self, AggregationTemporality, Metric, Sum};

use super::{Feature, Report};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{Value, Window, number_points, sum_metric},
    telemetry::{
        census::{self, Location},
        stats::RuntimeCounts,
    },
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
                "Live goroutines of the application (as runtime.NumGoroutine counts them), by state (and wait-reason category and the function they wait in when waiting).",
                r.window,
                &live.application,
                live.waiting_at.as_ref(),
            ));
            out.push(live_metric(
                "gort.runtime_goroutine.count",
                "Live goroutines of the Go runtime itself (GC workers, sweeper, scavenger, ...), by state.",
                r.window,
                &live.runtime,
                None,
            ));
            if live.waiting_at.is_some() {
                out.push(leak_metric(r.window, &live.leak_suspects));
                out.push(sum_metric(
                    "gort.goroutine.stack_walks",
                    "Stacks of parked goroutines walked for where they wait (each park once), by how the walk ended: complete, too_deep (cut at the frame bound, a site only if one was among the frames walked), or cut short with the site left unknown: frame_pointer, unreadable, not_code, unnamed.",
                    "{walk}",
                    r.window,
                    live.stack_walks
                        .iter()
                        .map(|(outcome, n)| (vec![("gort.stack_walk.outcome", *outcome)], Value::Int(*n)))
                        .collect(),
                ));
            }
        }
    }
}

/// Times each place was suspected of leaking goroutines (a place whose
/// long-parked goroutines kept growing), by function, file and line: few
/// series, as only suspected places have one.
fn leak_metric(w: Window, suspects: &BTreeMap<Arc<Location>, u64>) -> Metric {
    let points = suspects
        .iter()
        .map(|(l, n)| {
            (
                vec![("code.function.name", l.function.as_str()), ("code.file.path", l.file.as_str())],
                Value::Int(*n),
            )
        })
        .collect();
    let mut metric = sum_metric(
        "gort.goroutine.leak_suspects",
        "Times a place was newly suspected of leaking goroutines: its goroutines parked longer than leaks.min_age rose in each quarter of leaks.window.",
        "{suspicion}",
        w,
        points,
    );
    // The line is an integer attribute (semantic conventions).
    if let Some(metrics::metric::Data::Sum(sum)) = &mut metric.data {
        for (p, l) in sum.data_points.iter_mut().zip(suspects.keys()) {
            p.attributes.push(gort_proto::kv_int("code.line.number", i64::from(l.line)));
        }
    }
    metric
}

/// Live goroutines of one kind as points by state and wait-reason category,
/// and for waiting ones by park function when `waiting_at` has them.
fn live_metric(
    name: &str,
    description: &str,
    w: Window,
    live: &census::Counts,
    waiting_at: Option<&census::ParkCounts>,
) -> Metric {
    let split = |state: &str| waiting_at.is_some() && matches!(state, "waiting" | "leaked");
    let mut points: Vec<(Vec<(&str, &str)>, Value)> = live
        .iter()
        .filter(|((state, _), _)| !split(state))
        .map(|((state, category), n)| {
            let mut attrs = vec![("go.goroutine.state", *state)];
            if !category.is_empty() {
                attrs.push(("go.wait.reason", *category));
            }
            (attrs, Value::Int(*n))
        })
        .collect();
    for ((state, category, function), n) in waiting_at.into_iter().flatten() {
        let attrs = vec![
            ("go.goroutine.state", *state),
            ("go.wait.reason", *category),
            ("code.function.name", function),
        ];
        points.push((attrs, Value::Int(*n)));
    }
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
