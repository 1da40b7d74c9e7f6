//! GC probes: stop-the-world pauses. (GC assists need no probe of their
//! own: the runtime parks the assisting goroutine for them, with its own wait
//! reasons, so `casgstatus` sees them.)

use aya_ebpf::{macros::uprobe, programs::ProbeContext};
use gort_common::{CounterId, HistogramId, ProbeId, WEIGHT_ONE, event_kind, stw_reason};

use crate::{goabi::*, record::*};

/// Notes the start of a stop-the-world for the process.
#[inline(always)]
pub(crate) fn begin_stw(ctx: &ProbeContext, probe: ProbeId, start_ns: u64, reason: u64) -> u32 {
    let Some(target) = current_target(ctx) else {
        return 0;
    };
    count_hit(probe);
    if let Some(gc) = target_gc(target.slot) {
        (gc.stw_start_ns, gc.stw_reason) = (start_ns, reason & 0xff);
    }
    0
}

/// `runtime.stopTheWorldWithSema(reason stwReason)` (Go 1.21): stopping
/// begins now.
#[uprobe]
pub fn gort_stw_start(ctx: ProbeContext) -> u32 {
    begin_stw(&ctx, ProbeId::StopTheWorld, now_ns(), go_arg(&ctx, 0))
}

/// Entry of `runtime.startTheWorldWithSema(now int64, w worldStop)` (Go
/// 1.22+): `w.reason` (RBX) and `w.startedStopping` (RCX) are the runtime's
/// own start of the pause, taken after it acquired sched.lock. Using them
/// makes gort's pause the very interval runtime/metrics records.
#[uprobe]
pub fn gort_stw_args(ctx: ProbeContext) -> u32 {
    begin_stw(&ctx, ProbeId::StartTheWorldArgs, go_arg(&ctx, 2), go_arg(&ctx, 1))
}

/// A RET of `runtime.startTheWorldWithSema`, whose result is the runtime's
/// `nanotime()` when the world restarted (CLOCK_MONOTONIC, the clock of
/// bpf_ktime_get_ns): the pause ends exactly where the runtime says it does.
#[uprobe]
pub fn gort_stw_end(ctx: ProbeContext) -> u32 {
    let Some(target) = current_target(&ctx) else {
        return 0;
    };
    count_hit(ProbeId::StartTheWorldReturn);
    let Some(gc) = target_gc(target.slot) else {
        return 0;
    };
    let (start_ns, reason) = (gc.stw_start_ns, gc.stw_reason);
    if start_ns == 0 {
        return 0;
    }
    gc.stw_start_ns = 0;
    let end = match go_arg(&ctx, 0) {
        0 => now_ns(),
        now => now,
    };
    match reason {
        stw_reason::GC_MARK_TERM | stw_reason::GC_SWEEP_TERM => {
            let pause = end.saturating_sub(start_ns);
            record_at(HistogramId::GcPause.base(), pause, WEIGHT_ONE);
            atomic_add(&mut gc.stw_total_ns, pause);
            notify(event_kind::GC_PAUSE, target.tgid, 0, start_ns, end);
            if reason == stw_reason::GC_MARK_TERM {
                count(CounterId::GcCycles);
            }
        }
        _ => count(CounterId::OtherStw),
    }
    0
}
