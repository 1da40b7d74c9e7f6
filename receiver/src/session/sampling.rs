//! When the hot probe is attached, and what an observation made while it was
//! attached stands for: a pure state machine the run loop drives with the
//! clock, and the error of the estimates it yields.
//!
//! Time since attach is cut into strata. A stratum begins when a window
//! opens: the first one at attach (`first_window` long, so that a short look
//! at a process sees its first seconds whole), then one every `period`, each
//! `window` long. Deep mode and continuous mode are strata whose window never
//! closes. What the kernel recorded in a stratum's window is scaled by the
//! time the stratum has lasted so far over the time its window covered: 1
//! while the window is open, `elapsed / window` after. A 5 s run with a 2 s
//! first window therefore reports 2.5 times what it saw, not
//! `period / window` times, and every cumulative total only grows.
//!
//! The estimate is unbiased when the load is steady within each stratum; a
//! load that changes between windows shows up as the spread of the windows'
//! rates, which `relative_error` includes.

use std::time::{Duration, Instant};

/// When the sampled probes are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    /// The window that opens at attach.
    pub first_window: Duration,
    /// Every later window.
    pub window: Duration,
    /// One window opens every period.
    pub period: Duration,
}

impl Schedule {
    /// A window as long as the period: always attached, nothing scaled.
    pub fn is_continuous(&self) -> bool {
        self.window >= self.period
    }

    /// Fraction of the time the sampled probes are attached in steady state.
    pub fn duty(&self) -> f64 {
        if self.is_continuous() { 1.0 } else { self.window.as_secs_f64() / self.period.as_secs_f64() }
    }
}

/// What the session must do to the probes now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Every probe, continuously (deep mode), until told otherwise.
    StartDeep,
    /// Detach the deep-only probes if attached, then attach the sampled ones
    /// and let the kernel record for `length` (None: with no end). A new
    /// stratum begins: the current one is folded first.
    OpenWindow { length: Option<Duration> },
    /// Detach the sampled probes: the window is over.
    CloseWindow,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Deep { until: Instant },
    Continuous,
    Open { until: Instant, next: Instant },
    Closed { next: Instant },
}

/// The stratum in progress: when its window opened and for how long it
/// records (None: until the stratum ends).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stratum {
    start: Instant,
    window: Option<Duration>,
}

/// The attach schedule of one session.
#[derive(Clone, Debug)]
pub struct Sampler {
    schedule: Schedule,
    phase: Phase,
    stratum: Stratum,
    /// The window the last step asked for (its length, None: no end), until
    /// `opened` says it is open.
    pending: Option<Option<Duration>>,
    /// When the first window opened: the estimates cover the time since.
    attached: Option<Instant>,
    /// Window time of the strata already folded.
    covered_before: Duration,
    pub windows: u64,
    pub deep_periods: u64,
}

impl Sampler {
    /// A session attached at `now`: deep mode first if asked for, else the
    /// first window. The returned step is to be carried out, then `opened`
    /// called.
    pub fn new(schedule: Schedule, now: Instant, deep: Option<Duration>) -> (Self, Step) {
        let mut s = Self {
            schedule,
            phase: Phase::Continuous,
            stratum: Stratum { start: now, window: Some(Duration::ZERO) },
            pending: None,
            attached: None,
            covered_before: Duration::ZERO,
            windows: 0,
            deep_periods: 0,
        };
        let step = match deep {
            Some(length) => s.deep(now, length),
            None => s.open(now, schedule.first_window),
        };
        (s, step)
    }

    /// Deep mode for `length` from `now` (SIGUSR1, `--deep`).
    pub fn deep(&mut self, now: Instant, length: Duration) -> Step {
        self.phase = Phase::Deep { until: now + length };
        self.deep_periods += 1;
        self.pending = Some(None);
        Step::StartDeep
    }

    /// A window of `length` (the whole stratum when sampling is off).
    fn open(&mut self, now: Instant, length: Duration) -> Step {
        if self.schedule.is_continuous() {
            self.phase = Phase::Continuous;
            self.pending = Some(None);
            return Step::OpenWindow { length: None };
        }
        self.phase = Phase::Open { until: now + length, next: now + length.max(self.schedule.period) };
        self.windows += 1;
        self.pending = Some(Some(length));
        Step::OpenWindow { length: Some(length) }
    }

    /// The step's window opened at `at` (after attaching, which takes a few
    /// milliseconds): the new stratum starts there, as the kernel's window does.
    pub fn opened(&mut self, at: Instant) {
        let Some(window) = self.pending.take() else { return };
        if self.attached.is_none() {
            self.attached = Some(at);
        } else {
            self.covered_before += self.covered(self.stratum, at);
        }
        self.stratum = Stratum { start: at, window };
        // Attaching takes from milliseconds to a large part of a second:
        // the window lasts its length from when it opened, or gort would
        // detach before the kernel's window ends and scale what it missed.
        self.phase = match (self.phase, window) {
            (Phase::Open { .. }, Some(length)) => {
                Phase::Open { until: at + length, next: at + length.max(self.schedule.period) }
            }
            (Phase::Deep { until }, _) => Phase::Deep { until: until.max(at) },
            (other, _) => other,
        };
    }

