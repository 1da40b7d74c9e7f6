//! Keys, values and ring-buffer records of the scheduler and GC probes.

use crate::spans::ActiveSpan;

/// A notable event, sent through the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    pub kind: u32,
    pub tgid: u32,
    /// The goroutine concerned (0 for process-wide events such as pauses).
    pub goid: u64,
    /// CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    pub end_ns: u64,
}
const _: () = assert!(size_of::<Event>() == 32);

/// A stop-the-world in progress in one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StwStart {
    /// CLOCK_MONOTONIC ns when stopping began.
    pub start_ns: u64,
    pub reason: u64,
}
const _: () = assert!(size_of::<StwStart>() == 16);

/// Key of the per-goroutine state: the goroutine's `g` struct address in
/// its process. Keyed by the g pointer, not the goroutine id: the probes have
/// it in a register at every transition (no read of `g.goid`), and a g that is
/// recycled for a new goroutine passes through `_Gdead`, which resets its
/// state; state left from before a sampling window is older than the window
/// and ignored.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GKey {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
}
const _: () = assert!(size_of::<GKey>() == 16);

/// What the probes keep about one goroutine, updated in place at each of its
/// state changes (one lookup, no remove/insert churn). Times are
/// CLOCK_MONOTONIC ns; 0 means "not in that state" (or not seen entering it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoroutineState {
    /// Since when it is runnable.
    pub runnable_since: u64,
    /// Since when it is parked, and why: the runtime's `waitReason` number,
    /// with `RUNTIME_GOROUTINE` set for the runtime's own goroutines.
    pub parked_since: u64,
    pub parked_reason: u64,
    /// Whose goroutine it is, found once per goroutine (`GoroutineState::APPLICATION`,
    /// `RUNTIME`; 0: not known yet).
    pub class: u64,
    /// The span active on it (0: none), and how it came by it.
    pub span: ActiveSpan,
}
const _: () = assert!(size_of::<GoroutineState>() == 48);

impl GoroutineState {
    pub const APPLICATION: u64 = 1;
    /// One of the runtime's own (it started at a runtime entry).
    pub const RUNTIME: u64 = 2;
}

/// Key of `GORT_RUNTIME_ENTRIES`: a run-time code address in a target at
/// which the runtime's own goroutines start.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub tgid: u32,
    pub _pad: u32,
    pub pc: u64,
}
const _: () = assert!(size_of::<EntryKey>() == 16);

/// Key of the goroutine map: goroutine ids are only unique within a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GoroutineKey {
    pub tgid: u32,
    pub _pad: u32,
    pub goid: u64,
}
const _: () = assert!(size_of::<GoroutineKey>() == 16);
