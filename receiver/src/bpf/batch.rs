//! Whole-table reads of array maps in a few syscalls (`BPF_MAP_LOOKUP_BATCH`,
//! Linux 5.6+), where aya reads one slot per syscall: the goroutine and span
//! tables hold 65,536 slots each, and reading them slot by slot took about
//! 130 ms apiece, at every attach and detach.

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

use aya::Pod;

/// Slots read per syscall: a few hundred KiB of values at a time.
const CHUNK: u32 = 1024;

/// The kernel's `BPF_MAP_LOOKUP_BATCH` command number (uapi `bpf_cmd`).
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The batch member of the kernel's `union bpf_attr` (uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}
const _: () = assert!(size_of::<BatchAttr>() == 56);

/// Calls `each(slot, value)` for every slot of the array map `fd`, which has
/// `slots` slots of type `V`. `Ok(false)` when the kernel has no batch
/// lookups (the caller reads slot by slot then).
pub(super) fn for_each_slot<V: Pod + Default>(
    fd: BorrowedFd<'_>,
    slots: u32,
    mut each: impl FnMut(u32, &V),
) -> io::Result<bool> {
    let chunk = CHUNK.min(slots.max(1));
    let mut keys = vec![0u32; chunk as usize];
    let mut values = vec![V::default(); chunk as usize];
    // The cursor is the last key a call read: the next call starts after
    // it (none: from the first slot).
    let (mut cursor_in, mut cursor_out) = (0u32, 0u32);
    let mut first = true;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { (&raw const cursor_in) as u64 },
            out_batch: (&raw mut cursor_out) as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk,
            map_fd: fd.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` is the layout the kernel reads for this command,
        // and its buffers hold `count` keys and `count` values of the map's
        // value size (`V` is the map's value type, `Pod`), so the kernel
        // writes only inside them; all outlive the call.
        let rc = unsafe {
            libc::syscall(libc::SYS_bpf, BPF_MAP_LOOKUP_BATCH, &raw mut attr, size_of::<BatchAttr>())
        };
        let error = (rc < 0).then(io::Error::last_os_error);
        let done = match error.as_ref().and_then(io::Error::raw_os_error) {
            None => false,
            // The end of the map; `count` says how many this call still read.
            Some(libc::ENOENT) => true,
            Some(libc::EINVAL | libc::EOPNOTSUPP) if first => return Ok(false),
            Some(_) => return Err(error.unwrap_or_else(io::Error::last_os_error)),
        };
        for i in 0..(attr.count.min(chunk) as usize) {
            each(keys[i], &values[i]);
        }
        if done || cursor_out >= slots.saturating_sub(1) {
            return Ok(true);
        }
        cursor_in = cursor_out;
        first = false;
    }
}