    /// When the next step is due, if ever.
    pub fn next_change(&self) -> Option<Instant> {
        match self.phase {
            Phase::Deep { until } | Phase::Open { until, .. } => Some(until),
            Phase::Closed { next } => Some(next),
            Phase::Continuous => None,
        }
    }

    /// The step due at `now`, if any.
    pub fn tick(&mut self, now: Instant) -> Option<Step> {
        match self.phase {
            Phase::Deep { until } if now >= until => Some(self.open(now, self.schedule.window)),
            Phase::Open { until, next } if now >= until => {
                self.phase = Phase::Closed { next };
                Some(Step::CloseWindow)
            }
            Phase::Closed { next } if now >= next => Some(self.open(now, self.schedule.window)),
            _ => None,
        }
    }

    /// Window time of `stratum` up to `now`.
    fn covered(&self, stratum: Stratum, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(stratum.start);
        stratum.window.map_or(elapsed, |w| elapsed.min(w))
    }

    /// What one observation of the current stratum stands for at `now`.
    pub fn factor(&self, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(self.stratum.start).as_secs_f64();
        let covered = self.covered(self.stratum, now).as_secs_f64();
        if covered <= 0.0 { 1.0 } else { (elapsed / covered).max(1.0) }
    }

    /// How long the current stratum's window has covered so far, and how
    /// long the stratum has lasted.
    pub fn stratum_times(&self, now: Instant) -> (Duration, Duration) {
        (self.covered(self.stratum, now), now.saturating_duration_since(self.stratum.start))
    }

    /// Window time since attach, and the time since attach.
    pub fn coverage(&self, now: Instant) -> (Duration, Duration) {
        let since = self.attached.map_or(Duration::ZERO, |a| now.saturating_duration_since(a));
        (self.covered_before + self.covered(self.stratum, now), since)
    }

    /// Fraction of the time the sampled probes are attached in this phase.
    pub fn ratio(&self) -> f64 {
        match self.phase {
            Phase::Deep { .. } | Phase::Continuous => 1.0,
            Phase::Open { .. } | Phase::Closed { .. } => self.schedule.duty(),
        }
    }

    pub fn is_deep(&self) -> bool {
        matches!(self.phase, Phase::Deep { .. })
    }

    pub fn is_sampled(&self) -> bool {
        matches!(self.phase, Phase::Open { .. } | Phase::Closed { .. })
    }

    pub fn schedule(&self) -> Schedule {
        self.schedule
    }
}

/// One stratum's share of an estimated count: what its window saw (in
/// observations), the time its window covered and the time it lasted.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StratumCount {
    pub observed: f64,
    pub covered_s: f64,
    pub elapsed_s: f64,
}

impl StratumCount {
    fn factor(&self) -> f64 {
        if self.covered_s <= 0.0 { 1.0 } else { (self.elapsed_s / self.covered_s).max(1.0) }
    }
}

/// The estimated total of a count over the strata.
pub fn estimate(strata: &[StratumCount]) -> f64 {
    strata.iter().map(|s| s.observed * s.factor()).sum()
}

