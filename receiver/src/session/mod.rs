//! `gort run`: attach the probes to a Go process, report what they count, and
//! follow the process: detach when it exits and, when watching an executable,
//! attach again to the next process that runs it.

pub mod sampling;

use std::{
    fs,
    io::{BufWriter, Write},
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use std::collections::{BTreeMap, VecDeque};

use gort_common::{
    CounterId, Event, HistogramId, MAX_WAIT_REASONS, NO_OFFSET, ProbeId, RUNTIME_GOROUTINE, TargetConfig,
    WEIGHT_ONE, blocked_base, event_kind, time_hist,
};
use thiserror::Error;
use tokio::signal::unix::{Signal, SignalKind, signal};

use gort_goexe::{
    self as analysis, Analysis, AnalysisError, Field, Function, Request,
    functions::{SDK_NEW_RECORDING_SPAN, SDK_SPAN_END},
};

use self::sampling::{Sampler, Schedule, Step, StratumCount};
use crate::{
    bpf::{
        Attachment, BpfError, Probes, SpanRecord,
        probes::{self as probe_table, Heat, Need, PROBES, ProbeSpec, Site, SiteMode},
    },
    export,
    linkage::{self, Account, LinkCounts},
    pipeline::{self, Payload},
    target::{self, Process, TargetError, TargetSpec},
    telemetry::{
        census::{self as goroutines, Census},
        stats::{RuntimeCounts, TimeHistogram},
    },
};

/// How often liveness of the target is checked.
const LIVENESS_POLL: Duration = Duration::from_millis(100);
/// How often the notable-event ring buffer is drained. The probes submit
/// without waking us, so this bounds how long an event waits; 256 KiB hold
/// 8192 events, i.e. ~80k events/s before any is lost.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);
/// With trace linkage, spans wait in the pipeline for their probe data, so
/// the span ring buffer is read more often.
const LINKED_DRAIN_INTERVAL: Duration = Duration::from_millis(25);
/// Most events taken per drain, so a flood cannot stall the loop.
const DRAIN_MAX: usize = 16_384;
/// Recent notable events kept per target for the summary.
const RECENT_EVENTS: usize = 1_000;

#[derive(Debug, Error)]
pub enum RunError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error("{exe}: {source}")]
    Analysis { exe: PathBuf, source: AnalysisError },
    #[error("{exe}: cannot read the executable: {source}")]
    Read { exe: PathBuf, source: std::io::Error },
    #[error(
        "{exe}: the Go runtime function {symbol} is in neither its symbol table nor its .gopclntab; gort needs it"
    )]
    MissingFunction { exe: PathBuf, symbol: &'static str },
    #[error("{exe}: the offset of {field} is unknown: {reason}; gort needs it")]
    MissingField { exe: PathBuf, field: analysis::Field, reason: String },
    #[error("{exe}: no probe site in {symbol}: {reason}")]
    NoSite { exe: PathBuf, symbol: &'static str, reason: String },
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("{path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub target: TargetSpec,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub otlp_json: Option<PathBuf>,
    pub site_mode: SiteMode,
    pub service_name: Option<String>,
    /// A goroutine runnable at least this long is reported as a notable event.
    pub runnable_event_threshold: Duration,
    /// How the sampled probes run outside deep mode.
    pub sampling: Schedule,
    /// Deep mode (every probe, continuously) for this long after attaching.
    pub deep: Option<Duration>,
    /// How long deep mode lasts when SIGUSR1 asks for it.
    pub deep_on_signal: Duration,
    /// The OTLP pipeline gort's runtime metrics are forwarded through.
    pub forward: Option<Arc<pipeline::Shared>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    TargetExited,
    Duration,
    Interrupted,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct ProbeSummary {
    pub name: &'static str,
    pub symbol: &'static str,
    pub address: u64,
    pub file_offset: u64,
    /// `after_entry` (one site past the entry) or `returns` (every RET).
    pub site: probe_table::Site,
    /// Offset of the site from the entry (the first RET's for `returns`).
    pub site_offset: u64,
    /// Whether the kernel emulates the probed instruction or single-steps it.
    pub site_kind: analysis::SiteKind,
    pub instruction: String,
    pub hits: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct GoroutineSeen {
    pub goid: u64,
    pub hits: u64,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct TargetSummary {
    pub pid: u32,
    pub exe: PathBuf,
    pub go_version: String,
    pub goid_offset: u64,
    pub probes: Vec<ProbeSummary>,
    pub goroutines: Vec<GoroutineSeen>,
    /// Runtime telemetry gathered while attached.
    pub runtime: RuntimeCounts,
    /// Time GC background mark workers spent marking (ns).
    pub gc_mark_worker_ns: u64,
    pub sampling: SamplingSummary,
    /// Live application goroutines at the end (what runtime.NumGoroutine
    /// counts), by "state" or "waiting/<category>".
    pub live_goroutines: BTreeMap<String, u64>,
    /// The runtime's own goroutines at the end, likewise.
    pub runtime_goroutines: BTreeMap<String, u64>,
    pub notable: NotableSummary,
    /// Trace linkage, when it was on for this target.
    pub linkage: Option<LinkageSummary>,
    pub exited: bool,
}

/// What trace linkage did for one target.
#[derive(Clone, Debug, serde::Serialize)]
pub struct LinkageSummary {
    /// Offset of the SDK span's span context, and where it came from.
    pub span_context_offset: u64,
    pub offset_source: analysis::OffsetSource,
    /// Span ends and stalls read from the kernel.
    pub span_ends: u64,
    pub stalls: u64,
    /// Span records the kernel had no room for, and records not decodable.
    pub records_lost: u64,
    pub undecodable: u64,
    /// The pipeline's join books (all targets) at the end of the run, once
    /// the pipeline drained.
    pub counts: LinkCounts,
}

/// One notable event as reported.
#[derive(Clone, Debug, serde::Serialize)]
pub struct NotableEvent {
    pub kind: &'static str,
    /// 0 for process-wide events (pauses).
    pub goid: u64,
    /// CLOCK_MONOTONIC ns.
    pub start_ns: u64,
    pub duration_ns: u64,
}

impl NotableEvent {
    fn from_event(e: &Event) -> Self {
        let kind = match e.kind {
            event_kind::SCHEDULE_STALL => "schedule_stall",
            event_kind::GC_PAUSE => "gc_pause",
            _ => "unknown",
        };
        Self { kind, goid: e.goid, start_ns: e.start_ns, duration_ns: e.end_ns.saturating_sub(e.start_ns) }
    }
}

/// Notable events of one target: totals and the most recent ones.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct NotableSummary {
    pub stall_threshold_ns: u64,
    pub schedule_stalls: u64,
    pub gc_pauses: u64,
    /// Events the ring buffer had no room for (counted in the kernel).
    pub lost: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    pub recent: VecDeque<NotableEvent>,
}

#[derive(Clone, Debug, serde::Serialize)]
pub struct Summary {
    pub targets: Vec<TargetSummary>,
    pub ended: EndReason,
}

/// The aggregates of one session at one moment, since it attached.
struct Snapshot {
    /// Hits per probe, indexed by `ProbeId`.
    hits: Vec<u64>,
    runtime: RuntimeCounts,
    /// Fraction of time the sampled probes are attached now (1 = always).
    sampling_ratio: f64,
    sampling: SamplingSummary,
    /// Live goroutines by (state, wait category), if the census works.
    live: Option<goroutines::Live>,
}

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

/// A probe the session may attach, with its sites and its live attachment.
struct Planned {
    spec: &'static ProbeSpec,
    function: Function,
    file_offsets: Vec<u64>,
    attachment: Option<Attachment>,
}

/// A process with gort's probes attached to it.
struct Session {
    process: Process,
    analysis: Analysis,
    goid_offset: u64,
    planned: Vec<Planned>,
    config: TargetConfig,
    /// When the sampled probes are attached and what they stand for.
    sampler: Sampler,
    /// Hit counters when this session attached: the counters are shared by
    /// every target, so each session reports its own difference.
    baseline: Vec<u64>,
    /// The kernel's runtime aggregates when the current stratum began.
    stratum_base: RuntimeCounts,
    /// Estimated totals of the strata before the current one.
    folded: RuntimeCounts,
    /// What each folded stratum saw, for the estimates' error.
    strata: Vec<(StratumCount, StratumCount)>,
    wait_names: Option<&'static [String]>,
    /// Live goroutines by state, when the binary has its symbol table.
    census: Option<Census>,
    /// The last census that succeeded (the one at exit finds no process).
    last_live: Option<goroutines::Live>,
    lost_baseline: u64,
    notable: NotableSummary,
    started: SystemTime,
    /// Trace linkage for this target, when its SDK was found and linkage is on.
    linkage: Option<LinkageSummary>,
    span_lost_baseline: u64,
    /// The pipeline's linkage, shared with the receivers.
    forward: Option<Arc<pipeline::Shared>>,
}

/// Reads the in-kernel runtime aggregates; `wait_names` names the wait
/// reasons of the target's Go release.
fn read_runtime(probes: &Probes, wait_names: Option<&[String]>) -> Result<RuntimeCounts, RunError> {
    let hist = |id| probes.histogram(id).map(|s| TimeHistogram::from_slots(&s));
    let reasons = wait_names.map_or(MAX_WAIT_REASONS, |n| (n.len() as u32).min(MAX_WAIT_REASONS));
    let bank = |flag: u64| -> Result<BTreeMap<String, TimeHistogram>, RunError> {
        let mut blocked = BTreeMap::new();
        for n in 0..reasons {
            let base = blocked_base(u64::from(n) | flag);
            if probes.histogram_slot(base, time_hist::SUM_SLOT)? == 0 {
                continue;
            }
            let h = TimeHistogram::from_slots(&probes.histogram_at(base)?);
            blocked.insert(gort_goexe::wait_reasons::name(wait_names, n), h);
        }
        Ok(blocked)
    };
    Ok(RuntimeCounts {
        blocked: bank(0)?,
        runtime_blocked: bank(RUNTIME_GOROUTINE)?,
        schedule_latency: hist(HistogramId::ScheduleLatency)?,
        gc_pause: hist(HistogramId::GcPause)?,
        gc_cycles: probes.counter(CounterId::GcCycles)?,
        other_stw_pauses: probes.counter(CounterId::OtherStw)?,
        goroutines_created: probes.counter(CounterId::GoroutinesCreated)?,
        goroutines_exited: probes.counter(CounterId::GoroutinesExited)?,
    })
}

impl Session {
    fn attach(probes: &mut Probes, process: Process, options: &RunOptions) -> Result<Self, RunError> {
        let image = process.image_path();
        let exe = process.exe.clone();
        let file = fs::File::open(&image).map_err(|source| RunError::Read { exe: exe.clone(), source })?;
        let cache = object::ReadCache::new(file);
        let symbols = probe_table::symbols();
        let fields = probe_table::fields();
        let analysis = analysis::analyse(&cache, &Request { functions: &symbols, fields: &fields })
            .map_err(|source| RunError::Analysis { exe: exe.clone(), source })?;
        for spec in PROBES.iter().filter(|p| p.need == Need::Required) {
            if let Some(reason) = analysis.unprobeable.get(spec.symbol) {
                return Err(RunError::NoSite { exe, symbol: spec.symbol, reason: reason.clone() });
            }
            if !analysis.functions.contains_key(spec.symbol) {
                return Err(RunError::MissingFunction { exe, symbol: spec.symbol });
            }
        }
        for (field, need) in probe_table::FIELDS {
            if *need == Need::Required && !analysis.fields.contains_key(field) {
                let reason = if analysis.warnings.is_empty() {
                    "the binary has no DWARF and the offsets table has no layout for it".to_owned()
                } else {
                    analysis.warnings.join("; ")
                };
                return Err(RunError::MissingField { exe, field: *field, reason });
            }
        }
        for warning in &analysis.warnings {
            log::warn!("{}: {warning}", exe.display());
        }
        let goid_offset = analysis.fields[&Field::GGoid].offset;
        let stall_threshold_ns = duration_ns(options.runnable_event_threshold);
        if !analysis.fields.contains_key(&Field::GWaitreason) {
            log::warn!("{}: runtime.g.waitreason offset unknown; blocked time disabled", exe.display());
        }
        let wait_names = gort_goexe::wait_reasons::names(analysis.go_version);
        if wait_names.is_none() {
            log::warn!(
                "{}: no wait-reason names for {}; reasons are reported by number",
                exe.display(),
                analysis.go_version
            );
        }
        let linkage_settings =
            options.forward.as_ref().and_then(|f| f.linkage.as_ref()).map(|l| l.lock().settings());
        let linkage = linkage_settings.and_then(|_| linkage_offsets(&exe, &analysis));
        // Where the executable is loaded and its symbols, read once for the
        // runtime goroutine entries and the census.
        let image = analysis::data_symbols(&cache, &[probe_table::ALLGS])
            .map_err(|e| e.to_string())
            .and_then(|(base, symbols)| {
                let bias =
                    goroutines::load_bias(process.pid, &process.exe, base).map_err(|e| e.to_string())?;
                Ok((bias, symbols))
            });
        let runtime_entries =
            runtime_entries(&process, &analysis, &cache, image.as_ref().map(|(bias, _)| *bias));
        let mut wait_slot = [0u8; 64];
        for (n, slot) in wait_slot.iter_mut().enumerate() {
            let name = gort_goexe::wait_reasons::name(wait_names, n as u32);
            *slot = linkage::wait_slot(gort_goexe::wait_reasons::category(&name));
        }
        let mut config = TargetConfig {
            runnable_event_threshold_ns: stall_threshold_ns,
            // Nothing records until the first window opens: the estimates
            // cover the time from there, not the attaching.
            window_start_ns: TargetConfig::WINDOW_CLOSED,
            window_ns: 0,
            wait_slot,
            child_span_threshold_ns: linkage_settings
                .map_or(u64::MAX, |s| duration_ns(s.child_span_threshold)),
            ..TargetConfig::default()
        };
        for (&field, f) in &analysis.fields {
            // What needs a field it cannot use stays off: inheritance and the
            // span context without linkage, start pcs without the entries.
            let used = match field {
                Field::GParentGoid | Field::SpanContext => linkage.is_some(),
                Field::GStartpc => runtime_entries.is_some(),
                _ => true,
            };
            if used {
                config.offsets[field.index()] = u32::try_from(f.offset).unwrap_or(NO_OFFSET);
            }
        }
        // Every wait of a span must be seen: linkage keeps the hot probe on.
        let sampling = match &linkage {
            Some(_) if !options.sampling.is_continuous() => {
                log::info!(
                    "{}: trace linkage on: goroutine state changes are probed continuously (sampling off)",
                    exe.display()
                );
                Schedule { window: options.sampling.period, ..options.sampling }
            }
            _ => options.sampling,
        };
        let (sampler, first_step) = Sampler::new(sampling, Instant::now(), options.deep);
        // Events left from an earlier target are not this one's.
        let _ = probes.drain_events(usize::MAX);
        probes.add_target(process.pid, config)?;
        if let Some(entries) = &runtime_entries {
            let added = probes.add_runtime_entries(process.pid, entries)?;
            if added < entries.len() {
                log::warn!(
                    "{}: room for {added} of {} runtime goroutine entries; goroutines starting at the others count as the application's",
                    exe.display(),
                    entries.len()
                );
            }
        }
        let mut planned = Vec::new();
        let wanted = |p: &&ProbeSpec| {
            p.go.contains(analysis.go_version) && (p.heat != Heat::Linked || linkage.is_some())
        };
        for spec in PROBES.iter().filter(wanted) {
            let Some(function) = analysis.functions.get(spec.symbol) else {
                log::warn!(
                    "{}: {} not found; {} disabled",
                    exe.display(),
                    spec.symbol,
                    probe_table::feeds(spec.id)
                );
                continue;
            };
            let file_offsets: Vec<u64> = match (spec.site, options.site_mode) {
                (Site::AfterEntry, SiteMode::Auto) => vec![function.site_file_offset()],
                (Site::AfterEntry, SiteMode::Entry) => vec![function.file_offset],
                (Site::Returns, _) => function.return_file_offsets().collect(),
            };
            if file_offsets.is_empty() {
                log::warn!("{}: no RET to probe; {} disabled", spec.symbol, probe_table::feeds(spec.id));
                continue;
            }
            planned.push(Planned { spec, function: function.clone(), file_offsets, attachment: None });
        }
        let mut session = Self {
            census: census(&process, &analysis, image.as_ref(), wait_names, runtime_entries.as_ref()),
            last_live: None,
            process,
            analysis,
            goid_offset,
            planned,
            config,
            sampler,
            baseline: hit_counts(probes)?,
            stratum_base: read_runtime(probes, wait_names)?,
            folded: RuntimeCounts::default(),
            strata: Vec::new(),
            wait_names,
            lost_baseline: probes.counter(CounterId::EventsLost)?,
            notable: NotableSummary { stall_threshold_ns, ..NotableSummary::default() },
            started: SystemTime::now(),
            span_lost_baseline: probes.counter(CounterId::SpanEventsLost)?,
            linkage,
            forward: options.forward.clone(),
        };
        // Every probe is attached once now, so that a site the kernel refuses
        // fails at start-up rather than in the first sampling window.
        let first =
            session.set_attached(probes, |_| true, true).and_then(|()| session.apply(probes, first_step));
        if let Err(e) = first {
            session.detach(probes);
            return Err(e);
        }
        // A first census now: a short-lived target may be gone by the first report.
        session.take_census();
        if let Some(l) = session.linker() {
            l.lock().set_linked(true);
        }
        Ok(session)
    }

    /// Attaches (`on`) or detaches the planned probes whose heat `which`
    /// selects. An optional probe the kernel refuses is dropped with a
    /// warning; a required one fails the call.
    fn set_attached(
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
                    match probes.attach(p.spec.program, &image, &p.file_offsets, self.process.pid) {
                        Ok(a) => p.attachment = Some(a),
                        // The target exited under us: nothing to warn about.
                        Err(_) if !self.process.is_alive() => {}
                        Err(e) if p.spec.need == Need::Optional => {
                            log::warn!("{}: {e}; {} disabled", p.spec.symbol, probe_table::feeds(p.spec.id));
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
    fn set_window(&mut self, probes: &mut Probes, window: Option<Option<Duration>>) -> Result<(), RunError> {
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
    fn open_window(
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
    fn apply(&mut self, probes: &mut Probes, step: Step) -> Result<(), RunError> {
        match step {
            Step::StartDeep => self.open_window(probes, |_| true, None),
            Step::OpenWindow { length } => {
                self.set_attached(probes, |h| h == Heat::DeepOnly, false)?;
                self.open_window(probes, |h| h == Heat::Sampled, length)
            }
            // The kernel closed the window itself at its end; detaching
            // after it costs nothing in accuracy.
            Step::CloseWindow => self.set_attached(probes, |h| h == Heat::Sampled, false),
        }
    }

    /// Every probe, continuously, for `length` (what SIGUSR1 asks).
    fn start_deep(&mut self, probes: &mut Probes, length: Duration) -> Result<(), RunError> {
        let step = self.sampler.deep(Instant::now(), length);
        self.apply(probes, step)
    }

    /// When the phase changes next, if it does.
    fn next_change(&self) -> Option<Instant> {
        self.sampler.next_change()
    }

    /// Makes the phase changes that are due.
    fn tick(&mut self, probes: &mut Probes) -> Result<(), RunError> {
        match self.sampler.tick(Instant::now()) {
            // A process that just exited cannot be attached to; the caller
            // notices the exit on its next wait.
            Some(Step::OpenWindow { .. }) if !self.process.is_alive() => Ok(()),
            Some(step) => self.apply(probes, step),
            None => Ok(()),
        }
    }

    /// What the current stratum recorded so far, and the two counts its
    /// error is judged by.
    fn current_stratum(
        &self,
        probes: &Probes,
        now: Instant,
    ) -> Result<(RuntimeCounts, StratumCount, StratumCount), RunError> {
        let raw = read_runtime(probes, self.wait_names)?.since(&self.stratum_base);
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
    fn fold(&mut self, probes: &Probes) -> Result<(), RunError> {
        let now = Instant::now();
        let (raw, sched, blocked) = self.current_stratum(probes, now)?;
        self.folded.add(&raw.unweighted(self.sampler.factor(now)));
        self.strata.push((sched, blocked));
        self.stratum_base.add(&raw);
        Ok(())
    }

    /// The estimated totals since attach, and the strata they rest on.
    fn estimate(
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
    fn sampling_summary(&self, strata: &[(StratumCount, StratumCount)]) -> SamplingSummary {
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
        }
    }

    fn mode(&self) -> String {
        let schedule = self.sampler.schedule();
        if self.sampler.is_deep() {
            "deep (every probe)".to_owned()
        } else if self.sampler.is_sampled() {
            format!(
                "sampled {:.1}% ({:?} at attach, then {:?} every {:?})",
                100.0 * self.sampler.ratio(),
                schedule.first_window,
                schedule.window,
                schedule.period
            )
        } else {
            "continuous".to_owned()
        }
    }

    fn describe(&self, site_mode: SiteMode) -> String {
        let mut out = format!(
            "gort: attached to pid {} ({}, {}), runtime.g.goid at offset {}\n",
            self.process.pid,
            self.process.exe.display(),
            self.analysis.build.go_version,
            self.goid_offset
        );
        for Planned { spec, function: f, .. } in &self.planned {
            let (place, file_offsets) = match (spec.site, site_mode) {
                (Site::Returns, _) => (
                    format!(" RET at +{:x?} [{:?}: ret]", f.code.returns, analysis::RETURN_SITE_KIND),
                    f.return_file_offsets().map(|o| format!("{o:#x}")).collect::<Vec<_>>().join(","),
                ),
                (Site::AfterEntry, SiteMode::Auto) => (
                    format!(
                        "+{:#x} [{:?}: {}]",
                        f.code.site.offset, f.code.site.kind, f.code.site.instruction
                    ),
                    format!("{:#x}", f.site_file_offset()),
                ),
                (Site::AfterEntry, SiteMode::Entry) => {
                    ("+0x0 [entry, benchmark only]".to_owned(), format!("{:#x}", f.file_offset))
                }
            };
            out.push_str(&format!(
                "gort:   probe {:<10} {}{} file offset {} ({})\n",
                spec.name,
                spec.symbol,
                place,
                file_offsets,
                match spec.heat {
                    Heat::Cold => "always",
                    Heat::Sampled => "sampled",
                    Heat::DeepOnly => "deep mode",
                    Heat::Linked => "trace linkage",
                }
            ));
        }
        out.push_str(&format!("gort:   mode: {}\n", self.mode()));
        if let Some(l) = &self.linkage {
            out.push_str(&format!(
                "gort:   trace linkage: OpenTelemetry Go SDK span context at offset {} ({:?})\n",
                l.span_context_offset, l.offset_source
            ));
        }
        out
    }

    fn linker(&self) -> Option<&pipeline::Linkage> {
        self.linkage.as_ref()?;
        self.forward.as_ref()?.linkage.as_ref()
    }

    /// Hands this target's span records (and GC pauses) to the pipeline's join.
    fn drain_spans(&mut self, probes: &mut Probes, pauses: &[(u64, u64)]) -> Result<(), RunError> {
        let Some(summary) = self.linkage.as_mut() else { return Ok(()) };
        let (records, undecodable) = probes.drain_span_records(DRAIN_MAX);
        summary.undecodable += undecodable;
        summary.records_lost =
            probes.counter(CounterId::SpanEventsLost)?.saturating_sub(self.span_lost_baseline);
        let Some(linkage) = self.forward.as_ref().and_then(|f| f.linkage.as_ref()) else { return Ok(()) };
        let pid = self.process.pid;
        let offset = crate::bpf::realtime_offset_ns();
        let names = self.wait_names;
        let namer = |n: u32| {
            let name = gort_goexe::wait_reasons::name(names, n);
            let category = gort_goexe::wait_reasons::category(&name);
            (name, category)
        };
        let now = Instant::now();
        let mut linker = linkage.lock();
        for &(s, e) in pauses {
            linker.add_pause(linkage::mono_to_unix(s, offset), linkage::mono_to_unix(e, offset));
        }
        let arrived = !records.is_empty();
        for record in records {
            match record {
                SpanRecord::End(end) if end.tgid == pid => {
                    summary.span_ends += 1;
                    let ids = (end.trace_id, end.span_id.to_le_bytes());
                    linker.add_account(pid, ids, Account::from_end(&end, offset, &namer), now);
                }
                SpanRecord::Stall(stall) if stall.tgid == pid => {
                    summary.stalls += 1;
                    match linkage::stall_from_record(&stall, offset, &namer) {
                        Some(s) => linker.add_stall(pid, stall.span_id.to_le_bytes(), s),
                        None => summary.undecodable += 1,
                    }
                }
                _ => {}
            }
        }
        summary.counts = linker.counts();
        drop(linker);
        if arrived {
            linkage.arrived.notify_one();
        }
        Ok(())
    }

    /// How often the ring buffers are read.
    fn drain_interval(&self) -> Duration {
        if self.linkage.is_some() { LINKED_DRAIN_INTERVAL } else { DRAIN_INTERVAL }
    }

    /// Takes this target's notable events out of the ring buffer.
    fn drain(&mut self, probes: &mut Probes) -> Result<(), RunError> {
        let (events, undecodable) = probes.drain_events(DRAIN_MAX);
        let pauses: Vec<(u64, u64)> = events
            .iter()
            .filter(|e| e.tgid == self.process.pid && e.kind == event_kind::GC_PAUSE)
            .map(|e| (e.start_ns, e.end_ns))
            .collect();
        self.drain_spans(probes, &pauses)?;
        let n = &mut self.notable;
        n.undecodable += undecodable;
        for e in events.iter().filter(|e| e.tgid == self.process.pid) {
            match e.kind {
                event_kind::SCHEDULE_STALL => n.schedule_stalls += 1,
                event_kind::GC_PAUSE => n.gc_pauses += 1,
                _ => n.undecodable += 1,
            }
            if n.recent.len() == RECENT_EVENTS {
                n.recent.pop_front();
            }
            n.recent.push_back(NotableEvent::from_event(e));
        }
        n.lost = probes.counter(CounterId::EventsLost)?.saturating_sub(self.lost_baseline);
        Ok(())
    }

    /// Collects the in-kernel aggregates once for every output of one report
    /// (hundreds of map lookups each time).
    fn snapshot(&mut self, probes: &Probes) -> Result<Snapshot, RunError> {
        let (runtime, strata) = self.estimate(probes)?;
        let now = hit_counts(probes)?;
        let sampling = self.sampling_summary(&strata);
        Ok(Snapshot {
            hits: now.iter().zip(&self.baseline).map(|(n, b)| n.wrapping_sub(*b)).collect(),
            runtime,
            sampling_ratio: self.sampler.ratio(),
            sampling,
            live: self.take_census(),
        })
    }

    fn take_census(&mut self) -> Option<goroutines::Live> {
        match self.census.as_ref()?.take() {
            Ok(live) => {
                self.last_live = Some(live.clone());
                Some(live)
            }
            Err(e) => {
                log::debug!("pid {}: census: {e}", self.process.pid);
                None
            }
        }
    }

    /// (probe name, hits) for each probe that has been planned.
    fn probe_hits<'a>(&'a self, snap: &Snapshot) -> Vec<(&'a str, u64)> {
        self.planned.iter().map(|p| (p.spec.name, snap.hits[p.spec.id.index() as usize])).collect()
    }

    fn summary(&self, probes: &Probes, snap: Snapshot, exited: bool) -> Result<TargetSummary, RunError> {
        let hits = &snap.hits;
        Ok(TargetSummary {
            pid: self.process.pid,
            exe: self.process.exe.clone(),
            go_version: self.analysis.build.go_version.clone(),
            goid_offset: self.goid_offset,
            probes: self
                .planned
                .iter()
                .map(|Planned { spec, function: f, .. }| {
                    let (site_offset, site_kind, instruction) = match spec.site {
                        Site::AfterEntry => {
                            (f.code.site.offset, f.code.site.kind, f.code.site.instruction.clone())
                        }
                        Site::Returns => (
                            f.code.returns.first().copied().unwrap_or(0),
                            analysis::RETURN_SITE_KIND,
                            "ret".to_owned(),
                        ),
                    };
                    ProbeSummary {
                        name: spec.name,
                        symbol: spec.symbol,
                        address: f.address,
                        file_offset: f.file_offset,
                        site: spec.site,
                        site_offset,
                        site_kind,
                        instruction,
                        hits: hits[spec.id.index() as usize],
                    }
                })
                .collect(),
            goroutines: probes
                .goroutines_seen(self.process.pid)?
                .into_iter()
                .map(|(goid, hits)| GoroutineSeen { goid, hits })
                .collect(),
            gc_mark_worker_ns: snap.runtime.gc_mark_worker_ns(),
            runtime: snap.runtime,
            sampling: snap.sampling.clone(),
            live_goroutines: live_keys(self.last_live.as_ref().map(|l| &l.application)),
            runtime_goroutines: live_keys(self.last_live.as_ref().map(|l| &l.runtime)),
            notable: self.notable.clone(),
            linkage: self.linkage.clone(),
            exited,
        })
    }

    fn detach(mut self, probes: &mut Probes) {
        if let Some(l) = self.linker() {
            l.lock().set_linked(false);
        }
        if let Err(e) = self.set_attached(probes, |_| true, false) {
            log::warn!("pid {}: detaching: {e}", self.process.pid);
        }
        if let Err(e) = probes.remove_target(self.process.pid) {
            log::warn!("forgetting pid {}: {e}", self.process.pid);
        }
    }
}

/// The SDK span offsets for trace linkage, or None with a warning saying why
/// linkage is off for this target.
fn linkage_offsets(exe: &std::path::Path, analysis: &Analysis) -> Option<LinkageSummary> {
    let exe = exe.display();
    let sdk = analysis.build.deps.iter().find(|m| m.path == gort_common::field::OTEL_SDK_MODULE);
    let Some(sdk) = sdk else {
        log::info!(
            "{exe}: no OpenTelemetry Go SDK ({}) in the build: trace linkage off",
            gort_common::field::OTEL_SDK_MODULE
        );
        return None;
    };
    for symbol in [SDK_NEW_RECORDING_SPAN, SDK_SPAN_END] {
        if !analysis.functions.contains_key(symbol) {
            let why = analysis
                .inlined_only
                .get(symbol)
                .map_or("not in the binary".to_owned(), |c| format!("inlined into {}", c.join(", ")));
            log::warn!("{exe}: SDK {}: {symbol} {why}: trace linkage off", sdk.version);
            return None;
        }
    }
    let Some(field) = analysis.fields.get(&Field::SpanContext) else {
        log::warn!(
            "{exe}: SDK {}: the span context offset is unknown ({}): trace linkage off",
            sdk.version,
            if analysis.warnings.is_empty() { "no DWARF".to_owned() } else { analysis.warnings.join("; ") }
        );
        return None;
    };
    if !analysis.fields.contains_key(&Field::GParentGoid) {
        log::warn!(
            "{exe}: runtime.g.parentGoid offset unknown: goroutines will not inherit their creator's span"
        );
    }
    Some(LinkageSummary {
        span_context_offset: field.offset,
        offset_source: field.source,
        span_ends: 0,
        stalls: 0,
        records_lost: 0,
        undecodable: 0,
        counts: LinkCounts::default(),
    })
}

/// Census counts keyed "state" or "state/category", for the summary.
fn live_keys(counts: Option<&goroutines::Counts>) -> BTreeMap<String, u64> {
    let key = |(state, category): (&str, &str)| {
        if category.is_empty() { state.to_owned() } else { format!("{state}/{category}") }
    };
    counts.into_iter().flatten().map(|(k, v)| (key(*k), *v)).collect()
}

/// Where the target's runtime goroutines start (run-time addresses,
/// sorted), or None with a warning saying why they cannot be told apart.
/// `bias`: how far the executable is loaded from where it was linked.
fn runtime_entries<'a, R: object::ReadRef<'a>>(
    process: &Process,
    analysis: &Analysis,
    data: R,
    bias: Result<u64, &String>,
) -> Option<Arc<[u64]>> {
    let exe = process.exe.display();
    let why = if !analysis.fields.contains_key(&Field::GStartpc) {
        "the offset of runtime.g.startpc is unknown".to_owned()
    } else {
        match (analysis::runtime_goroutine_entries(data, analysis.go_version), bias) {
            (Ok(entries), Ok(bias)) => return Some(entries.iter().map(|e| e.wrapping_add(bias)).collect()),
            (Err(e), _) => e.to_string(),
            (_, Err(e)) => e.clone(),
        }
    };
    log::warn!("{exe}: {why}: the runtime's own goroutines are counted with the application's");
    None
}

/// The live-goroutine census, or None with a warning saying why not.
/// `image`: the executable's load bias and its data symbols.
fn census(
    process: &Process,
    analysis: &Analysis,
    image: Result<&(u64, BTreeMap<String, u64>), &String>,
    wait_names: Option<&'static [String]>,
    runtime: Option<&Arc<[u64]>>,
) -> Option<Census> {
    let exe = process.exe.display();
    let Some(status) = analysis.fields.get(&Field::GAtomicstatus) else {
        log::warn!("{exe}: runtime.g.atomicstatus offset unknown; live goroutine counts disabled");
        return None;
    };
    let (bias, symbols) = match image {
        Ok((bias, symbols)) => (*bias, symbols),
        Err(e) => {
            log::warn!("{exe}: {e}; live goroutine counts disabled");
            return None;
        }
    };
    let Some(&allgs) = symbols.get(probe_table::ALLGS) else {
        log::warn!("{exe}: no symbol table (stripped), so no runtime.allgs; live goroutine counts disabled");
        return None;
    };
    let waitreason = analysis.fields.get(&Field::GWaitreason).map(|f| f.offset);
    let runtime = runtime.zip(analysis.fields.get(&Field::GStartpc)).map(|(entries, startpc)| {
        goroutines::RuntimeEntries { startpc_offset: startpc.offset, entries: entries.clone() }
    });
    Census::new(process.pid, bias, allgs, status.offset, waitreason, wait_names, runtime)
        .map_err(|e| log::warn!("{exe}: {e}; live goroutine counts disabled"))
        .ok()
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn hit_counts(probes: &Probes) -> Result<Vec<u64>, RunError> {
    ProbeId::ALL.iter().map(|p| probes.probe_hits(*p).map_err(RunError::from)).collect()
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

struct Outputs {
    otlp: Option<(PathBuf, BufWriter<fs::File>)>,
    forward: Option<Arc<pipeline::Shared>>,
}

impl Outputs {
    /// With the pipeline, `--otlp-json` is the pipeline's copy of
    /// everything it forwards (`pipeline::tap`, set up by the caller);
    /// without, gort's metrics are written here.
    fn open(options: &RunOptions) -> Result<Self, RunError> {
        let otlp = match (&options.otlp_json, &options.forward) {
            (Some(_), Some(_)) => None,
            (Some(path), None) => {
                let file = fs::File::create(path)
                    .map_err(|source| RunError::Output { path: path.clone(), source })?;
                Some((path.clone(), BufWriter::new(file)))
            }
            (None, _) => None,
        };
        Ok(Self { otlp, forward: options.forward.clone() })
    }

    fn write_metrics(
        &mut self,
        session: &Session,
        snap: &Snapshot,
        service: Option<&str>,
    ) -> Result<(), RunError> {
        if self.otlp.is_none() && self.forward.is_none() {
            return Ok(());
        }
        // Exemplars gathered since the last report go out once.
        let exemplars = session.linker().map(|l| l.lock().take_exemplars()).unwrap_or_default();
        let identity = self.forward.as_ref().and_then(|p| p.identities.for_pid(session.process.pid));
        let request = export::metrics_request(
            &export::ResourceFacts::new(&session.process, &session.analysis, service)
                .with_identity(identity.as_ref().map_or(&[], |i| i.attributes.as_slice())),
            &session.probe_hits(snap),
            &snap.runtime,
            snap.sampling_ratio,
            snap.sampling.coverage(),
            snap.live.as_ref(),
            &exemplars,
            unix_nanos(session.started),
            unix_nanos(SystemTime::now()),
        );
        if let Some((path, out)) = &mut self.otlp {
            gort_proto::write_json_line(out, &request)
                .and_then(|()| out.flush())
                .map_err(|source| RunError::Output { path: path.clone(), source })?;
        }
        // Cumulative points: a refused export (counted by the pipeline) is
        // made good by the next one.
        if let Some(pipeline) = &self.forward
            && !pipeline.offer_own(Payload::Metrics(request))
        {
            log::warn!("gort's runtime metrics: the pipeline queue is full; the next report carries them");
        }
        Ok(())
    }
}

enum Wait {
    Exited,
    Deadline,
    Interrupted,
}

/// Why `wait` returned before its timeout.
enum Wake {
    End(Wait),
    /// SIGUSR1: an operator asks for deep mode.
    Deep,
}

/// SIGINT (Ctrl-C) and SIGTERM (how a container runtime stops a sidecar),
/// listened to for the whole run so that none arriving between polls is lost.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
    deep: Signal,
}

impl StopSignals {
    fn install() -> Result<Self, RunError> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
            deep: signal(SignalKind::user_defined1()).map_err(RunError::Signals)?,
        })
    }
}

/// Waits up to `timeout` for the target to exit, the deadline, or a stop signal.
async fn wait(
    signals: &mut StopSignals,
    process: Option<&Process>,
    timeout: Duration,
    deadline: Option<Instant>,
) -> Option<Wake> {
    let until = Instant::now() + timeout;
    loop {
        if process.is_some_and(|p| !p.is_alive()) {
            return Some(Wake::End(Wait::Exited));
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Some(Wake::End(Wait::Deadline));
        }
        if now >= until {
            return None;
        }
        let step = LIVENESS_POLL.min(until - now);
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            _ = signals.interrupt.recv() => return Some(Wake::End(Wait::Interrupted)),
            _ = signals.terminate.recv() => return Some(Wake::End(Wait::Interrupted)),
            _ = signals.deep.recv() => return Some(Wake::Deep),
        }
    }
}

/// Finds the process to watch; in `Exe` mode waits for one to start.
async fn find_process(
    signals: &mut StopSignals,
    spec: &TargetSpec,
    skip: &[Process],
    deadline: Option<Instant>,
) -> Result<Result<Process, Wait>, RunError> {
    match spec {
        TargetSpec::Pid(pid) => Ok(Ok(Process::from_pid(*pid)?)),
        TargetSpec::Exe(path) => {
            let mut announced = false;
            loop {
                let running = target::processes_running(path)?;
                if let Some(p) = running.into_iter().find(|p| !skip.contains(p)) {
                    return Ok(Ok(p));
                }
                if !announced {
                    println!("gort: waiting for a process running {}", path.display());
                    announced = true;
                }
                match wait(signals, None, Duration::from_millis(200), deadline).await {
                    Some(Wake::End(w)) => return Ok(Err(w)),
                    Some(Wake::Deep) => println!("gort: SIGUSR1 ignored: no process attached yet"),
                    None => {}
                }
            }
        }
    }
}

/// Runs until the deadline, Ctrl-C, or (for a pid) the target's exit.
pub async fn run(options: RunOptions) -> Result<Summary, RunError> {
    let mut signals = StopSignals::install()?;
    let mut probes = Probes::load()?;
    let mut outputs = Outputs::open(&options)?;
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut targets = Vec::new();
    let mut seen: Vec<Process> = Vec::new();
    let ended = loop {
        let process = match find_process(&mut signals, &options.target, &seen, deadline).await? {
            Ok(p) => p,
            Err(Wait::Interrupted) => break EndReason::Interrupted,
            Err(_) => break EndReason::Duration,
        };
        seen.push(process.clone());
        let attached = Session::attach(&mut probes, process.clone(), &options);
        let mut session = match attached {
            Ok(s) => s,
            // The first target is checked at start-up: fail fast. A later one
            // (a restart of a watched executable) must not stop gort.
            Err(e) if seen.len() == 1 => return Err(e),
            Err(e) => {
                log::error!("pid {}: {e}; waiting for the next process", process.pid);
                continue;
            }
        };
        print!("{}", session.describe(options.site_mode));
        let mut last_report = Instant::now();
        let reason = loop {
            // Wake for the next window edge too, so windows last what the
            // probes were told (the estimate's scale depends on it).
            let drain_every = session.drain_interval();
            let step = session
                .next_change()
                .map_or(drain_every, |t| t.saturating_duration_since(Instant::now()).min(drain_every));
            match wait(&mut signals, Some(&session.process), step, deadline).await {
                None => {
                    session.tick(&mut probes)?;
                    session.drain(&mut probes)?;
                    if last_report.elapsed() >= options.interval {
                        last_report = Instant::now();
                        report(&mut session, &probes, &mut outputs, options.service_name.as_deref())?;
                    }
                }
                Some(Wake::Deep) => {
                    println!("gort: SIGUSR1: deep mode for {:?}", options.deep_on_signal);
                    session.start_deep(&mut probes, options.deep_on_signal)?;
                }
                Some(Wake::End(w)) => break w,
            }
        };
        session.drain(&mut probes)?;
        let snap = report(&mut session, &probes, &mut outputs, options.service_name.as_deref())?;
        let exited = matches!(reason, Wait::Exited);
        targets.push(session.summary(&probes, snap, exited)?);
        if exited {
            println!("gort: pid {} exited; probes detached", session.process.pid);
        }
        session.detach(&mut probes);
        match (reason, &options.target) {
            (Wait::Exited, TargetSpec::Exe(_)) => continue,
            (Wait::Exited, TargetSpec::Pid(_)) => break EndReason::TargetExited,
            (Wait::Deadline, _) => break EndReason::Duration,
            (Wait::Interrupted, _) => break EndReason::Interrupted,
        }
    };
    Ok(Summary { targets, ended })
}

impl Summary {
    /// Writes the summary, with the pipeline's join books as they stand
    /// now (the caller writes it once the pipeline has drained: spans the
    /// service flushes at its exit are joined after its session ended).
    pub fn write(
        &mut self,
        path: &std::path::Path,
        pipeline: Option<&pipeline::Shared>,
    ) -> Result<(), RunError> {
        if let Some(linkage) = pipeline.and_then(|p| p.linkage.as_ref()) {
            let counts = linkage.lock().counts();
            for t in &mut self.targets {
                if let Some(l) = &mut t.linkage {
                    l.counts = counts;
                }
            }
        }
        let text = serde_json::to_string_pretty(self).unwrap_or_default();
        fs::write(path, text).map_err(|source| RunError::Output { path: path.to_owned(), source })
    }
}

/// One snapshot of the aggregates, printed and exported.
fn report(
    session: &mut Session,
    probes: &Probes,
    outputs: &mut Outputs,
    service: Option<&str>,
) -> Result<Snapshot, RunError> {
    let snap = session.snapshot(probes)?;
    report_line(session, probes, &snap)?;
    outputs.write_metrics(session, &snap, service)?;
    Ok(snap)
}

fn report_line(session: &Session, probes: &Probes, snap: &Snapshot) -> Result<(), RunError> {
    let goroutines = probes.goroutines_seen(session.process.pid)?.len();
    let mut line = format!("gort: pid {} [{}]:", session.process.pid, session.mode());
    for (name, hits) in session.probe_hits(snap) {
        line.push_str(&format!(" {name}={hits}"));
    }
    if goroutines > 0 {
        line.push_str(&format!(" goroutines_seen={goroutines}"));
    }
    let rt = &snap.runtime;
    let ms = |ns: Option<f64>| ns.map_or("-".to_owned(), |v| format!("{:.3}ms", v / 1e6));
    let s = &snap.sampling;
    if s.is_estimate() {
        let err = s.schedule_count_relative_error.map_or(String::new(), |e| format!(", +-{:.0}%", 100.0 * e));
        line.push_str(&format!(
            "\ngort:   estimates (~) from {:.1}s recorded of {:.1}s attached{err}",
            s.covered_ns as f64 / 1e9,
            s.elapsed_ns as f64 / 1e9,
        ));
    }
    let approx = if s.is_estimate() { "~" } else { "" };
    line.push_str(&format!(
        "\ngort:   schedule latency n={approx}{} p50={} p99={}; gc cycles={} stw pauses={} p50={} max<={}",
        rt.schedule_latency.count(),
        ms(rt.schedule_latency.quantile_ns(0.5)),
        ms(rt.schedule_latency.quantile_ns(0.99)),
        rt.gc_cycles,
        rt.gc_pause.count(),
        ms(rt.gc_pause.quantile_ns(0.5)),
        ms(rt.gc_pause.quantile_ns(1.0)),
    ));
    let mut blocked: Vec<(&str, TimeHistogram)> = rt.blocked_by_category().into_iter().collect();
    blocked.sort_by_key(|(_, h)| std::cmp::Reverse(h.sum_ns));
    line.push_str(&format!("; gc mark workers={:.3}s", rt.gc_mark_worker_ns() as f64 / 1e9));
    if let Some(live) = &snap.live {
        let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
        for ((state, _), n) in &live.application {
            *by_state.entry(state).or_default() += n;
        }
        line.push_str("\ngort:   live goroutines:");
        for (state, n) in by_state {
            line.push_str(&format!(" {state}={n}"));
        }
        line.push_str(&format!(" (and {} of the runtime's own)", live.runtime.values().sum::<u64>()));
    }
    line.push_str("\ngort:   blocked:");
    for (category, h) in blocked.iter().take(5) {
        line.push_str(&format!(" {category}={:.3}s/{}", h.sum_ns as f64 / 1e9, h.count()));
    }
    let n = &session.notable;
    let worst = n.recent.iter().filter(|e| e.kind == "schedule_stall").max_by_key(|e| e.duration_ns);
    line.push_str(&format!(
        "\ngort:   notable: {} stalls >= {:.3}ms{}, {} gc pauses, {} lost",
        n.schedule_stalls,
        n.stall_threshold_ns as f64 / 1e6,
        worst.map_or(String::new(), |e| format!(
            " (worst recent {:.3}ms, goroutine {})",
            e.duration_ns as f64 / 1e6,
            e.goid
        )),
        n.gc_pauses,
        n.lost,
    ));
    println!("{line}");
    Ok(())
}
