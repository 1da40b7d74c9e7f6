//! The estimates: what each stratum of the sampling recorded, scaled by
//! the time it stands for, and their errors.

use std::time::Instant;

use gort_common::WEIGHT_ONE;

use self::sampling::StratumCount;
use super::*;
use crate::{
    bpf::Probes,
    telemetry::stats::{RuntimeCounts, TimeHistogram},
};

/// How the sampled probes ran, and how much the estimates rest on.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SamplingSummary {
    pub first_window_ns: u64,
    pub window_ns: u64,
    pub period_ns: u64,
    /// Sampling windows opened.
    pub windows: u64,
    /// Deep-mode periods entered.
    pub deep_periods: u64,
    /// Time the hot probe recorded, and time since attach: the estimates
    /// scale the first up to the second.
    pub covered_ns: u64,
    pub elapsed_ns: u64,
    /// Relative standard error (1 sigma) of the estimated schedule-latency
    /// count and of the estimated count of application waits; 0 when exact.
    pub schedule_count_relative_error: Option<f64>,
    pub blocked_count_relative_error: Option<f64>,
    /// What the runtime's own scheduling-latency histogram counted while
    /// the hot probe's windows were open (it tracks 1 transition in 8): the
    /// ground truth for the probes' windows, which the probes themselves
    /// slow down. None when the runtime's statistics are not read.
    pub runtime_schedule_latency_in_windows: Option<TimeHistogram>,
}

impl SamplingSummary {
    /// Whether the hot probe missed some of the time since attach, so the
    /// goroutine-level figures are estimates.
    pub fn is_estimate(&self) -> bool {
        self.covered_ns < self.elapsed_ns
    }

    /// Fraction of the time since attach the hot probe recorded.
    pub fn coverage(&self) -> f64 {
        if self.elapsed_ns == 0 { 1.0 } else { (self.covered_ns as f64 / self.elapsed_ns as f64).min(1.0) }
    }
}

impl Session {
    /// What the current stratum recorded so far, and the two counts its
    /// error is judged by.
    pub(super) fn current_stratum(
        &self,
        probes: &Probes,
        now: Instant,
    ) -> Result<(RuntimeCounts, StratumCount, StratumCount), RunError> {
        let raw = crate::features::read_runtime(probes, self.wait_names)?.since(&self.stratum_base);
        let (covered, elapsed) = self.sampler.stratum_times(now);
        let count = |observed: u64| StratumCount {
            observed: observed as f64 / WEIGHT_ONE as f64,
            covered_s: covered.as_secs_f64(),
            elapsed_s: elapsed.as_secs_f64(),
        };
        let blocked: u64 = raw.blocked.values().map(TimeHistogram::count).sum();
        let (sched, blocked) = (count(raw.schedule_latency.count()), count(blocked));
        Ok((raw, sched, blocked))
    }

    /// Ends the current stratum: what it recorded joins the estimate at the
    /// factor it has reached, and the next stratum starts from here.
    pub(super) fn fold(&mut self, probes: &Probes) -> Result<(), RunError> {
        let now = Instant::now();
        let (raw, sched, blocked) = self.current_stratum(probes, now)?;
        self.folded.add(&raw.unweighted(self.sampler.factor(now)));
        self.strata.push((sched, blocked));
        self.stratum_base.add(&raw);
        Ok(())
    }

    /// The estimated totals since attach, and the strata they rest on.
    pub(super) fn estimate(
        &self,
        probes: &Probes,
    ) -> Result<(RuntimeCounts, Vec<(StratumCount, StratumCount)>), RunError> {
        let now = Instant::now();
        let (raw, sched, blocked) = self.current_stratum(probes, now)?;
        let mut estimate = self.folded.clone();
        estimate.add(&raw.unweighted(self.sampler.factor(now)));
        let mut strata = self.strata.clone();
        strata.push((sched, blocked));
        Ok((estimate, strata))
    }

    /// How the sampled probes ran so far, and the error of the estimates.
    pub(super) fn sampling_summary(&self, strata: &[(StratumCount, StratumCount)]) -> SamplingSummary {
        let schedule = self.sampler.schedule();
        let (covered, elapsed) = self.sampler.coverage(Instant::now());
        let of = |pick: fn(&(StratumCount, StratumCount)) -> StratumCount| {
            let counts: Vec<StratumCount> = strata.iter().map(pick).collect();
            sampling::relative_error(&counts)
        };
        SamplingSummary {
            first_window_ns: duration_ns(schedule.first_window),
            window_ns: duration_ns(schedule.window),
            period_ns: duration_ns(schedule.period),
            windows: self.sampler.windows,
            deep_periods: self.sampler.deep_periods,
            covered_ns: duration_ns(covered),
            elapsed_ns: duration_ns(elapsed),
            schedule_count_relative_error: of(|s| s.0),
            blocked_count_relative_error: of(|s| s.1),
            runtime_schedule_latency_in_windows: self.runtime_in_windows_now(),
        }
    }
}
