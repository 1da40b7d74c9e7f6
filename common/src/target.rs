//! The per-process configuration the probes read on every hit: struct
//! offsets, thresholds and the sampling window, written by userspace before
//! it attaches.

use crate::field::{FIELD_SLOTS, Field};

/// An offset in `TargetConfig::offsets` meaning "not known": the probes then
/// leave off whatever needs that field.
pub const NO_OFFSET: u32 = u32::MAX;

/// Per-target-process facts the probes need, written by userspace before it
/// attaches, in the target's `TargetSlot`. Offsets come from the binary's DWARF
/// or the version-keyed tables.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetConfig {
    /// A goroutine runnable (or, inside a span, parked) at least this long
    /// (ns) is a notable event.
    pub runnable_event_threshold_ns: u64,
    /// CLOCK_MONOTONIC ns when the sampled probes were last attached: an
    /// interval that began before it was opened in an earlier window and its
    /// middle went unseen, so it is dropped.
    pub window_start_ns: u64,
    /// Length of the sampling window in ns, or 0 when the probes stay
    /// attached (every interval counts with weight WEIGHT_ONE).
    pub window_ns: u64,
    /// A wait inside a span at least this long (ns) is sent to userspace
    /// with its bounds (it becomes a child span).
    pub child_span_threshold_ns: u64,
    /// Span wait slot (index into `SpanTotals::parked_ns`) of each wait
    /// reason number: userspace knows the names, the kernel only numbers.
    pub wait_slot: [u8; 64],
    /// Byte offset of each `Field` in its struct, or NO_OFFSET. Userspace
    /// leaves a field NO_OFFSET to turn off what needs it: `GWaitreason`
    /// blocked time, `GParentGoid` span inheritance, `SpanContext` trace
    /// linkage, `GStartpc` telling the runtime's goroutines apart.
    pub offsets: [u32; FIELD_SLOTS],
}
const _: () = assert!(size_of::<TargetConfig>() == 352);

impl Default for TargetConfig {
    fn default() -> Self {
        Self {
            runnable_event_threshold_ns: 0,
            window_start_ns: 0,
            window_ns: 0,
            child_span_threshold_ns: u64::MAX,
            wait_slot: [0; 64],
            offsets: [NO_OFFSET; FIELD_SLOTS],
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

    /// The offset of `field`, or NO_OFFSET.
    #[inline(always)]
    pub const fn offset(&self, field: Field) -> u32 {
        self.offsets[field.index()]
    }

    /// Whether the offset of `field` is known.
    #[inline(always)]
    pub const fn has(&self, field: Field) -> bool {
        self.offset(field) != NO_OFFSET
    }
}

/// One slot of `GORT_TARGETS`, an array indexed by the target slot number
/// userspace gives every uprobe it attaches for that target as its attach
/// cookie: a probe finds its target's configuration with one array read
/// instead of a hash lookup on the tgid (about 65 ns of a hot probe's run
/// on this workplace's VM). `tgid` 0 is a free slot; the probe still checks
/// it against the current process, so a stale cookie reads nothing.
///
/// `tgid` is the process id as gort sees it, in gort's pid namespace. In a
/// container (a sidecar sharing the service's pid namespace) that is not
/// the id the kernel's plain helper returns, so the probe asks for the id in
/// the namespace `pidns_dev`/`pidns_ino` names (the device and inode of
/// gort's `/proc/self/ns/pid`); `pidns_ino` 0 means the initial namespace,
/// where the plain, cheaper helper is right.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetSlot {
    pub tgid: u32,
    pub _pad: u32,
    pub pidns_dev: u64,
    pub pidns_ino: u64,
    pub config: TargetConfig,
}
const _: () = assert!(size_of::<TargetSlot>() == 376);

/// What the probes keep per target slot in `GORT_TARGET_GC` (kernel-written;
/// userspace zeroes it when it hands the slot to a new process): the
/// stop-the-world in progress, and the process's GC stop-the-world total,
/// so that a span's share is the difference between its end and its start.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetGc {
    /// CLOCK_MONOTONIC ns when the stop in progress began (0: none).
    pub stw_start_ns: u64,
    pub stw_reason: u64,
    pub stw_total_ns: u64,
    pub _pad: u64,
}
const _: () = assert!(size_of::<TargetGc>() == 32);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_bound_what_the_sampled_probes_record() {
        let mut c = TargetConfig { window_start_ns: 1_000, window_ns: 500, ..Default::default() };
        assert!(!c.in_window(999) && c.in_window(1_000) && c.in_window(1_500) && !c.in_window(1_501));
        c.window_ns = 0;
        assert!(c.in_window(u64::MAX - 1));
        c.window_start_ns = TargetConfig::WINDOW_CLOSED;
        assert!(!c.in_window(5_000));
    }

    #[test]
    fn offsets_start_unknown() {
        let c = TargetConfig::default();
        assert!(Field::ALL.iter().all(|f| !c.has(*f)));
    }
}
