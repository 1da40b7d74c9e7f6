//! Scheduler probes: goroutine state changes (`casgstatus`), and the
//! deep-mode `execute`/`ready` hit counters.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_probe_read_user, macros::uprobe, programs::ProbeContext};
use gort_common::{
    CounterId, Field, GC_ASSIST_WAIT_SLOT, GoroutineKey, GoroutineState, HistogramId, ProbeId,
    RUNTIME_GOROUTINE, blocked_base, event_kind, gstatus, interval_weight,
};

use crate::{goabi::*, maps::*, record::*, spans::*};

/// Shared body of the probes whose first argument is a `*g`: count the hit and
/// record the goroutine id read at the DWARF-resolved `goid` offset.
#[inline(always)]
pub(crate) fn on_goroutine_arg(ctx: &ProbeContext, probe: ProbeId) -> u32 {
    let Some(Target { tgid, config, .. }) = current_target(ctx) else {
        return 0;
    };
    count_hit(probe);
    let Some(goid) = read_goid(go_arg0(ctx), config) else {
        return 0;
    };
    let key = GoroutineKey { tgid, _pad: 0, goid };
    match GOIDS_SEEN.get_ptr_mut(&key) {
        // SAFETY: the pointer is into the (8-byte aligned) map value for `key`,
        // valid while the program runs. The add is atomic: `execute` on one
        // CPU and `ready` on another can hit the same goroutine at once.
        Some(hits) => unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(hits, 1) },
        None => {
            // Two CPUs can both miss; BPF_NOEXIST makes one insert win and
            // the other add to it instead of overwriting.
            if GOIDS_SEEN.insert(&key, &1, u64::from(BPF_NOEXIST)).is_err()
                && let Some(hits) = GOIDS_SEEN.get_ptr_mut(&key)
            {
                // SAFETY: as above.
                unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(hits, 1) };
            }
            0
        }
    };
    0
}

/// `runtime.execute(gp *g, inheritTime bool)`, on g0: `gp` is the goroutine
/// about to run (R14 is g0 here, so the argument register is the source).
#[uprobe]
pub fn gort_execute(ctx: ProbeContext) -> u32 {
    on_goroutine_arg(&ctx, ProbeId::Execute)
}

/// `runtime.ready(gp *g, traceskip int, next bool)`, on g0 via systemstack:
/// `gp` is the goroutine being made runnable.
#[uprobe]
pub fn gort_ready(ctx: ProbeContext) -> u32 {
    on_goroutine_arg(&ctx, ProbeId::Ready)
}

/// `runtime.casgstatus(gp *g, oldval, newval uint32)`: the one place every
/// goroutine state change passes. Runnable -> running closes a scheduling
/// latency interval (the same interval the runtime's /sched/latencies
/// measures, there sampled 1 in 8); anything -> runnable opens one. One
/// lookup of the goroutine's state, updated in place; `g.goid` is read only
/// for a notable event.
#[uprobe]
pub fn gort_casgstatus(ctx: ProbeContext) -> u32 {
    on_casgstatus(&ctx)
}

/// `gort_casgstatus` as a multi-uprobe program: every call site of
/// `casgstatus` in one link, attached and detached in one step at each
/// sampling window's edges (one link per site took long enough to detach
/// that the probe kept firing well past the window). Userspace loads it
/// where the kernel filters such links by process, else the one above.
#[uprobe(multi)]
pub fn gort_casgstatus_multi(ctx: ProbeContext) -> u32 {
    on_casgstatus(&ctx)
}

