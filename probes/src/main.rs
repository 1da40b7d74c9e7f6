//! gort's eBPF programs: uprobes on Go runtime functions of the processes gort
//! watches. They only read user memory (no `bpf_probe_write_user`), so gort
//! works under kernel lockdown, and they aggregate in maps so that userspace
//! reads totals instead of one event per hit.
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so core's AtomicU64 offers no
// fetch_add; the intrinsic lowers to BPF's atomic add instruction.
#![allow(internal_features)]
#![feature(core_intrinsics)]

use core::intrinsics::{AtomicOrdering, atomic_xadd};

use aya_ebpf::{
    bindings::{BPF_NOEXIST, BPF_RB_NO_WAKEUP},
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{HashMap, LruHashMap, PerCpuArray, RingBuf},
    programs::ProbeContext,
};
use gort_common::{
    ActiveSpan, CounterId, EVENTS_BYTES, EntryKey, Event, GoroutineKey, HISTOGRAMS as HISTOGRAM_COUNT,
    HistogramId, MAX_COUNTERS, MAX_GOIDS_SEEN, MAX_PROBES, MAX_RUNTIME_ENTRIES, MAX_SPANS, MAX_TARGETS,
    NO_OFFSET, Parked, ProbeId, RUNTIME_GOROUTINE, SPAN_EVENTS_BYTES, SPAN_WAIT_SLOTS, SpanAccount, SpanEnd,
    SpanKey, SpanStall, SpanTotals, StwStart, TargetConfig, WEIGHT_ONE, blocked_base, event_kind, gstatus,
    interval_weight, span_record, stw_reason, time_hist,
};

#[map(name = "GORT_TARGETS")]
static TARGETS: HashMap<u32, TargetConfig> = HashMap::with_max_entries(MAX_TARGETS, 0);

#[map(name = "GORT_PROBE_HITS")]
static PROBE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_PROBES, 0);

#[map(name = "GORT_GOIDS_SEEN")]
static GOIDS_SEEN: LruHashMap<GoroutineKey, u64> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

/// All histograms, SLOTS counters each, per CPU (summed by userspace).
#[map(name = "GORT_HISTOGRAMS")]
static HISTOGRAMS: PerCpuArray<u64> = PerCpuArray::with_max_entries(HISTOGRAM_COUNT * time_hist::SLOTS, 0);

#[map(name = "GORT_COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_COUNTERS, 0);

/// When each runnable goroutine became runnable. Keyed by (pid, goid), not by
/// the g pointer, because g structs are recycled; an LRU so that goroutines
/// that die unseen cannot fill it.
#[map(name = "GORT_RUNNABLE_SINCE")]
static RUNNABLE_SINCE: LruHashMap<GoroutineKey, u64> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

/// Parked goroutines: since when, and the wait reason, keyed like
/// RUNNABLE_SINCE.
#[map(name = "GORT_PARKED_SINCE")]
static PARKED_SINCE: LruHashMap<GoroutineKey, Parked> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

/// Notable events for userspace, which drains it on a timer.
#[map(name = "GORT_EVENTS")]
static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_BYTES, 0);

/// The stop-the-world in progress, per process.
#[map(name = "GORT_STW")]
static STW: HashMap<u32, StwStart> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Goroutine -> the span active on it (its span id), for goroutines of
/// targets with trace linkage.
#[map(name = "GORT_ACTIVE_SPAN")]
static ACTIVE_SPAN: LruHashMap<GoroutineKey, ActiveSpan> = LruHashMap::with_max_entries(MAX_SPANS, 0);

/// Spans in flight and what the runtime did to them so far.
#[map(name = "GORT_SPANS")]
static SPANS: LruHashMap<SpanKey, SpanAccount> = LruHashMap::with_max_entries(MAX_SPANS, 0);

/// Span ends and the stalls inside spans, for userspace's join with the
/// spans the service exports.
#[map(name = "GORT_SPAN_EVENTS")]
static SPAN_EVENTS: RingBuf = RingBuf::with_byte_size(SPAN_EVENTS_BYTES, 0);

