//! Every map the probes share with userspace, declared once under the names
//! in `gort_common::names`.

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use gort_common::{
    EVENTS_BYTES, EntryKey, GSTATE_SLOTS, GoroutineKey, GoroutineSlot, HISTOGRAMS as HISTOGRAM_COUNT,
    MAX_COUNTERS, MAX_GOIDS_SEEN, MAX_PROBES, MAX_RUNTIME_ENTRIES, MAX_TARGETS, SPAN_EVENTS_BYTES,
    SPAN_SLOTS, SpanAccount, TargetGc, TargetSlot, time_hist,
};

/// Each target's configuration, in the slot its uprobes carry as their
/// attach cookie.
#[map(name = "GORT_TARGETS")]
pub(crate) static TARGETS: Array<TargetSlot> = Array::with_max_entries(MAX_TARGETS, 0);

/// Each target slot's stop-the-world in progress and stop-the-world total.
#[map(name = "GORT_TARGET_GC")]
pub(crate) static TARGET_GC: Array<TargetGc> = Array::with_max_entries(MAX_TARGETS, 0);

#[map(name = "GORT_PROBE_HITS")]
pub(crate) static PROBE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_PROBES, 0);

#[map(name = "GORT_GOIDS_SEEN")]
pub(crate) static GOIDS_SEEN: LruHashMap<GoroutineKey, u64> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

/// All histograms, SLOTS counters each, per CPU (summed by userspace).
#[map(name = "GORT_HISTOGRAMS")]
pub(crate) static HISTOGRAMS: PerCpuArray<u64> =
    PerCpuArray::with_max_entries(HISTOGRAM_COUNT * time_hist::SLOTS, 0);

#[map(name = "GORT_COUNTERS")]
pub(crate) static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_COUNTERS, 0);

/// Every goroutine's state (runnable since, parked since and why, its
/// active span), in a two-way set-associative table indexed by a hash of
/// (tgid, g) (`gort_common::gstate_set`) and updated in place: a lookup is
/// two array reads, where a hash map costs a bucket walk and an LRU
/// update (measured at about 240 ns per casgstatus run on the linkage load).
/// A g seen once keeps its slot while the runtime recycles it; a new g takes
/// a free or idle way of its set, or displaces a busy one (counted).
#[map(name = "GORT_GSTATE")]
pub(crate) static GSTATE: Array<GoroutineSlot> = Array::with_max_entries(GSTATE_SLOTS, 0);

/// Notable events for userspace, which drains it on a timer.
#[map(name = "GORT_EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// Spans in flight and what the runtime did to them so far: a four-way
/// set-associative table indexed by the span object's address (and tgid;
/// `gort_common::span_set_first_slot`), each account written in place at
/// start and freed at end, so no span pays a map insert or delete (an LRU
/// insert and delete made most of span start and end's 2.4-2.9 µs).
#[map(name = "GORT_SPANS")]
pub(crate) static SPANS: Array<SpanAccount> = Array::with_max_entries(SPAN_SLOTS, 0);

/// Span ends and the stalls inside spans, for userspace's join with the
/// spans the service exports.
#[map(name = "GORT_SPAN_EVENTS")]
pub(crate) static SPAN_EVENTS: RingBuf = RingBuf::with_byte_size(SPAN_EVENTS_BYTES, 0);

/// Code addresses at which the runtime's own goroutines start (GC workers,
/// sweeper, scavenger, ...), per target: their waits are kept apart from
/// the application's.
#[map(name = "GORT_RUNTIME_ENTRIES")]
pub(crate) static RUNTIME_ENTRIES: HashMap<EntryKey, u8> = HashMap::with_max_entries(MAX_RUNTIME_ENTRIES, 0);
