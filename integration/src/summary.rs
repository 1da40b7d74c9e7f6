//! Typed views of what `gort run --summary-json` writes, for the tests that
//! read it: only the parts they assert on, each field optional where an
//! older gort (`GORT_BINARY`, for before/after figures) lacks it.

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Summary {
    pub targets: Vec<Target>,
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
    /// Application goroutines' parked time, by the runtime's wait reason.
    pub blocked: BTreeMap<String, Histogram>,
    /// The runtime's own goroutines' parked time (absent before gort told
    /// them apart).
    #[serde(default)]
    pub runtime_blocked: BTreeMap<String, Histogram>,
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
}

/// Reads and removes a summary file.
pub fn take(path: &Path) -> Summary {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let _ = std::fs::remove_file(path);
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
