//! Live goroutines by state: a census of the target's `runtime.allgs`, read
//! from its memory once per report. Probes could only
//! count transitions seen since attach (and not at all between sampling
//! windows); the runtime's own list is exact at every moment and costs the
//! target nothing. The runtime's own goroutines (those that start at a
//! runtime entry: GC workers, sweeper, scavenger, ...) are counted apart,
//! as `runtime.NumGoroutine` leaves them out. With a `ParkLocator`, the
//! application's waiting goroutines are also counted by where they wait.

use std::{collections::BTreeMap, sync::Arc};

use gort_common::gstatus;
use gort_goexe::wait_reasons;

use super::memory::TargetMemory;
use crate::bpf::ActiveSpanIds;

/// Most goroutines read per census; beyond it the rest are counted as
/// `unread`, so a runaway program cannot make one report take seconds.
const MAX_CENSUS: u64 = 1_000_000;
/// Most functions waiting goroutines are counted at, per census: the most
/// common ones; the rest are folded into [`OTHER_FUNCTION`], so that a
/// program with many park sites cannot multiply gort's series.
pub const MAX_PARK_FUNCTIONS: usize = 16;
/// Where the goroutines of the less common park functions are counted.
pub const OTHER_FUNCTION: &str = "other";
/// Where goroutines whose stack could not be walked or named are counted.
pub const UNKNOWN_FUNCTION: &str = "unknown";

pub use super::memory::MemoryError as CensusError;

/// Where the census reads, resolved once per attach.
pub struct Census {
    mem: TargetMemory,
    /// Run-time address of the `runtime.allgs` slice header.
    allgs: u64,
    status_offset: u64,
    waitreason_offset: Option<u64>,
    wait_names: Option<&'static [String]>,
    runtime: Option<RuntimeEntries>,
    locator: Option<Box<dyn ParkLocator>>,
}

/// Where a goroutine waits: the first frame of its stack outside the
/// runtime and the standard library's blocking internals (see
/// `dump::parks`), e.g. the line of the user's channel send.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Location {
    pub function: String,
    pub file: String,
    pub line: u32,
}

/// A goroutine's stack as named frames, innermost first (inlined calls
/// their own frames), at most `dump::MAX_PARK_FRAMES` physical frames.
pub type Stack = Arc<[Arc<Location>]>;

/// One waiting (or runnable) goroutine of the application and where it
/// waits. `goid`, `pc` and `sp` tell one park from the next: a goroutine
/// that wakes and parks again elsewhere has another saved pc or sp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Parked {
    /// Its `runtime.g` address, which the probes key its state by.
    pub g: u64,
    pub goid: u64,
    pub pc: u64,
    pub sp: u64,
    /// `waiting`, `leaked` or `runnable`, and the wait-reason category
    /// ("" when runnable).
    pub state: &'static str,
    pub category: &'static str,
    /// The first frame outside the internals; None when the stack could
    /// not be walked or named.
    pub location: Option<Arc<Location>>,
    /// The whole stack as read (empty when it could not be).
    pub stack: Stack,
    /// The span it serves, when trace linkage knows one (filled in by the
    /// session, which has the probes; the census has none).
    pub span: Option<ActiveSpanIds>,
}

impl Parked {
    /// A goroutine of the unit tests: parked `state` at `location` (its
    /// whole stack), with its saved pc and sp given.
    #[cfg(test)]
    pub fn at(
        goid: u64,
        pc: u64,
        sp: u64,
        state: &'static str,
        category: &'static str,
        location: Option<Arc<Location>>,
    ) -> Self {
        let stack = location.iter().cloned().collect();
        Self { g: goid, goid, pc, sp, state, category, location, stack, span: None }
    }

    /// Whether it waits (rather than waits to run).
    pub fn is_waiting(&self) -> bool {
        matches!(self.state, "waiting" | "leaked")
    }
}

/// Finds where waiting goroutines wait (implemented by `dump::ParkSites`:
/// it walks and names stacks, which this room does not).
pub trait ParkLocator: Send {
    /// One answer per goroutine of `gps` (its `g` address, state and
    /// wait-reason category), in order.
    fn locate(
        &mut self,
        mem: &TargetMemory,
        gps: &[(u64, (&'static str, &'static str))],
    ) -> Result<Vec<Parked>, CensusError>;

