//! Histograms read from the kernel, in the Go runtime's own bucket layout
//! (`gort_common::time_hist`): differences since attach, quantiles, and the
//! coarser power-of-two buckets gort exports over OTLP.

use std::collections::BTreeMap;

use gort_common::{WEIGHT_ONE, time_hist};
use gort_goexe::wait_reasons;

/// One histogram in runtime buckets.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TimeHistogram {
    /// Counts per runtime bucket (`time_hist::COUNTS` of them).
    pub counts: Vec<u64>,
    /// Values beyond the last bucket (2^48 ns, about 3 days).
    pub overflow: u64,
    /// Sum of all recorded values, in ns.
    pub sum_ns: u64,
}

impl TimeHistogram {
    /// From the kernel's SLOTS values (counts, overflow, sum).
    pub fn from_slots(slots: &[u64]) -> Self {
        let counts = slots.iter().take(time_hist::COUNTS as usize).copied().collect();
        let at = |i: u32| slots.get(i as usize).copied().unwrap_or(0);
        Self { counts, overflow: at(time_hist::OVERFLOW_SLOT), sum_ns: at(time_hist::SUM_SLOT) }
    }

    /// Adds `other`'s counts into this histogram.
    pub fn merge(&mut self, other: &Self) {
        if self.counts.len() < other.counts.len() {
            self.counts.resize(other.counts.len(), 0);
        }
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        self.overflow += other.overflow;
        self.sum_ns += other.sum_ns;
    }

    /// What was recorded since `baseline` was read.
    pub fn since(&self, baseline: &Self) -> Self {
        let counts = self
            .counts
            .iter()
            .enumerate()
            .map(|(i, c)| c.wrapping_sub(baseline.counts.get(i).copied().unwrap_or(0)))
            .collect();
        // Wrapping: the kernel's sums are u64 ns and do wrap (ten thousand
        // goroutines parked all the time add 2^64 ns in three weeks).
        Self {
            counts,
            overflow: self.overflow.wrapping_sub(baseline.overflow),
            sum_ns: self.sum_ns.wrapping_sub(baseline.sum_ns),
        }
    }

    /// From the kernel's fixed-point counts (WEIGHT_ONE per observation) to
    /// estimated observations, multiplied by `factor` (the sampling period
    /// over the window; 1 when not sampling). Exact when unsampled.
    pub fn unweighted(&self, factor: f64) -> Self {
        let count = |c: u64| (c as f64 * factor / WEIGHT_ONE as f64).round() as u64;
        Self {
            counts: self.counts.iter().map(|&c| count(c)).collect(),
            overflow: count(self.overflow),
            sum_ns: (self.sum_ns as f64 * factor).round() as u64,
        }
    }

    pub fn count(&self) -> u64 {
        self.counts.iter().sum::<u64>() + self.overflow
    }

    /// The runtime bucket holding quantile `q` (0..=1), if anything was recorded.
    pub fn quantile_bucket(&self, q: f64) -> Option<usize> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(i);
            }
        }
        Some(self.counts.len())
    }

    /// Quantile `q` in ns, interpolated linearly inside its bucket.
    pub fn quantile_ns(&self, q: f64) -> Option<f64> {
        let bucket = self.quantile_bucket(q)?;
        if bucket >= self.counts.len() {
            return Some(time_hist::lower_bound(time_hist::COUNTS - 1) as f64);
        }
        let total = self.count() as f64;
        let before: u64 = self.counts[..bucket].iter().sum();
        let in_bucket = self.counts[bucket].max(1) as f64;
        let lo = time_hist::lower_bound(bucket as u32) as f64;
        let hi = if bucket + 1 < self.counts.len() {
            time_hist::lower_bound(bucket as u32 + 1) as f64
        } else {
            lo * 1.25
        };
        let frac = ((q * total - before as f64) / in_bucket).clamp(0.0, 1.0);
        Some(lo + (hi - lo) * frac)
    }

    /// Export view: counts folded into power-of-two buckets, with the upper
    /// bounds (in seconds) that separate them. `counts.len() == bounds.len() + 1`.
    pub fn power_of_two_buckets(&self) -> (Vec<f64>, Vec<u64>) {
        let per = time_hist::SUB_BUCKETS as usize;
        let mut counts: Vec<u64> = self.counts.chunks(per).map(|c| c.iter().sum()).collect();
        // Bucket b covers [lower_bound(b*per), lower_bound((b+1)*per)).
        let bounds: Vec<f64> =
            (1..counts.len()).map(|b| time_hist::lower_bound((b * per) as u32) as f64 / 1e9).collect();
        if let Some(last) = counts.last_mut() {
            *last += self.overflow;
        }
        (bounds, counts)
    }
}

