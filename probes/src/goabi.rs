//! The Go ABI as the probes see it: argument registers under the register
//! ABI, the current goroutine, and reads of `runtime.g` fields at the
//! offsets userspace wrote into `TargetConfig`.

use aya_ebpf::{helpers::bpf_probe_read_user, programs::ProbeContext};
use gort_common::{
    CounterId, EntryKey, Field, GSTATE_WAYS, GoroutineSlot, GoroutineState, RUNTIME_GOROUTINE, TargetConfig,
    gstate_claim, gstate_set,
};

use crate::{maps::*, record::count};

/// First integer argument of a Go function under the register ABI (Go >= 1.17
/// on amd64, >= 1.18 on arm64): RAX on amd64, X0 on arm64. Not the C ABI's
/// first argument register, so `ProbeContext::arg` does not apply.
#[inline(always)]
pub(crate) fn go_arg0(ctx: &ProbeContext) -> u64 {
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
pub(crate) fn go_arg(ctx: &ProbeContext, n: usize) -> u64 {
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
pub(crate) fn current_g(ctx: &ProbeContext) -> u64 {
    // SAFETY: as in go_arg0: a field of the kernel-provided pt_regs.
    #[cfg(bpf_target_arch = "x86_64")]
    let value = unsafe { (*ctx.regs).r14 };
    // SAFETY: as above.
    #[cfg(bpf_target_arch = "aarch64")]
    let value = unsafe { (*ctx.regs).regs[28] };
    value
}

#[inline(always)]
pub(crate) fn read_goid(gp: u64, config: &TargetConfig) -> Option<u64> {
    read_u64(gp, config.offset(Field::GGoid))
}

/// `RUNTIME_GOROUTINE` if the goroutine `gp` started at one of the
/// runtime's entries (the runtime's own `isSystemGoroutine` rule), else 0.
#[inline(always)]
pub(crate) fn runtime_goroutine_flag(gp: u64, tgid: u32, config: &TargetConfig) -> u64 {
    if !config.has(Field::GStartpc) {
        return 0;
    }
    let Some(pc) = read_u64(gp, config.offset(Field::GStartpc)) else {
        return 0;
    };
    // SAFETY: only whether the entry exists is used.
    match unsafe { RUNTIME_ENTRIES.get(&EntryKey { tgid, _pad: 0, pc }) } {
        Some(_) => RUNTIME_GOROUTINE,
        None => 0,
    }
}

/// The two ways of the set that holds goroutine `gp` of process `tgid`.
#[inline(always)]
fn gstate_ways(tgid: u32, gp: u64) -> Option<(&'static mut GoroutineSlot, &'static mut GoroutineSlot)> {
    let first = gstate_set(tgid, gp) * GSTATE_WAYS;
    let a = GSTATE.get_ptr_mut(first)?;
    let b = GSTATE.get_ptr_mut(first + 1)?;
    // SAFETY: two distinct slots of the array map, valid while the program
    // runs. A goroutine's transitions are serialised by the runtime, so no
    // other CPU updates this g's state meanwhile; two CPUs claiming one free
    // way for two new gs of the same set at the same instant is the one race
    // left, and costs one interval of one of them.
    Some(unsafe { (&mut *a, &mut *b) })
}

/// The state of goroutine `gp`, created (zeroed) on first sight in the way
/// `gstate_claim` picks (counted when that displaces a busy goroutine);
/// None only if the table cannot be read.
#[inline(always)]
pub(crate) fn gstate(tgid: u32, gp: u64) -> Option<&'static mut GoroutineState> {
    let (a, b) = gstate_ways(tgid, gp)?;
    if a.holds(tgid, gp) {
        return Some(&mut a.state);
    }
    if b.holds(tgid, gp) {
        return Some(&mut b.state);
    }
    let (way, displaces) = gstate_claim(a, b);
    if displaces {
        count(CounterId::GoroutineStatesDisplaced);
    }
    let slot = if way == 0 { a } else { b };
    *slot = GoroutineSlot { tgid, _pad: 0, g: gp, state: GoroutineState::default() };
    Some(&mut slot.state)
}

/// The state of goroutine `gp` if it has one.
#[inline(always)]
pub(crate) fn gstate_if_seen(tgid: u32, gp: u64) -> Option<&'static mut GoroutineState> {
    let (a, b) = gstate_ways(tgid, gp)?;
    if a.holds(tgid, gp) {
        Some(&mut a.state)
    } else if b.holds(tgid, gp) {
        Some(&mut b.state)
    } else {
        None
    }
}

/// A u64 field of a Go struct at `base + offset`.
#[inline(always)]
pub(crate) fn read_u64(base: u64, offset: u32) -> Option<u64> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_user copies from the target's memory and fails
    // cleanly on a bad address.
    unsafe { bpf_probe_read_user((base + u64::from(offset)) as *const u64) }.ok()
}

/// A frame record at frame pointer `bp`: the caller's frame pointer, then
/// the return address, in one read (a stall's park-site walk reads up to 15
/// of them, and each user-memory read costs more than its 16 bytes).
#[inline(always)]
pub(crate) fn read_frame(bp: u64) -> Option<[u64; 2]> {
    if bp == 0 {
        return None;
    }
    // SAFETY: as read_u64: a checked copy that fails on a bad address.
    unsafe { bpf_probe_read_user(bp as *const [u64; 2]) }.ok()
}

/// The goroutine running on this thread's M while it is on its g0 stack
/// (`g0.m.curg`): in `newproc1`, which runs on the system stack, the creator
/// of the goroutine being created.
#[inline(always)]
pub(crate) fn curg_of_g0(g0: u64, config: &TargetConfig) -> Option<u64> {
    if !config.has(Field::GM) || !config.has(Field::MCurg) {
        return None;
    }
    let m = read_u64(g0, config.offset(Field::GM))?;
    read_u64(m, config.offset(Field::MCurg))
}
