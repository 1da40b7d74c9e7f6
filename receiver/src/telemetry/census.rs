//! Live goroutines by state: a census of the target's `runtime.allgs`, read
//! from its memory through /proc/PID/mem once per report. Probes could only
//! count transitions seen since attach (and not at all between sampling
//! windows); the runtime's own list is exact at every moment and costs the
//! target nothing. The runtime's own goroutines (those that start at a
//! runtime entry: GC workers, sweeper, scavenger, ...) are counted apart,
//! as `runtime.NumGoroutine` leaves them out.

use std::{collections::BTreeMap, sync::Arc};

use gort_common::gstatus;
use gort_goexe::wait_reasons;

use super::memory::TargetMemory;

/// Most goroutines read per census; beyond it the rest are counted as
/// `unread`, so a runaway program cannot make one report take seconds.
const MAX_CENSUS: u64 = 1_000_000;

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
}

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
        })
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
    pub fn take(&self) -> Result<Live, CensusError> {
        let ptr = self.u64_at(self.allgs)?;
        let len = self.u64_at(self.allgs + 8)?;
        let read = len.min(MAX_CENSUS);
        let mut pointers = vec![0u8; (read * 8) as usize];
        self.read(ptr, &mut pointers)?;
        let mut live = Live::default();
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
            let counts = if self.is_runtime(gp)? { &mut live.runtime } else { &mut live.application };
            *counts.entry(key).or_default() += 1;
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
