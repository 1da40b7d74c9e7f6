//! Types shared by gort's eBPF probes and its userspace receiver.
//!
//! Every type that crosses the kernel/userspace boundary (map keys, map values,
//! ring-buffer records) is defined here once, `#[repr(C)]` with explicit padding
//! and a compile-time size assertion, so both sides agree on the layout by
//! construction rather than by convention.
#![no_std]

/// Names of the maps and programs in the probes object. Userspace looks them up
/// by these strings; the probes declare them with the same names.
pub mod names {
    pub const MAP_TARGETS: &str = "GORT_TARGETS";
    pub const MAP_PROBE_HITS: &str = "GORT_PROBE_HITS";
    pub const MAP_GOIDS_SEEN: &str = "GORT_GOIDS_SEEN";
    pub const MAP_HISTOGRAMS: &str = "GORT_HISTOGRAMS";
    pub const MAP_COUNTERS: &str = "GORT_COUNTERS";
    pub const MAP_RUNNABLE_SINCE: &str = "GORT_RUNNABLE_SINCE";
    pub const MAP_STW: &str = "GORT_STW";
    pub const MAP_EVENTS: &str = "GORT_EVENTS";
    pub const MAP_PARKED_SINCE: &str = "GORT_PARKED_SINCE";
    pub const PROG_EXECUTE: &str = "gort_execute";
    pub const PROG_READY: &str = "gort_ready";
    pub const PROG_CASGSTATUS: &str = "gort_casgstatus";
    pub const PROG_STW_START: &str = "gort_stw_start";
    pub const PROG_STW_END: &str = "gort_stw_end";
    pub const PROG_STW_ARGS: &str = "gort_stw_args";
    pub const MAP_ACTIVE_SPAN: &str = "GORT_ACTIVE_SPAN";
    pub const MAP_SPANS: &str = "GORT_SPANS";
    pub const MAP_SPAN_EVENTS: &str = "GORT_SPAN_EVENTS";
    pub const MAP_STW_TOTAL: &str = "GORT_STW_TOTAL";
    pub const MAP_ASSIST_SINCE: &str = "GORT_ASSIST_SINCE";
    pub const MAP_SPAN_SCRATCH: &str = "GORT_SPAN_SCRATCH";
    pub const MAP_RUNTIME_ENTRIES: &str = "GORT_RUNTIME_ENTRIES";
    pub const PROG_SPAN_START: &str = "gort_span_start";
    pub const PROG_SPAN_END: &str = "gort_span_end";
    pub const PROG_NEWPROC: &str = "gort_newproc";
    pub const PROG_ASSIST_START: &str = "gort_assist_start";
    pub const PROG_ASSIST_END: &str = "gort_assist_end";
}

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
    /// RET of the OpenTelemetry Go SDK's `(*tracer).newRecordingSpan`: a
    /// sampled span starts on the current goroutine.
    SpanStart = 6,
    /// Entry of the SDK's `(*recordingSpan).End`.
    SpanEnd = 7,
    /// RET of `runtime.newproc1`: a goroutine was created (it inherits its
    /// creator's active span).
    Newproc = 8,
    /// Entry of `runtime.gcAssistAlloc`: a goroutine starts a GC assist.
    AssistStart = 9,
    /// A RET of `runtime.gcAssistAlloc`.
    AssistEnd = 10,
}

impl ProbeId {
    pub const ALL: [Self; 11] = [
        Self::Execute,
        Self::Ready,
        Self::Casgstatus,
        Self::StopTheWorld,
        Self::StartTheWorldReturn,
        Self::StartTheWorldArgs,
        Self::SpanStart,
        Self::SpanEnd,
        Self::Newproc,
        Self::AssistStart,
        Self::AssistEnd,
    ];

    pub const fn index(self) -> u32 {
        self as u32
    }
}

/// Capacity of the per-probe hit counter array; leaves room for the probes
/// later issues add without resizing a map userspace already reads.
pub const MAX_PROBES: u32 = 32;

