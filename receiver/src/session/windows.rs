//! The hot probe's attachment following the sampler: windows open and
//! shut, deep mode, with the kernel told each window's bounds.

use std::time::{Duration, Instant};

use gort_common::TargetConfig;

use self::sampling::Step;
use super::*;
use crate::{
    bpf::{
        Probes,
        probes::{Heat, Need},
    },
    telemetry::stats::TimeHistogram,
};

impl Session {
    /// Attaches (`on`) or detaches the planned probes whose heat `which`
    /// selects. An optional probe the kernel refuses is dropped with a
    /// warning; a required one fails the call.
    pub(super) fn set_attached(
        &mut self,
        probes: &mut Probes,
        which: impl Fn(Heat) -> bool,
        on: bool,
    ) -> Result<(), RunError> {
        let image = self.process.image_path();
        let mut refused = Vec::new();
        for (i, p) in self.planned.iter_mut().enumerate().filter(|(_, p)| which(p.spec.heat)) {
            match (on, p.attachment.take()) {
                (true, None) => {
                    match probes.attach(p.spec.program, &image, &p.place.file_offsets, self.process.pid) {
                        Ok(a) => p.attachment = Some(a),
                        // The target exited under us: nothing to warn about.
                        Err(_) if !self.process.is_alive() => {}
                        // No probe could be attached either: say what to grant.
                        Err(e) if let Some(refusal) = e.permission_denied() => {
                            let caps = crate::privileges::Capabilities::of_self();
                            return Err(crate::privileges::uprobes_refused(caps, refusal).into());
                        }
                        Err(e) if p.spec.need == Need::Optional => {
                            log::warn!(
                                "{}: {e}; {} disabled",
                                p.spec.symbol,
                                crate::features::feeds(p.spec.id)
                            );
                            refused.push(i);
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
                (true, Some(a)) => p.attachment = Some(a),
                (false, Some(a)) => probes.detach(a)?,
                (false, None) => {}
            }
        }
        for i in refused.into_iter().rev() {
            self.planned.remove(i);
        }
        Ok(())
    }

    /// Tells the probes which window intervals must lie in: from now on, for
    /// `window` (None: open-ended), or none at all (`WINDOW_CLOSED`).
    pub(super) fn set_window(
        &mut self,
        probes: &mut Probes,
        window: Option<Option<Duration>>,
    ) -> Result<(), RunError> {
        (self.config.window_start_ns, self.config.window_ns) = match window {
            Some(length) => (crate::bpf::monotonic_ns(), length.map_or(0, duration_ns)),
            None => (TargetConfig::WINDOW_CLOSED, 0),
        };
        probes.add_target(self.process.pid, self.config)?;
        Ok(())
    }

    /// Attaches the probes `which` selects inside a closed window, then opens
    /// it: attaching takes milliseconds, and what fires meanwhile must not
    /// count (nor intervals left over from an earlier window). The stratum
    /// before it is folded while nothing records.
    pub(super) fn open_window(
        &mut self,
        probes: &mut Probes,
        which: impl Fn(Heat) -> bool,
        length: Option<Duration>,
    ) -> Result<(), RunError> {
        self.set_window(probes, None)?;
        self.fold(probes)?;
        self.set_attached(probes, which, true)?;
        self.set_window(probes, Some(length))?;
        self.sampler.opened(Instant::now());
        Ok(())
    }

    /// Carries out what the sampler asks.
    pub(super) fn apply(&mut self, probes: &mut Probes, step: Step) -> Result<(), RunError> {
        self.mark_runtime_window();
        let done = match step {
            Step::StartDeep => self.open_window(probes, |_| true, None),
            Step::OpenWindow { length } => self
                .set_attached(probes, |h| h == Heat::DeepOnly, false)
                .and_then(|()| self.open_window(probes, |h| h == Heat::Sampled, length)),
            // The kernel closed the window itself at its end; detaching
            // after it costs nothing in accuracy.
            Step::CloseWindow => return self.set_attached(probes, |h| h == Heat::Sampled, false),
        };
        self.window_mark = self.runtime_stats.as_ref().and_then(|r| r.schedule_latency().ok());
        done
    }

    /// Closes the runtime's count of the open window (if one is open) into
    /// its in-window total.
    fn mark_runtime_window(&mut self) {
        self.runtime_in_windows = self.runtime_in_windows_now();
        self.window_mark = None;
    }

    /// What the runtime's scheduling-latency histogram counted while
    /// windows were open, the open one up to now included.
    pub(super) fn runtime_in_windows_now(&self) -> Option<TimeHistogram> {
        let mut total = self.runtime_in_windows.clone();
        let (Some(start), Some(reader)) = (&self.window_mark, &self.runtime_stats) else { return total };
        let Ok(now) = reader.schedule_latency() else { return total };
        total.get_or_insert_with(TimeHistogram::default).merge(&now.since(start));
        total
    }

    /// Every probe, continuously, for `length` (what SIGUSR1 asks).
    pub(super) fn start_deep(&mut self, probes: &mut Probes, length: Duration) -> Result<(), RunError> {
        let step = self.sampler.deep(Instant::now(), length);
        self.apply(probes, step)
    }

    /// When the phase changes next, if it does.
    pub(super) fn next_change(&self) -> Option<Instant> {
        self.sampler.next_change()
    }

    /// Makes the phase changes that are due.
    pub(super) fn tick(&mut self, probes: &mut Probes) -> Result<(), RunError> {
        match self.sampler.tick(Instant::now()) {
            // A process that just exited cannot be attached to; the caller
            // notices the exit on its next wait.
            Some(Step::OpenWindow { .. }) if !self.process.is_alive() => Ok(()),
            Some(step) => self.apply(probes, step),
            None => Ok(()),
        }
    }
}