/// Total GC stop-the-world ns per process, so that a span's share is the
/// difference between its end and its start.
#[map(name = "GORT_STW_TOTAL")]
static STW_TOTAL: HashMap<u32, u64> = HashMap::with_max_entries(MAX_TARGETS, 0);

/// Goroutines inside a GC assist, since when.
#[map(name = "GORT_ASSIST_SINCE")]
static ASSIST_SINCE: LruHashMap<GoroutineKey, u64> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

/// Code addresses at which the runtime's own goroutines start (GC workers,
/// sweeper, scavenger, ...), per target: their waits are kept apart from
/// the application's.
#[map(name = "GORT_RUNTIME_ENTRIES")]
static RUNTIME_ENTRIES: HashMap<EntryKey, u8> = HashMap::with_max_entries(MAX_RUNTIME_ENTRIES, 0);

/// Room to build a SpanAccount: at 296 bytes it would take over half the BPF stack.
#[map(name = "GORT_SPAN_SCRATCH")]
static SPAN_SCRATCH: PerCpuArray<SpanAccount> = PerCpuArray::with_max_entries(1, 0);

/// First integer argument of a Go function under the register ABI (Go >= 1.17
/// on amd64, >= 1.18 on arm64): RAX on amd64, X0 on arm64. Not the C ABI's
/// first argument register, so `ProbeContext::arg` does not apply.
#[inline(always)]
fn go_arg0(ctx: &ProbeContext) -> u64 {
    // SAFETY: `regs` points at the pt_regs the kernel hands every uprobe
    // program; reading a field of it is always valid.
    #[cfg(bpf_target_arch = "x86_64")]
    let value = unsafe { (*ctx.regs).rax };
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let value = unsafe { (*ctx.regs).regs[0] };
    value
}

/// Go register-ABI argument `n` (0-based) on amd64: RAX, RBX, RCX; arm64: X0-X2.
#[inline(always)]
fn go_arg(ctx: &ProbeContext, n: usize) -> u64 {
    // SAFETY: `regs` points at the pt_regs the kernel hands every uprobe
    // program; reading a field of it is always valid.
    #[cfg(bpf_target_arch = "x86_64")]
    let value = unsafe {
        match n {
            0 => (*ctx.regs).rax,
            1 => (*ctx.regs).rbx,
            _ => (*ctx.regs).rcx,
        }
    };
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let value = unsafe { (*ctx.regs).regs[n & 7] };
    value
}

/// The current goroutine (`g`) under the register ABI: R14 on amd64, X28 on
/// arm64. Only meaningful in functions that run on the goroutine's own
/// stack (not on g0, as `execute` and `ready` do).
#[inline(always)]
fn current_g(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in go_arg0: a field of the kernel-provided pt_regs.
    #[cfg(bpf_target_arch = "x86_64")]
    let value = unsafe { (*ctx.regs).r14 };
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let value = unsafe { (*ctx.regs).regs[28] };
    value
}

#[inline(always)]
fn atomic_add(slot: *mut u64, value: u64) {
    // SAFETY: callers pass a pointer into a map value, valid and 8-byte
    // aligned while the program runs; the add is atomic because a span's
    // goroutines run on several CPUs at once.
    unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(slot, value) };
}

#[inline(always)]
fn add_per_cpu(map: &PerCpuArray<u64>, index: u32, value: u64) {
    if let Some(slot) = map.get_ptr_mut(index) {
        // SAFETY: a per-CPU slot is only touched by the program running on this
        // CPU, and BPF programs are not preempted mid-run on their CPU.
        unsafe { *slot += value };
    }
}

/// CLOCK_MONOTONIC in ns: the clock Go's nanotime() reads.
#[inline(always)]
fn now_ns() -> u64 {
    // SAFETY: bpf_ktime_get_ns takes no arguments and cannot fail.
    unsafe { bpf_ktime_get_ns() }
}

#[inline(always)]
fn count_hit(probe: ProbeId) {
    add_per_cpu(&PROBE_HITS, probe.index(), 1);
}

#[inline(always)]
fn count(counter: CounterId) {
    add_per_cpu(&COUNTERS, counter as u32, 1);
}

