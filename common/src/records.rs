//! Keys, values and ring-buffer records of the scheduler and GC probes.

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

/// A parked goroutine: since when, and why (its `waitReason` number).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parked {
    pub since_ns: u64,
    pub reason: u64,
}
const _: () = assert!(size_of::<Parked>() == 16);

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
