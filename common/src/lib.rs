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
    pub const PROG_EXECUTE: &str = "gort_execute";
    pub const PROG_READY: &str = "gort_ready";
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
}

impl ProbeId {
    pub const ALL: [Self; 2] = [Self::Execute, Self::Ready];

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
/// or the version-keyed table.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TargetConfig {
    /// Byte offset of `runtime.g.goid` within `runtime.g`.
    pub goid_offset: u32,
    /// Explicit padding: keeps the layout identical on both sides.
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<TargetConfig>() == 8);

/// Key of the goroutine map: goroutine ids are only unique within a process.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct GoroutineKey {
    pub tgid: u32,
    pub _pad: u32,
    pub goid: u64,
}
const _: () = assert!(core::mem::size_of::<GoroutineKey>() == 16);