/// The in-kernel runtime aggregates at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeCounts {
    /// `go.schedule.duration`: runnable -> running, every transition.
    pub schedule_latency: TimeHistogram,
    /// `go.memory.gc.pause.duration`: each GC stop-the-world.
    pub gc_pause: TimeHistogram,
    pub gc_cycles: u64,
    pub other_stw_pauses: u64,
    pub goroutines_created: u64,
    pub goroutines_exited: u64,
    /// Goroutines whose state the probes' table displaced while an interval
    /// of theirs was open (gort's own loss, counted, never scaled): that
    /// interval went unmeasured.
    pub goroutine_states_displaced: u64,
    /// Spans in flight whose account the span table gave to a newer span
    /// (gort's own loss, counted, never scaled): they end without totals.
    pub spans_displaced: u64,
    /// Time the application's goroutines spent parked, by the runtime's
    /// wait-reason name (reasons with nothing recorded are left out).
    pub blocked: BTreeMap<String, TimeHistogram>,
    /// The same for the runtime's own goroutines (GC workers, sweeper,
    /// scavenger, finalizers, ...): their idle waits are their normal state,
    /// not something the application waited for.
    pub runtime_blocked: BTreeMap<String, TimeHistogram>,
}

/// `since` for a map of histograms: reasons with no new observation are left out.
fn blocked_since(
    now: &BTreeMap<String, TimeHistogram>,
    base: &BTreeMap<String, TimeHistogram>,
) -> BTreeMap<String, TimeHistogram> {
    now.iter()
        .map(|(reason, h)| (reason.clone(), base.get(reason).map_or_else(|| h.clone(), |b| h.since(b))))
        .filter(|(_, h)| h.count() > 0)
        .collect()
}

fn blocked_unweighted(m: &BTreeMap<String, TimeHistogram>, factor: f64) -> BTreeMap<String, TimeHistogram> {
    m.iter().map(|(r, h)| (r.clone(), h.unweighted(factor))).collect()
}

fn blocked_add(into: &mut BTreeMap<String, TimeHistogram>, other: &BTreeMap<String, TimeHistogram>) {
    for (reason, h) in other {
        into.entry(reason.clone()).or_default().merge(h);
    }
}

impl RuntimeCounts {
    /// What was recorded since `b` was read.
    pub fn since(&self, b: &Self) -> Self {
        Self {
            schedule_latency: self.schedule_latency.since(&b.schedule_latency),
            gc_pause: self.gc_pause.since(&b.gc_pause),
            gc_cycles: self.gc_cycles.wrapping_sub(b.gc_cycles),
            other_stw_pauses: self.other_stw_pauses.wrapping_sub(b.other_stw_pauses),
            goroutines_created: self.goroutines_created.wrapping_sub(b.goroutines_created),
            goroutines_exited: self.goroutines_exited.wrapping_sub(b.goroutines_exited),
            goroutine_states_displaced: self
                .goroutine_states_displaced
                .wrapping_sub(b.goroutine_states_displaced),
            spans_displaced: self.spans_displaced.wrapping_sub(b.spans_displaced),
            blocked: blocked_since(&self.blocked, &b.blocked),
            runtime_blocked: blocked_since(&self.runtime_blocked, &b.runtime_blocked),
        }
    }

    /// Kernel differences (`since`) as estimates: fixed-point histograms to
    /// counts, and what the sampled probe measured multiplied by `factor`.
    /// GC pauses and cycles come from probes that are never sampled.
    pub fn unweighted(&self, factor: f64) -> Self {
        let scale = |c: u64| (c as f64 * factor).round() as u64;
        Self {
            schedule_latency: self.schedule_latency.unweighted(factor),
            gc_pause: self.gc_pause.unweighted(1.0),
            gc_cycles: self.gc_cycles,
            other_stw_pauses: self.other_stw_pauses,
            goroutines_created: scale(self.goroutines_created),
            goroutines_exited: scale(self.goroutines_exited),
            goroutine_states_displaced: self.goroutine_states_displaced,
            spans_displaced: self.spans_displaced,
            blocked: blocked_unweighted(&self.blocked, factor),
            runtime_blocked: blocked_unweighted(&self.runtime_blocked, factor),
        }
    }

