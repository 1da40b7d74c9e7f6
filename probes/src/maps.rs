//! Every map the probes share with userspace, declared once under the names
//! in `gort_common::names`.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
};
use gort_common::{
    EVENTS_BYTES, EntryKey, GKey, GoroutineKey, GoroutineState, HISTOGRAMS as HISTOGRAM_COUNT, MAX_COUNTERS,
    MAX_GOIDS_SEEN, MAX_PROBES, MAX_RUNTIME_ENTRIES, MAX_SPANS, MAX_TARGETS, SPAN_EVENTS_BYTES, SpanAccount,
    SpanKey, StwStart, TargetConfig, time_hist,
};

#[map(name = "GORT_TARGETS")]
pub(crate) static TARGETS: HashMap<u32, TargetConfig> = HashMap::with_max_entries(MAX_TARGETS, 0);

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

/// Every goroutine's state (runnable since, parked since and why, in an
/// assist since, its active span), keyed by its g pointer and updated in
/// place: a g seen once keeps its entry while the runtime recycles it. An LRU,
/// so gs freed by a shrinking process cannot fill it.
#[map(name = "GORT_GSTATE")]
pub(crate) static GSTATE: LruHashMap<GKey, GoroutineState> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

/// Notable events for userspace, which drains it on a timer.
#[map(name = "GORT_EVENTS")]
pub(crate) static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// The stop-the-world in progress, per process.
#[map(name = "GORT_STW")]
pub(crate) static STW: HashMap<u32, StwStart> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Spans in flight and what the runtime did to them so far.
#[map(name = "GORT_SPANS")]
pub(crate) static SPANS: LruHashMap<SpanKey, SpanAccount> = LruHashMap::with_max_entries(MAX_SPANS, 0);

/// Span ends and the stalls inside spans, for userspace's join with the
/// spans the service exports.
#[map(name = "GORT_SPAN_EVENTS")]
pub(crate) static SPAN_EVENTS: RingBuf = RingBuf::with_byte_size(SPAN_EVENTS_BYTES, 0);

/// Total GC stop-the-world ns per process, so that a span's share is the
/// difference between its end and its start.
#[map(name = "GORT_STW_TOTAL")]
pub(crate) static STW_TOTAL: HashMap<u32, u64> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Code addresses at which the runtime's own goroutines start (GC workers,
/// sweeper, scavenger, ...), per target: their waits are kept apart from
/// the application's.
#[map(name = "GORT_RUNTIME_ENTRIES")]
pub(crate) static RUNTIME_ENTRIES: HashMap<EntryKey, u8> = HashMap::with_max_entries(MAX_RUNTIME_ENTRIES, 0);

/// Room to build a SpanAccount: at 296 bytes it would take over half the BPF stack.
#[map(name = "GORT_SPAN_SCRATCH")]
pub(crate) static SPAN_SCRATCH: PerCpuArray<SpanAccount> = PerCpuArray::with_max_entries(1, 0);
