//! From the runtime's raw statistics to the values `runtime/metrics` gives,
//! computed as `src/runtime/metrics.go` and `mgcpacer.go` compute them (the
//! same in Go 1.21 through 1.27), and the checks that tell a torn read.

use gort_common::time_hist;

use crate::telemetry::stats::TimeHistogram;

/// A runtime `timeHistogram` as it lies in memory: 160 counts, then the
/// underflow and overflow counts.
pub const TIME_HISTOGRAM_WORDS: usize = time_hist::COUNTS as usize + 2;

/// The heap statistics summed over the three generations of
/// `memstats.heapStats` (`consistentHeapStats.read` merges them the same way).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeapTotals {
    pub committed: i64,
    pub released: i64,
    pub in_stacks: i64,
    pub large_alloc: u64,
    pub large_alloc_count: u64,
    /// Per size class.
    pub small_alloc_count: Vec<u64>,
}

/// What the GC pacer keeps (`gcControllerState`), for the heap goal, GOGC
/// and the memory limit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Pacer {
    pub gc_percent: i32,
    pub memory_limit: i64,
    pub gc_percent_heap_goal: u64,
    pub sweep_dist_min_trigger: u64,
    pub triggered: u64,
    pub heap_marked: u64,
    pub mapped_ready: u64,
    pub heap_free: u64,
    pub total_alloc: u64,
    pub total_free: u64,
}

/// One read of the runtime's statistics, as they are in memory.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Raw {
    /// `sched.timeToRun`, `TIME_HISTOGRAM_WORDS` words.
    pub time_to_run: Vec<u64>,
    /// `sched.stwTotalTimeGC` (Go 1.22+) or `memstats.gcPauseDist` (1.21).
    pub gc_pauses: Vec<u64>,
    pub heap: HeapTotals,
    pub stacks_sys: u64,
    pub mspan_sys: u64,
    pub mcache_sys: u64,
    pub buckhash_sys: u64,
    pub gc_misc_sys: u64,
    pub other_sys: u64,
    pub numgc: u32,
    pub pacer: Pacer,
    pub gomaxprocs: i32,
}

/// The runtime's statistics as `runtime/metrics` names them.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeStats {
    /// `/sched/latencies:seconds` (the runtime tracks 1 transition in 8).
    pub schedule_latency: TimeHistogram,
    /// `/gc/pauses:seconds`.
    pub gc_pauses: TimeHistogram,
    /// `/memory/classes/total:bytes` − `/memory/classes/heap/released:bytes`.
    pub memory_used: u64,
    /// `/memory/classes/heap/stacks:bytes` + `/memory/classes/os-stacks:bytes`.
    pub memory_stacks: u64,
    /// `/gc/gomemlimit:bytes`.
    pub memory_limit: i64,
    /// `/gc/heap/allocs:bytes`.
    pub allocated_bytes: u64,
    /// `/gc/heap/allocs:objects`.
    pub allocations: u64,
    /// `/gc/heap/goal:bytes`.
    pub heap_goal: u64,
    /// `/gc/cycles/total:gc-cycles`.
    pub gc_cycles: u64,
    /// `/sched/gomaxprocs:threads`.
    pub gomaxprocs: u64,
    /// `/gc/gogc:percent`, signed: -1 when GC is off.
    pub gogc: i64,
}

/// Why a read cannot be exported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Torn {
    /// A monotonic counter went back (a read during a generation merge).
    Regressed(&'static str),
    /// The pacer's own consistency condition failed (free + allocated heap
    /// above the mapped memory: the values were updated apart).
    Inconsistent,
    /// The size-class table and the delta disagree on the number of classes.
    Classes,
    /// A P was writing its heap-statistics delta (its sequence number was
    /// odd or moved during the read).
    Writing,
}