    /// Adds `other` (a later difference) into this running total.
    pub fn add(&mut self, other: &Self) {
        self.schedule_latency.merge(&other.schedule_latency);
        self.gc_pause.merge(&other.gc_pause);
        self.gc_cycles += other.gc_cycles;
        self.other_stw_pauses += other.other_stw_pauses;
        self.goroutines_created += other.goroutines_created;
        self.goroutines_exited += other.goroutines_exited;
        self.goroutine_states_displaced += other.goroutine_states_displaced;
        self.spans_displaced += other.spans_displaced;
        blocked_add(&mut self.blocked, &other.blocked);
        blocked_add(&mut self.runtime_blocked, &other.runtime_blocked);
    }

    /// Time GC background mark workers spent marking, in ns: the P-time the
    /// GC took from goroutines.
    /// Mark workers are runtime goroutines; a target whose `g.startpc`
    /// offset is unknown has them among the application's.
    pub fn gc_mark_worker_ns(&self) -> u64 {
        [&self.runtime_blocked, &self.blocked]
            .iter()
            .filter_map(|m| m.get(wait_reasons::GC_WORKER_ACTIVE))
            .map(|h| h.sum_ns)
            .sum()
    }

    /// Blocked time merged into the exported wait-reason categories (without
    /// the mark workers' working time, which is not blocking).
    pub fn blocked_by_category(&self) -> BTreeMap<&'static str, TimeHistogram> {
        let mut out: BTreeMap<&'static str, TimeHistogram> = BTreeMap::new();
        for (reason, h) in self.blocked.iter().filter(|(r, _)| *r != wait_reasons::GC_WORKER_ACTIVE) {
            out.entry(wait_reasons::category(reason)).or_default().merge(h);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hist(values: &[u64]) -> TimeHistogram {
        let mut slots = vec![0; time_hist::SLOTS as usize];
        for &v in values {
            slots[time_hist::slot(v) as usize] += 1;
            slots[time_hist::SUM_SLOT as usize] += v;
        }
        TimeHistogram::from_slots(&slots)
    }

    #[test]
    fn quantiles_fall_in_the_right_bucket() {
        let h = hist(&[1_000; 90].iter().chain([1_000_000; 10].iter()).copied().collect::<Vec<_>>());
        assert_eq!(h.count(), 100);
        assert_eq!(h.quantile_bucket(0.5), Some(time_hist::slot(1_000) as usize));
        assert_eq!(h.quantile_bucket(0.99), Some(time_hist::slot(1_000_000) as usize));
        let p99 = h.quantile_ns(0.99).unwrap();
        assert!((786_432.0..=1_048_576.0).contains(&p99), "{p99}");
        assert_eq!(TimeHistogram::default().quantile_ns(0.5), None);
    }

    #[test]
    fn since_subtracts_the_baseline() {
        let before = hist(&[1_000, 2_000]);
        let after = hist(&[1_000, 2_000, 2_000, 50_000]);
        let d = after.since(&before);
        assert_eq!(d.count(), 2);
        assert_eq!(d.sum_ns, 52_000);
    }

    #[test]
    fn sampled_counts_are_unweighted_and_scaled() {
        // Two intervals seen in a 1-in-20 window, one with weight 1 and one
        // with weight 2 (half the window long): they stand for 60 intervals.
        let mut slots = vec![0; time_hist::SLOTS as usize];
        slots[time_hist::slot(1_000) as usize] = WEIGHT_ONE + 2 * WEIGHT_ONE;
        slots[time_hist::SUM_SLOT as usize] = 1_000 + 2 * 1_000;
        let h = TimeHistogram::from_slots(&slots).unweighted(20.0);
        assert_eq!(h.count(), 60);
        assert_eq!(h.sum_ns, 60_000);
        let exact = TimeHistogram::from_slots(&slots).unweighted(1.0);
        assert_eq!(exact.count(), 3);
        let mut rt = RuntimeCounts { gc_cycles: 4, goroutines_created: 5, ..RuntimeCounts::default() };
        rt.gc_pause = TimeHistogram::from_slots(&slots);
        let est = rt.unweighted(20.0);
        assert_eq!((est.gc_cycles, est.goroutines_created, est.gc_pause.count()), (4, 100, 3));
    }

    #[test]
    fn power_of_two_buckets_keep_every_count() {
        let h = hist(&[100, 300, 1_000, 1_000_000, 1 << 50]);
        let (bounds, counts) = h.power_of_two_buckets();
        assert_eq!(counts.len(), bounds.len() + 1);
        assert_eq!(counts.iter().sum::<u64>(), 5);
        assert!((bounds[0] - 256e-9).abs() < 1e-15, "{}", bounds[0]);
        assert!(bounds.windows(2).all(|w| (w[1] / w[0] - 2.0).abs() < 1e-9));
    }
}
