//! What gort knows of its upstream's health from its own exports, per
//! signal (an upstream can refuse spans and take metrics): since when every
//! attempt has failed, and how the last one failed. Shown on `/health` and
//! as `gort_exporter_upstream_failing_seconds{signal}`.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use super::Signal;

#[derive(Default)]
struct State {
    failing_since: Option<Instant>,
    last_error: String,
}

#[derive(Default)]
pub struct UpstreamHealth {
    signals: Mutex<[State; Signal::ALL.len()]>,
}

impl UpstreamHealth {
    /// An export of `signal` was acknowledged: the upstream takes it.
    pub fn succeeded(&self, signal: Signal) {
        let mut all = self.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        all[signal.index()] = State::default();
    }

    /// An export of `signal` failed (retried or not); `error` says how.
    pub fn failed(&self, signal: Signal, error: String) {
        let mut all = self.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &mut all[signal.index()];
        s.failing_since.get_or_insert_with(Instant::now);
        s.last_error = error;
    }

    /// How long exports of `signal` have failed without one success, and
    /// the last error.
    pub fn failing(&self, signal: Signal) -> Option<(Duration, String)> {
        let all = self.signals.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = &all[signal.index()];
        s.failing_since.map(|since| (since.elapsed(), s.last_error.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_lasts_from_the_first_failure_until_a_success_of_that_signal() {
        let h = UpstreamHealth::default();
        assert!(h.failing(Signal::Traces).is_none());
        h.failed(Signal::Traces, "Unavailable: refused".into());
        std::thread::sleep(Duration::from_millis(20));
        h.failed(Signal::Traces, "InvalidArgument: bad".into());
        h.succeeded(Signal::Metrics);
        let (since, last) = h.failing(Signal::Traces).unwrap();
        assert!(since >= Duration::from_millis(20), "the first failure is when it began");
        assert_eq!(last, "InvalidArgument: bad");
        assert!(h.failing(Signal::Metrics).is_none());
        h.succeeded(Signal::Traces);
        assert!(h.failing(Signal::Traces).is_none());
    }
}
