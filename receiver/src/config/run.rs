//! What `gort run` does, validated: the target, the run's length and
//! outputs, the notable-event threshold, the sampling schedule and deep mode.

use std::{path::PathBuf, time::Duration};

use super::{ConfigError, defaults::*, duration, invalid, raw::RawConfig};
use crate::{bpf::probes::SiteMode, target::TargetSpec, telemetry::leaks::LeakSettings};

/// When the hot probe is attached outside deep mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sampling {
    /// The window that opens at attach.
    pub first_window: Duration,
    /// Then one window this long every period.
    pub window: Duration,
    pub period: Duration,
}

/// The validated run settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunConfig {
    /// Stop after this long; None: until Ctrl-C or the pid exits.
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub otlp_json: Option<PathBuf>,
    pub summary_json: Option<PathBuf>,
    pub service_name: Option<String>,
    /// A goroutine runnable at least this long is a notable event.
    pub runnable_event_threshold: Duration,
    pub sampling: Sampling,
    /// Deep mode for this long after attaching.
    pub deep_at_attach: Option<Duration>,
    /// Length of the deep mode SIGUSR1 starts.
    pub deep_on_signal: Duration,
    pub probe_site: SiteMode,
    /// Measure each probe program's run time (kernel BPF statistics).
    pub bpf_stats: bool,
    /// Attach the probes (`run.probes: all`); off, only the target's memory
    /// is read.
    pub probes: bool,
    /// The goroutine leak watch (and park functions in the census), unless
    /// off.
    pub leaks: Option<LeakSettings>,
}

fn optional(field: &str, value: Option<&str>) -> Result<Option<Duration>, ConfigError> {
    value.map(|v| duration(field, Some(v), "")).transpose()
}

impl RawConfig {
    /// The target named in the file (or by `--pid`/`--exe`), if any.
    pub(super) fn validate_target(&self) -> Result<Option<TargetSpec>, ConfigError> {
        match (self.target.pid, &self.target.exe) {
            (Some(_), Some(_)) => Err(invalid("target", "give pid or exe, not both")),
            (Some(pid), None) => Ok(Some(TargetSpec::Pid(pid))),
            (None, Some(exe)) => Ok(Some(TargetSpec::Exe(exe.clone()))),
            (None, None) => Ok(None),
        }
    }

    pub(super) fn validate_run(&self) -> Result<RunConfig, ConfigError> {
        let (r, s, deep) = (&self.run, &self.sampling, &self.deep);
        let sampling = Sampling {
            first_window: duration(
                "sampling.first_window",
                s.first_window.as_deref(),
                DEFAULT_SAMPLE_FIRST_WINDOW,
            )?,
            window: duration("sampling.window", s.window.as_deref(), DEFAULT_SAMPLE_WINDOW)?,
            period: duration("sampling.period", s.period.as_deref(), DEFAULT_SAMPLE_PERIOD)?,
        };
        for (field, d) in
            [("sampling.window", sampling.window), ("sampling.first_window", sampling.first_window)]
        {
            if d < MIN_SAMPLE_WINDOW {
                return Err(invalid(field, format!("{d:?} is shorter than {MIN_SAMPLE_WINDOW:?}")));
            }
        }
        if sampling.period < sampling.window {
            return Err(invalid(
                "sampling.period",
                format!("{:?} is shorter than sampling.window {:?}", sampling.period, sampling.window),
            ));
        }
        let deep_at_attach = optional("deep.at_attach", deep.at_attach.as_deref())?;
        let deep_on_signal = duration("deep.on_signal", deep.on_signal.as_deref(), DEFAULT_DEEP_ON_SIGNAL)?;
        for (field, d) in [("deep.at_attach", deep_at_attach), ("deep.on_signal", Some(deep_on_signal))] {
            if d.is_some_and(|d| d > MAX_DEEP) {
                return Err(invalid(field, format!("is bounded to {MAX_DEEP:?}")));
            }
        }
        let probe_site = match r.probe_site.as_deref().unwrap_or("auto") {
            "auto" => SiteMode::Auto,
            "entry" => SiteMode::Entry,
            other => return Err(invalid("run.probe_site", format!("{other:?} is not auto or entry"))),
        };
        let probes = match r.probes.as_deref().unwrap_or(DEFAULT_PROBES) {
            "all" => true,
            "none" => false,
            other => return Err(invalid("run.probes", format!("{other:?} is not all or none"))),
        };
        let interval = duration("run.interval", r.interval.as_deref(), DEFAULT_INTERVAL)?;
        if interval.is_zero() {
            return Err(invalid("run.interval", "must be more than 0"));
        }
        let leaks = self.validate_leaks(interval)?;
        Ok(RunConfig {
            duration: optional("run.duration", r.duration.as_deref())?,
            interval,
            otlp_json: r.otlp_json.clone(),
            summary_json: r.summary_json.clone(),
            service_name: r.service_name.clone(),
            runnable_event_threshold: duration(
                "events.runnable_threshold",
                self.events.runnable_threshold.as_deref(),
                DEFAULT_RUNNABLE_EVENT_THRESHOLD,
            )?,
            sampling,
            deep_at_attach,
            deep_on_signal,
            probe_site,
            bpf_stats: r.bpf_stats.unwrap_or(false),
            probes,
            leaks,
        })
    }

    fn validate_leaks(&self, interval: Duration) -> Result<Option<LeakSettings>, ConfigError> {
        let l = &self.leaks;
        if !l.enabled.unwrap_or(DEFAULT_LEAKS_ENABLED) {
            return Ok(None);
        }
        let settings = LeakSettings {
            min_age: duration("leaks.min_age", l.min_age.as_deref(), DEFAULT_LEAKS_MIN_AGE)?,
            window: duration("leaks.window", l.window.as_deref(), DEFAULT_LEAKS_WINDOW)?,
            min_growth: l.min_growth.unwrap_or(DEFAULT_LEAKS_MIN_GROWTH),
        };
        if settings.window < interval * LEAKS_WINDOW_INTERVALS {
            return Err(invalid(
                "leaks.window",
                format!(
                    "{:?} holds fewer than {LEAKS_WINDOW_INTERVALS} censuses of run.interval {interval:?}",
                    settings.window
                ),
            ));
        }
        if settings.min_growth == 0 {
            return Err(invalid("leaks.min_growth", "must be at least 1"));
        }
        Ok(Some(settings))
    }
}