    /// Every park walked since attach, by how its walk ended.
    fn walks(&self) -> WalkCounts;
}

/// Stacks walked for where goroutines wait, since attach, by how the walk
/// ended (`complete`, `too_deep`, or why it was cut short and its site left
/// unknown: `frame_pointer`, `unreadable`, `not_code`, `unnamed`).
pub type WalkCounts = BTreeMap<&'static str, u64>;

/// Waiting goroutines by (state, wait-reason category, park function).
pub type ParkCounts = BTreeMap<(&'static str, &'static str, Arc<str>), u64>;

/// How the census tells the runtime's goroutines apart.
pub struct RuntimeEntries {
    /// Offset of `runtime.g.startpc`.
    pub startpc_offset: u64,
    /// Run-time addresses of the runtime's goroutine entries, sorted.
    pub entries: Arc<[u64]>,
}

/// Goroutines of one kind in one census: (state, wait-reason category or
/// "") → count.
pub type Counts = BTreeMap<(&'static str, &'static str), u64>;

/// One census: the application's goroutines (what `runtime.NumGoroutine`
/// counts) and the runtime's own, apart.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Live {
    pub application: Counts,
    pub runtime: Counts,
    /// The application's waiting (and leaked) goroutines of `application`
    /// again, split by the function they wait in (at most
    /// `MAX_PARK_FUNCTIONS` of them, then `other`); None without a locator.
    pub waiting_at: Option<ParkCounts>,
    /// The application's waiting and runnable goroutines one by one (for
    /// the leak watch and the wait profile); empty without a locator.
    pub parked: Vec<Parked>,
    /// Times each place has been suspected of leaking goroutines since
    /// attach (filled in by the leak watch).
    pub leak_suspects: BTreeMap<Arc<Location>, u64>,
    /// The locator's walks since attach, by how each ended; empty without
    /// a locator.
    pub stack_walks: WalkCounts,
}

impl Census {
    /// `allgs_link` is the symbol's link-time address and `image_base` the
    /// lowest address the executable is linked at; a PIE is relocated by
    /// where /proc/PID/maps shows its first page.
    pub fn new(
        pid: u32,
        bias: u64,
        allgs_link: u64,
        status_offset: u64,
        waitreason_offset: Option<u64>,
        wait_names: Option<&'static [String]>,
        runtime: Option<RuntimeEntries>,
    ) -> Result<Self, CensusError> {
        let mem = TargetMemory::open(pid)?;
        Ok(Self {
            mem,
            allgs: allgs_link.wrapping_add(bias),
            status_offset,
            waitreason_offset,
            wait_names,
            runtime,
            locator: None,
        })
    }

    /// Counts waiting goroutines by where they wait too.
    pub fn with_locator(mut self, locator: Box<dyn ParkLocator>) -> Self {
        self.locator = Some(locator);
        self
    }

    fn read(&self, address: u64, buf: &mut [u8]) -> Result<(), CensusError> {
        self.mem.read(address, buf)
    }

    fn u64_at(&self, address: u64) -> Result<u64, CensusError> {
        self.mem.u64_at(address)
    }

    /// Counts the goroutines by state now. The list changes while it is
    /// read, so a goroutine can be missed or counted in its previous state:
    /// a snapshot as good as a racing reader gets, like the runtime's own
    /// `runtime.NumGoroutine`.
    pub fn take(&mut self) -> Result<Live, CensusError> {
        let ptr = self.u64_at(self.allgs)?;
        let len = self.u64_at(self.allgs + 8)?;
        let read = len.min(MAX_CENSUS);
        let mut pointers = vec![0u8; (read * 8) as usize];
        self.read(ptr, &mut pointers)?;
        let mut live = Live::default();
        // The application's waiting and runnable goroutines: (g, (state,
        // category)); a running one's saved registers are stale.
        let mut located = Vec::new();
        for gp in pointers.as_chunks::<8>().0.iter().map(|c| u64::from_le_bytes(*c)) {
            if gp == 0 {
                continue;
            }
            // The runtime never frees a g, so an unreadable one means the
            // process is going away: a census of what is left would be a
            // partial count reported as a whole one, so there is none.
            let mut status = [0; 4];
            self.read(gp + self.status_offset, &mut status)?;
            let key = match u32::from_le_bytes(status) & !gstatus::SCAN {
                gstatus::RUNNABLE => ("runnable", ""),
                gstatus::RUNNING => ("running", ""),
                gstatus::SYSCALL => ("syscall", ""),
                gstatus::WAITING => ("waiting", self.wait_category(gp)?),
                // Go 1.27: parked forever, found out by the GC.
                gstatus::LEAKED => ("leaked", self.wait_category(gp)?),
                _ => continue,
            };
            let counts = if self.is_runtime(gp)? {
                &mut live.runtime
            } else {
                if matches!(key.0, "waiting" | "leaked" | "runnable") {
                    located.push((gp, key));
                }
                &mut live.application
            };
            *counts.entry(key).or_default() += 1;
        }
        if let Some(locator) = &mut self.locator {
            let parked = locator.locate(&self.mem, &located)?;
            live.waiting_at = Some(fold_functions(parked.iter().filter(|p| p.is_waiting())));
            live.parked = parked;
            live.stack_walks = locator.walks();
        }
        if len > read {
            live.application.insert(("unread", ""), len - read);
        }
        Ok(live)
    }

