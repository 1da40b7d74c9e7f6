//! Constants of the Go runtime the probes compare against.

/// Go's `runtime.g.atomicstatus` values (runtime2.go): stable since Go 1.x,
/// with two added in Go 1.27 (numbers no older release uses).
pub mod gstatus {
    pub const RUNNABLE: u32 = 1;
    pub const RUNNING: u32 = 2;
    pub const SYSCALL: u32 = 3;
    pub const WAITING: u32 = 4;
    pub const DEAD: u32 = 6;
    /// Stopped by a suspension (asynchronous preemption) until resumed.
    pub const PREEMPTED: u32 = 9;
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
