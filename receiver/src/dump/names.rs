//! Names of a process's run-time pcs, kept: the executable is opened only
//! when pcs not named before turn up (the census's park sites, the stall
//! sites of trace linkage), and the site of a stack is its first frame
//! outside the runtime and the standard library's blocking internals.

use std::{
    collections::{HashMap, HashSet},
    path::PathBuf,
    sync::Arc,
};

use gort_goexe::GoVersion;

use super::{Symbols, parks::is_internal, walk::WalkEnd, with_symbols};
use crate::telemetry::census::{Location, Stack};

/// Named pcs kept at most; beyond it the names are forgotten and read again.
const MAX_NAMED_PCS: usize = 200_000;
/// Every goroutine's bottom frame: a walk that reaches it is complete.
const GOEXIT: &str = "runtime.goexit";

/// How a walk for a site ended, as the site's trust in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum WalkOutcome {
    /// Up to `runtime.goexit`.
    Complete,
    /// Cut at the frame bound: a site when one was among the frames walked.
    TooDeep,
    /// A frame pointer out of order, misaligned or missing above the bottom.
    FramePointer,
    /// Memory under a frame pointer could not be read (unmapped).
    Unreadable,
    /// A return address outside every function.
    NotCode,
    /// The executable could not be read to name the pcs.
    Unnamed,
}

impl WalkOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Complete => "complete",
            Self::TooDeep => "too_deep",
            Self::FramePointer => "frame_pointer",
            Self::Unreadable => "unreadable",
            Self::NotCode => "not_code",
            Self::Unnamed => "unnamed",
        }
    }
}

/// One name of a physical frame (several when calls were inlined into it),
/// innermost first.
type Names = Arc<[Arc<Location>]>;

/// One process's names, shared by its census and its stall sites (both
/// name from the session's thread; the lock is never contended).
pub type SharedPcNames = Arc<std::sync::Mutex<PcNames>>;

/// The names of one process's pcs.
pub struct PcNames {
    /// `/proc/PID/exe`, opened to name new pcs.
    image: PathBuf,
    go_version: GoVersion,
    bias: u64,
    /// Names by the pc looked up (the saved pc, or a return address - 1).
    names: HashMap<u64, Names>,
    /// The executable could not be opened at the last try (said once).
    unreadable: bool,
}

/// The pc to name for the `k`th physical frame of a walk: a return address
/// points past its call, the innermost saved pc at where it stopped.
fn lookup_pc(k: usize, pc: u64) -> u64 {
    if k == 0 { pc } else { pc - 1 }
}

impl PcNames {
    pub fn new(image: PathBuf, go_version: GoVersion, bias: u64) -> Self {
        Self { image, go_version, bias, names: HashMap::new(), unreadable: false }
    }

