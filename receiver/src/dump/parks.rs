//! Where waiting goroutines wait, for the census: each one's stack walked
//! from `g.sched` and the first frame outside the runtime and the standard
//! library's blocking internals named. A parked goroutine does not move, so
//! a walk is kept while its goroutine stays parked with the same saved
//! registers, and a pc is named once: after the first censuses each costs
//! one read of its `g`, and the executable is opened only when a pc not
//! named before turns up.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use super::{
    names::SharedPcNames,
    walk::{WalkEnd, return_addresses},
    word_at,
};
use crate::telemetry::{
    census::{CensusError, ParkLocator, Parked, WalkCounts},
    memory::TargetMemory,
};

/// Most physical frames walked per stack for its park site: the site is
/// near the top, and a deeper one is reported as unknown rather than read
/// at length every census.
pub const MAX_PARK_FRAMES: usize = 32;
/// Functions that are where a goroutine waits but not why: the runtime, the
/// standard library's locks, channels' and pollers' internals, and the thin
/// layers over them (`net.(*conn).Read`, `io.ReadFull`, `bufio`), so that
/// the site named is the caller's line.
const INTERNAL_PREFIXES: &[&str] =
    &["runtime.", "sync.", "internal/", "syscall.", "net.", "os.", "io.", "bufio.", "time.Sleep"];

/// Whether `function` is one of the internals a park site looks through.
pub fn is_internal(function: &str) -> bool {
    INTERNAL_PREFIXES.iter().any(|p| function.starts_with(p))
}

/// Offsets into `runtime.g` a park site needs.
#[derive(Clone, Copy, Debug)]
pub struct ParkLayout {
    pub goid: u64,
    /// `g.sched` plus `gobuf.pc`, `gobuf.sp`, `gobuf.bp`.
    pub sched_pc: u64,
    pub sched_sp: u64,
    pub sched_bp: u64,
}

impl ParkLayout {
    /// Bytes of a g that hold the fields read (each a word).
    fn g_bytes(&self) -> usize {
        [self.goid, self.sched_pc, self.sched_sp, self.sched_bp].into_iter().max().unwrap_or(0) as usize + 8
    }
}

/// The saved registers of one park: the same key in two censuses is the
/// same park (a goroutine that ran in between saved others, or its `g` was
/// reused with another id).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct ParkKey {
    gp: u64,
    goid: u64,
    pc: u64,
    sp: u64,
    bp: u64,
}

/// The census's park locator for one process.
pub struct ParkSites {
    layout: ParkLayout,
    /// The walks of the last census, by park.
    walks: HashMap<ParkKey, (Arc<[u64]>, WalkEnd)>,
    /// Parks walked since attach (each once, however many censuses saw
    /// it), by how the walk ended.
    outcomes: WalkCounts,
    /// Shared with the stall sites of the same process.
    names: SharedPcNames,
}

impl ParkSites {
    pub fn new(layout: ParkLayout, names: SharedPcNames) -> Self {
        Self { layout, walks: HashMap::new(), outcomes: BTreeMap::new(), names }
    }
}

impl ParkLocator for ParkSites {
    fn locate(
        &mut self,
        mem: &TargetMemory,
        gps: &[(u64, (&'static str, &'static str))],
    ) -> Result<Vec<Parked>, CensusError> {
        let l = self.layout;
        let mut g = vec![0u8; l.g_bytes()];
        let mut walks = HashMap::with_capacity(gps.len());
        let mut parks = Vec::with_capacity(gps.len());
        for &(gp, kind) in gps {
            mem.read(gp, &mut g)?;
            let word = |off: u64| word_at(&g, off);
            let key = ParkKey {
                gp,
                goid: word(l.goid),
                pc: word(l.sched_pc),
                sp: word(l.sched_sp),
                bp: word(l.sched_bp),
            };
            let (walk, new) = match self.walks.get(&key) {
                Some(walk) => (walk.clone(), false),
                None => {
                    let (pcs, end) =
                        return_addresses(mem, key.pc, key.sp, key.bp, MAX_PARK_FRAMES, |_| false);
                    ((Arc::from(pcs), end), true)
                }
            };
            walks.insert(key, walk.clone());
            parks.push((key, kind, walk, new));
        }
        self.walks = walks;
        let mut names = self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        names.name(parks.iter().map(|(_, _, (pcs, _), _)| &pcs[..]));
        Ok(parks
            .into_iter()
            .map(|(key, (state, category), (pcs, end), new)| {
                let (location, outcome) = names.site(&pcs, end);
                if new {
                    *self.outcomes.entry(outcome.as_str()).or_default() += 1;
                }
                Parked {
                    g: key.gp,
                    goid: key.goid,
                    pc: key.pc,
                    sp: key.sp,
                    state,
                    category,
                    location,
                    stack: names.stack(&pcs),
                    span: None,
                }
            })
            .collect())
    }

    fn walks(&self) -> WalkCounts {
        self.outcomes.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internals_are_looked_through_and_user_code_is_not() {
        for f in [
            "runtime.gopark",
            "runtime.chansend1",
            "sync.(*Mutex).Lock",
            "sync.(*WaitGroup).Wait",
            "internal/sync.(*Mutex).lockSlow",
            "internal/poll.(*FD).Read",
            "net.(*conn).Read",
            "io.ReadFull",
            "bufio.(*Reader).ReadString",
            "time.Sleep",
            "os.(*File).Read",
        ] {
            assert!(is_internal(f), "{f}");
        }
        for f in [
            "main.leak",
            "main.(*pool).worker",
            "net/http.(*conn).serve",
            "os/exec.(*Cmd).Wait",
            "github.com/x/runtime.Run",
            "time.NewTimer",
        ] {
            assert!(!is_internal(f), "{f}");
        }
    }
}
