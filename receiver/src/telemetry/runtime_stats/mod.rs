//! The Go runtime's own statistics, read from the target's memory: the
//! aggregates `runtime/metrics` reports (scheduling latency, GC pauses and
//! cycles, memory by class, allocations, the heap goal, GOGC, the memory
//! limit, GOMAXPROCS), exact and at no cost to the target: no probe, no
//! trap, no stop. The addresses come from the symbol table, the offsets from
//! DWARF or the offsets table; `compute` turns a raw read into the values.
//!
//! The runtime updates these while gort reads, so a read is checked: the
//! per-P heap-statistics sequence numbers are even and unchanged across it,
//! the pacer's own consistency condition holds, and no counter went back
//! since the last read. A read that fails a check is retried, never
//! exported.

pub mod compute;

use std::collections::BTreeMap;

use gort_common::Field;
use gort_goexe::FieldOffset;
use thiserror::Error;

pub use self::compute::RuntimeStats;
use self::compute::{HeapTotals, Pacer, Raw, TIME_HISTOGRAM_WORDS, Torn};
use super::{
    memory::{MemoryError, TargetMemory},
    stats::TimeHistogram,
};

/// The runtime's globals the statistics live in.
pub const SCHED: &str = "runtime.sched";
pub const MEMSTATS: &str = "runtime.memstats";
pub const GC_CONTROLLER: &str = "runtime.gcController";
pub const GOMAXPROCS: &str = "runtime.gomaxprocs";
pub const ALLP: &str = "runtime.allp";
/// The size-class table: `runtime.class_to_size` up to Go 1.24, then
/// `internal/runtime/gc.SizeClassToSize`.
pub const SIZE_CLASSES: [&str; 2] = ["runtime.class_to_size", "internal/runtime/gc.SizeClassToSize"];

/// Every data symbol the reader may need.
pub const SYMBOLS: &[&str] =
    &[SCHED, MEMSTATS, GC_CONTROLLER, GOMAXPROCS, ALLP, SIZE_CLASSES[0], SIZE_CLASSES[1]];

/// The `memstats` system classes, in `Raw`'s order.
const SYS_FIELDS: [Field; 6] = [
    Field::MstatsStacksSys,
    Field::MstatsMspanSys,
    Field::MstatsMcacheSys,
    Field::MstatsBuckhashSys,
    Field::MstatsGcMiscSys,
    Field::MstatsOtherSys,
];

/// The pacer's fields, in `Pacer`'s order.
const PACER_FIELDS: [Field; 10] = [
    Field::GcControllerGcPercent,
    Field::GcControllerMemoryLimit,
    Field::GcControllerGcPercentHeapGoal,
    Field::GcControllerSweepDistMinTrigger,
    Field::GcControllerTriggered,
    Field::GcControllerHeapMarked,
    Field::GcControllerMappedReady,
    Field::GcControllerHeapFree,
    Field::GcControllerTotalAlloc,
    Field::GcControllerTotalFree,
];

/// The other fields, each read once (GC pauses need one of the last two).
const OTHER_FIELDS: [Field; 14] = [
    Field::SchedtTimeToRun,
    Field::MstatsHeapStats,
    Field::MstatsNumgc,
    Field::ConsistentHeapStatsGen,
    Field::HeapStatsDeltaCommitted,
    Field::HeapStatsDeltaReleased,
    Field::HeapStatsDeltaInStacks,
    Field::HeapStatsDeltaLargeAlloc,
    Field::HeapStatsDeltaLargeAllocCount,
    Field::HeapStatsDeltaSmallAllocCount,
    Field::HeapStatsDeltaLargeFree,
    Field::PStatsSeq,
    Field::SchedtStwTotalTimeGC,
    Field::MstatsGcPauseDist,
];

/// Every field the reader may need.
pub fn fields() -> Vec<Field> {
    OTHER_FIELDS.iter().chain(&SYS_FIELDS).chain(&PACER_FIELDS).copied().collect()
}

/// Reads tried before one report goes without the runtime's statistics: an
/// allocating program rewrites its heap statistics every few microseconds,
/// and one attempt takes about as long.
const MAX_ATTEMPTS: u32 = 100;
/// More Ps than any GOMAXPROCS in use: bounds the sequence-number reads.
const MAX_PS: u64 = 4096;

