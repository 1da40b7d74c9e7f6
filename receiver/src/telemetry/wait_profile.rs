//! The wait profile's samples: at every census, each of the application's
//! waiting and runnable goroutines is a sample of its stack, standing for
//! the time since the previous census. Summed over a span of time, that is
//! an estimate of the time goroutines spent parked (and waiting to run) by
//! stack: unbiased for waits longer than the census interval, and a count
//! of the chance to be seen for shorter ones, as any sampling profile.
//! With trace linkage, a goroutine serving a span is sampled under that
//! span, so a slow trace's waits can be picked out of the profile.
//! Recording and summing are here; `export::pprof` turns a span of samples
//! into a pprof profile, `export::otlp_profiles` into OTLP profiles.

use std::{
    collections::{HashMap, VecDeque},
    sync::Mutex,
    time::Duration,
};

use super::census::{Parked, Stack};
use crate::bpf::ActiveSpanIds;

/// Longest span of censuses a profile may ask for (and kept).
pub const MAX_PROFILE_SPAN: Duration = Duration::from_secs(600);

/// What tells one sample from another: the stack, the state, the
/// wait-reason category ("" when runnable) and the span served, if known.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SampleKey {
    pub stack: Stack,
    pub state: &'static str,
    pub category: &'static str,
    pub span: Option<ActiveSpanIds>,
}

/// Goroutines of one census by what tells their samples apart.
pub type StackCounts = HashMap<SampleKey, u64>;

/// One census's samples.
#[derive(Clone, Debug)]
pub struct CensusSamples {
    pub pid: u32,
    /// When it was taken (monotonic) and the time it stands for.
    pub at: Duration,
    pub stands_for: Duration,
    pub stacks: StackCounts,
}

/// The samples of the last `MAX_PROFILE_SPAN`, from every session: shared
/// by the sessions that record and the endpoint that serves profiles.
#[derive(Debug, Default)]
pub struct WaitSamples {
    censuses: Mutex<VecDeque<CensusSamples>>,
}

impl WaitSamples {
    /// Records one census of `pid` taken at `at`, standing for the time
    /// since `stands_for` ago. Goroutines whose stack could not be read are
    /// left out (their time is in no stack).
    pub fn record(&self, pid: u32, at: Duration, stands_for: Duration, parked: &[Parked]) {
        let mut stacks = StackCounts::new();
        for p in parked.iter().filter(|p| !p.stack.is_empty()) {
            let key =
                SampleKey { stack: p.stack.clone(), state: p.state, category: p.category, span: p.span };
            *stacks.entry(key).or_default() += 1;
        }
        let mut censuses = self.censuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        censuses.push_back(CensusSamples { pid, at, stands_for, stacks });
        while censuses.front().is_some_and(|c| c.at + MAX_PROFILE_SPAN < at) {
            censuses.pop_front();
        }
    }

    /// The censuses taken in `from..=to`.
    pub fn between(&self, from: Duration, to: Duration) -> Vec<CensusSamples> {
        let censuses = self.censuses.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        censuses.iter().filter(|c| c.at >= from && c.at <= to).cloned().collect()
    }
}

/// One stack's samples summed over a span of censuses.
#[derive(Debug, PartialEq, Eq)]
pub struct Summed<'a> {
    pub pid: u32,
    pub key: &'a SampleKey,
    /// Goroutine samples (one per goroutine per census).
    pub goroutines: i64,
    /// Estimated time parked or runnable: each sample weighted by the time
    /// its census stands for.
    pub wait_ns: i64,
}

/// `censuses` summed by process and sample key, the heaviest first (ties in
/// a fixed order, so that a profile's bytes depend on its samples only).
pub fn summed<'a>(censuses: impl IntoIterator<Item = &'a CensusSamples>) -> Vec<Summed<'a>> {
    let mut sums: HashMap<(u32, &SampleKey), (i64, i64)> = HashMap::new();
    for c in censuses {
        let weight = i64::try_from(c.stands_for.as_nanos()).unwrap_or(i64::MAX);
        for (key, n) in &c.stacks {
            let n = i64::try_from(*n).unwrap_or(i64::MAX);
            let v = sums.entry((c.pid, key)).or_default();
            v.0 = v.0.saturating_add(n);
            v.1 = v.1.saturating_add(n.saturating_mul(weight));
        }
    }
    let mut out: Vec<Summed<'a>> = sums
        .into_iter()
        .map(|((pid, key), (goroutines, wait_ns))| Summed { pid, key, goroutines, wait_ns })
        .collect();
    out.sort_by(|a, b| {
        b.wait_ns
            .cmp(&a.wait_ns)
            .then(a.pid.cmp(&b.pid))
            .then_with(|| a.key.stack.iter().cmp(b.key.stack.iter()))
            .then(a.key.state.cmp(b.key.state))
            .then(a.key.category.cmp(b.key.category))
            .then(a.key.span.cmp(&b.key.span))
    });
    out
}

/// The mean time a census of `censuses` stands for, in nanoseconds: the
/// profile's sampling period.
pub fn mean_period_ns<'a>(censuses: impl IntoIterator<Item = &'a CensusSamples>) -> i64 {
    let (total, n) = censuses.into_iter().fold((0i64, 0i64), |(total, n), c| {
        (total.saturating_add(i64::try_from(c.stands_for.as_nanos()).unwrap_or(i64::MAX)), n + 1)
    });
    total.checked_div(n).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::telemetry::census::Location;

    fn parked(function: &str, state: &'static str) -> Parked {
        let l = Arc::new(Location { function: function.into(), file: "main.go".into(), line: 3 });
        Parked::at(1, 1, 1, state, "", Some(l))
    }

    #[test]
    fn censuses_are_kept_for_the_longest_span_and_alike_stacks_counted_once() {
        let s = WaitSamples::default();
        let mut in_span = parked("main.a", "waiting");
        in_span.span = Some(ActiveSpanIds { trace_id: [1; 16], span_id: [2; 8] });
        let census =
            [parked("main.a", "waiting"), parked("main.a", "waiting"), parked("main.b", "runnable"), in_span];
        let mut unread = parked("main.c", "waiting");
        unread.stack = Arc::new([]);
        for t in 0..700 {
            let mut all = census.to_vec();
            all.push(unread.clone());
            s.record(7, Duration::from_secs(t), Duration::from_secs(1), &all);
        }
        let kept = s.between(Duration::ZERO, Duration::from_secs(1000));
        assert_eq!(kept.len(), 601, "the last 600 s and the census at their start");
        assert_eq!(kept[0].at, Duration::from_secs(99));
        assert_eq!(kept[0].stacks.len(), 3, "the one in a span apart: {:?}", kept[0].stacks);
        assert_eq!(kept[0].stacks.values().sum::<u64>(), 4, "the unread stack is left out");
        assert_eq!(s.between(Duration::from_secs(690), Duration::from_secs(694)).len(), 5);
    }
}
