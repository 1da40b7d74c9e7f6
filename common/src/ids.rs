//! Indexes into the probes' arrays (probe hit counters, histograms, event
//! counters) and the kinds tagging ring-buffer records.

use crate::histogram::time_hist;

/// Identifies a probe site in the per-probe hit counters. The discriminant is
/// the index into the `GORT_PROBE_HITS` per-CPU array.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeId {
    /// `runtime.execute(gp *g, inheritTime bool)`: a goroutine starts running.
    Execute = 0,
    /// `runtime.ready(gp *g, ...)`: a parked goroutine becomes runnable.
    Ready = 1,
    /// `runtime.casgstatus(gp *g, oldval, newval uint32)`: every goroutine
    /// state transition (runnable, running, waiting, dead).
    Casgstatus = 2,
    /// `runtime.stopTheWorldWithSema(reason)`: a stop-the-world begins.
    StopTheWorld = 3,
    /// RET of `runtime.startTheWorldWithSema`, which returns `nanotime()`
    /// (CLOCK_MONOTONIC): the stop-the-world ended.
    StartTheWorldReturn = 4,
    /// Entry of `runtime.startTheWorldWithSema(now, w worldStop)` (Go 1.22+):
    /// `w` carries the runtime's own stop start time and reason.
    StartTheWorldArgs = 5,
    /// The OpenTelemetry Go SDK's `(*tracer).newRecordingSpan`, at its call
    /// of `SetAttributes` on the new span: a sampled span starts on the
    /// current goroutine.
    SpanStart = 6,
    /// Entry of the SDK's `(*recordingSpan).End`.
    SpanEnd = 7,
}

impl ProbeId {
    pub const ALL: [Self; 8] = [
        Self::Execute,
        Self::Ready,
        Self::Casgstatus,
        Self::StopTheWorld,
        Self::StartTheWorldReturn,
        Self::StartTheWorldArgs,
        Self::SpanStart,
        Self::SpanEnd,
    ];

    pub const fn index(self) -> u32 {
        self as u32
    }
}

/// Which in-kernel histogram: index into `GORT_HISTOGRAMS` (each SLOTS wide).
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistogramId {
    /// Time goroutines spent runnable before running (`go.schedule.duration`).
    ScheduleLatency = 0,
    /// Duration of each GC stop-the-world pause (`go.memory.gc.pause.duration`).
    GcPause = 1,
}

impl HistogramId {
    pub const ALL: [Self; 2] = [Self::ScheduleLatency, Self::GcPause];
    pub const COUNT: u32 = 2;

    pub const fn base(self) -> u32 {
        self as u32 * time_hist::SLOTS
    }
}

/// Event counters: index into `GORT_COUNTERS`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterId {
    /// Completed GC cycles (mark-termination stop-the-worlds).
    GcCycles = 0,
    /// Stop-the-world pauses not caused by the GC.
    OtherStw = 1,
    /// Goroutines created (dead -> runnable).
    GoroutinesCreated = 2,
    /// Goroutines exited (-> dead).
    GoroutinesExited = 3,
    /// Notable events the ring buffer had no room for.
    EventsLost = 4,
    /// Span records (ends, stalls) the span ring buffer had no room for.
    SpanEventsLost = 5,
    /// Goroutines whose state was displaced from the goroutine table while
    /// busy (an interval open or a span active) by a goroutine of the same
    /// set: their open interval goes unmeasured.
    GoroutineStatesDisplaced = 6,
    /// Spans in flight whose account was displaced from the span table by a
    /// newer span: of the same set, all four ways busy, or at the same
    /// address (so never ended: its object is gone). A span never ended
    /// makes room this way, and a displaced span ends without its totals.
    SpansDisplaced = 7,
}

/// Kinds of notable event.
pub mod event_kind {
    /// A goroutine waited runnable at least the stall threshold.
    pub const SCHEDULE_STALL: u32 = 1;
    /// A GC stop-the-world pause (every one).
    pub const GC_PAUSE: u32 = 2;
}