    /// Whether `gp` started at one of the runtime's goroutine entries.
    fn is_runtime(&self, gp: u64) -> Result<bool, CensusError> {
        let Some(r) = &self.runtime else { return Ok(false) };
        let pc = self.u64_at(gp + r.startpc_offset)?;
        Ok(r.entries.binary_search(&pc).is_ok())
    }

    fn wait_category(&self, gp: u64) -> Result<&'static str, CensusError> {
        let Some(offset) = self.waitreason_offset else { return Ok("other") };
        let mut reason = [0; 1];
        self.read(gp + offset, &mut reason)?;
        Ok(wait_reasons::category(&wait_reasons::name(self.wait_names, u32::from(reason[0]))))
    }
}

/// Counts by (state, category, function), keeping the `MAX_PARK_FUNCTIONS`
/// functions with the most goroutines (ties by name) and folding the rest.
fn fold_functions<'a>(waiting: impl Iterator<Item = &'a Parked> + Clone) -> ParkCounts {
    let name = |p: &Parked| -> Arc<str> {
        p.location.as_ref().map_or_else(|| Arc::from(UNKNOWN_FUNCTION), |l| Arc::from(l.function.as_str()))
    };
    let mut by_function: BTreeMap<Arc<str>, u64> = BTreeMap::new();
    for p in waiting.clone() {
        *by_function.entry(name(p)).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<str>, u64)> = by_function.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let kept: std::collections::BTreeSet<Arc<str>> =
        ranked.into_iter().take(MAX_PARK_FUNCTIONS).map(|(f, _)| f).collect();
    let mut out = ParkCounts::new();
    for p in waiting {
        let f = name(p);
        let f = if kept.contains(&f) { f } else { Arc::from(OTHER_FUNCTION) };
        *out.entry((p.state, p.category, f)).or_default() += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parked(category: &'static str, function: Option<&str>) -> Parked {
        let location =
            function.map(|f| Arc::new(Location { function: f.into(), file: "main.go".into(), line: 1 }));
        Parked::at(1, 2, 3, "waiting", category, location)
    }

    #[test]
    fn park_functions_beyond_the_most_common_are_folded() {
        let mut all = Vec::new();
        // Function k has k + 1 goroutines: the most common are the last.
        for k in 0..MAX_PARK_FUNCTIONS + 3 {
            for _ in 0..=k {
                all.push(parked("chan_receive", Some(&format!("main.f{k:02}"))));
            }
        }
        all.push(parked("io", None));
        let folded = fold_functions(all.iter());
        let total: u64 = folded.values().sum();
        assert_eq!(total, all.len() as u64, "every goroutine is counted once");
        let other = folded[&("waiting", "chan_receive", Arc::from(OTHER_FUNCTION))];
        // f00..f03 (1 + 2 + 3 + 4 goroutines) and the one unknown are the
        // least common: f00, f01, f02 and unknown fold (1 + 2 + 3 and 1).
        assert_eq!(other, 1 + 2 + 3);
        assert_eq!(folded[&("waiting", "io", Arc::from(OTHER_FUNCTION))], 1);
        assert!(folded.contains_key(&("waiting", "chan_receive", Arc::from("main.f18"))));
        assert_eq!(folded.keys().filter(|k| &*k.2 != OTHER_FUNCTION).count(), MAX_PARK_FUNCTIONS);
    }
}
