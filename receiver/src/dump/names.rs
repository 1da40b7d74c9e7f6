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

use super::{Symbols, parks::is_internal, with_symbols};
use crate::telemetry::census::{Location, Stack};

/// Named pcs kept at most; beyond it the names are forgotten and read again.
const MAX_NAMED_PCS: usize = 200_000;

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

    /// The site of a named walk: the first frame outside the internals,
    /// else (a goroutine that parks in the runtime's own code) the
    /// outermost named.
    pub fn site(&self, pcs: &[u64]) -> Option<Arc<Location>> {
        let mut outermost = None;
        for (k, pc) in pcs.iter().enumerate() {
            let names = self.names.get(&lookup_pc(k, *pc))?;
            if names.is_empty() {
                // Not code: a frame pointer the walk should not have trusted.
                return None;
            }
            for name in names.iter() {
                if !is_internal(&name.function) {
                    return Some(name.clone());
                }
                outermost = Some(name.clone());
            }
        }
        outermost
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
