//! A parked goroutine's stack walked from outside, up its frame pointers.
//! Go keeps a frame pointer in every function with a frame on amd64: at
//! `bp` sits the caller's `bp`, at `bp + 8` the return address into the
//! caller. When the runtime parks a goroutine it saves the pc, sp and bp of
//! the function that parked it (`gopark`, `entersyscall`'s caller, ...),
//! so the chain starts there.

use crate::telemetry::memory::{MemoryError, TargetMemory};

/// Reads of the target's memory (a trait so that walks are tested on
/// memory made up in the test).
pub trait Memory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError>;

    fn u64_at(&self, address: u64) -> Result<u64, MemoryError> {
        let mut b = [0; 8];
        self.read(address, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }
}

impl Memory for TargetMemory {
    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), MemoryError> {
        TargetMemory::read(self, address, buf)
    }
}

/// The saved `pc`, then each return address up the chain from `bp`, at
/// most `max`; true as the second value when the walk stopped before
/// `is_bottom` said a pc was the stack's last (`runtime.goexit`). Frame
/// pointers must rise from `sp` up: a stack that moves or changes under
/// the walk ends it instead of sending it elsewhere.
pub fn return_addresses(
    mem: &impl Memory,
    pc: u64,
    sp: u64,
    bp: u64,
    max: usize,
    is_bottom: impl Fn(u64) -> bool,
) -> (Vec<u64>, bool) {
    let mut pcs = Vec::new();
    if pc == 0 {
        return (pcs, true);
    }
    pcs.push(pc);
    let mut bp = bp;
    let mut floor = sp;
    loop {
        if is_bottom(*pcs.last().expect("one pushed")) {
            return (pcs, false);
        }
        if pcs.len() >= max || bp == 0 || bp < floor || !bp.is_multiple_of(8) {
            // A goroutine that has not run yet has no frame pointer: its
            // saved pc is its function's entry, the stack's only frame.
            let truncated = bp != 0 || pcs.len() > 1;
            return (pcs, truncated);
        }
        let (Ok(ret), Ok(next)) = (mem.u64_at(bp + 8), mem.u64_at(bp)) else { return (pcs, true) };
        if ret == 0 {
            return (pcs, true);
        }
        pcs.push(ret);
        floor = bp + 16;
        bp = next;
    }
}
