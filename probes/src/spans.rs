//! Trace linkage: spans starting and ending on goroutines, goroutines
//! inheriting their creator's span, and each wait charged to the span active
//! on the goroutine.

use aya_ebpf::{bindings::BPF_RB_NO_WAKEUP, macros::uprobe, programs::ProbeContext};
use gort_common::{
    ActiveSpan, CounterId, Field, GoroutineState, ProbeId, SPAN_WAIT_SLOTS, SPAN_WAYS, STALL_FRAMES,
    SpanAccount, SpanEnd, SpanStall, SpanTotals, TargetConfig, span_record, span_set_first_slot,
};

use crate::{goabi::*, maps::*, record::*};

/// What a wait inside a span was.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Charge {
    Runnable,
    Parked,
    Assist,
}

/// The account of the span active on a goroutine, reached through the slot
/// the goroutine keeps: None once the span has ended (its slot freed, or
/// taken by another span).
#[inline(always)]
pub(crate) fn active_account(tgid: u32, active: ActiveSpan) -> Option<&'static mut SpanAccount> {
    // Most goroutines carry no span: no table read for them.
    if active.span_id == 0 {
        return None;
    }
    let ptr = SPANS.get_ptr_mut(active.slot)?;
    // SAFETY: a pointer into the array map's value for this slot, valid while
    // the program runs. Sums are atomic adds; a span ending on another CPU
    // meanwhile costs one wait of one of its goroutines at worst.
    let account = unsafe { &mut *ptr };
    account.holds(tgid, active.span_id).then_some(account)
}

/// The account of span `span_id`, whose SDK object is at `span_ptr`,
/// searched in the set of that address.
#[inline(always)]
fn find_account(tgid: u32, span_ptr: u64, span_id: u64) -> Option<&'static mut SpanAccount> {
    let first = span_set_first_slot(tgid, span_ptr);
    for way in 0..SPAN_WAYS {
        let Some(ptr) = SPANS.get_ptr_mut(first + way) else { continue };
        // SAFETY: as in active_account.
        let account = unsafe { &mut *ptr };
        if account.holds(tgid, span_id) && account.span_ptr == span_ptr {
            return Some(account);
        }
    }
    None
}

/// A slot for the account of a new span whose SDK object is at `span_ptr`:
/// the way of a span once at that address (never ended, or it would be free:
/// its object is gone), else a free way, else the way of the set's oldest
/// span. The first and last are displacements (counted): a span never ended
/// cannot hold a slot for ever.
#[inline(always)]
fn claim_account(tgid: u32, span_ptr: u64) -> Option<(u32, &'static mut SpanAccount)> {
    let first = span_set_first_slot(tgid, span_ptr);
    let (mut free, mut oldest_slot, mut oldest_start) = (None, first, u64::MAX);
    for way in 0..SPAN_WAYS {
        let slot = first + way;
        let Some(ptr) = SPANS.get_ptr_mut(slot) else { continue };
        // SAFETY: as in active_account.
        let account = unsafe { &mut *ptr };
        if account.was_at(tgid, span_ptr) {
            count(CounterId::SpansDisplaced);
            return Some((slot, account));
        }
        if account.span_id == 0 {
            free = free.or(Some(slot));
        } else if account.start_ns < oldest_start {
            (oldest_slot, oldest_start) = (slot, account.start_ns);
        }
    }
    let slot = match free {
        Some(slot) => slot,
        None => {
            count(CounterId::SpansDisplaced);
            oldest_slot
        }
    };
    let ptr = SPANS.get_ptr_mut(slot)?;
    // SAFETY: as in active_account.
    Some((slot, unsafe { &mut *ptr }))
}