/// Capacity of the (pid, goid) → hits map; an LRU, so older goroutines are
/// evicted under pressure rather than new ones being refused.
pub const MAX_GOIDS_SEEN: u32 = 65_536;

/// Capacity of the per-process configuration map (processes gort watches at once).
pub const MAX_TARGETS: u32 = 64;

/// Per-target-process facts the probes need, written by userspace before it
/// attaches, keyed by the target's tgid. Offsets come from the binary's DWARF
/// or the version-keyed tables.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    /// Byte offset of `runtime.g.goid` within `runtime.g`.
    pub goid_offset: u32,
    /// Byte offset of `runtime.g.waitreason` (a uint8), or NO_OFFSET when
    /// unknown, which turns blocked-time accounting off.
    pub waitreason_offset: u32,
    /// A goroutine runnable (or, inside a span, parked) at least this long
    /// (ns) is a notable event.
    pub stall_threshold_ns: u64,
    /// CLOCK_MONOTONIC ns when the sampled probes were last attached: an
    /// interval that began before it was opened in an earlier window and its
    /// middle went unseen, so it is dropped.
    pub window_start_ns: u64,
    /// Length of the sampling window in ns, or 0 when the probes stay
    /// attached (every interval counts with weight WEIGHT_ONE).
    pub window_ns: u64,
    /// Byte offset of `runtime.g.parentGoid` (Go 1.21+), or NO_OFFSET: new
    /// goroutines then do not inherit their creator's span.
    pub parent_goid_offset: u32,
    /// Byte offset of `spanContext` in the SDK's `recordingSpan`, or
    /// NO_OFFSET, which turns trace linkage off for the target.
    pub span_context_offset: u32,
    /// Span wait slot (index into `SpanTotals::parked_ns`) of each wait
    /// reason number: userspace knows the names, the kernel only numbers.
    pub wait_slot: [u8; 64],
    /// A wait inside a span at least this long (ns) is sent to userspace
    /// with its bounds (it becomes a child span).
    pub span_stall_threshold_ns: u64,
    /// Offset of `runtime.g.startpc`: where a goroutine started tells the
    /// runtime's own goroutines (GORT_RUNTIME_ENTRIES) from the
    /// application's; NO_OFFSET: none is told apart.
    pub startpc_offset: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<TargetConfig>() == 120);

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            goid_offset: 0,
            waitreason_offset: NO_OFFSET,
            stall_threshold_ns: 0,
            window_start_ns: 0,
            window_ns: 0,
            parent_goid_offset: NO_OFFSET,
            span_context_offset: NO_OFFSET,
            wait_slot: [0; 64],
            span_stall_threshold_ns: u64::MAX,
            startpc_offset: NO_OFFSET,
            _pad: 0,
        }
    }
}

impl TargetConfig {
    /// `window_start_ns` while the window is closed (being opened or shut).
    pub const WINDOW_CLOSED: u64 = u64::MAX;

    /// Whether the sampled probes record at `now_ns`: inside
    /// [window_start, window_start + window] when sampling, from
    /// window_start on when not.
    #[inline(always)]
    pub const fn in_window(&self, now_ns: u64) -> bool {
        now_ns >= self.window_start_ns
            && (self.window_ns == 0 || now_ns - self.window_start_ns <= self.window_ns)
    }
}

/// Histogram counts are kept in fixed point, WEIGHT_ONE per observation, so
/// that a sampled interval can carry the inverse of its chance to be seen.
pub const WEIGHT_ONE: u64 = 256;

/// Largest weight a sampled interval gets (an interval almost as long as the
/// window): caps what one unlucky observation can add.
pub const MAX_WEIGHT: u64 = 64 * WEIGHT_ONE;