    /// Names every pc of `walks` (saved pc first, then return addresses)
    /// not named yet, in one opening of the executable.
    pub fn name<'a>(&mut self, walks: impl Iterator<Item = &'a [u64]>) {
        let missing: HashSet<u64> = walks
            .flat_map(|pcs| pcs.iter().enumerate().map(|(k, pc)| lookup_pc(k, *pc)))
            .filter(|pc| !self.names.contains_key(pc))
            .collect();
        if missing.is_empty() {
            return;
        }
        if self.names.len() + missing.len() > MAX_NAMED_PCS {
            self.names.clear();
        }
        let named = with_symbols(&self.image, self.go_version, self.bias, |symbols| {
            missing
                .iter()
                .map(|&pc| {
                    let names: Names = symbols
                        .frames(pc)
                        .into_iter()
                        .map(|f| Arc::new(Location { function: f.function, file: f.file, line: f.line }))
                        .collect();
                    (pc, names)
                })
                .collect::<Vec<_>>()
        });
        match named {
            Ok(named) => {
                self.unreadable = false;
                self.names.extend(named);
            }
            Err(e) => {
                if !self.unreadable {
                    log::warn!("{e}: where goroutines wait is unknown until it can be read");
                }
                self.unreadable = true;
            }
        }
    }

    /// The site of a named walk and how the walk ended: the first frame
    /// outside the internals, or, for a stack that is all internals, its
    /// outermost frame. Only a walk that reached the stack's bottom, or one
    /// cut at its frame bound with every frame named, has a site: a walk
    /// that a bad frame pointer, unreadable memory or a pc outside the code
    /// ended may have gone astray anywhere before, so it is never guessed at.
    pub fn site(&self, pcs: &[u64], end: WalkEnd) -> (Option<Arc<Location>>, WalkOutcome) {
        let mut named = Vec::with_capacity(pcs.len());
        for (k, pc) in pcs.iter().enumerate() {
            match self.names.get(&lookup_pc(k, *pc)) {
                None => return (None, WalkOutcome::Unnamed),
                // Not code: a frame pointer the walk should not have trusted.
                Some(names) if names.is_empty() => return (None, WalkOutcome::NotCode),
                Some(names) => named.push(names),
            }
        }
        let at_bottom = end == WalkEnd::Bottom
            || (end == WalkEnd::NoFramePointer && pcs.len() == 1)
            || named.last().and_then(|n| n.last()).is_some_and(|l| l.function == GOEXIT);
        let outcome = match end {
            _ if at_bottom => WalkOutcome::Complete,
            WalkEnd::TooDeep => WalkOutcome::TooDeep,
            WalkEnd::Unreadable => WalkOutcome::Unreadable,
            _ => WalkOutcome::FramePointer,
        };
        let frames = || named.iter().flat_map(|n| n.iter()).filter(|l| l.function != GOEXIT);
        let site = match outcome {
            WalkOutcome::Complete => {
                frames().find(|l| !is_internal(&l.function)).or_else(|| frames().next_back()).cloned()
            }
            WalkOutcome::TooDeep => frames().find(|l| !is_internal(&l.function)).cloned(),
            _ => None,
        };
        (site, outcome)
    }

    /// Every named frame of a walk; empty when a pc has no name (a walk
    /// that went astray is not shown as a stack).
    pub fn stack(&self, pcs: &[u64]) -> Stack {
        let mut frames = Vec::new();
        for (k, pc) in pcs.iter().enumerate() {
            match self.names.get(&lookup_pc(k, *pc)) {
                Some(names) if !names.is_empty() => frames.extend(names.iter().cloned()),
                _ => return Arc::new([]),
            }
        }
        frames.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Names for pcs in 0x1000-sized slots: 0x1000 `runtime.gopark`, 0x2000
    /// `main.worker`, 0x3000 `runtime.goexit`, 0x4000 `io.Copy`, 0x5000 not
    /// code; 0x6000 never named.
    fn names() -> PcNames {
        let mut n = PcNames::new("/nonexistent".into(), GoVersion::parse("go1.26.8").unwrap(), 0);
        let at = |function: &str, line| {
            Arc::from(vec![Arc::new(Location { function: function.into(), file: "x.go".into(), line })])
        };
        for k in 0..0x20 {
            for (base, names) in [
                (0x1000, at("runtime.gopark", 400)),
                (0x2000, at("main.worker", 21)),
                (0x3000, at("runtime.goexit", 1700)),
                (0x4000, at("io.Copy", 9)),
                (0x5000, Arc::from(Vec::new())),
            ] {
                n.names.insert(base + k, names);
            }
        }
        n
    }

    fn site(pcs: &[u64], end: WalkEnd) -> (Option<String>, WalkOutcome) {
        let (site, outcome) = names().site(pcs, end);
        (site.map(|l| format!("{}:{}", l.function, l.line)), outcome)
    }

    #[test]
    fn a_walk_up_to_goexit_names_the_first_frame_outside_the_internals() {
        let ok = (Some("main.worker:21".to_owned()), WalkOutcome::Complete);
        assert_eq!(site(&[0x1010, 0x2011, 0x3001], WalkEnd::NoFramePointer), ok);
        assert_eq!(site(&[0x1010, 0x2011, 0x3001], WalkEnd::Bottom), ok);
        // A stack of internals only: its outermost frame, goexit aside.
        assert_eq!(
            site(&[0x1010, 0x4011, 0x3001], WalkEnd::NoFramePointer),
            (Some("io.Copy:9".to_owned()), WalkOutcome::Complete)
        );
        // A goroutine that has not run: its entry, alone.
        assert_eq!(
            site(&[0x2000], WalkEnd::NoFramePointer),
            (Some("main.worker:21".into()), WalkOutcome::Complete)
        );
    }

    #[test]
    fn a_walk_cut_short_names_nothing_it_cannot_vouch_for() {
        // The user frame was read, but the chain broke above it: the frame
        // pointer it came from may already have been wrong.
        for (end, outcome) in [
            (WalkEnd::OutOfOrder, WalkOutcome::FramePointer),
            (WalkEnd::NoFramePointer, WalkOutcome::FramePointer),
            (WalkEnd::Unreadable, WalkOutcome::Unreadable),
        ] {
            assert_eq!(site(&[0x1010, 0x2011], end), (None, outcome), "{end:?}");
        }
        assert_eq!(site(&[0x1010, 0x5011, 0x3001], WalkEnd::Bottom), (None, WalkOutcome::NotCode));
        assert_eq!(site(&[0x1010, 0x6011, 0x3001], WalkEnd::Bottom), (None, WalkOutcome::Unnamed));
        assert_eq!(site(&[], WalkEnd::OutOfOrder), (None, WalkOutcome::FramePointer));
        // Cut at the frame bound: every frame walked checked out, so a user
        // frame among them is the site; none among them, none at all.
        assert_eq!(
            site(&[0x1010, 0x2011], WalkEnd::TooDeep),
            (Some("main.worker:21".into()), WalkOutcome::TooDeep)
        );
        assert_eq!(site(&[0x1010, 0x4011], WalkEnd::TooDeep), (None, WalkOutcome::TooDeep));
    }
}
