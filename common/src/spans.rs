//! Keys, values and ring-buffer records of trace linkage: spans in flight,
//! what the runtime did to each, and the span active on each goroutine.

/// Slots of per-span parked time; userspace maps each wait reason to one
/// (`TargetConfig::wait_slot`). A power of two so the kernel can mask.
pub const SPAN_WAIT_SLOTS: usize = 16;

/// The wait slot of the runtime's GC assist reasons ("GC assist marking",
/// "GC assist wait"): a wait there is the span's GC assist time, not parked
/// time. (The receiver's slot names put `gc_assist` at this index.)
pub const GC_ASSIST_WAIT_SLOT: u8 = 8;

/// Ways per set of the span table (`GORT_SPANS`): a span in flight is in
/// one of the four slots of its set.
pub const SPAN_WAYS: u32 = 4;

/// Sets of the span table (a power of two).
pub const SPAN_SETS: u32 = 16_384;

/// Slots of the span table: spans in flight at once, all targets together.
pub const SPAN_SLOTS: u32 = SPAN_SETS * SPAN_WAYS;

/// Each set covers 2^8 = 256 bytes of a target's address space. An SDK span
/// object (`recordingSpan`) is larger, so at most two live ones share a set.
pub const SPAN_SET_ADDRESS_SHIFT: u32 = 8;

/// The first slot of the set of the span whose SDK object is at `span_ptr`
/// in process `tgid`. The set follows the address, not a hash of the span
/// id: span objects come from the same few heap pages one after another, so
/// spans started one after another take neighbouring slots of the table,
/// whose pages are already mapped and cached, where a random id takes a cold
/// one each time (measured on the linkage bench: span start 1.0 µs against
/// 1.5-1.8 µs). Each process is offset differently: every Go heap starts at
/// the same address.
#[inline(always)]
pub const fn span_set_first_slot(tgid: u32, span_ptr: u64) -> u32 {
    let offset = (tgid as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40;
    (((span_ptr >> SPAN_SET_ADDRESS_SHIFT).wrapping_add(offset) as u32) & (SPAN_SETS - 1)) * SPAN_WAYS
}

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
    /// Time its goroutine spent in GC assists: marking for the GC, or queued
    /// for credit (the runtime parks it for both).
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
const _: () = assert!(size_of::<SpanTotals>() == 232);

/// A span in flight: one slot of the `GORT_SPANS` table, written in place
/// at start and freed (span id 0) at end.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpanAccount {
    pub trace_id: [u8; 16],
    /// The SDK's span id bytes, as a little-endian u64 (0: a free slot).
    pub span_id: u64,
    /// The span that was active on the starting goroutine before this one,
    /// restored when this one ends there (0: none), and how that goroutine
    /// had come by it.
    pub prev: ActiveSpan,
    /// The process the span is in (span ids are unique only within one).
    pub tgid: u32,
    pub _pad: u32,
    /// The SDK's `*recordingSpan`: `End` receives it, so the span ending on
    /// the goroutine it is active on is recognised without reading the
    /// span's ids from the target's memory again.
    pub span_ptr: u64,
    /// CLOCK_MONOTONIC ns at start.
    pub start_ns: u64,
    /// The process's GC stop-the-world total when the span started.
    pub stw_at_start_ns: u64,
    pub totals: SpanTotals,
}
const _: () = assert!(size_of::<SpanAccount>() == 304);

impl SpanAccount {
    /// Whether this slot is span `span_id`'s of process `tgid` (a free slot
    /// holds none: span ids are never 0).
    #[inline(always)]
    pub fn holds(&self, tgid: u32, span_id: u64) -> bool {
        self.span_id == span_id && self.tgid == tgid && span_id != 0
    }

    /// Whether this slot is in use for a span whose SDK object was at
    /// `span_ptr` in process `tgid`.
    #[inline(always)]
    pub fn was_at(&self, tgid: u32, span_ptr: u64) -> bool {
        self.span_ptr == span_ptr && self.tgid == tgid && self.span_id != 0
    }
}

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
    /// CLOCK_MONOTONIC ns at start (0 when unseen) and at `End`.
    pub start_ns: u64,
    pub end_ns: u64,
    pub flags: u32,
    pub _pad: u32,
    pub totals: SpanTotals,
}
const _: () = assert!(size_of::<SpanEnd>() == 288);

/// Physical frames of a stall's park site a stall record carries: the
/// saved pc and the return addresses up the frame-pointer chain.
pub const STALL_FRAMES: usize = 16;

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
    /// Where the goroutine waited, read at wake-up from `g.sched` (it has
    /// not run since it parked): the saved pc, then return addresses,
    /// `npcs` of them (0 for assists, which run, or without the offsets).
    pub npcs: u32,
    pub _pad: u32,
    pub pcs: [u64; STALL_FRAMES],
}
const _: () = assert!(size_of::<SpanStall>() == 56 + 8 * STALL_FRAMES);

/// The span active on a goroutine, how the goroutine came by it, and where
/// its account is: the account is reached in one read, and is the span's
/// only if its span id still matches.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ActiveSpan {
    pub span_id: u64,
    /// 1: inherited from the goroutine that started it; 0: its own span.
    pub inherited: u32,
    /// The span's slot in `GORT_SPANS`.
    pub slot: u32,
}
const _: () = assert!(size_of::<ActiveSpan>() == 16);

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn spans_started_one_after_another_take_neighbouring_sets() {
        // recordingSpan objects some 450 bytes apart in one heap, and every
        // Go process's heap at the same address.
        let mut per_set = BTreeMap::new();
        for tgid in [1_000u32, 1_001] {
            let mut last = None;
            for i in 0..8_192u64 {
                let first = span_set_first_slot(tgid, 0xc000_100000 + i * 448);
                assert!(first < SPAN_SLOTS && first.is_multiple_of(SPAN_WAYS));
                *per_set.entry(first).or_insert(0u32) += 1;
                if let Some(last) = last {
                    // The next set but one at most, wrapping round the table.
                    assert!((first / SPAN_WAYS).wrapping_sub(last / SPAN_WAYS) % SPAN_SETS <= 2, "{i}");
                }
                last = Some(first);
            }
        }
        // Two processes' spans at the same addresses, two per set at most
        // from each: never more than the set's ways.
        assert!(per_set.values().all(|n| *n <= SPAN_WAYS), "{:?}", per_set.values().max());
        assert_ne!(span_set_first_slot(1_000, 0xc000_100000), span_set_first_slot(1_001, 0xc000_100000));
    }

    #[test]
    fn an_account_is_a_spans_only_while_in_use() {
        let mut a = SpanAccount { span_id: 9, span_ptr: 0xc000_1000, tgid: 7, ..Default::default() };
        assert!(a.holds(7, 9) && a.was_at(7, 0xc000_1000));
        assert!(!a.holds(8, 9) && !a.was_at(8, 0xc000_1000) && !a.was_at(7, 0xc000_2000));
        a.span_id = 0;
        assert!(!a.holds(7, 0) && !a.was_at(7, 0xc000_1000));
    }
}