/// The fixed-point weight of an interval of `length_ns` seen in a sampling
/// window of `window_ns` (0 = not sampling). The interval is seen only when it
/// lies wholly inside a window, which happens with probability
/// (window - length) / period; userspace multiplies by period / window, so
/// the kernel contributes window / (window - length): together, the inverse
/// of the chance of being seen (a Horvitz-Thompson estimate, unbiased for
/// intervals shorter than the window).
#[inline(always)]
pub const fn interval_weight(length_ns: u64, window_ns: u64) -> u64 {
    if window_ns == 0 {
        return WEIGHT_ONE;
    }
    if length_ns >= window_ns {
        return MAX_WEIGHT;
    }
    let w = window_ns * WEIGHT_ONE / (window_ns - length_ns);
    if w > MAX_WEIGHT { MAX_WEIGHT } else { w }
}

/// Go's `runtime.g.atomicstatus` values (runtime2.go): stable since Go 1.x,
/// with two added in Go 1.27 (numbers no older release uses).
pub mod gstatus {
    pub const RUNNABLE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const SYSCALL: u32 = 3;
    pub const WAITING: u32 = 4;
    pub const DEAD: u32 = 6;
    /// Go 1.27: a waiting goroutine the GC found can never be woken (a leak);
    /// it is still parked where it was.
    pub const LEAKED: u32 = 10;
    /// Go 1.27: a dead goroutine attached to an extra M (cgo callbacks).
    pub const DEADEXTRA: u32 = 11;
    /// Set on top of a status while the GC scans the goroutine's stack.
    pub const SCAN: u32 = 0x1000;
}

/// Go's `stwReason` values for the two GC stop-the-worlds (the same in Go
/// 1.21 through 1.26); every other reason is a non-GC pause.
pub mod stw_reason {
    pub const GC_MARK_TERM: u64 = 1;
    pub const GC_SWEEP_TERM: u64 = 2;
}

/// The Go runtime's `timeHistogram` layout (runtime/histogram.go), reproduced
/// in the kernel so gort's histograms and `runtime/metrics` share buckets:
/// values below 2^MIN_BUCKET_BITS ns fall in bucket 0, then one bucket per
/// power of two up to 2^MAX_BUCKET_BITS, each split into SUB_BUCKETS.
pub mod time_hist {
    pub const MIN_BUCKET_BITS: u32 = 9;
    pub const MAX_BUCKET_BITS: u32 = 48;
    pub const SUB_BUCKET_BITS: u32 = 2;
    pub const SUB_BUCKETS: u32 = 1 << SUB_BUCKET_BITS;
    pub const BUCKETS: u32 = MAX_BUCKET_BITS - MIN_BUCKET_BITS + 1;
    /// Counting slots: BUCKETS * SUB_BUCKETS, then overflow, then the sum of
    /// all recorded values (ns), so one array holds a whole histogram.
    pub const COUNTS: u32 = BUCKETS * SUB_BUCKETS;
    pub const OVERFLOW_SLOT: u32 = COUNTS;
    pub const SUM_SLOT: u32 = COUNTS + 1;
    pub const SLOTS: u32 = COUNTS + 2;

    /// The counting slot of a duration in ns (`timeHistogram.record`), or
    /// OVERFLOW_SLOT. Pure integer arithmetic the BPF verifier accepts.
    #[inline(always)]
    pub const fn slot(duration: u64) -> u32 {
        let len = 64 - duration.leading_zeros();
        let (bucket_bit, bucket) =
            if len < MIN_BUCKET_BITS { (MIN_BUCKET_BITS, 0) } else { (len, len - MIN_BUCKET_BITS + 1) };
        if bucket >= BUCKETS {
            return OVERFLOW_SLOT;
        }
        let sub = ((duration >> (bucket_bit - 1 - SUB_BUCKET_BITS)) as u32) % SUB_BUCKETS;
        bucket * SUB_BUCKETS + sub
    }

