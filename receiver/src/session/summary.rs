//! What a run leaves behind: the per-target summary (`--summary-json`).

use std::{collections::BTreeMap, fs, path::PathBuf};

use gort_goexe::{self as analysis, Field};

use super::*;
use crate::{
    bpf::Probes,
    linkage::LinkCounts,
    pipeline::{self},
    telemetry::{
        census::{self as goroutines},
        stats::RuntimeCounts,
    },
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    TargetExited,
    Duration,
    Interrupted,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeSummary {
    pub name: &'static str,
    pub symbol: &'static str,
    pub address: u64,
    pub file_offset: u64,
    /// `after_entry` (one site past the entry), `returns` (every RET),
    /// `call_to` (a call inside it; `returns` when it fell back) or
    /// `every_call` (each call of it that matters, in its callers;
    /// `after_entry` when they could not be listed).
    pub site: &'static str,
    /// Offset of the site from the entry (the first RET's for `returns`;
    /// the first call's from its caller's entry for `every_call`).
    pub site_offset: u64,
    /// The file offset of every probed site in the executable (one per
    /// call for `every_call`, one per RET for `returns`).
    pub site_file_offsets: Vec<u64>,
    /// When it is attached: `always`, `sampled` (in sampling windows;
    /// continuously in deep mode or with trace linkage), `deep mode` or
    /// `trace linkage`.
    pub attached: &'static str,
    /// Whether the kernel emulates the probed instruction or single-steps it.
    pub site_kind: analysis::SiteKind,
    pub instruction: String,
    pub hits: u64,
    /// The probe program's run time and runs while this session was
    /// attached (the kernel's BPF statistics; `run.bpf_stats` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bpf: Option<crate::bpf::ProgramStats>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GoroutineSeen {
    pub goid: u64,
    pub hits: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetSummary {
    pub pid: u32,
    pub exe: PathBuf,
    pub go_version: String,
    pub goid_offset: u64,
    pub probes: Vec<ProbeSummary>,
    pub goroutines: Vec<GoroutineSeen>,
    /// Runtime telemetry gathered while attached.
    pub runtime: RuntimeCounts,
    /// Time GC background mark workers spent marking (ns).
    pub gc_mark_worker_ns: u64,
    pub sampling: SamplingSummary,
    /// Live application goroutines at the end (what runtime.NumGoroutine
    /// counts), by "state" or "waiting/<category>".
    pub live_goroutines: BTreeMap<String, u64>,
    /// The runtime's own goroutines at the end, likewise.
    pub runtime_goroutines: BTreeMap<String, u64>,
    /// The application's waiting goroutines at the end by
    /// "state/category/function" (the function they wait in); empty without
    /// the leak watch.
    pub waiting_at: BTreeMap<String, u64>,
    /// Places suspected of leaking goroutines, with the times each was.
    pub leak_suspects: Vec<LeakSuspectSummary>,
    /// Where the application's goroutines waited at the end, line by line,
    /// most goroutines first (at most `MAX_PARK_SITES`); empty without the
    /// census's locator.
    pub park_sites: Vec<ParkSiteSummary>,
    /// The locator's stack walks since attach, by how each ended.
    pub stack_walks: BTreeMap<String, u64>,
    pub notable: NotableSummary,
    /// The runtime's own statistics (as `runtime/metrics` names them) at the
    /// last read that passed its checks; None when they are not readable.
    pub runtime_stats: Option<RuntimeStats>,
    /// Reads of them refused as torn (each retried).
    pub runtime_stats_torn_reads: u64,
    /// Trace linkage, when it was on for this target.
    pub linkage: Option<LinkageSummary>,
    /// The kernel maps' per-process entries just before this target was
    /// added: nonzero with no other target watched means an earlier one
    /// left state behind.
    pub bpf_map_entries_at_attach: crate::bpf::MapEntries,
    pub exited: bool,
}

/// What trace linkage did for one target.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkageSummary {
    /// Offset of the SDK span's span context, and where it came from.
    pub span_context_offset: u64,
    pub offset_source: analysis::OffsetSource,
    /// Span ends and stalls read from the kernel.
    pub span_ends: u64,
    pub stalls: u64,
    /// Span records the kernel had no room for, and records not decodable.
    pub records_lost: u64,
    pub undecodable: u64,
    /// The pipeline's join books (all targets) at the end of the run, once
    /// the pipeline drained.
    pub counts: LinkCounts,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    /// The last `MAX_TARGET_SUMMARIES` processes watched, oldest first.
    pub targets: Vec<TargetSummary>,
    /// Processes watched before those, whose summaries were let go.
    #[serde(skip_serializing_if = "is_zero")]
    pub targets_omitted: u64,
    pub ended: EndReason,
}

/// A sidecar watches every restart of its service for as long as it runs:
/// it keeps the summaries of this many, not of all.
pub const MAX_TARGET_SUMMARIES: usize = 64;

#[expect(clippy::trivially_copy_pass_by_ref, reason = "serde's skip_serializing_if passes a reference")]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// Writes the summary, with the pipeline's join books as they stand
    /// now (the caller writes it once the pipeline has drained: spans the
    /// service flushes at its exit are joined after its session ended).
    pub fn write(
        &mut self,
        path: &std::path::Path,
        pipeline: Option<&pipeline::Shared>,
    ) -> Result<(), RunError> {
        if let Some(linkage) = pipeline.and_then(|p| p.linkage.as_ref()) {
            let counts = linkage.counts();
            for t in &mut self.targets {
                if let Some(l) = &mut t.linkage {
                    l.counts = counts;
                }
            }
        }
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        fs::write(path, text).map_err(|source| RunError::Output { path: path.to_owned(), source })
    }
}

