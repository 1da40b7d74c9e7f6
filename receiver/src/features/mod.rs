//! gort's telemetry, one module per feature behind one small trait: what the
//! feature attaches (its probes), what it reads each report (from the
//! probes' maps into `RuntimeCounts`), and what it exports (OTLP metrics,
//! built with `export::points`). A new metric is a change to one feature; a
//! new feature is one module here and one entry in `FEATURES`.

mod blocked;
mod gc;
mod goroutines;
mod linkage;
mod memory;
mod scheduler;
mod selfstats;

use gort_common::ProbeId;
use gort_proto::metrics::Metric;

use crate::{
    bpf::{BpfError, Probes},
    export::points::Window,
    telemetry::{
        census::Live,
        exemplars::Exemplars,
        runtime_stats::RuntimeStats,
        stats::{RuntimeCounts, TimeHistogram},
    },
};

/// What one report exports from, gathered once for every feature.
pub struct Report<'a> {
    /// The (estimated) aggregates since attach.
    pub runtime: &'a RuntimeCounts,
    /// The census of live goroutines, when it works for the target.
    pub live: Option<&'a Live>,
    /// The runtime's own statistics: None when they are not read for this
    /// target (their metrics come from the probes for the whole session),
    /// Some(None) when this report's read failed (those metrics skip it).
    pub runtime_stats: Option<Option<&'a RuntimeStats>>,
    /// (probe name, hits) of every planned probe.
    pub probe_hits: &'a [(&'a str, u64)],
    /// The probes planned for this target (none with `run.probes: none`).
    pub planned: &'a [ProbeId],
    /// Fraction of time the hot probe is attached now.
    pub sampling_ratio: f64,
    /// Fraction of the time since attach the hot probe recorded.
    pub coverage: f64,
    /// Spans that suffered the observations, since the last report.
    pub exemplars: &'a Exemplars,
    /// The cumulative window of every point.
    pub window: Window,
}

/// Where a histogram of one report comes from.
pub enum Source<'a> {
    /// The runtime's own: exact, no sum kept.
    Runtime(&'a TimeHistogram),
    /// gort's probes (estimated while sampled).
    Probes(&'a TimeHistogram),
}

impl<'a> Report<'a> {
    /// The runtime's histogram when the runtime's statistics are read for
    /// this target (None when this report's read failed), else the probes'.
    pub fn histogram(
        &self,
        runtime: fn(&'a RuntimeStats) -> &'a TimeHistogram,
        probes: &'a TimeHistogram,
        fed_by: &[ProbeId],
    ) -> Option<Source<'a>> {
        match self.runtime_stats {
            Some(read) => read.map(|s| Source::Runtime(runtime(s))),
            None => self.probed(fed_by).then_some(Source::Probes(probes)),
        }
    }

    /// Whether any of `ids` is planned: what they alone feed is exported
    /// only then (a zero from an absent probe is not a measurement).
    pub fn probed(&self, ids: &[ProbeId]) -> bool {
        ids.iter().any(|id| self.planned.contains(id))
    }
}

/// One telemetry feature.
pub trait Feature: Sync {
    /// What it is, as warnings name it ("go.schedule.duration").
    fn name(&self) -> &'static str;
    /// The probes it needs attached.
    fn probes(&self) -> &'static [ProbeId];
    /// Reads its in-kernel aggregates into `into`; `wait_names` names the
    /// target release's wait reasons. Most features read nothing.
    fn read(
        &self,
        _probes: &Probes,
        _wait_names: Option<&[String]>,
        _into: &mut RuntimeCounts,
    ) -> Result<(), BpfError> {
        Ok(())
    }
    /// Whether it exports something without its probes (from the target's
    /// memory); a feature that does not is left out when none of its probes
    /// is planned.
    fn reads_memory(&self) -> bool {
        false
    }
    /// Appends its metrics of one report.
    fn export(&self, report: &Report<'_>, out: &mut Vec<Metric>);
}

/// Every feature, in the order their metrics are exported.
pub const FEATURES: &[&dyn Feature] = &[
    &scheduler::Scheduler,
    &gc::Gc,
    &blocked::Blocked,
    &goroutines::Goroutines,
    &memory::Memory,
    &selfstats::SelfStats,
    &linkage::Linkage,
];

/// The in-kernel aggregates of every feature.
pub fn read_runtime(probes: &Probes, wait_names: Option<&[String]>) -> Result<RuntimeCounts, BpfError> {
    let mut counts = RuntimeCounts::default();
    for f in FEATURES {
        f.read(probes, wait_names, &mut counts)?;
    }
    Ok(counts)
}

/// Every feature's metrics of one report.
pub fn metrics(report: &Report<'_>) -> Vec<Metric> {
    let mut out = Vec::new();
    for f in
        FEATURES.iter().filter(|f| f.reads_memory() || f.probes().is_empty() || report.probed(f.probes()))
    {
        f.export(report, &mut out);
    }
    out
}

/// What a probe feeds, for the warning when it cannot be attached: the
/// features that need it.
pub fn feeds(id: ProbeId) -> String {
    let names: Vec<&str> = FEATURES.iter().filter(|f| f.probes().contains(&id)).map(|f| f.name()).collect();
    if names.is_empty() { "probe hit counts".to_owned() } else { names.join(" and ") }
}

#[cfg(test)]
mod tests;