/// `runtime/metrics`' values from one raw read; `class_sizes` is the
/// runtime's size-class table (`class_to_size`, `gc.SizeClassToSize`).
pub fn compute(raw: &Raw, class_sizes: &[u64]) -> Result<RuntimeStats, Torn> {
    let h = &raw.heap;
    if h.small_alloc_count.len() != class_sizes.len() {
        return Err(Torn::Classes);
    }
    let p = &raw.pacer;
    let heap_alloc = p.total_alloc.wrapping_sub(p.total_free);
    if p.heap_free.wrapping_add(heap_alloc) > p.mapped_ready {
        // memoryLimitHeapGoal loops until this holds; so does the reader.
        return Err(Torn::Inconsistent);
    }
    let small_bytes: u64 = h.small_alloc_count.iter().zip(class_sizes).map(|(n, size)| n * size).sum();
    let committed_and_released = (h.committed + h.released) as u64;
    let sys =
        raw.stacks_sys + raw.mspan_sys + raw.mcache_sys + raw.buckhash_sys + raw.gc_misc_sys + raw.other_sys;
    Ok(RuntimeStats {
        schedule_latency: time_histogram(&raw.time_to_run),
        gc_pauses: time_histogram(&raw.gc_pauses),
        memory_used: (committed_and_released + sys).saturating_sub(h.released as u64),
        memory_stacks: h.in_stacks as u64 + raw.stacks_sys,
        memory_limit: p.memory_limit,
        allocated_bytes: h.large_alloc + small_bytes,
        allocations: h.large_alloc_count + h.small_alloc_count.iter().sum::<u64>(),
        heap_goal: heap_goal(p),
        gc_cycles: u64::from(raw.numgc),
        gomaxprocs: raw.gomaxprocs as u64,
        gogc: i64::from(p.gc_percent),
    })
}

/// Checks `now` against the previous exported read: counters and histogram
/// buckets never go back.
pub fn check_monotonic(previous: &RuntimeStats, now: &RuntimeStats) -> Result<(), Torn> {
    let up = |name, a: u64, b: u64| if b < a { Err(Torn::Regressed(name)) } else { Ok(()) };
    up("/gc/heap/allocs:bytes", previous.allocated_bytes, now.allocated_bytes)?;
    up("/gc/heap/allocs:objects", previous.allocations, now.allocations)?;
    up("/gc/cycles/total:gc-cycles", previous.gc_cycles, now.gc_cycles)?;
    for (name, a, b) in [
        ("/sched/latencies:seconds", &previous.schedule_latency, &now.schedule_latency),
        ("/gc/pauses:seconds", &previous.gc_pauses, &now.gc_pauses),
    ] {
        for (x, y) in a.counts.iter().zip(&b.counts) {
            up(name, *x, *y)?;
        }
        up(name, a.overflow, b.overflow)?;
    }
    Ok(())
}

/// A runtime `timeHistogram` (counts, underflow, overflow) as gort's
/// histogram: the runtime's buckets are gort's. Negative durations (the
/// underflow) belong below the first bound, so they join the first bucket.
/// The runtime keeps no sum.
pub fn time_histogram(words: &[u64]) -> TimeHistogram {
    let n = time_hist::COUNTS as usize;
    let mut counts: Vec<u64> = words.iter().take(n).copied().collect();
    counts.resize(n, 0);
    counts[0] += words.get(n).copied().unwrap_or(0);
    TimeHistogram { counts, overflow: words.get(n + 1).copied().unwrap_or(0), sum_ns: 0 }
}

/// `gcControllerState.heapGoalInternal`'s goal.
fn heap_goal(p: &Pacer) -> u64 {
    const MIN_RUNWAY: u64 = 64 << 10;
    let mut goal = p.gc_percent_heap_goal;
    let limit_goal = memory_limit_heap_goal(p);
    if limit_goal < goal {
        return limit_goal;
    }
    goal = goal.max(p.sweep_dist_min_trigger);
    if p.triggered != u64::MAX && goal < p.triggered.wrapping_add(MIN_RUNWAY) {
        goal = p.triggered + MIN_RUNWAY;
    }
    goal
}