/// Charges a wait of goroutine `gp` (state `st`) from `since` to `now` to
/// the span active on it; a wait at least the child-span threshold long is
/// also sent to userspace with its exact bounds.
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "one wait's facts, passed in registers")]
pub(crate) fn charge_span(
    config: &TargetConfig,
    tgid: u32,
    gp: u64,
    st: &GoroutineState,
    what: Charge,
    since: u64,
    now: u64,
    reason: u64,
) {
    if !config.has(Field::SpanContext) {
        return;
    }
    let active = st.span;
    let span_id = active.span_id;
    // A span that has ended has no account: goroutines that outlive it
    // are not charged to it.
    let Some(account) = active_account(tgid, active) else {
        return;
    };
    let waited = now.saturating_sub(since);
    // Sums are atomic adds; the "max" fields are plain stores, where a race
    // between two CPUs loses one candidate at worst.
    let totals: &mut SpanTotals = &mut account.totals;
    if active.inherited != 0 {
        // A goroutine the span started: its waits overlap the span's own
        // goroutine's and each other's, so they are not summed into the
        // span's wall time; the longest of each kind is kept, and stalls
        // go out flagged.
        match what {
            Charge::Runnable if waited > totals.started_max_runnable_ns => {
                totals.started_max_runnable_ns = waited
            }
            Charge::Parked if waited > totals.started_max_parked_ns => {
                totals.started_max_parked_ns = waited;
                totals.started_max_parked_reason = reason;
            }
            _ => {}
        }
        send_stall(config, tgid, gp, what, span_id, since, now, reason, span_record::STARTED_GOROUTINE);
        return;
    }
    match what {
        Charge::Runnable => {
            atomic_add(&mut totals.runnable_ns, waited);
            atomic_add(&mut totals.runnable_count, 1);
            if waited > totals.max_runnable_ns {
                totals.max_runnable_ns = waited;
                totals.max_runnable_end_ns = now;
            }
        }
        Charge::Parked => {
            let slot = config.wait_slot[(reason & 63) as usize] as usize & (SPAN_WAIT_SLOTS - 1);
            atomic_add(&mut totals.parked_ns[slot], waited);
            if waited > totals.max_parked_ns {
                totals.max_parked_ns = waited;
                totals.max_parked_end_ns = now;
                totals.max_parked_reason = reason;
            }
        }
        Charge::Assist => atomic_add(&mut totals.assist_ns, waited),
    }
    send_stall(config, tgid, gp, what, span_id, since, now, reason, 0);
}

/// Sends a wait at least the child-span threshold long to userspace with
/// its exact bounds (and the goroutine's id, read only then).
#[inline(always)]
#[expect(clippy::too_many_arguments, reason = "a stall record's fields, passed in registers")]
pub(crate) fn send_stall(
    config: &TargetConfig,
    tgid: u32,
    gp: u64,
    what: Charge,
    span_id: u64,
    since: u64,
    now: u64,
    reason: u64,
    flags: u32,
) {
    if now.saturating_sub(since) >= config.child_span_threshold_ns {
        let kind = match what {
            Charge::Runnable => span_record::RUNNABLE,
            Charge::Parked => span_record::PARKED,
            Charge::Assist => span_record::ASSIST,
        };
        // Written in place in the ring buffer: the record is too large for
        // the program's stack.
        let Some(mut entry) = SPAN_EVENTS.reserve::<SpanStall>(0) else {
            count(CounterId::SpanEventsLost);
            return;
        };
        let stall = entry.as_mut_ptr();
        // SAFETY: `stall` points at the reserved entry, as large as a
        // SpanStall and ours until submitted; every field is written below
        // before the entry is submitted (the pcs up to npcs; the rest are
        // zeroed first).
        unsafe {
            (*stall).kind = kind;
            (*stall).tgid = tgid;
            (*stall).span_id = span_id;
            (*stall).goid = read_goid(gp, config).unwrap_or(0);
            (*stall).start_ns = since;
            (*stall).end_ns = now;
            (*stall).reason = reason as u32;
            (*stall).flags = flags;
            (*stall)._pad = 0;
            (*stall).pcs = [0; STALL_FRAMES];
            // An assist is the goroutine running: its saved registers are
            // from before.
            (*stall).npcs = if what == Charge::Assist { 0 } else { park_site(gp, config, &mut (*stall).pcs) };
        }
        entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    }
}