/// Adds one observation with fixed-point `weight` (WEIGHT_ONE = seen for
/// certain): the count slot gets the weight, the sum the weighted duration.
#[inline(always)]
fn record_at(base: u32, duration_ns: u64, weight: u64) {
    add_per_cpu(&HISTOGRAMS, base + time_hist::slot(duration_ns), weight);
    add_per_cpu(&HISTOGRAMS, base + time_hist::SUM_SLOT, duration_ns.wrapping_mul(weight) / WEIGHT_ONE);
}

/// Sends a notable event without waking the reader (a wakeup costs about a
/// microsecond inside a hot probe; userspace polls on a timer instead). A full
/// buffer is counted, never silent.
#[inline(always)]
fn notify(kind: u32, tgid: u32, goid: u64, start_ns: u64, end_ns: u64) {
    let event = Event { kind, tgid, goid, start_ns, end_ns };
    if EVENTS.output(&event, u64::from(BPF_RB_NO_WAKEUP)).is_err() {
        count(CounterId::EventsLost);
    }
}

#[inline(always)]
fn current_target() -> Option<(u32, &'static TargetConfig)> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: lookups return a pointer into a map value that userspace only
    // replaces wholesale; a stale read costs one mis-attributed hit at most.
    unsafe { TARGETS.get(&tgid) }.map(|c| (tgid, c))
}

#[inline(always)]
fn read_goid(gp: u64, config: &TargetConfig) -> Option<u64> {
    if gp == 0 {
        return None;
    }
    let goid_ptr = (gp + u64::from(config.goid_offset)) as *const u64;
    // SAFETY: bpf_probe_read_user copies from the target's memory and fails
    // cleanly on a bad address; nothing is dereferenced directly.
    unsafe { bpf_probe_read_user(goid_ptr) }.ok()
}

/// `RUNTIME_GOROUTINE` if the goroutine `gp` started at one of the
/// runtime's entries (the runtime's own `isSystemGoroutine` rule), else 0.
#[inline(always)]
fn runtime_goroutine_flag(gp: u64, tgid: u32, config: &TargetConfig) -> u64 {
    if config.startpc_offset == NO_OFFSET {
        return 0;
    }
    let at = (gp + u64::from(config.startpc_offset)) as *const u64;
    // SAFETY: bpf_probe_read_user copies from the target's memory and fails
    // cleanly on a bad address.
    let Ok(pc) = (unsafe { bpf_probe_read_user(at) }) else {
        return 0;
    };
    // SAFETY: only whether the entry exists is used.
    match unsafe { RUNTIME_ENTRIES.get(&EntryKey { tgid, _pad: 0, pc }) } {
        Some(_) => RUNTIME_GOROUTINE,
        None => 0,
    }
}

