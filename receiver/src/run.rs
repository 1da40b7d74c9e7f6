//! `gort run`: attach the probes to a Go process, report what they count, and
//! follow the process: detach when it exits and, when watching an executable,
//! attach again to the next process that runs it.

use std::{
    fs,
    io::{BufWriter, Write},
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use std::collections::VecDeque;

use gort_common::{
    CounterId, Event, HistogramId, MAX_WAIT_REASONS, NO_OFFSET, ProbeId, TargetConfig, blocked_base,
    event_kind, time_hist,
};
use thiserror::Error;
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::{
    analysis::{self, Analysis, AnalysisError, Function, Request},
    bpf::{Attachment, BpfError, Probes},
    export,
    probe_table::{self, Need, PROBES, ProbeSpec, Site},
    stats::{RuntimeCounts, TimeHistogram},
    target::{self, Process, TargetError},
};

/// How often liveness of the target is checked.
const LIVENESS_POLL: Duration = Duration::from_millis(100);
/// How often the notable-event ring buffer is drained. The probes submit
/// without waking us, so this bounds how long an event waits; 256 KiB hold
/// 8192 events, i.e. ~80k events/s before any is lost.
const DRAIN_INTERVAL: Duration = Duration::from_millis(100);
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
    MissingField { exe: PathBuf, field: analysis::FieldRef, reason: String },
    #[error("{exe}: no probe site in {symbol}: {reason}")]
    NoSite { exe: PathBuf, symbol: &'static str, reason: String },
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error("{path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

/// Which process to watch.
#[derive(Clone, Debug)]
pub enum TargetSpec {
    Pid(u32),
    /// Every process running this executable, one after another.
    Exe(PathBuf),
}

/// Where probes go: the analysed emulatable site, or (for the probe-cost
/// benchmark only) the function entry, which the kernel single-steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SiteMode {
    Auto,
    Entry,
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub target: TargetSpec,
    pub duration: Option<Duration>,
    pub interval: Duration,
    pub otlp_json: Option<PathBuf>,
    pub summary_json: Option<PathBuf>,
    pub site_mode: SiteMode,
    pub service_name: Option<String>,
    /// A goroutine runnable at least this long is reported as a notable event.
    pub stall_threshold: Duration,
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
    pub site_offset: u64,
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
    pub notable: NotableSummary,
    pub exited: bool,
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
}

/// A process with gort's probes attached to it.
struct Session {
    process: Process,
    analysis: Analysis,
    goid_offset: u64,
    attachments: Vec<(&'static ProbeSpec, Function, Attachment)>,
    /// Counter values when this session attached: the counters are shared by
    /// every target, so each session reports its own difference.
    baseline: Vec<u64>,
    runtime_baseline: RuntimeCounts,
    wait_names: Option<&'static [String]>,
    lost_baseline: u64,
    notable: NotableSummary,
    started: SystemTime,
}

/// Reads the in-kernel runtime aggregates; `wait_names` names the wait
/// reasons of the target's Go release.
fn read_runtime(probes: &Probes, wait_names: Option<&[String]>) -> Result<RuntimeCounts, RunError> {
    let hist = |id| probes.histogram(id).map(|s| TimeHistogram::from_slots(&s));
    let reasons = wait_names.map_or(MAX_WAIT_REASONS, |n| (n.len() as u32).min(MAX_WAIT_REASONS));
    let mut blocked = std::collections::BTreeMap::new();
    for n in 0..reasons {
        let base = blocked_base(u64::from(n));
        if probes.histogram_slot(base, time_hist::SUM_SLOT)? == 0 {
            continue;
        }
        let h = TimeHistogram::from_slots(&probes.histogram_at(base)?);
        blocked.insert(crate::wait_reasons::name(wait_names, n), h);
    }
    Ok(RuntimeCounts {
        blocked,
        schedule_latency: hist(HistogramId::ScheduleLatency)?,
        gc_pause: hist(HistogramId::GcPause)?,
        gc_cycles: probes.counter(CounterId::GcCycles)?,
        other_stw_pauses: probes.counter(CounterId::OtherStw)?,
        goroutines_created: probes.counter(CounterId::GoroutinesCreated)?,
        goroutines_exited: probes.counter(CounterId::GoroutinesExited)?,
    })
}

impl Session {
    fn attach(
        probes: &mut Probes,
        process: Process,
        site_mode: SiteMode,
        stall_threshold: Duration,
    ) -> Result<Self, RunError> {
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
        let goid_offset = analysis.fields[&probe_table::GOID].offset;
        let stall_threshold_ns = u64::try_from(stall_threshold.as_nanos()).unwrap_or(u64::MAX);
        let waitreason_offset = match analysis.fields.get(&probe_table::WAITREASON) {
            Some(f) => u32::try_from(f.offset).unwrap_or(NO_OFFSET),
            None => {
                log::warn!("{}: runtime.g.waitreason offset unknown; blocked time disabled", exe.display());
                NO_OFFSET
            }
        };
        let wait_names = crate::wait_reasons::names(analysis.go_version);
        if wait_names.is_none() {
            log::warn!(
                "{}: no wait-reason names for {}; reasons are reported by number",
                exe.display(),
                analysis.go_version
            );
        }
        let config = TargetConfig {
            goid_offset: u32::try_from(goid_offset).unwrap_or(u32::MAX),
            waitreason_offset,
            stall_threshold_ns,
        };
        // Events left from an earlier target are not this one's.
        let _ = probes.drain_events(usize::MAX);
        probes.add_target(process.pid, config)?;
        let baseline = hit_counts(probes)?;
        let runtime_baseline = read_runtime(probes, wait_names)?;
        let mut attachments = Vec::new();
        for spec in PROBES.iter().filter(|p| p.go.contains(analysis.go_version)) {
            let Some(function) = analysis.functions.get(spec.symbol) else {
                log::warn!(
                    "{}: {} not found; {} disabled",
                    exe.display(),
                    spec.symbol,
                    probe_table::feeds(spec.id)
                );
                continue;
            };
            let offsets: Vec<u64> = match (spec.site, site_mode) {
                (Site::AfterEntry, SiteMode::Auto) => vec![function.site_file_offset()],
                (Site::AfterEntry, SiteMode::Entry) => vec![function.file_offset],
                (Site::Returns, _) => function.return_file_offsets().collect(),
            };
            if offsets.is_empty() {
                log::warn!("{}: no RET to probe; {} disabled", spec.symbol, probe_table::feeds(spec.id));
                continue;
            }
            match probes.attach(spec.program, &image, &offsets, process.pid) {
                Ok(a) => attachments.push((spec, function.clone(), a)),
                Err(e) if spec.need == Need::Optional => {
                    log::warn!("{}: {e}; {} disabled", spec.symbol, probe_table::feeds(spec.id))
                }
                Err(e) => {
                    for (_, _, a) in attachments {
                        let _ = probes.detach(a);
                    }
                    let _ = probes.remove_target(process.pid);
                    return Err(e.into());
                }
            }
        }
        Ok(Self {
            process,
            analysis,
            goid_offset,
            attachments,
            baseline,
            runtime_baseline,
            wait_names,
            lost_baseline: probes.counter(CounterId::EventsLost)?,
            notable: NotableSummary { stall_threshold_ns, ..NotableSummary::default() },
            started: SystemTime::now(),
        })
    }

    fn describe(&self, site_mode: SiteMode) -> String {
        let mut out = format!(
            "gort: attached to pid {} ({}, {}), runtime.g.goid at offset {}\n",
            self.process.pid,
            self.process.exe.display(),
            self.analysis.build.go_version,
            self.goid_offset
        );
        for (spec, f, _) in &self.attachments {
            let (place, file_offsets) = match (spec.site, site_mode) {
                (Site::Returns, _) => (
                    format!("RET at +{:x?} [emulated]", f.code.returns),
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
                "gort:   probe {:<10} {}{} file offset {}\n",
                spec.name, spec.symbol, place, file_offsets
            ));
        }
        out
    }

    /// Takes this target's notable events out of the ring buffer.
    fn drain(&mut self, probes: &mut Probes) -> Result<(), RunError> {
        let (events, undecodable) = probes.drain_events(DRAIN_MAX);
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

    /// Reads the in-kernel aggregates once, as differences since attach,
    /// for every output of one report (hundreds of map lookups each time).
    fn snapshot(&self, probes: &Probes) -> Result<Snapshot, RunError> {
        let now = hit_counts(probes)?;
        Ok(Snapshot {
            hits: now.iter().zip(&self.baseline).map(|(n, b)| n.saturating_sub(*b)).collect(),
            runtime: read_runtime(probes, self.wait_names)?.since(&self.runtime_baseline),
        })
    }

    /// (probe name, hits) for each attached probe.
    fn probe_hits<'a>(&'a self, snap: &Snapshot) -> Vec<(&'a str, u64)> {
        self.attachments.iter().map(|(spec, _, _)| (spec.name, snap.hits[spec.id.index() as usize])).collect()
    }

    fn summary(&self, probes: &Probes, snap: Snapshot, exited: bool) -> Result<TargetSummary, RunError> {
        let hits = &snap.hits;
        let site_offset = |f: &Function| f.code.site.offset;
        Ok(TargetSummary {
            pid: self.process.pid,
            exe: self.process.exe.clone(),
            go_version: self.analysis.build.go_version.clone(),
            goid_offset: self.goid_offset,
            probes: self
                .attachments
                .iter()
                .map(|(spec, f, _)| ProbeSummary {
                    name: spec.name,
                    symbol: spec.symbol,
                    address: f.address,
                    file_offset: f.file_offset,
                    site_offset: site_offset(f),
                    site_kind: f.code.site.kind,
                    instruction: f.code.site.instruction.clone(),
                    hits: hits[spec.id.index() as usize],
                })
                .collect(),
            goroutines: probes
                .goroutines_seen(self.process.pid)?
                .into_iter()
                .map(|(goid, hits)| GoroutineSeen { goid, hits })
                .collect(),
            runtime: snap.runtime,
            notable: self.notable.clone(),
            exited,
        })
    }

    fn detach(self, probes: &mut Probes) {
        for (spec, _, a) in self.attachments {
            if let Err(e) = probes.detach(a) {
                log::warn!("detaching {}: {e}", spec.symbol);
            }
        }
        if let Err(e) = probes.remove_target(self.process.pid) {
            log::warn!("forgetting pid {}: {e}", self.process.pid);
        }
    }
}

fn hit_counts(probes: &Probes) -> Result<Vec<u64>, RunError> {
    ProbeId::ALL.iter().map(|p| probes.probe_hits(*p).map_err(RunError::from)).collect()
}

fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

struct Outputs {
    otlp: Option<(PathBuf, BufWriter<fs::File>)>,
}

impl Outputs {
    fn open(options: &RunOptions) -> Result<Self, RunError> {
        let otlp = match &options.otlp_json {
            Some(path) => {
                let file = fs::File::create(path)
                    .map_err(|source| RunError::Output { path: path.clone(), source })?;
                Some((path.clone(), BufWriter::new(file)))
            }
            None => None,
        };
        Ok(Self { otlp })
    }

    fn write_metrics(
        &mut self,
        session: &Session,
        snap: &Snapshot,
        service: Option<&str>,
    ) -> Result<(), RunError> {
        let Some((path, out)) = &mut self.otlp else { return Ok(()) };
        let request = export::metrics_request(
            &export::ResourceFacts::new(&session.process, &session.analysis, service),
            &session.probe_hits(snap),
            &snap.runtime,
            unix_nanos(session.started),
            unix_nanos(SystemTime::now()),
        );
        gort_proto::write_json_line(out, &request)
            .and_then(|()| out.flush())
            .map_err(|source| RunError::Output { path: path.clone(), source })
    }
}

enum Wait {
    Exited,
    Deadline,
    Interrupted,
}

/// SIGINT (Ctrl-C) and SIGTERM (how a container runtime stops a sidecar),
/// listened to for the whole run so that none arriving between polls is lost.
struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    fn install() -> Result<Self, RunError> {
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).map_err(RunError::Signals)?,
            terminate: signal(SignalKind::terminate()).map_err(RunError::Signals)?,
        })
    }
}