/// Where goroutine `gp` waited, as it is woken (it has not run since it
/// parked, so `g.sched` still holds the registers it parked with): the
/// saved pc and the return addresses up its frame pointers, which must rise
/// (a stack that is not what it seems ends the walk). The number written.
#[inline(always)]
fn park_site(gp: u64, config: &TargetConfig, pcs: &mut [u64; STALL_FRAMES]) -> u32 {
    if !config.has(Field::GSched) || !config.has(Field::GobufPc) || !config.has(Field::GobufBp) {
        return 0;
    }
    let sched = config.offset(Field::GSched);
    let Some(pc) = read_u64(gp, sched + config.offset(Field::GobufPc)) else { return 0 };
    let Some(mut bp) = read_u64(gp, sched + config.offset(Field::GobufBp)) else { return 0 };
    if pc == 0 {
        return 0;
    }
    pcs[0] = pc;
    let mut n = 1;
    for i in 1..STALL_FRAMES {
        if bp == 0 || bp & 7 != 0 {
            break;
        }
        let Some([next, ret]) = read_frame(bp) else { break };
        if ret == 0 {
            break;
        }
        pcs[i] = ret;
        n = i as u32 + 1;
        if next <= bp {
            break;
        }
        bp = next;
    }
    n
}

/// A goroutine `newg` (state `st`) is being created, in `newproc1` on the
/// system stack of its creator's M (`g0`): it inherits the span active on
/// its creator (`g0.m.curg`, checked against `newg.parentGoid`), unless it is
/// one of the runtime's own. Done here, at the creation's state change,
/// rather than on a RET of newproc1, which the kernel would single-step.
#[inline(always)]
pub(crate) fn inherit_span(config: &TargetConfig, tgid: u32, g0: u64, newg: u64, st: &mut GoroutineState) {
    if !config.has(Field::SpanContext) || !config.has(Field::GParentGoid) {
        return;
    }
    let Some(creator) = curg_of_g0(g0, config) else {
        return;
    };
    let Some(cst) = gstate_if_seen(tgid, creator) else {
        return;
    };
    let span_id = cst.span.span_id;
    if span_id == 0 {
        return;
    }
    let parent = read_u64(newg, config.offset(Field::GParentGoid));
    if parent.is_none() || parent != read_goid(creator, config) {
        return;
    }
    // The runtime's own goroutines (a GC worker started during a request)
    // do not work for the span.
    if runtime_goroutine_flag(newg, tgid, config) != 0 {
        st.class = GoroutineState::RUNTIME;
        return;
    }
    st.class = GoroutineState::APPLICATION;
    let Some(account) = active_account(tgid, cst.span) else {
        return;
    };
    atomic_add(&mut account.totals.started_goroutines, 1);
    st.span = ActiveSpan { span_id, inherited: 1, slot: cst.span.slot };
}

/// The current process if it is a target with trace linkage on.
#[inline(always)]
pub(crate) fn linked_target(ctx: &ProbeContext) -> Option<Target> {
    current_target(ctx).filter(|t| t.config.has(Field::SpanContext))
}

/// The process's GC stop-the-world total so far.
#[inline(always)]
fn stw_total(slot: u32) -> u64 {
    target_gc(slot).map_or(0, |gc| gc.stw_total_ns)
}

/// The trace id and span id (16 + 8 bytes) of the SDK span at `span`, and
/// the span id as the u64 that keys the maps; None for an unreadable or
/// invalid (zero) span id.
#[inline(always)]
pub(crate) fn read_span_ids(span: u64, config: &TargetConfig) -> Option<([u8; 24], u64)> {
    let src = (span + u64::from(config.offset(Field::SpanContext))) as *const u8;
    let mut ids = [0u8; 24];
    // SAFETY: bpf_probe_read_user copies from the target's memory and fails
    // cleanly on a bad address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user_buf(src, &mut ids) }.ok()?;
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&ids[16..24]);
    let span_id = u64::from_le_bytes(span_id);
    (span_id != 0).then_some((ids, span_id))
}

