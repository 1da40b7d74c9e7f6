//! Constants of the Go runtime the probes compare against.

/// Go's `runtime.g.atomicstatus` values (runtime2.go): stable since Go 1.x,
/// with two added in Go 1.27 (numbers no older release uses).
pub mod gstatus {
    pub const RUNNABLE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const SYSCALL: u32 = 3;
    pub const WAITING: u32 = 4;
    pub const DEAD: u32 = 6;
    /// A running goroutine whose stack is being moved (stack growth).
    pub const COPYSTACK: u32 = 8;
    /// Stopped by a suspension (asynchronous preemption) until resumed.
    pub const PREEMPTED: u32 = 9;
    /// Go 1.27: a waiting goroutine the GC found can never be woken (a leak);
    /// it is still parked where it was.
    pub const LEAKED: u32 = 10;
    /// Go 1.27: a dead goroutine attached to an extra M (cgo callbacks).
    pub const DEADEXTRA: u32 = 11;
    /// Set on top of a status while the GC scans the goroutine's stack.
    pub const SCAN: u32 = 0x1000;

    /// The transition `old` -> `new` as the probes account it: the scan bit
    /// dropped, a leaked goroutine still the parked one it was (Go 1.27), a
    /// dead one on an extra M dead; None for a transition that changes
    /// nothing they measure (waiting -> leaked).
    #[inline(always)]
    pub const fn normalise(old: u32, new: u32) -> Option<(u32, u32)> {
        let (old, new) = (old & !SCAN, new & !SCAN);
        if old == WAITING && new == LEAKED {
            return None;
        }
        let old = match old {
            LEAKED => WAITING,
            DEADEXTRA => DEAD,
            other => other,
        };
        let new = if new == DEADEXTRA { DEAD } else { new };
        Some((old, new))
    }

    /// Whether a status ends or starts an interval the probes measure:
    /// runnable (scheduling latency), waiting (parked), dead (a goroutine's
    /// life and its span inheritance).
    #[inline(always)]
    pub const fn measured(status: u32) -> bool {
        status == RUNNABLE || status == WAITING || status == DEAD
    }

    /// Whether the probes do anything for `old` -> `new`. A call site whose
    /// two statuses are constants for which this is false (running <->
    /// syscall, the stack copy's running <-> copystack) needs no probe.
    #[inline(always)]
    pub const fn matters(old: u32, new: u32) -> bool {
        match normalise(old, new) {
            Some((old, new)) => measured(old) || measured(new),
            None => false,
        }
    }
}

/// Go's `stwReason` values for the two GC stop-the-worlds (the same in Go
/// 1.21 through 1.26); every other reason is a non-GC pause.
pub mod stw_reason {
    pub const GC_MARK_TERM: u64 = 1;
    pub const GC_SWEEP_TERM: u64 = 2;
}
