//! Typed views of what `gort run --summary-json` writes, for the tests that
//! read it: only the parts they assert on, each field optional where an
//! older gort (`GORT_BINARY`, for before/after figures) lacks it.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Summary {
    pub targets: Vec<Target>,
    /// Processes watched before the last `targets`, summaries let go.
    #[serde(default)]
    pub targets_omitted: u64,
    /// `target-exited`, `duration` or `interrupted`.
    pub ended: String,
}

#[derive(Debug, Deserialize)]
pub struct Target {
    pub pid: u32,
    pub runtime: Runtime,
    pub sampling: Sampling,
    #[serde(default)]
    pub live_goroutines: BTreeMap<String, u64>,
    #[serde(default)]
    pub runtime_goroutines: BTreeMap<String, u64>,
    /// Waiting goroutines by "state/category/function".
    #[serde(default)]
    pub waiting_at: BTreeMap<String, u64>,
    #[serde(default)]
    pub leak_suspects: Vec<LeakSuspect>,
    /// Where the application's goroutines waited at the end, line by line.
    #[serde(default)]
    pub park_sites: Vec<ParkSite>,
    /// The census's stack walks by how each ended.
    #[serde(default)]
    pub stack_walks: BTreeMap<String, u64>,
    pub probes: Vec<Probe>,
    pub gc_mark_worker_ns: f64,
    pub notable: Notable,
    pub linkage: Option<Linkage>,
    /// The runtime's own statistics at the last read (absent before gort
    /// read them).
    #[serde(default)]
    pub runtime_stats: Option<RuntimeStats>,
    #[serde(default)]
    pub runtime_stats_torn_reads: u64,
    /// Goroutine ids the deep-mode probes saw, with their hits.
    pub goroutines: Vec<GoroutineSeen>,
    /// The kernel maps' per-process entries just before gort added it.
    pub bpf_map_entries_at_attach: MapEntries,
    pub exited: bool,
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct MapEntries {
    pub targets: u32,
    pub goids_seen: u32,
    pub runtime_entries: u32,
    pub goroutine_states: u32,
    pub span_accounts: u32,
}

#[derive(Debug, Deserialize)]
pub struct RuntimeStats {
    pub schedule_latency: CountsOnly,
    pub gc_cycles: u64,
}

#[derive(Debug, Deserialize)]
pub struct CountsOnly {
    pub counts: Vec<u64>,
    pub overflow: u64,
}

impl RuntimeStats {
    pub fn schedule_latency_count(&self) -> u64 {
        self.schedule_latency.counts.iter().sum::<u64>() + self.schedule_latency.overflow
    }
}

#[derive(Debug, Deserialize)]
pub struct GoroutineSeen {
    pub goid: u64,
    pub hits: u64,
}

impl Target {
    /// Hits of the probe named `name`, if it was planned.
    pub fn hits(&self, name: &str) -> Option<u64> {
        self.probes.iter().find(|p| p.name == name).map(|p| p.hits)
    }
}

#[derive(Debug, Deserialize)]
pub struct Probe {
    pub name: String,
    pub hits: u64,
    /// `after_entry`, `returns`, `call_to` or `every_call` (absent before gort said it).
    #[serde(default)]
    pub site: Option<String>,
    #[serde(default)]
    pub site_kind: Option<String>,
    pub site_offset: u64,
    /// Every probed site's file offset in the executable.
    #[serde(default)]
    pub site_file_offsets: Vec<u64>,
    /// `always`, `sampled`, `deep mode` or `trace linkage`.
    #[serde(default)]
    pub attached: String,
    #[serde(default)]
    pub instruction: String,
    /// The program's run time while attached (`--bpf-stats` only).
    #[serde(default)]
    pub bpf: Option<ProgramStats>,
}

#[derive(Clone, Copy, Debug, Deserialize)]
pub struct ProgramStats {
    pub run_ns: u64,
    pub runs: u64,
}

#[derive(Debug, Deserialize)]
pub struct ParkSite {
    pub state: String,
    pub category: String,
    pub function: Option<String>,
    pub file: Option<String>,
    pub line: Option<u32>,
    pub goroutines: u64,
}

#[derive(Debug, Deserialize)]
pub struct Notable {
    pub schedule_stalls: u64,
    pub gc_pauses: u64,
    pub lost: u64,
    pub undecodable: u64,
    pub recent: Vec<NotableEvent>,
}

#[derive(Debug, Deserialize)]
pub struct NotableEvent {
    pub kind: String,
    pub goid: u64,
    pub duration_ns: u64,
}

#[derive(Debug, Deserialize)]
pub struct Linkage {
    pub offset_source: String,
    /// Stall records the probes sent (waits inside spans at least the
    /// child-span threshold long).
    #[serde(default)]
    pub stalls: u64,
    pub counts: LinkCounts,
}

/// The pipeline's join books (`gort_linkage_*`); absent fields are older gorts'.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct LinkCounts {
    pub enriched: u64,
    pub unmatched: u64,
    pub stall_spans: u64,
    pub spans_received: u64,
    pub spans_not_received: u64,
}

#[derive(Debug, Default, Deserialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub overflow: u64,
    pub sum_ns: u64,
}

impl Histogram {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.overflow
    }
}

#[derive(Debug, Deserialize)]
pub struct Runtime {
    pub schedule_latency: Histogram,
    pub gc_pause: Histogram,
    pub gc_cycles: u64,
    /// Application goroutines' parked time, by the runtime's wait reason.
    pub blocked: BTreeMap<String, Histogram>,
    /// The runtime's own goroutines' parked time (absent before gort told
    /// them apart).
    #[serde(default)]
    pub runtime_blocked: BTreeMap<String, Histogram>,
    /// Span accounts the kernel's span table gave up to a newer span.
    #[serde(default)]
    pub spans_displaced: u64,
}

#[derive(Debug, Deserialize)]
pub struct Sampling {
    pub windows: u64,
    pub deep_periods: u64,
    #[serde(default)]
    pub covered_ns: Option<u64>,
    #[serde(default)]
    pub elapsed_ns: Option<u64>,
    #[serde(default)]
    pub schedule_count_relative_error: Option<f64>,
    #[serde(default)]
    pub blocked_count_relative_error: Option<f64>,
    /// The runtime's own scheduling-latency counts while windows were open.
    #[serde(default)]
    pub runtime_schedule_latency_in_windows: Option<CountsOnly>,
}

/// Reads and removes a summary file.
pub fn take(path: &Path) -> Summary {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A place gort suspected of leaking goroutines.
#[derive(Debug, Deserialize)]
pub struct LeakSuspect {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub times: u64,
}