/// `newRecordingSpan`'s call of `SetAttributes` on the new span: RAX is the
/// new `*recordingSpan`, R14 the goroutine starting it. The span takes a
/// slot of the span table and becomes the goroutine's active span (the
/// previous one is kept, to be restored at End).
#[uprobe]
pub fn gort_span_start(ctx: ProbeContext) -> u32 {
    let Some(Target { tgid, slot: target_slot, config }) = linked_target(&ctx) else {
        return 0;
    };
    count_hit(ProbeId::SpanStart);
    let Some(st) = gstate(tgid, current_g(&ctx)) else {
        return 0;
    };
    let span = go_arg0(&ctx);
    let Some((ids, span_id)) = read_span_ids(span, config) else {
        return 0;
    };
    let Some((slot, account)) = claim_account(tgid, span) else {
        return 0;
    };
    account.trace_id.copy_from_slice(&ids[..16]);
    account.prev = st.span;
    account.tgid = tgid;
    account._pad = 0;
    account.span_ptr = span;
    account.start_ns = now_ns();
    account.stw_at_start_ns = stw_total(target_slot);
    account.totals = SpanTotals::default();
    account.span_id = span_id;
    st.span = ActiveSpan { span_id, inherited: 0, slot };
    0
}

/// The account of the span at `span` if it is the span active on the
/// goroutine whose state is `st`, started there: the common case, in which
/// End needs no read of the span's ids from the target's memory.
#[inline(always)]
fn ending_active(tgid: u32, st: &GoroutineState, span: u64) -> Option<&'static mut SpanAccount> {
    if st.span.inherited != 0 {
        return None;
    }
    active_account(tgid, st.span).filter(|account| account.span_ptr == span)
}

/// Entry of the SDK's `(*recordingSpan).End`: RAX is the span, R14 the
/// goroutine ending it. Sends the span's totals to userspace and hands the
/// goroutine back to the span that was active before it.
#[uprobe]
pub fn gort_span_end(ctx: ProbeContext) -> u32 {
    let Some(Target { tgid, slot: target_slot, config }) = linked_target(&ctx) else {
        return 0;
    };
    count_hit(ProbeId::SpanEnd);
    let span = go_arg0(&ctx);
    let st = gstate_if_seen(tgid, current_g(&ctx));
    // Ended elsewhere than on the goroutine it is active on (or its start
    // unseen): found by its ids, read from the span.
    let (span_id, trace_id, account) = match st.as_deref().and_then(|st| ending_active(tgid, st, span)) {
        Some(account) => (account.span_id, account.trace_id, Some(account)),
        None => {
            let Some((ids, span_id)) = read_span_ids(span, config) else {
                return 0;
            };
            let mut trace_id = [0u8; 16];
            trace_id.copy_from_slice(&ids[..16]);
            (span_id, trace_id, find_account(tgid, span, span_id))
        }
    };
    let now = now_ns();
    let Some(mut entry) = SPAN_EVENTS.reserve::<SpanEnd>(0) else {
        count(CounterId::SpanEventsLost);
        return 0;
    };
    let record = entry.as_mut_ptr();
    // SAFETY: `record` is this program's exclusive ring-buffer reservation,
    // sized and aligned for a SpanEnd; every field is written before submit.
    unsafe {
        (*record).kind = span_record::END;
        (*record).tgid = tgid;
        (*record).span_id = span_id;
        (*record).trace_id = trace_id;
        (*record).end_ns = now;
        (*record)._pad = 0;
        match account {
            Some(account) => {
                (*record).start_ns = account.start_ns;
                (*record).flags = span_record::START_SEEN;
                (*record).totals = account.totals;
                let stw_now = stw_total(target_slot);
                (*record).totals.stw_ns = stw_now.saturating_sub(account.stw_at_start_ns);
                if let Some(st) = st
                    && st.span.span_id == span_id
                {
                    st.span = account.prev;
                }
                // Freed: goroutines still carrying the span find no account.
                account.span_id = 0;
            }
            None => {
                (*record).start_ns = 0;
                (*record).flags = 0;
                (*record).totals = SpanTotals::default();
            }
        }
    }
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    0
}
