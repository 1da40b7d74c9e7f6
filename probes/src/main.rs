//! gort's eBPF programs: uprobes on Go runtime functions of the processes gort
//! watches. They only read user memory (no `bpf_probe_write_user`), so gort
//! works under kernel lockdown, and they aggregate in maps so that userspace
//! reads totals instead of one event per hit.
#![no_std]
#![no_main]
// The BPF target has no compare-and-swap, so core's AtomicU64 offers no
// fetch_add; the intrinsic lowers to BPF's atomic add instruction.
#![expect(internal_features, reason = "atomic_xadd: the BPF target has no compare-and-swap")]
// Every user-memory read and map pointer is unsafe here; each block says
// why it is sound in a SAFETY comment.
#![expect(unsafe_code, reason = "BPF helpers and map value pointers")]
#![feature(core_intrinsics)]

mod gc;
mod goabi;
mod maps;
mod record;
mod scheduler;
mod spans;

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