    /// Lower bound in ns of a counting slot (the runtime's bucket boundary).
    pub const fn lower_bound(slot: u32) -> u64 {
        let bucket = slot / SUB_BUCKETS;
        let sub = (slot % SUB_BUCKETS) as u64;
        if bucket == 0 {
            return sub << (MIN_BUCKET_BITS - 1 - SUB_BUCKET_BITS);
        }
        let bucket_bit = bucket + MIN_BUCKET_BITS - 1;
        (1u64 << (bucket_bit - 1)) + (sub << (bucket_bit - 1 - SUB_BUCKET_BITS))
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

/// Histograms in `GORT_HISTOGRAMS`: the fixed ones, then one per wait reason
/// (time parked, by the runtime's `waitReason` number) for the
/// application's goroutines, then one per wait reason for the runtime's own.
pub const HISTOGRAMS: u32 = HistogramId::COUNT + 2 * MAX_WAIT_REASONS;

/// Set in a parked goroutine's recorded reason (`Parked::reason`) when the
/// goroutine is one of the runtime's own (it started at a runtime entry).
pub const RUNTIME_GOROUTINE: u64 = 0x100;

/// Base slot of the blocked-time histogram of wait reason `reason`, in the
/// runtime goroutines' bank when `reason` carries `RUNTIME_GOROUTINE`.
pub const fn blocked_base(reason: u64) -> u32 {
    let bank = if reason & RUNTIME_GOROUTINE != 0 { MAX_WAIT_REASONS } else { 0 };
    let reason = reason & 0xff;
    let r = if reason < MAX_WAIT_REASONS as u64 { reason as u32 } else { MAX_WAIT_REASONS - 1 };
    (HistogramId::COUNT + bank + r) * time_hist::SLOTS
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
}

/// Size of the notable-event ring buffer (a power of two, page multiple).
pub const EVENTS_BYTES: u32 = 256 * 1024;

/// Kinds of notable event.
pub mod event_kind {
    /// A goroutine waited runnable at least the stall threshold.
    pub const SCHEDULE_STALL: u32 = 1;
    /// A GC stop-the-world pause (every one).
    pub const GC_PAUSE: u32 = 2;
}

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
const _: () = assert!(core::mem::size_of::<Event>() == 32);

pub const MAX_COUNTERS: u32 = 16;

/// A stop-the-world in progress in one process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StwStart {
    /// CLOCK_MONOTONIC ns when stopping began.
    pub start_ns: u64,
    pub reason: u64,
}
const _: () = assert!(core::mem::size_of::<StwStart>() == 16);

/// `TargetConfig` offset value meaning "not known".
pub const NO_OFFSET: u32 = u32::MAX;

/// Wait reasons tracked one by one (Go has fewer than 50); larger values
/// share the last histogram.
pub const MAX_WAIT_REASONS: u32 = 64;

/// A parked goroutine: since when, and why (its `waitReason` number).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parked {
    pub since_ns: u64,
    pub reason: u64,
}
const _: () = assert!(core::mem::size_of::<Parked>() == 16);

/// Key of `GORT_RUNTIME_ENTRIES`: a run-time code address in a target at
/// which the runtime's own goroutines start.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EntryKey {
    pub tgid: u32,
    pub _pad: u32,
    pub pc: u64,
}
const _: () = assert!(core::mem::size_of::<EntryKey>() == 16);

/// Room in `GORT_RUNTIME_ENTRIES`: a Go binary has about 1,500 to 2,500
/// runtime functions, so this holds several targets.
pub const MAX_RUNTIME_ENTRIES: u32 = 32_768;

/// Key of the goroutine map: goroutine ids are only unique within a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GoroutineKey {
    pub tgid: u32,
    pub _pad: u32,
    pub goid: u64,
}
const _: () = assert!(core::mem::size_of::<GoroutineKey>() == 16);

#[cfg(test)]
mod tests {
    use super::time_hist::*;

    /// Reference: Go's timeHistogram.record, transcribed literally.
    fn go_record(duration: u64) -> u32 {
        let l = 64 - duration.leading_zeros();
        let (bucket_bit, bucket) =
            if l < MIN_BUCKET_BITS { (MIN_BUCKET_BITS, 0) } else { (l, l - MIN_BUCKET_BITS + 1) };
        if bucket >= BUCKETS {
            return OVERFLOW_SLOT;
        }
        let sub = (duration >> (bucket_bit - 1 - SUB_BUCKET_BITS)) % u64::from(SUB_BUCKETS);
        bucket * SUB_BUCKETS + sub as u32
    }