/// Waits up to `timeout` for the target to exit, the deadline, or a stop signal.
async fn wait(
    signals: &mut StopSignals,
    process: Option<&Process>,
    timeout: Duration,
    deadline: Option<Instant>,
) -> Option<Wait> {
    let until = Instant::now() + timeout;
    loop {
        if process.is_some_and(|p| !p.is_alive()) {
            return Some(Wait::Exited);
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Some(Wait::Deadline);
        }
        if now >= until {
            return None;
        }
        let step = LIVENESS_POLL.min(until - now);
        tokio::select! {
            () = tokio::time::sleep(step) => {}
            _ = signals.interrupt.recv() => return Some(Wait::Interrupted),
            _ = signals.terminate.recv() => return Some(Wait::Interrupted),
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
                if let Some(w) = wait(signals, None, Duration::from_millis(200), deadline).await {
                    return Ok(Err(w));
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
        let attached =
            Session::attach(&mut probes, process.clone(), options.site_mode, options.stall_threshold);
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
            match wait(&mut signals, Some(&session.process), DRAIN_INTERVAL, deadline).await {
                None => {
                    session.drain(&mut probes)?;
                    if last_report.elapsed() >= options.interval {
                        last_report = Instant::now();
                        report(&session, &probes, &mut outputs, options.service_name.as_deref())?;
                    }
                }
                Some(w) => break w,
            }
        };
        session.drain(&mut probes)?;
        let snap = report(&session, &probes, &mut outputs, options.service_name.as_deref())?;
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
    let summary = Summary { targets, ended };
    if let Some(path) = &options.summary_json {
        let text = serde_json::to_string_pretty(&summary).unwrap_or_default();
        fs::write(path, text).map_err(|source| RunError::Output { path: path.clone(), source })?;
    }
    Ok(summary)
}

/// One snapshot of the aggregates, printed and exported.
fn report(
    session: &Session,
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
    let mut line = format!("gort: pid {}:", session.process.pid);
    for (name, hits) in session.probe_hits(snap) {
        line.push_str(&format!(" {name}={hits}"));
    }
    line.push_str(&format!(" goroutines_seen={goroutines}"));
    let rt = &snap.runtime;
    let ms = |ns: Option<f64>| ns.map_or("-".to_owned(), |v| format!("{:.3}ms", v / 1e6));
    line.push_str(&format!(
        "\ngort:   schedule latency n={} p50={} p99={}; gc cycles={} stw pauses={} p50={} max<={}",
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
