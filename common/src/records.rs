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

/// One way of the per-goroutine state table (`GORT_GSTATE`): whose state it
/// holds (the goroutine's `g` struct address in its process, 0: free) and
/// the state. Keyed by the g pointer, not the goroutine id: the probes have
/// it in a register at every transition (no read of `g.goid`), and a g that
/// is recycled for a new goroutine passes through `_Gdead`, which resets its
/// state; state left from before a sampling window is older than the window
/// and ignored. 64 bytes: one cache line a lookup touches per way.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GoroutineSlot {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
    pub state: GoroutineState,
}
const _: () = assert!(size_of::<GoroutineSlot>() == 64);

impl GoroutineSlot {
    /// Whether this slot is goroutine `g`'s of process `tgid`.
    #[inline(always)]
    pub fn holds(&self, tgid: u32, g: u64) -> bool {
        self.g == g && self.tgid == tgid
    }

    /// Whether its goroutine has nothing open (no interval, no span), so
    /// giving the slot to another loses nothing.
    #[inline(always)]
    pub fn idle(&self) -> bool {
        let s = &self.state;
        s.runnable_since == 0 && s.parked_since == 0 && s.span.span_id == 0
    }
}

/// The way of a two-way set that a goroutine seen for the first time takes,
/// and whether that displaces a goroutine with something open: the first
/// way if free, else an idle way (the first before the second), else the
/// second way. A busy first way is kept because the goroutine that took it
/// first is the older and likelier to be long-lived.
#[inline(always)]
pub fn gstate_claim(a: &GoroutineSlot, b: &GoroutineSlot) -> (u32, bool) {
    if a.g == 0 || (b.g != 0 && a.idle()) { (0, false) } else { (1, b.g != 0 && !b.idle()) }
}

/// Ways per set of the goroutine state table: a goroutine's state is in one
/// of the two slots of its set, so a lookup reads two adjacent cache lines
/// and never walks a hash chain.
pub const GSTATE_WAYS: u32 = 2;

/// Sets of the goroutine state table (a power of two).
pub const GSTATE_SETS: u32 = 65_536;

/// Slots of the goroutine state table: 8 MiB, preallocated.
pub const GSTATE_SLOTS: u32 = GSTATE_SETS * GSTATE_WAYS;

/// The set of the goroutine table that holds `g` of process `tgid`: a
/// multiplicative hash, so g structs allocated side by side (and the same
/// heap addresses in two processes) spread over the sets.
#[inline(always)]
pub const fn gstate_set(tgid: u32, g: u64) -> u32 {
    let mixed = (g >> 4) ^ ((tgid as u64) << 40);
    (mixed.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - GSTATE_SETS.trailing_zeros())) as u32
}

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

#[cfg(test)]
mod tests {
    extern crate std;
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn goroutine_sets_spread_neighbouring_gs_and_processes() {
        // g structs are ~400 bytes apart in one heap; and every Go process
        // starts its heap at the same address.
        let mut per_set = BTreeMap::new();
        for tgid in [1_000u32, 1_001] {
            for i in 0..4_096u64 {
                *per_set.entry(gstate_set(tgid, 0xc000_000000 + i * 416)).or_insert(0u32) += 1;
            }
        }
        assert!(per_set.keys().all(|s| *s < GSTATE_SETS));
        // 8,192 gs over 65,536 sets: a set with three of them (more than its
        // ways) should be rare.
        let crowded = per_set.values().filter(|n| **n > GSTATE_WAYS).count();
        assert!(crowded <= 8, "{crowded} sets hold more gs than they have ways");
        assert_ne!(gstate_set(1_000, 0xc000_000000), gstate_set(1_001, 0xc000_000000));
    }

    fn slot(g: u64, runnable_since: u64, span_id: u64) -> GoroutineSlot {
        let mut s = GoroutineSlot { tgid: 7, g, ..Default::default() };
        s.state.runnable_since = runnable_since;
        s.state.span.span_id = span_id;
        s
    }

    #[test]
    fn a_new_goroutine_displaces_only_when_both_ways_are_busy() {
        let free = GoroutineSlot::default();
        let idle = slot(0x10, 0, 0);
        let busy = slot(0x20, 5, 0);
        let in_span = slot(0x30, 0, 9);
        assert_eq!(gstate_claim(&free, &free), (0, false));
        assert_eq!(gstate_claim(&free, &busy), (0, false));
        assert_eq!(gstate_claim(&busy, &free), (1, false));
        assert_eq!(gstate_claim(&idle, &busy), (0, false));
        assert_eq!(gstate_claim(&busy, &idle), (1, false));
        assert_eq!(gstate_claim(&idle, &idle), (0, false));
        // Runnable, or carrying a span: its open interval or span is lost.
        assert_eq!(gstate_claim(&busy, &busy), (1, true));
        assert_eq!(gstate_claim(&busy, &in_span), (1, true));
        // Count what a run of claims displaces, as the probe does.
        let mut set = [free, free];
        let mut displaced = 0;
        for g in 1..=5u64 {
            let (way, lost) = gstate_claim(&set[0], &set[1]);
            displaced += u32::from(lost);
            set[way as usize] = slot(g, 1, 0);
        }
        // Two gs fill the free ways; each of the next three pushes out the
        // busy second way.
        assert_eq!(displaced, 3);
        assert!(set[0].holds(7, 1) && set[1].holds(7, 5) && !set[1].holds(8, 5));
    }
}