/// Shared body of the probes whose first argument is a `*g`: count the hit and
/// record the goroutine id read at the DWARF-resolved `goid` offset.
#[inline(always)]
fn on_goroutine_arg(ctx: &ProbeContext, probe: ProbeId) -> u32 {
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
                if waited >= config.stall_threshold_ns {
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
        gstatus::WAITING if config.waitreason_offset != NO_OFFSET => {
            // The runtime sets gp.waitreason before parking (gopark, casGToWaiting).
            let at = (go_arg(&ctx, 0) + u64::from(config.waitreason_offset)) as *const u8;
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

/// Notes the start of a stop-the-world for the process.
#[inline(always)]
fn begin_stw(probe: ProbeId, start_ns: u64, reason: u64) -> u32 {
    let Some((tgid, _)) = current_target() else {
        return 0;
    };
    count_hit(probe);
    let _ = STW.insert(&tgid, &StwStart { start_ns, reason: reason & 0xff }, 0);
    0
}

/// `runtime.stopTheWorldWithSema(reason stwReason)` (Go 1.21): stopping
/// begins now.
#[uprobe]
pub fn gort_stw_start(ctx: ProbeContext) -> u32 {
    begin_stw(ProbeId::StopTheWorld, now_ns(), go_arg(&ctx, 0))
}

/// Entry of `runtime.startTheWorldWithSema(now int64, w worldStop)` (Go
/// 1.22+): `w.reason` (RBX) and `w.startedStopping` (RCX) are the runtime's
/// own start of the pause, taken after it acquired sched.lock. Using them
/// makes gort's pause the very interval runtime/metrics records.
#[uprobe]
pub fn gort_stw_args(ctx: ProbeContext) -> u32 {
    begin_stw(ProbeId::StartTheWorldArgs, go_arg(&ctx, 2), go_arg(&ctx, 1))
}

/// A RET of `runtime.startTheWorldWithSema`, whose result is the runtime's
/// `nanotime()` when the world restarted (CLOCK_MONOTONIC, the clock of
/// bpf_ktime_get_ns): the pause ends exactly where the runtime says it does.
#[uprobe]
pub fn gort_stw_end(ctx: ProbeContext) -> u32 {
    let Some((tgid, _)) = current_target() else {
        return 0;
    };
    count_hit(ProbeId::StartTheWorldReturn);
    // SAFETY: copied out before the entry is removed.
    let Some(start) = (unsafe { STW.get(&tgid) }).copied() else {
        return 0;
    };
    let _ = STW.remove(&tgid);
    let end = match go_arg(&ctx, 0) {
        0 => now_ns(),
        now => now,
    };
    match start.reason {
        stw_reason::GC_MARK_TERM | stw_reason::GC_SWEEP_TERM => {
            let pause = end.saturating_sub(start.start_ns);
            record_at(HistogramId::GcPause.base(), pause, WEIGHT_ONE);
            match STW_TOTAL.get_ptr_mut(&tgid) {
                Some(total) => atomic_add(total, pause),
                None => {
                    let _ = STW_TOTAL.insert(&tgid, &pause, 0);
                }
            }
            notify(event_kind::GC_PAUSE, tgid, 0, start.start_ns, end);
            if start.reason == stw_reason::GC_MARK_TERM {
                count(CounterId::GcCycles);
            }
        }
        _ => count(CounterId::OtherStw),
    }
    0
}

/// What a wait inside a span was.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Charge {
    Runnable,
    Parked,
    Assist,
}

/// Charges a wait of goroutine `key` from `since` to `now` to the span active
/// on it, if any; a wait at least the stall threshold long is also sent to
/// userspace with its exact bounds.
#[inline(always)]
fn charge_span(config: &TargetConfig, key: &GoroutineKey, what: Charge, since: u64, now: u64, reason: u64) {
    if config.span_context_offset == NO_OFFSET {
        return;
    }
    // SAFETY: copied out of the map value at once.
    let Some(active) = (unsafe { ACTIVE_SPAN.get(key) }).copied() else {
        return;
    };
    let span_id = active.span_id;
    // A span that has ended has no account: goroutines that outlive it
    // are not charged to it.
    let Some(account) = SPANS.get_ptr_mut(&SpanKey { tgid: key.tgid, _pad: 0, span_id }) else {
        return;
    };
    let waited = now.saturating_sub(since);
    // SAFETY: `account` points into the map value for this span, valid while
    // the program runs. Sums are atomic adds; the "max" fields are plain
    // stores, where a race between two CPUs loses one candidate at worst.
    let totals: &mut SpanTotals = unsafe { &mut (*account).totals };
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
        send_stall(config, key, what, span_id, since, now, reason, span_record::STARTED_GOROUTINE);
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
    send_stall(config, key, what, span_id, since, now, reason, 0);
}

/// Sends a wait at least the stall threshold long to userspace with its
/// exact bounds.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn send_stall(
    config: &TargetConfig,
    key: &GoroutineKey,
    what: Charge,
    span_id: u64,
    since: u64,
    now: u64,
    reason: u64,
    flags: u32,
) {
    if now.saturating_sub(since) >= config.span_stall_threshold_ns {
        let kind = match what {
            Charge::Runnable => span_record::RUNNABLE,
            Charge::Parked => span_record::PARKED,
            Charge::Assist => span_record::ASSIST,
        };
        let stall = SpanStall {
            kind,
            tgid: key.tgid,
            span_id,
            goid: key.goid,
            start_ns: since,
            end_ns: now,
            reason: reason as u32,
            flags,
        };
        if SPAN_EVENTS.output(&stall, u64::from(BPF_RB_NO_WAKEUP)).is_err() {
            count(CounterId::SpanEventsLost);
        }
    }
}

/// The current process if it is a target with trace linkage on.
#[inline(always)]
fn linked_target() -> Option<(u32, &'static TargetConfig)> {
    current_target().filter(|(_, c)| c.span_context_offset != NO_OFFSET)
}

/// The trace id and span id (16 + 8 bytes) of the SDK span at `span`, and
/// the span id as the u64 that keys the maps; None for an unreadable or
/// invalid (zero) span id.
#[inline(always)]
fn read_span_ids(span: u64, config: &TargetConfig) -> Option<([u8; 24], u64)> {
    let src = (span + u64::from(config.span_context_offset)) as *const u8;
    let mut ids = [0u8; 24];
    // SAFETY: bpf_probe_read_user copies from the target's memory and fails
    // cleanly on a bad address.
    unsafe { aya_ebpf::helpers::bpf_probe_read_user_buf(src, &mut ids) }.ok()?;
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&ids[16..24]);
    let span_id = u64::from_le_bytes(span_id);
    (span_id != 0).then_some((ids, span_id))
}

