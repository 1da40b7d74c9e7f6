//! Capacities of the maps the probes and userspace share: fixed at load time,
//! so both sides read them from here.

/// Capacity of the per-probe hit counter array; leaves room for the probes
/// later issues add without resizing a map userspace already reads.
pub const MAX_PROBES: u32 = 32;

/// Capacity of the (pid, goid) → hits map; an LRU, so older goroutines are
/// evicted under pressure rather than new ones being refused.
pub const MAX_GOIDS_SEEN: u32 = 65_536;

/// Target slots (`GORT_TARGETS`): processes gort watches at once.
pub const MAX_TARGETS: u32 = 64;

/// Size of the notable-event ring buffer (a power of two, page multiple).
pub const EVENTS_BYTES: u32 = 256 * 1024;

pub const MAX_COUNTERS: u32 = 16;

/// Room in `GORT_RUNTIME_ENTRIES`: a Go binary has about 1,500 to 2,500
/// runtime functions, so this holds several targets.
pub const MAX_RUNTIME_ENTRIES: u32 = 32_768;

/// Size of the span ring buffer: span ends and the stalls inside spans.
pub const SPAN_EVENTS_BYTES: u32 = 1024 * 1024;