    #[test]
    fn windows_bound_what_the_sampled_probes_record() {
        let mut c = super::TargetConfig { window_start_ns: 1_000, window_ns: 500, ..Default::default() };
        assert!(!c.in_window(999) && c.in_window(1_000) && c.in_window(1_500) && !c.in_window(1_501));
        c.window_ns = 0;
        assert!(c.in_window(u64::MAX - 1));
        c.window_start_ns = super::TargetConfig::WINDOW_CLOSED;
        assert!(!c.in_window(5_000));
    }

    #[test]
    fn runtime_goroutines_have_their_own_bank_of_blocked_histograms() {
        use super::{HISTOGRAMS, HistogramId, MAX_WAIT_REASONS, RUNTIME_GOROUTINE, blocked_base};
        assert_eq!(blocked_base(0), HistogramId::COUNT * SLOTS);
        assert_eq!(blocked_base(RUNTIME_GOROUTINE | 3), (HistogramId::COUNT + MAX_WAIT_REASONS + 3) * SLOTS);
        assert_eq!(blocked_base(200), blocked_base(u64::from(MAX_WAIT_REASONS) - 1), "unknown reasons clamp");
        assert!(blocked_base(RUNTIME_GOROUTINE | 0xff) < HISTOGRAMS * SLOTS);
    }

    #[test]
    fn interval_weights_invert_the_chance_of_being_seen() {
        use super::{MAX_WEIGHT, WEIGHT_ONE, interval_weight};
        assert_eq!(interval_weight(5_000_000, 0), WEIGHT_ONE);
        assert_eq!(interval_weight(0, 1_000), WEIGHT_ONE);
        // Half the window long: seen in half the placements, so weight 2.
        assert_eq!(interval_weight(500, 1_000), 2 * WEIGHT_ONE);
        assert_eq!(interval_weight(999_999, 1_000_000), MAX_WEIGHT);
        assert_eq!(interval_weight(2_000, 1_000), MAX_WEIGHT);
    }

    #[test]
    fn slots_match_the_runtime_and_bounds_are_monotonic() {
        for d in [0, 1, 127, 128, 255, 256, 511, 512, 640, 767, 768, 1023, 1024, 1_000_000, u64::MAX / 2] {
            assert_eq!(slot(d), go_record(d), "{d}");
        }
        let mut prev = 0;
        for s in 1..COUNTS {
            let b = lower_bound(s);
            assert!(b > prev, "slot {s}: {b} <= {prev}");
            assert_eq!(slot(b), s, "lower bound of slot {s} falls in slot {}", slot(b));
            assert_eq!(slot(b - 1), s - 1);
            prev = b;
        }
    }
}

/// Capacity of the span maps: spans in flight at once (per gort, all
/// targets), and goroutines with an active span. LRUs, so a leak (a span
/// never ended) is evicted rather than filling them.
pub const MAX_SPANS: u32 = 65_536;

/// Size of the span ring buffer: span ends and the stalls inside spans.
pub const SPAN_EVENTS_BYTES: u32 = 1024 * 1024;

/// Slots of per-span parked time; userspace maps each wait reason to one
/// (`TargetConfig::wait_slot`). A power of two so the kernel can mask.
pub const SPAN_WAIT_SLOTS: usize = 16;

/// Key of a span in flight: span ids are random 64-bit values, unique
/// enough within a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SpanKey {
    pub tgid: u32,
    pub _pad: u32,
    pub span_id: u64,
}
const _: () = assert!(core::mem::size_of::<SpanKey>() == 16);

