//! `gort run`: attach the probes to a Go process, report what they count, and
//! follow the process: detach when it exits and, when watching an executable,
//! attach again to the next process that runs it.

mod analyses;
mod attach;
mod cadence;
mod drain;
mod estimate;
mod placement;
mod report;
pub mod sampling;
mod signals;
mod summary;
mod windows;

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use gort_common::{ProbeId, TargetConfig};
use gort_goexe::{self as analysis, Analysis, AnalysisError, Function};
use thiserror::Error;

pub use self::{
    drain::{NotableEvent, NotableSummary},
    estimate::SamplingSummary,
    summary::{EndReason, GoroutineSeen, LinkageSummary, ProbeSummary, Summary, TargetSummary},
};
use self::{
    report::{Outputs, Snapshot, publish, report},
    sampling::{Sampler, Schedule, StratumCount},
    signals::{StopSignals, Wait, Wake, find_process, wait},
};
use crate::{
    bpf::{
        Attachment, BpfError, Probes,
        probes::{ProbeSpec, SiteMode},
    },
    dump::SharedPcNames,
    pipeline::{self},
    target::{Process, TargetError, TargetSpec},
    telemetry::{
        census::{self as goroutines, Census},
        leaks::{LeakSettings, LeakWatch},
        runtime_stats::{RuntimeStats, RuntimeStatsReader},
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
    #[error(transparent)]
    Privilege(#[from] crate::privileges::PrivilegeError),
    #[error("{path}: {source}")]
    Output { path: PathBuf, source: std::io::Error },
    #[error("cannot install the signal handlers: {0}")]
    Signals(std::io::Error),
}

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub target: TargetSpec,
    /// Keep the kernel's BPF statistics on and report each program's run time.
    pub bpf_stats: bool,
    /// Attach the probes; false: only read the target's memory.
    pub probes: bool,
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
    /// The goroutine leak watch, unless off.
    pub leaks: Option<LeakSettings>,
}

/// A probe the session may attach, with its sites and its live attachment.
struct Planned {
    spec: &'static ProbeSpec,
    function: Function,
    place: placement::Placement,
    attachment: Option<Attachment>,
}

/// A process with gort's probes attached to it.
struct Session {
    process: Process,
    analysis: Analysis,
    planned: Vec<Planned>,
    config: TargetConfig,
    /// When the sampled probes are attached and what they stand for.
    sampler: Sampler,
    /// Hit counters when this session attached: the counters are shared by
    /// every target, so each session reports its own difference.
    baseline: Vec<u64>,
    /// Each planned probe's program statistics when this session attached
    /// (programs outlive sessions), when `RunOptions::bpf_stats`.
    bpf_baseline: Option<Vec<crate::bpf::ProgramStats>>,
    /// The kernel's runtime aggregates when the current stratum began.
    stratum_base: RuntimeCounts,
    /// Estimated totals of the strata before the current one.
    folded: RuntimeCounts,
    /// What each folded stratum saw, for the estimates' error.
    strata: Vec<(StratumCount, StratumCount)>,
    wait_names: Option<&'static [String]>,
    /// Live goroutines by state, when the binary has its symbol table.
    census: Option<Census>,
    /// Where more and more goroutines stay parked (with a census that
    /// locates them).
    leaks: Option<LeakWatch>,
    /// When the last census was taken (monotonic): the next one stands for
    /// the time since, in the wait profile.
    last_census_at: Option<Duration>,
    /// Where the next OTLP wait profile begins (monotonic and wall clock):
    /// at attach, then where the last one ended.
    profile_mark: (Duration, SystemTime),
    /// Names of the stall sites' pcs (with trace linkage).
    stall_names: Option<SharedPcNames>,
    /// The last census that succeeded (the one at exit finds no process).
    last_live: Option<goroutines::Live>,
    /// The runtime's own statistics, when its symbols and offsets are known.
    /// Decided once per attach: a metric never changes source mid-stream.
    runtime_stats: Option<RuntimeStatsReader>,
    /// The last read that passed its checks.
    last_runtime_stats: Option<RuntimeStats>,
    /// The runtime's scheduling-latency histogram when the open window
    /// opened, and what it counted during the windows so far: the ground
    /// truth for what the probes saw, over the same time.
    window_mark: Option<TimeHistogram>,
    runtime_in_windows: Option<TimeHistogram>,
    lost_baseline: u64,
    notable: NotableSummary,
    started: SystemTime,
    /// Trace linkage for this target, when its SDK was found and linkage is on.
    linkage: Option<LinkageSummary>,
    span_lost_baseline: u64,
    /// The per-process maps just before this target was added.
    map_entries_at_attach: crate::bpf::MapEntries,
    /// The pipeline's linkage, shared with the receivers.
    forward: Option<Arc<pipeline::Shared>>,
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

/// Books a report's lateness and says when it was late: gort did not get
/// the CPU when the report was due, so this interval's metrics cover more.
fn late_report(session: &Session, interval: Duration, due: cadence::Due) {
    let shared = session.forward.as_deref();
    if let Some(shared) = shared {
        shared.report_timing.record(due.lateness, due.late, due.skipped);
    }
    if !due.late {
        return;
    }
    let what = format!(
        "pid {}: report {:.0?} late (interval {interval:?}{}): gort did not get the CPU in time; \
         is it at a low priority (nice, SCHED_IDLE) or CPU-throttled by its cgroup?",
        session.process.pid,
        due.lateness,
        if due.skipped > 0 { format!(", {} reports skipped", due.skipped) } else { String::new() }
    );
    match shared {
        Some(shared) => shared.notices.note(pipeline::notices::Kind::LateReport, "reports", 1, what),
        None => log::warn!("{what}"),
    }
}

/// Runs until the deadline, Ctrl-C, or (for a pid) the target's exit.
pub async fn run(options: RunOptions) -> Result<Summary, RunError> {
    let mut signals = StopSignals::install()?;
    // Without probes nothing goes into the kernel: reading the target's
    // memory needs CAP_SYS_PTRACE alone.
    let mut probes = match options.probes {
        true => {
            crate::privileges::check_probes_load(crate::privileges::Capabilities::of_self())?;
            Probes::load()?
        }
        false => Probes::none(),
    };
    // Held for the whole run: the statistics are on while it lives.
    let _stats = (options.bpf_stats && options.probes).then(crate::bpf::BpfStats::enable).transpose()?;
    let mut outputs = Outputs::open(&options)?;
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut targets = std::collections::VecDeque::new();
    let mut targets_omitted = 0;
    let mut seen: Vec<Process> = Vec::new();
    let mut analyses = analyses::Analyses::default();
    let ended = loop {
        let process = match find_process(&mut signals, &options.target, &seen, deadline).await? {
            Ok(p) => p,
            Err(Wait::Interrupted) => break EndReason::Interrupted,
            Err(_) => break EndReason::Duration,
        };
        // An exited process cannot be found again (its successor has another
        // start time): only live ones need skipping.
        seen.retain(Process::is_alive);
        seen.push(process.clone());
        let attached = Session::attach(&mut probes, process.clone(), &options, &mut analyses);
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
        print!("{}", session.describe());
        let mut cadence = cadence::Cadence::new(options.interval, Instant::now());
        // A report during which the target exited is its last.
        let mut last = None;
        let reason = loop {
            // Wake for the next window edge and the next report too, so
            // windows last what the probes were told (the estimate's scale
            // depends on it) and reports go out when due.
            let drain_every = session.drain_interval().min(cadence.until_next(Instant::now()));
            let step = session
                .next_change()
                .map_or(drain_every, |t| t.saturating_duration_since(Instant::now()).min(drain_every));
            match wait(&mut signals, Some(&session.process), step, deadline).await {
                None => {
                    session.tick(&mut probes)?;
                    session.drain(&mut probes)?;
                    if let Some(due) = cadence.due(Instant::now()) {
                        let snap = session.snapshot(&probes)?;
                        late_report(&session, options.interval, due);
                        // Its memory may have gone while the snapshot read
                        // it, and the probes' books are final only now: the
                        // report goes out below, once, with them read again
                        // (a second report after the exit would say less).
                        if !session.process.is_alive() {
                            last = Some(snap);
                            break Wait::Exited;
                        }
                        publish(&mut session, &probes, &mut outputs, &snap, options.service_name.as_deref())?;
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
        let snap = match last {
            Some(snap) => {
                let snap = session.with_final_probe_books(&probes, snap)?;
                publish(&mut session, &probes, &mut outputs, &snap, options.service_name.as_deref())?;
                snap
            }
            None => report(&mut session, &probes, &mut outputs, options.service_name.as_deref())?,
        };
        let exited = matches!(reason, Wait::Exited);
        let summary = session.summary(&probes, snap, exited)?;
        for p in summary.probes.iter().filter(|p| p.bpf.is_some_and(|b| b.runs > 0)) {
            let b = p.bpf.unwrap_or_default();
            println!(
                "gort: bpf program of {}: {} runs, {:.0} ns per run (kernel BPF statistics)",
                p.name,
                b.runs,
                b.run_ns as f64 / b.runs as f64
            );
        }
        if targets.len() == summary::MAX_TARGET_SUMMARIES {
            targets.pop_front();
            targets_omitted += 1;
        }
        targets.push_back(summary);
        let pid = session.process.pid;
        session.detach(&mut probes);
        // Said once it is true: a watcher may count gort's links right after.
        if exited {
            println!("gort: pid {pid} exited; probes detached");
        }
        match (reason, &options.target) {
            (Wait::Exited, TargetSpec::Exe(_)) => continue,
            (Wait::Exited, TargetSpec::Pid(_)) => break EndReason::TargetExited,
            (Wait::Deadline, _) => break EndReason::Duration,
            (Wait::Interrupted, _) => break EndReason::Interrupted,
        }
    };
    Ok(Summary { targets: targets.into(), targets_omitted, ended })
}
