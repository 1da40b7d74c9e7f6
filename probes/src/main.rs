//! gort's eBPF programs: uprobes on Go runtime functions of the processes gort
//! watches. They only read user memory (no `bpf_probe_write_user`), so gort
//! works under kernel lockdown, and they aggregate in maps so that userspace
//! reads totals instead of one event per hit.
#![no_std]
#![no_main]

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_user},
    macros::{map, uprobe},
    maps::{HashMap, LruHashMap, PerCpuArray},
    programs::ProbeContext,
};
use gort_common::{GoroutineKey, MAX_GOIDS_SEEN, MAX_PROBES, MAX_TARGETS, ProbeId, TargetConfig};

#[map(name = "GORT_TARGETS")]
static TARGETS: HashMap<u32, TargetConfig> = HashMap::with_max_entries(MAX_TARGETS, 0);

#[map(name = "GORT_PROBE_HITS")]
static PROBE_HITS: PerCpuArray<u64> = PerCpuArray::with_max_entries(MAX_PROBES, 0);

#[map(name = "GORT_GOIDS_SEEN")]
static GOIDS_SEEN: LruHashMap<GoroutineKey, u64> = LruHashMap::with_max_entries(MAX_GOIDS_SEEN, 0);

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

#[inline(always)]
fn count_hit(probe: ProbeId) {
    if let Some(slot) = PROBE_HITS.get_ptr_mut(probe.index()) {
        // SAFETY: a per-CPU slot is only touched by the program running on this
        // CPU, and BPF programs are not preempted mid-run on their CPU.
        unsafe { *slot += 1 };
    }
}

/// Shared body of the probes whose first argument is a `*g`: count the hit and
/// record the goroutine id read at the DWARF-resolved `goid` offset.
#[inline(always)]
fn on_goroutine_arg(ctx: &ProbeContext, probe: ProbeId) -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: lookups return a pointer into a map value that userspace only
    // replaces wholesale; a stale read costs one mis-attributed hit at most.
    let Some(config) = (unsafe { TARGETS.get(&tgid) }) else {
        return 0;
    };
    count_hit(probe);
    let gp = go_arg0(ctx);
    if gp == 0 {
        return 0;
    }
    let goid_ptr = (gp + u64::from(config.goid_offset)) as *const u64;
    // SAFETY: bpf_probe_read_user copies from the target's memory and fails
    // cleanly on a bad address; nothing is dereferenced directly.
    let Ok(goid) = (unsafe { bpf_probe_read_user(goid_ptr) }) else {
        return 0;
    };
    let key = GoroutineKey { tgid, _pad: 0, goid };
    match GOIDS_SEEN.get_ptr_mut(&key) {
        // SAFETY: the pointer is into the map value for `key`; concurrent
        // increments of one goroutine's counter are rare and a lost one is
        // harmless for a hit count.
        Some(hits) => unsafe { *hits += 1 },
        None => {
            let _ = GOIDS_SEEN.insert(&key, &1, 0);
        }
    }
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

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