/// Why the runtime's statistics cannot be read from this executable.
#[derive(Debug, Error)]
pub enum Unavailable {
    #[error("{0} is not in the symbol table (a stripped binary keeps no data symbols)")]
    NoSymbol(&'static str),
    #[error("the offset of {0} is unknown (no DWARF, and the offsets table has no layout for this release)")]
    NoOffset(Field),
    #[error("the heap statistics' layout is not one gort knows ({0})")]
    Layout(&'static str),
    #[error(transparent)]
    Memory(#[from] MemoryError),
}

/// Why one read failed.
#[derive(Debug, Error)]
pub enum ReadError {
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error("the runtime's statistics changed under {MAX_ATTEMPTS} reads in a row ({0})")]
    Torn(String),
}

/// Where the globals are in the running process.
struct Addresses {
    sched: u64,
    memstats: u64,
    gc_controller: u64,
    gomaxprocs: u64,
    allp: u64,
}

/// The resolved offset of every field read.
struct Offsets {
    time_to_run: u64,
    /// From `sched` (Go 1.22+) or from `memstats` (Go 1.21).
    gc_pauses: (bool, u64),
    heap_stats: u64,
    delta_size: u64,
    committed: u64,
    released: u64,
    in_stacks: u64,
    large_alloc: u64,
    large_alloc_count: u64,
    small_alloc_count: u64,
    sys: [u64; 6],
    numgc: u64,
    pacer: [u64; 10],
    p_stats_seq: u64,
}

/// Every offset, or the first that is unknown.
fn all<const N: usize>(offsets: [Result<u64, Unavailable>; N]) -> Result<[u64; N], Unavailable> {
    let mut out = [0; N];
    for (o, r) in out.iter_mut().zip(offsets) {
        *o = r?;
    }
    Ok(out)
}

/// Reads the runtime's statistics of one process.
pub struct RuntimeStatsReader {
    mem: TargetMemory,
    at: Addresses,
    off: Offsets,
    class_sizes: Vec<u64>,
    last: Option<RuntimeStats>,
    /// Reads refused by a check since attach, retried or not.
    pub torn_reads: u64,
}

impl RuntimeStatsReader {
    /// `mem`: the target's memory; `symbols`: link-time addresses of
    /// `SYMBOLS`; `bias`: where the image
    /// is loaded relative to them; `fields`: the analysed offsets.
    pub fn new(
        mem: TargetMemory,
        bias: u64,
        symbols: &BTreeMap<String, u64>,
        fields: &BTreeMap<Field, FieldOffset>,
    ) -> Result<Self, Unavailable> {
        let symbol = |name: &'static str| {
            symbols.get(name).map(|a| a.wrapping_add(bias)).ok_or(Unavailable::NoSymbol(name))
        };
        let field = |f: Field| fields.get(&f).map(|o| o.offset).ok_or(Unavailable::NoOffset(f));
        let at = Addresses {
            sched: symbol(SCHED)?,
            memstats: symbol(MEMSTATS)?,
            gc_controller: symbol(GC_CONTROLLER)?,
            gomaxprocs: symbol(GOMAXPROCS)?,
            allp: symbol(ALLP)?,
        };
        let classes_at = symbol(SIZE_CLASSES[1]).or_else(|_| symbol(SIZE_CLASSES[0]))?;
        let gc_pauses = match (field(Field::SchedtStwTotalTimeGC), field(Field::MstatsGcPauseDist)) {
            (Ok(o), _) => (true, o),
            (_, Ok(o)) => (false, o),
            (Err(e), _) => return Err(e),
        };
        let gen_at = field(Field::ConsistentHeapStatsGen)?;
        let small_alloc_count = field(Field::HeapStatsDeltaSmallAllocCount)?;
        let large_free = field(Field::HeapStatsDeltaLargeFree)?;
        if gen_at % 3 != 0 || (gen_at / 3) % 8 != 0 {
            return Err(Unavailable::Layout("heapStats.gen does not follow three 8-byte-aligned deltas"));
        }
        if large_free <= small_alloc_count || (large_free - small_alloc_count) % 8 != 0 {
            return Err(Unavailable::Layout("largeFree does not follow the smallAllocCount array"));
        }
        let classes = ((large_free - small_alloc_count) / 8) as usize;
        let off = Offsets {
            time_to_run: field(Field::SchedtTimeToRun)?,
            gc_pauses,
            heap_stats: field(Field::MstatsHeapStats)?,
            delta_size: gen_at / 3,
            committed: field(Field::HeapStatsDeltaCommitted)?,
            released: field(Field::HeapStatsDeltaReleased)?,
            in_stacks: field(Field::HeapStatsDeltaInStacks)?,
            large_alloc: field(Field::HeapStatsDeltaLargeAlloc)?,
            large_alloc_count: field(Field::HeapStatsDeltaLargeAllocCount)?,
            small_alloc_count,
            sys: all(SYS_FIELDS.map(&field))?,
            numgc: field(Field::MstatsNumgc)?,
            pacer: all(PACER_FIELDS.map(&field))?,
            p_stats_seq: field(Field::PStatsSeq)?,
        };
        // The table is data the runtime never writes: read once.
        let mut bytes = vec![0u8; classes * 2];
        mem.read(classes_at, &mut bytes)?;
        let class_sizes =
            bytes.as_chunks::<2>().0.iter().map(|c| u64::from(u16::from_le_bytes(*c))).collect();
        Ok(Self { mem, at, off, class_sizes, last: None, torn_reads: 0 })
    }

    /// The statistics now: a read that passed every check.
    pub fn read(&mut self) -> Result<RuntimeStats, ReadError> {
        let mut why = String::new();
        let ps = self.p_pointers()?;
        for _ in 0..MAX_ATTEMPTS {
            // Only the heap statistics are written under the sequence
            // numbers: the check brackets their one read, nothing more.
            let before = self.stats_sequences(&ps)?;
            let heap = self.read_heap()?;
            let after = self.stats_sequences(&ps)?;
            // A torn heap read is refused before the rest is read at all.
            let checked = if before != after || before.iter().any(|s| s % 2 == 1) {
                Err(Torn::Writing)
            } else {
                let raw = self.read_rest(heap)?;
                compute::compute(&raw, &self.class_sizes).and_then(|s| {
                    self.last.as_ref().map_or(Ok(()), |l| compute::check_monotonic(l, &s)).map(|()| s)
                })
            };
            match checked {
                Ok(stats) => {
                    self.last = Some(stats.clone());
                    return Ok(stats);
                }
                Err(torn) => {
                    self.torn_reads += 1;
                    why = format!("{torn:?}");
                }
            }
        }
        Err(ReadError::Torn(why))
    }

    /// The scheduling-latency histogram alone, now (its buckets only grow:
    /// a read racing an increment is one sample early or late).
    pub fn schedule_latency(&self) -> Result<TimeHistogram, MemoryError> {
        Ok(compute::time_histogram(&self.time_to_run()?))
    }

    /// `sched.timeToRun` as it lies in memory.
    fn time_to_run(&self) -> Result<Vec<u64>, MemoryError> {
        self.mem.words(self.at.sched + self.off.time_to_run, TIME_HISTOGRAM_WORDS)
    }

    /// Every P (`allp`): they change only when GOMAXPROCS does, under a
    /// stop-the-world, and are never freed.
    fn p_pointers(&self) -> Result<Vec<u64>, MemoryError> {
        let ptr = self.mem.u64_at(self.at.allp)?;
        let len = self.mem.u64_at(self.at.allp + 8)?.min(MAX_PS);
        Ok(self.mem.words(ptr, len as usize)?.into_iter().filter(|&p| p != 0).collect())
    }

    /// Each P's `statsSeq`: odd while it writes its heap-statistics delta.
    fn stats_sequences(&self, ps: &[u64]) -> Result<Vec<u32>, MemoryError> {
        ps.iter().map(|p| self.mem.u32_at(p + self.off.p_stats_seq)).collect()
    }

    /// The three generations of `memstats.heapStats`, summed, in one read.
    fn read_heap(&self) -> Result<HeapTotals, MemoryError> {
        let (o, m) = (&self.off, &self.mem);
        let classes = self.class_sizes.len();
        let deltas = m.words(self.at.memstats + o.heap_stats, (3 * o.delta_size / 8) as usize)?;
        let mut heap = HeapTotals { small_alloc_count: vec![0; classes], ..HeapTotals::default() };
        for g in 0..3 {
            let word = |off: u64| deltas[((g * o.delta_size + off) / 8) as usize];
            heap.committed += word(o.committed) as i64;
            heap.released += word(o.released) as i64;
            heap.in_stacks += word(o.in_stacks) as i64;
            heap.large_alloc += word(o.large_alloc);
            heap.large_alloc_count += word(o.large_alloc_count);
            for (c, n) in heap.small_alloc_count.iter_mut().enumerate() {
                *n += word(o.small_alloc_count + 8 * c as u64);
            }
        }
        Ok(heap)
    }

    /// With the heap statistics read, everything else: atomics and plain
    /// words, each read once.
    fn read_rest(&self, heap: HeapTotals) -> Result<Raw, MemoryError> {
        let (o, m) = (&self.off, &self.mem);
        let gc_pauses_base = if o.gc_pauses.0 { self.at.sched } else { self.at.memstats };
        let sys = |i: usize| m.u64_at(self.at.memstats + o.sys[i]);
        let pacer = |i: usize| m.u64_at(self.at.gc_controller + o.pacer[i]);
        Ok(Raw {
            time_to_run: self.time_to_run()?,
            gc_pauses: m.words(gc_pauses_base + o.gc_pauses.1, TIME_HISTOGRAM_WORDS)?,
            heap,
            stacks_sys: sys(0)?,
            mspan_sys: sys(1)?,
            mcache_sys: sys(2)?,
            buckhash_sys: sys(3)?,
            gc_misc_sys: sys(4)?,
            other_sys: sys(5)?,
            numgc: m.u32_at(self.at.memstats + o.numgc)?,
            pacer: Pacer {
                gc_percent: m.u32_at(self.at.gc_controller + o.pacer[0])? as i32,
                memory_limit: pacer(1)? as i64,
                gc_percent_heap_goal: pacer(2)?,
                sweep_dist_min_trigger: pacer(3)?,
                triggered: pacer(4)?,
                heap_marked: pacer(5)?,
                mapped_ready: pacer(6)?,
                heap_free: pacer(7)?,
                total_alloc: pacer(8)?,
                total_free: pacer(9)?,
            },
            gomaxprocs: m.u32_at(self.at.gomaxprocs)? as i32,
        })
    }
}
