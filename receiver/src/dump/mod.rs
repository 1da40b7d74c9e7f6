//! A goroutine dump of a running Go process taken from outside: every
//! goroutine in `runtime.allgs`, read from the target's memory with no probe
//! and no stop, each stack walked up its frame pointers from the registers
//! the runtime saved when it parked the goroutine (`g.sched`), and
//! symbolized with the executable's `.gopclntab`, inlined calls included.
//! What the process's own `runtime.Stack` or `/debug/pprof/goroutine`
//! prints, without `net/http/pprof` compiled in.
//!
//! Reading and walking is here; `text` prints Go's two dump formats.

mod names;
mod parks;
mod symbols;
mod text;
mod walk;

use gort_common::gstatus;
use gort_goexe::{pclntab::Frame, wait_reasons};

pub use self::{
    names::{PcNames, SharedPcNames, WalkOutcome},
    parks::{MAX_PARK_FRAMES, ParkLayout, ParkSites, is_internal},
    symbols::{ProcessSymbols, SymbolsError, with_symbols},
    text::{grouped, per_goroutine},
    walk::{Memory, WalkEnd, return_addresses},
};
use crate::telemetry::memory::MemoryError;

/// Most goroutines read in one dump: a runaway program cannot make it take
/// minutes; the rest are counted.
pub const MAX_GOROUTINES: usize = 1_000_000;
/// Most frames walked per stack (physical frames, before inlining).
pub const MAX_FRAMES: usize = 100;

/// Offsets into `runtime.g` and the run-time address of `runtime.allgs`.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub allgs: u64,
    pub goid: u64,
    pub status: u64,
    pub waitreason: Option<u64>,
    pub waitsince: Option<u64>,
    pub gopc: u64,
    pub parent_goid: Option<u64>,
    pub startpc: u64,
    /// `g.sched` plus `gobuf.pc`, `gobuf.sp`, `gobuf.bp`.
    pub sched_pc: u64,
    pub sched_sp: u64,
    pub sched_bp: u64,
}

impl Layout {
    /// Bytes of a g that hold every field read: each is read as a word
    /// (the status word's low half is the 32-bit status, the wait reason's
    /// low byte the reason), so a word past the last offset.
    fn g_bytes(&self) -> usize {
        let offsets =
            [self.goid, self.status, self.gopc, self.startpc, self.sched_pc, self.sched_sp, self.sched_bp];
        let optional = [self.waitreason, self.waitsince, self.parent_goid].into_iter().flatten();
        offsets.into_iter().chain(optional).max().unwrap_or(0) as usize + 8
    }
}

/// The word at `off` of a g's bytes, read as far as a layout's `g_bytes`
/// covers every field it names.
fn word_at(g: &[u8], off: u64) -> u64 {
    let at = off as usize;
    u64::from_le_bytes(g[at..at + 8].try_into().expect("g_bytes covers every field"))
}

/// Turns run-time pcs into frames and tells the runtime's goroutines apart.
pub trait Symbols {
    /// Frames at run-time `pc`, innermost first (see `Symbolizer::frames`),
    /// with run-time entries.
    fn frames(&self, pc: u64) -> Vec<Frame>;
    /// Whether a goroutine starting at run-time `pc` is one of the runtime's.
    fn is_runtime_entry(&self, pc: u64) -> bool;
    /// Whether run-time `pc` is in `runtime.goexit`, every goroutine's
    /// bottom frame: the walk's end (asked once per frame, so it must be a
    /// cheap test, not a symbolization).
    fn is_stack_bottom(&self, pc: u64) -> bool;
}

/// A frame and the run-time pc of its physical frame (a return address
/// but for the innermost).
#[derive(Clone, Debug, serde::Serialize)]
pub struct StackFrame {
    pub pc: u64,
    #[serde(flatten)]
    pub frame: Frame,
}

/// One goroutine as read.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Goroutine {
    pub id: u64,
    /// `runnable`, `running`, `syscall`, `waiting`, `leaked`, ...
    pub state: &'static str,
    /// Why it waits (the runtime's own wording), for waiting ones.
    pub wait_reason: Option<String>,
    /// How long ago the runtime marked it waiting, in seconds. The first GC
    /// stack scan that finds the goroutine parked sets `g.waitsince` to the
    /// time the previous cycle's mark termination began, so this is none
    /// until two cycles have run since it parked, and after that may be
    /// too long by up to the gap between those cycles (or short by up to one
    /// mark phase). Go's own dump prints the same figure in whole minutes.
    pub waited_seconds_approx: Option<f64>,
    /// One of the runtime's own goroutines (GC workers, ...): Go's dump
    /// leaves these out at the default traceback level.
    pub runtime: bool,
    /// Frames innermost first; empty for a goroutine running on a thread
    /// (its saved registers are stale) or one whose stack could not be read.
    pub frames: Vec<StackFrame>,
    /// Run-time return addresses of the physical frames, innermost first:
    /// what identical stacks are grouped by.
    pub pcs: Vec<u64>,
    /// The walk stopped before the bottom of the stack (frame bound, a
    /// frame pointer out of order, or unreadable memory).
    pub truncated: bool,
    /// Where it was created (`go` statement), and by which goroutine.
    pub created_by: Option<StackFrame>,
    pub creator: Option<u64>,
}

