//! Typed views of what the test programs in `go/` print about themselves:
//! their own measurements, the ground truth gort is compared with.

use serde::Deserialize;

/// One histogram of `runtime/metrics`, as the program read it: `counts[i]`
/// falls in `[buckets[i], buckets[i+1])`, the first and last unbounded.
#[derive(Debug, Deserialize)]
pub struct RuntimeHistogram {
    pub name: String,
    pub counts: Vec<u64>,
    pub buckets: Vec<f64>,
}

/// `runtimeload`'s JSON lines (`ready`, `parked`, `done`).
#[derive(Debug, Deserialize)]
pub struct RuntimeloadReport {
    pub event: String,
    #[serde(default)]
    pub gc_cycles: u64,
    #[serde(default)]
    pub gc_mark_worker_ns: f64,
    /// Waits the program timed itself (the `block` workload).
    #[serde(default)]
    pub sleep_ns: f64,
    #[serde(default)]
    pub mutex_wait_ns: f64,
    #[serde(default)]
    pub chan_wait_ns: f64,
    #[serde(default)]
    pub histograms: Vec<RuntimeHistogram>,
    /// `runtime.NumGoroutine()` (the `parked` line of the `system` workload).
    #[serde(default)]
    pub num_goroutine: Option<u64>,
}

impl RuntimeloadReport {
    pub fn parse(line: &str) -> Self {
        serde_json::from_str(line).unwrap_or_else(|e| panic!("runtimeload printed {line:?}: {e}"))
    }

    /// The histogram named `name`, or the first of several names found.
    pub fn histogram(&self, names: &[&str]) -> &RuntimeHistogram {
        names
            .iter()
            .find_map(|n| self.histograms.iter().find(|h| h.name == *n))
            .unwrap_or_else(|| panic!("runtime reported none of {names:?}"))
    }
}

/// `otelapp`'s report of one run: the spans it ended and what it sent.
#[derive(Debug, Deserialize)]
pub struct OtelappReport {
    pub event: String,
    /// "trace_id/span_id" in hex of every span it ended.
    pub spans: Vec<String>,
    pub metric_points: u64,
    pub log_records: u64,
    #[serde(default)]
    pub error: Option<String>,
    /// The oversize span's export (`-big-span-bytes`).
    #[serde(default)]
    pub big_span: Option<BigSpan>,
    /// The address of each span object `-unended` started and never ended.
    #[serde(default)]
    pub unended: Vec<u64>,
}

#[derive(Debug, Deserialize)]
pub struct BigSpan {
    pub error: String,
    pub seconds: f64,
}