/// RET of the SDK's `(*tracer).newRecordingSpan`: RAX is the new
/// `*recordingSpan`, R14 the goroutine starting it. The span becomes the
/// goroutine's active span (the previous one is kept, to be restored at End).
#[uprobe]
pub fn gort_span_start(ctx: ProbeContext) -> u32 {
    let Some((tgid, config)) = linked_target() else {
        return 0;
    };
    count_hit(ProbeId::SpanStart);
    let Some(goid) = read_goid(current_g(&ctx), config) else {
        return 0;
    };
    let Some(scratch) = SPAN_SCRATCH.get_ptr_mut(0) else {
        return 0;
    };
    // SAFETY: the per-CPU scratch value is only used by this program on this
    // CPU, to completion, and BPF programs are not preempted mid-run.
    let account = unsafe { &mut *scratch };
    let Some((ids, span_id)) = read_span_ids(go_arg0(&ctx), config) else {
        return 0;
    };
    account.trace_id.copy_from_slice(&ids[..16]);
    account.span_id = span_id;
    let gkey = GoroutineKey { tgid, _pad: 0, goid };
    // SAFETY: copied out at once.
    let prev = unsafe { ACTIVE_SPAN.get(&gkey) }.copied().unwrap_or_default();
    account.prev_span = prev.span_id;
    account.prev_inherited = prev.inherited;
    account.start_goid = goid;
    account.start_ns = now_ns();
    // SAFETY: copied out at once.
    account.stw_at_start_ns = unsafe { STW_TOTAL.get(&tgid) }.copied().unwrap_or(0);
    account.totals = SpanTotals::default();
    let _ = SPANS.insert(&SpanKey { tgid, _pad: 0, span_id }, account, 0);
    let _ = ACTIVE_SPAN.insert(&gkey, &ActiveSpan { span_id, inherited: 0 }, 0);
    0
}

/// Entry of the SDK's `(*recordingSpan).End`: RAX is the span, R14 the
/// goroutine ending it. Sends the span's totals to userspace and hands the
/// goroutine back to the span that was active before it.
#[uprobe]
pub fn gort_span_end(ctx: ProbeContext) -> u32 {
    let Some((tgid, config)) = linked_target() else {
        return 0;
    };
    count_hit(ProbeId::SpanEnd);
    let Some((ids, span_id)) = read_span_ids(go_arg0(&ctx), config) else {
        return 0;
    };
    let goid = read_goid(current_g(&ctx), config).unwrap_or(0);
    let key = SpanKey { tgid, _pad: 0, span_id };
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
        (*record).trace_id.copy_from_slice(&ids[..16]);
        (*record).goid = goid;
        (*record).end_ns = now;
        (*record)._pad = 0;
        // SAFETY (get): the value is only read, then the entry removed.
        match SPANS.get(&key) {
            Some(account) => {
                (*record).start_ns = account.start_ns;
                (*record).flags = span_record::START_SEEN;
                (*record).totals = account.totals;
                let stw_now = STW_TOTAL.get(&tgid).copied().unwrap_or(0);
                (*record).totals.stw_ns = stw_now.saturating_sub(account.stw_at_start_ns);
                let gkey = GoroutineKey { tgid, _pad: 0, goid };
                if ACTIVE_SPAN.get(&gkey).is_some_and(|a| a.span_id == span_id) {
                    if account.prev_span == 0 {
                        let _ = ACTIVE_SPAN.remove(&gkey);
                    } else {
                        let prev =
                            ActiveSpan { span_id: account.prev_span, inherited: account.prev_inherited };
                        let _ = ACTIVE_SPAN.insert(&gkey, &prev, 0);
                    }
                }
            }
            None => {
                (*record).start_ns = 0;
                (*record).flags = 0;
                (*record).totals = SpanTotals::default();
            }
        }
    }
    entry.submit(u64::from(BPF_RB_NO_WAKEUP));
    let _ = SPANS.remove(&key);
    0
}

