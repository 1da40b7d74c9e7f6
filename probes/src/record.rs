//! Recording primitives every probe uses: the clock, hit and event
//! counters, histogram slots, the notable-event ring buffer, and the
//! current target's configuration.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    EbpfContext,
    bindings::{BPF_RB_NO_WAKEUP, bpf_pidns_info},
    helpers::{
        bpf_get_attach_cookie, bpf_get_current_pid_tgid, bpf_get_ns_current_pid_tgid, bpf_ktime_get_ns,
    },
    maps::PerCpuArray,
    programs::ProbeContext,
};
use gort_common::{CounterId, Event, ProbeId, TargetConfig, TargetGc, WEIGHT_ONE, time_hist};

use crate::maps::*;

#[inline(always)]
pub(crate) fn atomic_add(slot: *mut u64, value: u64) {
    // SAFETY: callers pass a pointer into a map value, valid and 8-byte
    // aligned while the program runs; the add is atomic because a span's
    // goroutines run on several CPUs at once.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, value) };
}

#[inline(always)]
pub(crate) fn add_per_cpu(map: &PerCpuArray<u64>, index: u32, value: u64) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // Atomic even on this CPU's own slot: a uprobe program runs with
        // migration disabled, not preemption, so on a preemptible kernel
        // (preempt=full or lazy) another task's program can run on this CPU
        // between a plain load and store, and one of the two adds is lost.
        atomic_add(slot, value);
    }
}

/// CLOCK_MONOTONIC in ns: the clock Go's nanotime() reads.
#[inline(always)]
pub(crate) fn now_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns takes no arguments and cannot fail.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
pub(crate) fn count_hit(probe: ProbeId) {
    add_per_cpu(&PROBE_HITS, probe.index(), 1);
}

#[inline(always)]
pub(crate) fn count(counter: CounterId) {
    add_per_cpu(&COUNTERS, counter as u32, 1);
}

/// Adds one observation with fixed-point `weight` (WEIGHT_ONE = seen for
/// certain): the count slot gets the weight, the sum the weighted duration.
#[inline(always)]
pub(crate) fn record_at(base: u32, duration_ns: u64, weight: u64) {
    add_per_cpu(&HISTOGRAMS, base + time_hist::slot(duration_ns), weight);
    add_per_cpu(&HISTOGRAMS, base + time_hist::SUM_SLOT, duration_ns.wrapping_mul(weight) / WEIGHT_ONE);
}

/// Sends a notable event without waking the reader (a wakeup costs about a
/// microsecond inside a hot probe; userspace polls on a timer instead). A full
/// buffer is counted, never silent.
#[inline(always)]
pub(crate) fn notify(kind: u32, tgid: u32, goid: u64, start_ns: u64, end_ns: u64) {
    let event = Event { kind, tgid, goid, start_ns, end_ns };
    if EVENTS.output(&event, u64::from(BPF_RB_NO_WAKEUP)).is_err() {
        count(CounterId::EventsLost);
    }
}

/// The target a probe hit is in: its process, its slot (the uprobe's attach
/// cookie) and its configuration.
#[derive(Clone, Copy)]
pub(crate) struct Target {
    pub(crate) tgid: u32,
    pub(crate) slot: u32,
    pub(crate) config: &'static TargetConfig,
}

/// The current target, from the slot userspace attached this uprobe for;
/// None if that slot is not the current process's (freed, or reused).
#[inline(always)]
pub(crate) fn current_target(ctx: &ProbeContext) -> Option<Target> {
    // SAFETY: the helper only reads the cookie of the running program's link.
    let slot = unsafe { bpf_get_attach_cookie(ctx.as_ptr()) } as u32;
    // Userspace replaces a slot wholesale; a stale read costs one
    // mis-attributed hit at most.
    let target = TARGETS.get(slot)?;
    let tgid = if target.pidns_ino == 0 {
        (bpf_get_current_pid_tgid() >> 32) as u32
    } else {
        ns_tgid(target.pidns_dev, target.pidns_ino)?
    };
    (target.tgid == tgid).then_some(Target { tgid, slot, config: &target.config })
}

/// The current process's id in the pid namespace `dev`/`ino` (gort's);
/// None if the process is not in it or below it.
#[inline(always)]
fn ns_tgid(dev: u64, ino: u64) -> Option<u32> {
    let mut info = bpf_pidns_info { pid: 0, tgid: 0 };
    // SAFETY: the helper writes at most `size` bytes to `info`, a value on
    // this program's stack of exactly that size.
    let done =
        unsafe { bpf_get_ns_current_pid_tgid(dev, ino, &mut info, size_of::<bpf_pidns_info>() as u32) };
    (done == 0).then_some(info.tgid)
}

/// The stop-the-world books of target slot `slot`.
#[inline(always)]
pub(crate) fn target_gc(slot: u32) -> Option<&'static mut TargetGc> {
    let ptr = TARGET_GC.get_ptr_mut(slot)?;
    // SAFETY: a pointer into the array map's value for this slot, valid
    // while the program runs; stops of one process are serialised by its
    // runtime, and the total is added to atomically.
    Some(unsafe { &mut *ptr })
}