/// Relative standard error (1 sigma) of `estimate(strata)`, or None when
/// nothing was observed. Two parts: the counting (Poisson) error of what the
/// windows saw, scaled like the observations; and, when at least two
/// sampled windows exist, the spread of their rates applied to the time no
/// window covered (a load that changes between windows).
pub fn relative_error(strata: &[StratumCount]) -> Option<f64> {
    let total = estimate(strata);
    if total <= 0.0 {
        return None;
    }
    let poisson: f64 = strata.iter().map(|s| s.factor() * s.factor() * s.observed).sum();
    let sampled: Vec<&StratumCount> =
        strata.iter().filter(|s| s.covered_s > 0.0 && s.elapsed_s > s.covered_s).collect();
    let spread = if sampled.len() >= 2 {
        let rates: Vec<f64> = sampled.iter().map(|s| s.observed / s.covered_s).collect();
        let mean = rates.iter().sum::<f64>() / rates.len() as f64;
        let var = rates.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (rates.len() - 1) as f64;
        sampled.iter().map(|s| (s.elapsed_s - s.covered_s).powi(2) * var).sum::<f64>()
    } else {
        0.0
    };
    Some((poisson + spread).sqrt() / total)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn schedule() -> Schedule {
        Schedule { first_window: 2000 * MS, window: 500 * MS, period: 10_000 * MS }
    }

    /// Drives a sampler to `until` in 10 ms steps, opening windows at once.
    fn drive(s: &mut Sampler, from: Instant, until: Duration) -> Vec<(Duration, Step)> {
        let mut steps = Vec::new();
        let mut t = from;
        while t <= from + until {
            if let Some(step) = s.tick(t) {
                steps.push((t - from, step));
                s.opened(t);
            }
            t += 10 * MS;
        }
        steps
    }

    #[test]
    fn a_short_look_is_scaled_by_the_time_it_covered_not_by_the_period() {
        let t0 = Instant::now();
        let (mut s, first) = Sampler::new(schedule(), t0, None);
        assert_eq!(first, Step::OpenWindow { length: Some(2000 * MS) });
        s.opened(t0);
        assert_eq!(s.factor(t0 + 1000 * MS), 1.0, "inside the window: exact");
        drive(&mut s, t0, 5000 * MS);
        let f = s.factor(t0 + 5000 * MS);
        assert!((f - 2.5).abs() < 1e-9, "5 s over 2 s covered: {f}");
        let (covered, elapsed) = s.coverage(t0 + 5000 * MS);
        assert_eq!((covered, elapsed), (2000 * MS, 5000 * MS));
    }

    #[test]
    fn windows_follow_the_first_one_every_period_and_the_factor_only_grows() {
        let t0 = Instant::now();
        let (mut s, _) = Sampler::new(schedule(), t0, None);
        s.opened(t0);
        let steps = drive(&mut s, t0, 21_000 * MS);
        let at: Vec<(u128, Step)> = steps.iter().map(|(d, st)| (d.as_millis(), *st)).collect();
        assert_eq!(
            at,
            [
                (2000, Step::CloseWindow),
                (10_000, Step::OpenWindow { length: Some(500 * MS) }),
                (10_500, Step::CloseWindow),
                (20_000, Step::OpenWindow { length: Some(500 * MS) }),
                (20_500, Step::CloseWindow),
            ]
        );
        assert_eq!(s.windows, 3);
        let (covered, elapsed) = s.coverage(t0 + 21_000 * MS);
        assert_eq!((covered, elapsed), (3000 * MS, 21_000 * MS));
        let (mut last, mut t) = (0.0, t0 + 20_000 * MS);
        while t < t0 + 30_000 * MS {
            let f = s.factor(t);
            assert!(f >= last, "the factor of the current stratum never shrinks");
            last = f;
            t += 100 * MS;
        }
    }

    #[test]
    fn a_window_lasts_its_length_from_when_it_opened_not_from_when_it_was_asked_for() {
        let t0 = Instant::now();
        let (mut s, _) = Sampler::new(schedule(), t0, None);
        // Attaching took 300 ms.
        s.opened(t0 + 300 * MS);
        assert_eq!(s.tick(t0 + 2000 * MS), None, "the kernel still records until 2.3 s");
        assert_eq!(s.tick(t0 + 2300 * MS), Some(Step::CloseWindow));
        assert_eq!(s.coverage(t0 + 2300 * MS), (2000 * MS, 2000 * MS));
    }

    #[test]
    fn deep_mode_is_exact_and_ends_in_a_window() {
        let t0 = Instant::now();
        let (mut s, first) = Sampler::new(schedule(), t0, Some(3000 * MS));
        assert_eq!(first, Step::StartDeep);
        s.opened(t0);
        assert!(s.is_deep());
        assert_eq!(s.factor(t0 + 2999 * MS), 1.0);
        assert_eq!(s.tick(t0 + 3000 * MS), Some(Step::OpenWindow { length: Some(500 * MS) }));
        s.opened(t0 + 3000 * MS);
        assert!(s.is_sampled());
        assert_eq!(s.deep_periods, 1);
    }

    #[test]
    fn continuous_sampling_never_scales() {
        let t0 = Instant::now();
        let sched = Schedule { first_window: 2000 * MS, window: 10_000 * MS, period: 10_000 * MS };
        let (mut s, first) = Sampler::new(sched, t0, None);
        assert_eq!(first, Step::OpenWindow { length: None });
        s.opened(t0);
        assert_eq!(s.next_change(), None);
        assert_eq!(s.factor(t0 + 60_000 * MS), 1.0);
        assert_eq!(s.ratio(), 1.0);
    }

    #[test]
    fn the_error_shrinks_with_what_was_seen_and_grows_with_uneven_windows() {
        let steady = |n: f64| StratumCount { observed: n, covered_s: 1.0, elapsed_s: 10.0 };
        let few = relative_error(&[steady(100.0)]).unwrap();
        let many = relative_error(&[steady(10_000.0)]).unwrap();
        assert!((few - 0.1).abs() < 1e-9 && (many - 0.01).abs() < 1e-9, "{few} {many}");
        let even = relative_error(&[steady(1000.0), steady(1000.0)]).unwrap();
        let uneven = relative_error(&[steady(100.0), steady(1900.0)]).unwrap();
        assert!(uneven > 10.0 * even, "{even} vs {uneven}");
        assert_eq!(estimate(&[steady(100.0), steady(1900.0)]), 20_000.0);
        assert_eq!(relative_error(&[steady(0.0)]), None);
        let exact = StratumCount { observed: 400.0, covered_s: 5.0, elapsed_s: 5.0 };
        assert!((relative_error(&[exact]).unwrap() - 0.05).abs() < 1e-9);
    }
}