/// `gcControllerState.memoryLimitHeapGoal`.
fn memory_limit_heap_goal(p: &Pacer) -> u64 {
    const HEADROOM_PERCENT: u64 = 3;
    const MIN_HEADROOM: u64 = 1 << 20;
    let heap_alloc = p.total_alloc.wrapping_sub(p.total_free);
    let limit = p.memory_limit as u64;
    let non_heap = p.mapped_ready - p.heap_free - heap_alloc;
    let overage = p.mapped_ready.saturating_sub(limit);
    if non_heap + overage >= limit {
        return p.heap_marked;
    }
    let mut goal = limit - (non_heap + overage);
    let headroom = (goal / 100 * HEADROOM_PERCENT).max(MIN_HEADROOM);
    goal = if goal < headroom || goal - headroom < headroom { headroom } else { goal - headroom };
    goal.max(p.heap_marked)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw() -> Raw {
        Raw {
            time_to_run: vec![0; TIME_HISTOGRAM_WORDS],
            gc_pauses: vec![0; TIME_HISTOGRAM_WORDS],
            heap: HeapTotals {
                committed: 4 << 20,
                released: 1 << 20,
                in_stacks: 256 << 10,
                large_alloc: 100_000,
                large_alloc_count: 2,
                small_alloc_count: vec![0, 10, 3],
            },
            stacks_sys: 16 << 10,
            mspan_sys: 1000,
            mcache_sys: 2000,
            buckhash_sys: 3000,
            gc_misc_sys: 4000,
            other_sys: 5000,
            numgc: 7,
            pacer: Pacer {
                gc_percent: 100,
                memory_limit: i64::MAX,
                gc_percent_heap_goal: 4 << 20,
                triggered: u64::MAX,
                mapped_ready: 5 << 20,
                heap_free: 1 << 20,
                total_alloc: 3 << 20,
                total_free: 1 << 20,
                ..Pacer::default()
            },
            gomaxprocs: 2,
        }
    }

    const SIZES: [u64; 3] = [0, 8, 16];

    #[test]
    fn memory_and_allocations_as_runtime_metrics_computes_them() {
        let s = compute(&raw(), &SIZES).unwrap();
        // total (committed + released + sys) minus released.
        assert_eq!(s.memory_used, (4 << 20) + (16 << 10) + 15_000);
        assert_eq!(s.memory_stacks, (256 << 10) + (16 << 10));
        assert_eq!(s.allocated_bytes, 100_000 + 10 * 8 + 3 * 16);
        assert_eq!(s.allocations, 2 + 13);
        assert_eq!((s.gc_cycles, s.gomaxprocs, s.gogc), (7, 2, 100));
    }

    #[test]
    fn heap_goal_follows_gogc_then_the_runway_then_the_limit() {
        let mut r = raw();
        assert_eq!(compute(&r, &SIZES).unwrap().heap_goal, 4 << 20);
        // Triggered just under the goal: at least 64 KiB of runway.
        r.pacer.triggered = (4 << 20) - 1000;
        assert_eq!(compute(&r, &SIZES).unwrap().heap_goal, (4 << 20) - 1000 + (64 << 10));
        // A 4 MiB limit, 5 MiB mapped (1 MiB over) of which 2 MiB is not
        // heap: 1 MiB is left, and the minimum headroom keeps it at 1 MiB.
        r.pacer.memory_limit = 4 << 20;
        assert_eq!(compute(&r, &SIZES).unwrap().heap_goal, 1 << 20);
        // The live heap is the floor.
        r.pacer.heap_marked = 3 << 20;
        assert_eq!(compute(&r, &SIZES).unwrap().heap_goal, 3 << 20);
    }

    #[test]
    fn underflow_joins_the_first_bucket_and_overflow_stays_apart() {
        let mut r = raw();
        r.time_to_run[0] = 5;
        r.time_to_run[3] = 2;
        r.time_to_run[TIME_HISTOGRAM_WORDS - 2] = 1;
        r.time_to_run[TIME_HISTOGRAM_WORDS - 1] = 4;
        let h = compute(&r, &SIZES).unwrap().schedule_latency;
        assert_eq!((h.counts[0], h.counts[3], h.overflow, h.count()), (6, 2, 4, 12));
    }

    #[test]
    fn torn_reads_are_refused() {
        let mut r = raw();
        r.pacer.heap_free = 4 << 20;
        assert_eq!(compute(&r, &SIZES), Err(Torn::Inconsistent));
        assert_eq!(compute(&raw(), &SIZES[..2]), Err(Torn::Classes));
        let before = compute(&raw(), &SIZES).unwrap();
        let mut r = raw();
        r.heap.small_alloc_count[1] -= 1;
        let after = compute(&r, &SIZES).unwrap();
        assert_eq!(check_monotonic(&before, &after), Err(Torn::Regressed("/gc/heap/allocs:bytes")));
        assert_eq!(check_monotonic(&before, &before), Ok(()));
    }
}