/// A dump: the goroutines and what could not be read.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Dump {
    pub goroutines: Vec<Goroutine>,
    /// Goroutines past `MAX_GOROUTINES`.
    pub unread: u64,
}

/// Reads every live goroutine. The process runs on while it is read, so a
/// goroutine may be seen in its state of a moment before; a stack that
/// changes under the walk ends early rather than going wrong: the walk only
/// follows frame pointers up the stack.
///
/// `wait_names`: the release's wait-reason words; `now_ns`: CLOCK_MONOTONIC,
/// the runtime's `nanotime`.
pub fn take(
    mem: &impl Memory,
    layout: &Layout,
    symbols: &impl Symbols,
    wait_names: Option<&[String]>,
    now_ns: u64,
) -> Result<Dump, MemoryError> {
    let ptr = mem.u64_at(layout.allgs)?;
    let len = mem.u64_at(layout.allgs + 8)?;
    let read = usize::try_from(len).unwrap_or(usize::MAX).min(MAX_GOROUTINES);
    let mut dump = Dump { goroutines: Vec::new(), unread: len.saturating_sub(read as u64) };
    // One read for the whole pointer array, not one per goroutine.
    let mut pointers = vec![0u8; read * 8];
    mem.read(ptr, &mut pointers)?;
    for gp in pointers.as_chunks::<8>().0.iter().map(|c| u64::from_le_bytes(*c)) {
        if gp == 0 {
            continue;
        }
        if let Some(g) = goroutine(mem, layout, symbols, wait_names, gp, now_ns)? {
            dump.goroutines.push(g);
        }
    }
    dump.goroutines.sort_by_key(|g| g.id);
    Ok(dump)
}

fn goroutine(
    mem: &impl Memory,
    l: &Layout,
    symbols: &impl Symbols,
    wait_names: Option<&[String]>,
    gp: u64,
    now_ns: u64,
) -> Result<Option<Goroutine>, MemoryError> {
    // The fields in one read of the g, not one read each.
    let mut g = vec![0u8; l.g_bytes()];
    mem.read(gp, &mut g)?;
    let word = |off: u64| word_at(&g, off);
    let status = word(l.status) as u32 & !gstatus::SCAN;
    let state = match status {
        gstatus::RUNNABLE => "runnable",
        gstatus::RUNNING => "running",
        gstatus::SYSCALL => "syscall",
        gstatus::WAITING => "waiting",
        gstatus::LEAKED => "leaked",
        gstatus::PREEMPTED => "preempted",
        // Idle, dead (free for reuse) or being copied: nothing to show.
        _ => return Ok(None),
    };
    let id = word(l.goid);
    let wait_reason = match (state, l.waitreason) {
        ("waiting" | "leaked", Some(off)) => Some(wait_reasons::name(wait_names, u32::from(g[off as usize]))),
        _ => None,
    };
    let waited_seconds_approx = match (state, l.waitsince) {
        ("waiting" | "syscall", Some(off)) => {
            let since = word(off) as i64;
            (since > 0).then(|| now_ns.saturating_sub(since as u64) as f64 / 1e9)
        }
        _ => None,
    };
    let startpc = word(l.startpc);
    let gopc = word(l.gopc);
    let creator = l.parent_goid.map(word).filter(|c| *c != 0);
    let (pcs, truncated) = if state == "running" {
        (Vec::new(), false)
    } else {
        let (pc, sp, bp) = (word(l.sched_pc), word(l.sched_sp), word(l.sched_bp));
        let (pcs, end) = return_addresses(mem, pc, sp, bp, MAX_FRAMES, |pc| symbols.is_stack_bottom(pc));
        let truncated = end.truncated(pcs.len());
        (pcs, truncated)
    };
    let mut frames = Vec::new();
    for (k, pc) in pcs.iter().enumerate() {
        // A return address points past its call; the saved pc of the
        // innermost frame is where it stopped.
        let at = if k == 0 { *pc } else { pc - 1 };
        frames.extend(symbols.frames(at).into_iter().map(|frame| StackFrame { pc: *pc, frame }));
    }
    let created_by = (gopc != 0)
        .then(|| symbols.frames(gopc - 1).into_iter().next())
        .flatten()
        .map(|frame| StackFrame { pc: gopc, frame });
    Ok(Some(Goroutine {
        id,
        state,
        wait_reason,
        waited_seconds_approx,
        runtime: symbols.is_runtime_entry(startpc),
        frames,
        pcs,
        truncated,
        created_by,
        creator,
    }))
}

#[cfg(test)]
mod tests;
