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

/// Why a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkEnd {
    /// `is_bottom` said the last pc was the stack's last.
    Bottom,
    /// No frame pointer left: the bottom of a stack whose bottom was not
    /// told (or a goroutine that has not run yet, its entry the only frame).
    NoFramePointer,
    /// `max` frames walked.
    TooDeep,
    /// A frame pointer below the previous frame or misaligned, or a zero pc
    /// or return address: a stack that changed under the walk, or a corrupt
    /// one.
    OutOfOrder,
    /// Memory under a frame pointer could not be read.
    Unreadable,
}

impl WalkEnd {
    /// Whether a walk that ended so, with `frames` physical frames, stopped
    /// before the bottom of its stack.
    pub fn truncated(self, frames: usize) -> bool {
        match self {
            Self::Bottom => false,
            Self::NoFramePointer => frames > 1,
            Self::TooDeep | Self::OutOfOrder | Self::Unreadable => true,
        }
    }
}

/// The saved `pc`, then each return address up the chain from `bp`, at
/// most `max`, and why the walk ended. Frame pointers must rise from `sp`
/// up: a stack that moves or changes under the walk ends it instead of
/// sending it elsewhere.
pub fn return_addresses(
    mem: &impl Memory,
    pc: u64,
    sp: u64,
    bp: u64,
    max: usize,
    is_bottom: impl Fn(u64) -> bool,
) -> (Vec<u64>, WalkEnd) {
    let mut pcs = Vec::new();
    if pc == 0 {
        return (pcs, WalkEnd::OutOfOrder);
    }
    pcs.push(pc);
    let mut bp = bp;
    let mut floor = sp;
    loop {
        if is_bottom(*pcs.last().expect("one pushed")) {
            return (pcs, WalkEnd::Bottom);
        }
        if pcs.len() >= max {
            return (pcs, WalkEnd::TooDeep);
        }
        if bp == 0 {
            return (pcs, WalkEnd::NoFramePointer);
        }
        if bp < floor || !bp.is_multiple_of(8) {
            return (pcs, WalkEnd::OutOfOrder);
        }
        // The caller's frame pointer and the return address, in one read.
        let mut frame = [0u8; 16];
        if mem.read(bp, &mut frame).is_err() {
            return (pcs, WalkEnd::Unreadable);
        }
        let (next, ret) = frame.split_at(8);
        let (next, ret) = (
            u64::from_le_bytes(next.try_into().expect("8 bytes")),
            u64::from_le_bytes(ret.try_into().expect("8 bytes")),
        );
        if ret == 0 {
            return (pcs, WalkEnd::OutOfOrder);
        }
        pcs.push(ret);
        floor = bp + 16;
        bp = next;
    }
}
