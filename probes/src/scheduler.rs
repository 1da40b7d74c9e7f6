//! Scheduler probes: goroutine state changes (`casgstatus`), and the
//! deep-mode `execute`/`ready` hit counters.

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{bindings::BPF_NOEXIST, helpers::bpf_probe_read_user, macros::uprobe, programs::ProbeContext};
use gort_common::{
    CounterId, Field, GoroutineKey, HistogramId, Parked, ProbeId, RUNTIME_GOROUTINE, blocked_base,
    event_kind, gstatus, interval_weight,
};

use crate::{goabi::*, maps::*, record::*, spans::*};

/// Shared body of the probes whose first argument is a `*g`: count the hit and
/// record the goroutine id read at the DWARF-resolved `goid` offset.
#[inline(always)]
pub(crate) fn on_goroutine_arg(ctx: &ProbeContext, probe: ProbeId) -> u32 {
    let Some((tgid, config)) = current_target() else {
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
/// measures, there sampled 1 in 8); anything -> runnable opens one.
#[uprobe]
pub fn gort_casgstatus(ctx: ProbeContext) -> u32 {
    let Some((tgid, config)) = current_target() else {
        return 0;
    };
    count_hit(ProbeId::Casgstatus);
    let old = go_arg(&ctx, 1) as u32 & !gstatus::SCAN;
    let new = go_arg(&ctx, 2) as u32 & !gstatus::SCAN;
    // Go 1.27: a leaked goroutine is still parked where it was (its wait
    // goes on), and a dead one on an extra M is dead.
    if old == gstatus::WAITING && new == gstatus::LEAKED {
        return 0;
    }
    let old = match old {
        gstatus::LEAKED => gstatus::WAITING,
        gstatus::DEADEXTRA => gstatus::DEAD,
        other => other,
    };
    let new = if new == gstatus::DEADEXTRA { gstatus::DEAD } else { new };
    let Some(goid) = read_goid(go_arg(&ctx, 0), config) else {
        return 0;
    };
    let key = GoroutineKey { tgid, _pad: 0, goid };
    let now = now_ns();
    // Outside the window userspace announced (still attached while it
    // attaches or detaches) nothing is recorded, so the window the estimate
    // is scaled by is exactly the one measured.
    if !config.in_window(now) {
        return 0;
    }
    // Intervals opened before the current window were only partly seen.
    let fresh = |since: u64| since >= config.window_start_ns;
    if old == gstatus::RUNNABLE {
        // SAFETY: the value is copied out before the entry is removed.
        if let Some(since) = unsafe { RUNNABLE_SINCE.get(&key) }.copied() {
            if new == gstatus::RUNNING && fresh(since) {
                let waited = now.saturating_sub(since);
                let weight = interval_weight(waited, config.window_ns);
                record_at(HistogramId::ScheduleLatency.base(), waited, weight);
                if waited >= config.runnable_event_threshold_ns {
                    notify(event_kind::SCHEDULE_STALL, tgid, goid, since, now);
                }
                charge_span(config, &key, Charge::Runnable, since, now, 0);
            }
            let _ = RUNNABLE_SINCE.remove(&key);
        }
    }
    if old == gstatus::WAITING {
        // SAFETY: the value is copied out before the entry is removed.
        if let Some(parked) = unsafe { PARKED_SINCE.get(&key) }.copied() {
            if fresh(parked.since_ns) {
                let parked_ns = now.saturating_sub(parked.since_ns);
                let weight = interval_weight(parked_ns, config.window_ns);
                record_at(blocked_base(parked.reason), parked_ns, weight);
                if parked.reason & RUNTIME_GOROUTINE == 0 {
                    charge_span(config, &key, Charge::Parked, parked.since_ns, now, parked.reason);
                }
            }
            let _ = PARKED_SINCE.remove(&key);
        }
    }
    match new {
        gstatus::WAITING if config.has(Field::GWaitreason) => {
            // The runtime sets gp.waitreason before parking (gopark, casGToWaiting).
            let at = (go_arg(&ctx, 0) + u64::from(config.offset(Field::GWaitreason))) as *const u8;
            // SAFETY: bpf_probe_read_user copies from the target's memory and
            // fails cleanly on a bad address.
            let reason = unsafe { bpf_probe_read_user(at) }.map_or(0, u64::from)
                | runtime_goroutine_flag(go_arg(&ctx, 0), tgid, config);
            let _ = PARKED_SINCE.insert(&key, &Parked { since_ns: now, reason }, 0);
        }
        gstatus::RUNNABLE => {
            if old == gstatus::DEAD {
                count(CounterId::GoroutinesCreated);
            }
            let _ = RUNNABLE_SINCE.insert(&key, &now, 0);
        }
        gstatus::DEAD => {
            count(CounterId::GoroutinesExited);
            let _ = RUNNABLE_SINCE.remove(&key);
            let _ = PARKED_SINCE.remove(&key);
            let _ = ACTIVE_SPAN.remove(&key);
        }
        _ => {}
    }
    0
}