#[inline(always)]
fn on_casgstatus(ctx: &ProbeContext) -> u32 {
    let Some(Target { tgid, config, .. }) = current_target(ctx) else {
        return 0;
    };
    count_hit(ProbeId::Casgstatus);
    let Some((old, new)) = gstatus::normalise(go_arg(ctx, 1) as u32, go_arg(ctx, 2) as u32) else {
        return 0;
    };
    let now = now_ns();
    // Outside the window userspace announced (still attached while it
    // attaches or detaches) nothing is recorded, so the window the estimate
    // is scaled by is exactly the one measured.
    if !config.in_window(now) {
        return 0;
    }
    // Transitions that neither end a wait gort measures nor start one
    // (running <-> syscall, the copystack dance of a running goroutine)
    // need nothing: no lookup. Where the runtime's call site says so in
    // constants, userspace does not even probe it.
    if !gstatus::measured(old) && !gstatus::measured(new) {
        return 0;
    }
    let gp = go_arg(ctx, 0);
    let state = if new == gstatus::DEAD { gstate_if_seen(tgid, gp) } else { gstate(tgid, gp) };
    let Some(st) = state else {
        if new == gstatus::DEAD {
            count(CounterId::GoroutinesExited);
        }
        return 0;
    };
    // Intervals opened before the current window were only partly seen.
    let fresh = |since: u64| since != 0 && since >= config.window_start_ns;
    if old == gstatus::RUNNABLE {
        let since = st.runnable_since;
        st.runnable_since = 0;
        if new == gstatus::RUNNING && fresh(since) {
            let waited = now.saturating_sub(since);
            let weight = interval_weight(waited, config.window_ns);
            record_at(HistogramId::ScheduleLatency.base(), waited, weight);
            if waited >= config.runnable_event_threshold_ns {
                notify(event_kind::SCHEDULE_STALL, tgid, read_goid(gp, config).unwrap_or(0), since, now);
            }
            if st.span.span_id != 0 {
                charge_span(config, tgid, gp, st, Charge::Runnable, since, now, 0);
            }
        }
    }
    if old == gstatus::WAITING {
        let since = st.parked_since;
        st.parked_since = 0;
        if fresh(since) {
            let reason = st.parked_reason;
            let parked_ns = now.saturating_sub(since);
            let weight = interval_weight(parked_ns, config.window_ns);
            record_at(blocked_base(reason), parked_ns, weight);
            if reason & RUNTIME_GOROUTINE == 0 && st.span.span_id != 0 {
                // An assist is a park of the runtime's making (gcAssistAlloc1
                // parks its goroutine while it marks): it is the span's GC
                // assist time, seen here rather than by probes on
                // gcAssistAlloc, whose RETs the kernel would single-step.
                let what = match config.wait_slot[(reason & 63) as usize] {
                    GC_ASSIST_WAIT_SLOT => Charge::Assist,
                    _ => Charge::Parked,
                };
                charge_span(config, tgid, gp, st, what, since, now, reason);
            }
        }
    }
    match new {
        gstatus::WAITING if config.has(Field::GWaitreason) => {
            // The runtime sets gp.waitreason before parking (gopark, casGToWaiting).
            let at = (gp + u64::from(config.offset(Field::GWaitreason))) as *const u8;
            // SAFETY: bpf_probe_read_user copies from the target's memory and
            // fails cleanly on a bad address.
            let reason = unsafe { bpf_probe_read_user(at) }.map_or(0, u64::from);
            if st.class == 0 {
                st.class = match runtime_goroutine_flag(gp, tgid, config) {
                    0 => GoroutineState::APPLICATION,
                    _ => GoroutineState::RUNTIME,
                };
            }
            let flag = if st.class == GoroutineState::RUNTIME { RUNTIME_GOROUTINE } else { 0 };
            st.parked_since = now;
            st.parked_reason = reason | flag;
            // Go 1.23+ can create a goroutine parked.
            if old == gstatus::DEAD {
                inherit_span(config, tgid, current_g(ctx), gp, st);
            }
        }
        gstatus::RUNNABLE => {
            if old == gstatus::DEAD {
                count(CounterId::GoroutinesCreated);
                inherit_span(config, tgid, current_g(ctx), gp, st);
            }
            st.runnable_since = now;
        }
        gstatus::DEAD => {
            count(CounterId::GoroutinesExited);
            // The g may be recycled for another goroutine: nothing carries over.
            *st = GoroutineState::default();
        }
        _ => {}
    }
    0
}