impl Session {
    /// Where `runtime.g.goid` sits (a required field: attach refuses a
    /// binary without it).
    pub(super) fn goid_offset(&self) -> u64 {
        self.analysis.fields.get(&Field::GGoid).map_or(0, |f| f.offset)
    }

    /// The program statistics of every planned probe, in plan order.
    pub(super) fn program_stats(&self, probes: &Probes) -> Result<Vec<crate::bpf::ProgramStats>, RunError> {
        self.planned.iter().map(|p| Ok(probes.program_stats(p.spec.program)?)).collect()
    }

    pub(super) fn summary(
        &self,
        probes: &Probes,
        snap: Snapshot,
        exited: bool,
    ) -> Result<TargetSummary, RunError> {
        let hits = &snap.hits;
        let bpf: Option<Vec<crate::bpf::ProgramStats>> = self
            .bpf_baseline
            .as_ref()
            .map(|base| {
                Ok::<_, RunError>(
                    self.program_stats(probes)?.iter().zip(base).map(|(n, b)| n.since(*b)).collect(),
                )
            })
            .transpose()?;

        Ok(TargetSummary {
            pid: self.process.pid,
            exe: self.process.exe.clone(),
            go_version: self.analysis.build.go_version.clone(),
            goid_offset: self.goid_offset(),
            probes: self
                .planned
                .iter()
                .enumerate()
                .map(|(i, Planned { spec, function: f, place, .. })| ProbeSummary {
                    name: spec.name,
                    symbol: spec.symbol,
                    address: f.address,
                    file_offset: f.file_offset,
                    site: place.site,
                    site_offset: place.offsets.first().copied().unwrap_or(0),
                    site_file_offsets: place.file_offsets.clone(),
                    attached: spec.heat.attached(),
                    site_kind: place.kind,
                    instruction: place.instruction.clone(),
                    hits: hits[spec.id.index() as usize],
                    bpf: bpf.as_ref().map(|b| b[i]),
                })
                .collect(),
            goroutines: probes
                .goroutines_seen(self.process.pid)?
                .into_iter()
                .map(|(goid, hits)| GoroutineSeen { goid, hits })
                .collect(),
            gc_mark_worker_ns: snap.runtime.gc_mark_worker_ns(),
            runtime: snap.runtime,
            sampling: snap.sampling.clone(),
            live_goroutines: live_keys(self.last_live.as_ref().map(|l| &l.application)),
            runtime_goroutines: live_keys(self.last_live.as_ref().map(|l| &l.runtime)),
            waiting_at: self
                .last_live
                .iter()
                .flat_map(|l| l.waiting_at.iter().flatten())
                .map(|((state, category, function), n)| (format!("{state}/{category}/{function}"), *n))
                .collect(),
            leak_suspects: self
                .last_live
                .iter()
                .flat_map(|l| &l.leak_suspects)
                .map(|(l, times)| LeakSuspectSummary {
                    function: l.function.clone(),
                    file: l.file.clone(),
                    line: l.line,
                    times: *times,
                })
                .collect(),
            park_sites: park_sites(self.last_live.as_ref()),
            stack_walks: self
                .last_live
                .iter()
                .flat_map(|l| &l.stack_walks)
                .map(|(outcome, n)| ((*outcome).to_owned(), *n))
                .collect(),
            runtime_stats: self.last_runtime_stats.clone(),
            runtime_stats_torn_reads: self.runtime_stats.as_ref().map_or(0, |r| r.torn_reads),
            notable: self.notable.clone(),
            linkage: self.linkage.clone(),
            bpf_map_entries_at_attach: self.map_entries_at_attach,
            exited,
        })
    }
}

/// Most lines the summary lists goroutines waiting at.
const MAX_PARK_SITES: usize = 64;

/// Goroutines waiting at one line (or whose site is unknown: no function).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct ParkSiteSummary {
    pub state: &'static str,
    pub category: &'static str,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub goroutines: u64,
}

fn park_sites(live: Option<&crate::telemetry::census::Live>) -> Vec<ParkSiteSummary> {
    let mut by_site: BTreeMap<_, u64> = BTreeMap::new();
    for p in live.into_iter().flat_map(|l| &l.parked).filter(|p| p.is_waiting()) {
        *by_site.entry((p.state, p.category, p.location.clone())).or_default() += 1;
    }
    let mut sites: Vec<ParkSiteSummary> = by_site
        .into_iter()
        .map(|((state, category, at), goroutines)| ParkSiteSummary {
            state,
            category,
            function: at.as_ref().map(|l| l.function.clone()),
            file: at.as_ref().map(|l| l.file.clone()),
            line: at.as_ref().map(|l| l.line),
            goroutines,
        })
        .collect();
    sites.sort_by(|a, b| b.goroutines.cmp(&a.goroutines).then_with(|| a.cmp(b)));
    sites.truncate(MAX_PARK_SITES);
    sites
}

/// A place suspected of leaking goroutines.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LeakSuspectSummary {
    pub function: String,
    pub file: String,
    pub line: u32,
    /// Times it was newly suspected.
    pub times: u64,
}

/// Census counts keyed "state" or "state/category", for the summary.
pub(super) fn live_keys(counts: Option<&goroutines::Counts>) -> BTreeMap<String, u64> {
    let key = |(state, category): (&str, &str)| {
        if category.is_empty() { state.to_owned() } else { format!("{state}/{category}") }
    };
    counts.into_iter().flatten().map(|(k, v)| (key(*k), *v)).collect()
}
