//! The probes' span records (ends and stalls) decoded into what userspace
//! keeps: accounts and stalls in Unix time, wait reasons named.

use std::{collections::BTreeMap, fmt::Write as _, sync::Arc};

use gort_common::{STALL_FRAMES, SpanEnd, SpanStall, span_record};

use super::kinds::{StallKind, WAIT_SLOT_NAMES};
use crate::telemetry::census::Location;

/// Frames of a stall's stack written into its child span at most.
pub const MAX_STACKTRACE_FRAMES: usize = 32;

/// Where a stall's goroutine waited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StallSite {
    /// The first frame outside the runtime and its blocking internals.
    pub location: Arc<Location>,
    /// The stack in Go's traceback format, innermost first, at most
    /// `MAX_STACKTRACE_FRAMES` frames.
    pub stacktrace: String,
}

impl StallSite {
    pub fn new(location: Arc<Location>, stack: &[Arc<Location>]) -> Self {
        let mut stacktrace = String::new();
        for f in stack.iter().take(MAX_STACKTRACE_FRAMES) {
            let _ = write!(stacktrace, "{}(...)\n\t{}:{}\n", f.function, f.file, f.line);
        }
        Self { location, stacktrace }
    }
}

/// One wait inside a span, in Unix ns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stall {
    pub kind: StallKind,
    pub goid: u64,
    /// A goroutine the span started waited, not the span's own goroutine.
    pub started_goroutine: bool,
    pub start_unix_ns: u64,
    pub end_unix_ns: u64,
    /// The park site's run-time pcs as the probe read them (saved pc, then
    /// return addresses), and where that is once named.
    pub pcs: Vec<u64>,
    pub site: Option<StallSite>,
}

impl Stall {
    pub fn duration_ns(&self) -> u64 {
        self.end_unix_ns.saturating_sub(self.start_unix_ns)
    }
}

/// What the runtime did to one span, as userspace keeps it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Account {
    pub start_seen: bool,
    pub runnable_ns: u64,
    pub runnable_count: u64,
    pub stw_ns: u64,
    pub assist_ns: u64,
    /// Parked ns by wait category (`WAIT_SLOT_NAMES`), non-zero ones only.
    pub parked: BTreeMap<&'static str, u64>,
    /// Longest runnable wait: (ns, Unix ns when it ended).
    pub max_runnable: Option<(u64, u64)>,
    /// Longest park: (ns, Unix ns when it ended, category).
    pub max_parked: Option<(u64, u64, &'static str)>,
    /// Goroutines the span started, and the longest single runnable wait
    /// and park of theirs that ended inside the span (ns, category).
    pub started_goroutines: u64,
    pub started_max_runnable_ns: u64,
    pub started_max_parked: Option<(u64, &'static str)>,
    pub stalls: Vec<Stall>,
}

/// Converts the probes' CLOCK_MONOTONIC ns to Unix ns: `offset` is realtime
/// minus monotonic, read together.
pub fn mono_to_unix(mono_ns: u64, offset: i64) -> u64 {
    (mono_ns as i64).saturating_add(offset).max(0) as u64
}

/// Names a wait reason number (`wait_reasons::name`) and gives its category.
pub type ReasonNamer<'a> = &'a dyn Fn(u32) -> (String, &'static str);

impl Account {
    /// The account of a span-end record. `offset`: see `mono_to_unix`.
    pub fn from_end(end: &SpanEnd, offset: i64, names: ReasonNamer<'_>) -> Self {
        let t = &end.totals;
        let parked = WAIT_SLOT_NAMES
            .iter()
            .zip(t.parked_ns.iter())
            .filter(|(_, ns)| **ns > 0)
            .map(|(name, ns)| (*name, *ns))
            .collect();
        Self {
            start_seen: end.flags & span_record::START_SEEN != 0,
            runnable_ns: t.runnable_ns,
            runnable_count: t.runnable_count,
            stw_ns: t.stw_ns,
            assist_ns: t.assist_ns,
            parked,
            max_runnable: (t.max_runnable_ns > 0)
                .then(|| (t.max_runnable_ns, mono_to_unix(t.max_runnable_end_ns, offset))),
            max_parked: (t.max_parked_ns > 0).then(|| {
                let (_, category) = names(t.max_parked_reason as u32);
                (t.max_parked_ns, mono_to_unix(t.max_parked_end_ns, offset), category)
            }),
            started_goroutines: t.started_goroutines,
            started_max_runnable_ns: t.started_max_runnable_ns,
            started_max_parked: (t.started_max_parked_ns > 0)
                .then(|| (t.started_max_parked_ns, names(t.started_max_parked_reason as u32).1)),
            stalls: Vec::new(),
        }
    }
}

/// A stall record as a `Stall` (None for an unknown kind).
pub fn stall_from_record(s: &SpanStall, offset: i64, names: ReasonNamer<'_>) -> Option<Stall> {
    let kind = match s.kind {
        span_record::RUNNABLE => StallKind::Runnable,
        span_record::PARKED => StallKind::Parked(names(s.reason).0),
        span_record::ASSIST => StallKind::Assist,
        _ => return None,
    };
    Some(Stall {
        kind,
        goid: s.goid,
        started_goroutine: s.flags & span_record::STARTED_GOROUTINE != 0,
        start_unix_ns: mono_to_unix(s.start_ns, offset),
        end_unix_ns: mono_to_unix(s.end_ns, offset),
        pcs: s.pcs[..(s.npcs as usize).min(STALL_FRAMES)].to_vec(),
        site: None,
    })
}