/// RET of `runtime.newproc1` (on g0): RAX is the new goroutine, whose
/// `parentGoid` names its creator; it inherits the creator's active span.
#[uprobe]
pub fn gort_newproc(ctx: ProbeContext) -> u32 {
    let Some((tgid, config)) = linked_target() else {
        return 0;
    };
    count_hit(ProbeId::Newproc);
    if config.parent_goid_offset == NO_OFFSET {
        return 0;
    }
    let newg = go_arg0(&ctx);
    let Some(goid) = read_goid(newg, config) else {
        return 0;
    };
    let at = (newg + u64::from(config.parent_goid_offset)) as *const u64;
    // SAFETY: bpf_probe_read_user fails cleanly on a bad address.
    let Ok(parent) = (unsafe { bpf_probe_read_user(at) }) else {
        return 0;
    };
    // SAFETY: copied out at once.
    let Some(active) = (unsafe { ACTIVE_SPAN.get(&GoroutineKey { tgid, _pad: 0, goid: parent }) }).copied()
    else {
        return 0;
    };
    // The runtime's own goroutines (a GC worker started during a request)
    // do not work for the span.
    if runtime_goroutine_flag(newg, tgid, config) != 0 {
        return 0;
    }
    let Some(account) = SPANS.get_ptr_mut(&SpanKey { tgid, _pad: 0, span_id: active.span_id }) else {
        return 0;
    };
    // SAFETY: a pointer into this span's map value, valid while the program runs.
    atomic_add(unsafe { &mut (*account).totals.started_goroutines }, 1);
    let inherited = ActiveSpan { span_id: active.span_id, inherited: 1 };
    let _ = ACTIVE_SPAN.insert(&GoroutineKey { tgid, _pad: 0, goid }, &inherited, 0);
    0
}

/// Entry of `runtime.gcAssistAlloc(gp *g)`, on the assisting goroutine.
#[uprobe]
pub fn gort_assist_start(ctx: ProbeContext) -> u32 {
    let Some((tgid, config)) = linked_target() else {
        return 0;
    };
    count_hit(ProbeId::AssistStart);
    if let Some(goid) = read_goid(go_arg0(&ctx), config) {
        let _ = ASSIST_SINCE.insert(&GoroutineKey { tgid, _pad: 0, goid }, &now_ns(), 0);
    }
    0
}

/// A RET of `runtime.gcAssistAlloc`: the assist's time goes to the
/// goroutine's span (R14 is the goroutine again: the function runs on its stack).
#[uprobe]
pub fn gort_assist_end(ctx: ProbeContext) -> u32 {
    let Some((tgid, config)) = linked_target() else {
        return 0;
    };
    count_hit(ProbeId::AssistEnd);
    let Some(goid) = read_goid(current_g(&ctx), config) else {
        return 0;
    };
    let key = GoroutineKey { tgid, _pad: 0, goid };
    // SAFETY: copied out before the entry is removed.
    let Some(since) = (unsafe { ASSIST_SINCE.get(&key) }).copied() else {
        return 0;
    };
    let _ = ASSIST_SINCE.remove(&key);
    charge_span(config, &key, Charge::Assist, since, now_ns(), 0);
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
