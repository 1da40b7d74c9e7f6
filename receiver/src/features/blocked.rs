//! Blocked time: how long goroutines stayed parked, by wait reason: the
//! application's (`gort.goroutine.blocked.duration`, by category), the
//! runtime's own goroutines' apart (`gort.runtime_goroutine.blocked.duration`),
//! and the GC mark workers' marking (`gort.gc.mark_worker.time`).

use std::collections::BTreeMap;

use gort_common::{MAX_WAIT_REASONS, ProbeId, RUNTIME_GOROUTINE, blocked_base, time_hist};
use gort_proto::{kv_str, metrics::Metric};

use super::{Feature, Report};
use crate::{
    bpf::{BpfError, Probes},
    export::points::{Value, Window, histogram_metric, histogram_point, sum_metric},
    telemetry::{
        exemplars::{ExemplarFor, Exemplars},
        stats::{RuntimeCounts, TimeHistogram},
    },
};

pub struct Blocked;

/// One bank of per-wait-reason histograms (`flag`: the runtime goroutines'
/// bank); reasons with nothing recorded are left out.
fn bank(
    probes: &Probes,
    wait_names: Option<&[String]>,
    flag: u64,
) -> Result<BTreeMap<String, TimeHistogram>, BpfError> {
    let reasons = wait_names.map_or(MAX_WAIT_REASONS, |n| (n.len() as u32).min(MAX_WAIT_REASONS));
    let mut blocked = BTreeMap::new();
    for n in 0..reasons {
        let base = blocked_base(u64::from(n) | flag);
        if probes.histogram_slot(base, time_hist::SUM_SLOT)? == 0 {
            continue;
        }
        let h = TimeHistogram::from_slots(&probes.histogram_at(base)?);
        blocked.insert(gort_goexe::wait_reasons::name(wait_names, n), h);
    }
    Ok(blocked)
}

impl Feature for Blocked {
    fn name(&self) -> &'static str {
        "blocked time by wait reason"
    }

    fn probes(&self) -> &'static [ProbeId] {
        &[ProbeId::Casgstatus]
    }

    fn read(
        &self,
        probes: &Probes,
        wait_names: Option<&[String]>,
        into: &mut RuntimeCounts,
    ) -> Result<(), BpfError> {
        into.blocked = bank(probes, wait_names, 0)?;
        into.runtime_blocked = bank(probes, wait_names, RUNTIME_GOROUTINE)?;
        Ok(())
    }

    fn export(&self, r: &Report<'_>, out: &mut Vec<Metric>) {
        out.push(blocked_metric(r.window, r.runtime, r.exemplars));
        out.push(runtime_blocked_metric(r.window, r.runtime));
        out.push(sum_metric(
            "gort.gc.mark_worker.time",
            "Time GC background mark workers held a P and marked: CPU the GC took from goroutines.",
            "s",
            r.window,
            vec![(vec![], Value::Seconds(r.runtime.gc_mark_worker_ns()))],
        ));
    }
}

/// `gort.goroutine.blocked.duration`: time parked, one point per wait-reason
/// category (`go.wait.reason`, a fixed set of about ten values).
fn blocked_metric(w: Window, runtime: &RuntimeCounts, exemplars: &Exemplars) -> Metric {
    let points = runtime
        .blocked_by_category()
        .into_iter()
        .map(|(category, h)| {
            let ex = exemplars.of(ExemplarFor::Blocked(category));
            histogram_point(w, &h, vec![kv_str("go.wait.reason", category)], &ex)
        })
        .collect();
    histogram_metric(
        "gort.goroutine.blocked.duration",
        "Time the application's goroutines spent parked, by wait-reason category (the runtime's own goroutines are in gort.runtime_goroutine.blocked.duration).",
        points,
    )
}

/// The runtime's own goroutines' parked time, by the runtime's wait reason
/// (a small, fixed set: GC workers idle, sweeper, scavenger, finalizers).
/// Mark workers marking ("GC worker (active)") are `gort.gc.mark_worker.time`.
fn runtime_blocked_metric(w: Window, runtime: &RuntimeCounts) -> Metric {
    let points = runtime
        .runtime_blocked
        .iter()
        .filter(|(reason, _)| *reason != gort_goexe::wait_reasons::GC_WORKER_ACTIVE)
        .map(|(reason, h)| histogram_point(w, h, vec![kv_str("go.runtime.wait_reason", reason)], &[]))
        .collect();
    histogram_metric(
        "gort.runtime_goroutine.blocked.duration",
        "Time the Go runtime's own goroutines (GC workers, sweeper, scavenger, finalizers) spent parked, by wait reason: their normal idle state, not time the application waited.",
        points,
    )
}