/// What the runtime did to one span while it was active, accumulated in the
/// kernel. Durations in ns; "max" fields describe the longest single wait.
/// The sums are the span's own goroutine's (the one that started it), so
/// each is wall time inside the span and none can exceed its duration; the
/// goroutines it started are described apart (`started_*`): how many, and
/// their longest single waits.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanTotals {
    /// Time its goroutine spent runnable, not running.
    pub runnable_ns: u64,
    pub runnable_count: u64,
    /// GC stop-the-world time while the span was open.
    pub stw_ns: u64,
    /// Time its goroutine spent in GC assists (`gcAssistAlloc`).
    pub assist_ns: u64,
    pub max_runnable_ns: u64,
    /// CLOCK_MONOTONIC ns when the longest runnable wait ended.
    pub max_runnable_end_ns: u64,
    pub max_parked_ns: u64,
    pub max_parked_end_ns: u64,
    /// Wait reason number of the longest park.
    pub max_parked_reason: u64,
    /// Time parked, by wait slot (`TargetConfig::wait_slot`).
    pub parked_ns: [u64; SPAN_WAIT_SLOTS],
    /// Goroutines started while the span was active on its goroutine (or on
    /// one it started), which inherit it.
    pub started_goroutines: u64,
    /// The longest single runnable wait and park of those goroutines that
    /// ended while the span was open.
    pub started_max_runnable_ns: u64,
    pub started_max_parked_ns: u64,
    pub started_max_parked_reason: u64,
}
const _: () = assert!(core::mem::size_of::<SpanTotals>() == 232);

/// A span in flight (the `GORT_SPANS` value).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanAccount {
    pub trace_id: [u8; 16],
    /// The SDK's span id bytes, as a little-endian u64 (the map key).
    pub span_id: u64,
    /// The span that was active on the starting goroutine before this one,
    /// restored when this one ends there (0: none).
    pub prev_span: u64,
    /// `ActiveSpan::inherited` of `prev_span`, restored with it.
    pub prev_inherited: u64,
    pub start_goid: u64,
    /// CLOCK_MONOTONIC ns at start.
    pub start_ns: u64,
    /// The process's GC stop-the-world total when the span started.
    pub stw_at_start_ns: u64,
    pub totals: SpanTotals,
}
const _: () = assert!(core::mem::size_of::<SpanAccount>() == 296);

/// Kinds of span ring-buffer record.
pub mod span_record {
    /// A span ended: a `SpanEnd`.
    pub const END: u32 = 1;
    /// A `SpanStall`: a goroutine of an active span waited runnable...
    pub const RUNNABLE: u32 = 2;
    /// ...was parked (with the wait reason)...
    pub const PARKED: u32 = 3;
    /// ...or ran a GC assist, at least the stall threshold.
    pub const ASSIST: u32 = 4;
    /// `SpanEnd::flags`: the span's start was seen, so its totals are whole.
    pub const START_SEEN: u32 = 1;
    /// Stall flag: the wait was a goroutine's the span started.
    pub const STARTED_GOROUTINE: u32 = 1;
}

/// A span ended (record kind `span_record::END`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanEnd {
    pub kind: u32,
    pub tgid: u32,
    pub span_id: u64,
    pub trace_id: [u8; 16],
    /// The goroutine that ended it.
    pub goid: u64,
    /// CLOCK_MONOTONIC ns at start (0 when unseen) and at `End`.
    pub start_ns: u64,
    pub end_ns: u64,
    pub flags: u32,
    pub _pad: u32,
    pub totals: SpanTotals,
}
const _: () = assert!(core::mem::size_of::<SpanEnd>() == 296);

/// One wait inside a span at least the stall threshold long.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanStall {
    pub kind: u32,
    pub tgid: u32,
    pub span_id: u64,
    pub goid: u64,
    /// CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    pub end_ns: u64,
    /// Wait reason number (parked stalls).
    pub reason: u32,
    /// `span_record::STARTED_GOROUTINE` when the wait was a started
    /// goroutine's, not the span's own goroutine's.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<SpanStall>() == 48);

/// The span active on a goroutine, and how the goroutine came by it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveSpan {
    pub span_id: u64,
    /// 1: inherited from the goroutine that started it; 0: its own span.
    pub inherited: u64,
}
const _: () = assert!(core::mem::size_of::<ActiveSpan>() == 16);
