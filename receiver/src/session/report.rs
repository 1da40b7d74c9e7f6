//! Each report: one snapshot of the aggregates, printed as the live report
//! line and exported as OTLP metrics.

use std::{
    collections::BTreeMap,
    fs,
    io::{BufWriter, Write},
    path::PathBuf,
    sync::Arc,
    time::SystemTime,
};

use super::*;
use crate::{
    bpf::Probes,
    export::{
        self,
        otlp_profiles::{self, ProfileWindow},
    },
    features,
    pipeline::{self, Payload},
    telemetry::{
        census::{self as goroutines},
        runtime_stats::ReadError,
        stats::{RuntimeCounts, TimeHistogram},
    },
};

/// The aggregates of one session at one moment, since it attached.
pub(super) struct Snapshot {
    /// Hits per probe, indexed by `ProbeId`.
    pub(super) hits: Vec<u64>,
    pub(super) runtime: RuntimeCounts,
    /// Fraction of time the sampled probes are attached now (1 = always).
    pub(super) sampling_ratio: f64,
    pub(super) sampling: SamplingSummary,
    /// Live goroutines by (state, wait category), if the census works.
    pub(super) live: Option<goroutines::Live>,
    /// The runtime's own statistics, if read this time.
    pub(super) runtime_stats: Option<RuntimeStats>,
}

/// The part of a snapshot the probes' maps hold.
struct ProbeBooks {
    hits: Vec<u64>,
    runtime: RuntimeCounts,
    sampling: SamplingSummary,
}

impl Session {
    /// Collects the in-kernel aggregates once for every output of one report
    /// (hundreds of map lookups each time).
    pub(super) fn snapshot(&mut self, probes: &Probes) -> Result<Snapshot, RunError> {
        let ProbeBooks { hits, runtime, sampling } = self.probe_books(probes)?;
        Ok(Snapshot {
            hits,
            runtime,
            sampling_ratio: self.sampler.ratio(),
            sampling,
            live: self.take_census(probes),
            runtime_stats: self.read_runtime_stats(),
        })
    }

    /// `snap`, taken while the target was exiting, with the probes' books
    /// read again. They are final only once it has exited: what ran between
    /// the first read and the exit (the last round trips, the last stalls,
    /// whose events are drained after) is in them now. What `snap` read from
    /// the process's memory cannot be read again, and is kept.
    pub(super) fn with_final_probe_books(
        &self,
        probes: &Probes,
        snap: Snapshot,
    ) -> Result<Snapshot, RunError> {
        let ProbeBooks { hits, runtime, sampling } = self.probe_books(probes)?;
        Ok(Snapshot { hits, runtime, sampling, ..snap })
    }

    /// What the probes counted since attach, from the kernel's maps.
    fn probe_books(&self, probes: &Probes) -> Result<ProbeBooks, RunError> {
        let (runtime, strata) = self.estimate(probes)?;
        let now = hit_counts(probes)?;
        Ok(ProbeBooks {
            hits: now.iter().zip(&self.baseline).map(|(n, b)| n.wrapping_sub(*b)).collect(),
            runtime,
            sampling: self.sampling_summary(&strata),
        })
    }

    /// One checked read of the runtime's statistics; a failed one leaves
    /// this report without them (logged), never with a torn value.
    pub(super) fn read_runtime_stats(&mut self) -> Option<RuntimeStats> {
        match self.runtime_stats.as_mut()?.read() {
            Ok(stats) => {
                self.last_runtime_stats = Some(stats.clone());
                Some(stats)
            }
            // The runtime's globals are unreadable only once the process is
            // going away, and then it no longer counts as alive: this report
            // is its last. What it did since the last read is unknown: no
            // new point, rather than the last values stamped with a later
            // time.
            Err(e @ ReadError::Memory(_)) => {
                log::debug!("pid {}: runtime statistics: {e}; none this report", self.process.pid);
                None
            }
            Err(e) => {
                log::warn!("pid {}: runtime statistics: {e}; not exported this report", self.process.pid);
                None
            }
        }
    }

    pub(super) fn take_census(&mut self, probes: &Probes) -> Option<goroutines::Live> {
        match self.census.as_mut()?.take() {
            Ok(mut live) => {
                let now = Duration::from_nanos(crate::bpf::monotonic_ns());
                // Only the wait profile, fed with the pipeline, uses them.
                if self.linkage.is_some() && self.forward.is_some() {
                    self.find_spans(probes, &mut live.parked);
                }
                self.watch_leaks(now, &mut live);
                // Each census stands for the time since the one before.
                if let (Some(shared), Some(last)) = (&self.forward, self.last_census_at)
                    && live.waiting_at.is_some()
                {
                    shared.wait_samples.record(self.process.pid, now, now.saturating_sub(last), &live.parked);
                }
                self.last_census_at = Some(now);
                self.last_live = Some(live.clone());
                Some(live)
            }
            Err(e) => {
                log::debug!("pid {}: census: {e}", self.process.pid);
                None
            }
        }
    }

    /// Which span each parked goroutine serves, from the linkage probes'
    /// goroutine table: the census reads the target's memory, where no
    /// span is to be found. A goroutine the table does not hold is sampled
    /// under no span; so is every one of a census whose lookup failed
    /// (logged).
    fn find_spans(&self, probes: &Probes, parked: &mut [goroutines::Parked]) {
        let gs: Vec<u64> = parked.iter().map(|p| p.g).collect();
        match probes.active_spans(self.process.pid, &gs) {
            Ok(spans) => parked.iter_mut().zip(spans).for_each(|(p, span)| p.span = span),
            Err(e) => log::debug!("pid {}: the spans of parked goroutines: {e}", self.process.pid),
        }
    }

    /// Gives the census to the leak watch: a newly suspected place is logged
    /// once, and every suspicion so far goes out with the census.
    fn watch_leaks(&mut self, now: Duration, live: &mut goroutines::Live) {
        let Some(watch) = &mut self.leaks else { return };
        if live.waiting_at.is_none() {
            return;
        }
        for s in watch.observe(now, &live.parked) {
            log::warn!(
                "pid {}: goroutines parked at {} ({}:{}) for over {:?} rose from {} to {} in {:?}: a goroutine leak?",
                self.process.pid,
                s.location.function,
                s.location.file,
                s.location.line,
                watch.settings().min_age,
                s.from,
                s.to,
                s.over
            );
        }
        live.leak_suspects = watch.flagged().clone();
    }

    /// (probe name, hits) for each probe that has been planned.
    pub(super) fn probe_hits<'a>(&'a self, snap: &Snapshot) -> Vec<(&'a str, u64)> {
        self.planned.iter().map(|p| (p.spec.name, snap.hits[p.spec.id.index() as usize])).collect()
    }

    pub(super) fn mode(&self) -> String {
        let schedule = self.sampler.schedule();
        if self.planned.is_empty() {
            "memory only (no probes)".to_owned()
        } else if self.sampler.is_deep() {
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

    pub(super) fn describe(&self) -> String {
        let mut out = format!(
            "gort: attached to pid {} ({}, {}), runtime.g.goid at offset {}\n",
            self.process.pid,
            self.process.exe.display(),
            self.analysis.build.go_version,
            self.goid_offset()
        );
        for Planned { spec, place, .. } in &self.planned {
            // The calls of a function are in other functions: their offsets
            // say nothing without their callers, which the instruction names.
            let offsets: Vec<String> = match place.site {
                "every_call" => Vec::new(),
                _ => place.offsets.iter().map(|o| format!("+{o:#x}")).collect(),
            };
            let file_offsets =
                place.file_offsets.iter().map(|o| format!("{o:#x}")).collect::<Vec<_>>().join(",");
            let place = format!(" {} [{:?}: {}]", offsets.join(","), place.kind, place.instruction);
            out.push_str(&format!(
                "gort:   probe {:<10} {}{} file offset {} ({})\n",
                spec.name,
                spec.symbol,
                place,
                file_offsets,
                spec.heat.attached()
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
}

pub(super) struct Outputs {
    otlp: Option<(PathBuf, BufWriter<fs::File>)>,
    forward: Option<Arc<pipeline::Shared>>,
}

impl Outputs {
    /// With the pipeline, `--otlp-json` is the pipeline's copy of
    /// everything it forwards (`pipeline::tap`, set up by the caller);
    /// without, gort's metrics are written here.
    pub(super) fn open(options: &RunOptions) -> Result<Self, RunError> {
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

    pub(super) fn write_metrics(
        &mut self,
        session: &Session,
        snap: &Snapshot,
        service: Option<&str>,
    ) -> Result<(), RunError> {
        if self.otlp.is_none() && self.forward.is_none() {
            return Ok(());
        }
        // Exemplars gathered since the last report go out once.
        let exemplars = session.linker().map(pipeline::Linkage::take_exemplars).unwrap_or_default();
        let resource = self.resource(session, service);
        let report = features::Report {
            runtime: &snap.runtime,
            live: snap.live.as_ref(),
            runtime_stats: session.runtime_stats.is_some().then_some(snap.runtime_stats.as_ref()),
            probe_hits: &session.probe_hits(snap),
            planned: &session.planned.iter().map(|p| p.spec.id).collect::<Vec<_>>(),
            sampling_ratio: snap.sampling_ratio,
            coverage: snap.sampling.coverage(),
            exemplars: &exemplars,
            window: export::points::Window {
                start: unix_nanos(session.started),
                now: unix_nanos(SystemTime::now()),
            },
        };
        let request = export::metrics_request(&resource, features::metrics(&report));
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

    /// The resource of gort's data about the session's process: named as
    /// the service names itself, when it has exported to gort.
    fn resource(&self, session: &Session, service: Option<&str>) -> export::ResourceFacts {
        let identity = self.forward.as_ref().and_then(|p| p.identities.for_pid(session.process.pid));
        export::ResourceFacts::new(&session.process, &session.analysis, service)
            .with_identity(identity.as_ref().map_or(&[], |i| i.attributes.as_slice()))
    }

    /// With `exporter.profiles`, the wait profile of the censuses since the
    /// last report (or attach) goes upstream as OTLP profiles. A profile
    /// the queue refuses is counted as refused there and said here: it is
    /// not sent again.
    pub(super) fn write_profile(&mut self, session: &mut Session, service: Option<&str>) {
        let Some(pipeline) = self.forward.as_ref().filter(|p| p.export_profiles) else { return };
        let now = (Duration::from_nanos(crate::bpf::monotonic_ns()), SystemTime::now());
        let (from, from_wall) = std::mem::replace(&mut session.profile_mark, now);
        // Censuses taken after the last profile's end, up to now.
        let censuses = pipeline.wait_samples.between(from + Duration::from_nanos(1), now.0);
        let window = ProfileWindow {
            start_unix_ns: unix_nanos(from_wall),
            duration: now.0.saturating_sub(from),
            profile_id: profile_id(session.process.pid, now.1),
        };
        let resource = self.resource(session, service);
        let Some(request) = otlp_profiles::wait_profile_request(&resource, &censuses, window) else { return };
        if !pipeline.offer_own(Payload::Profiles(Box::new(request))) {
            log::warn!(
                "pid {}: the wait profile of the last {:?} is lost: the pipeline queue is full",
                session.process.pid,
                window.duration
            );
        }
    }
}

/// A profile id unique with overwhelming odds: `pid` and `at` hashed with
/// the process's random hash keys (never all zero, which means "no id").
fn profile_id(pid: u32, at: SystemTime) -> [u8; 16] {
    use std::hash::BuildHasher;
    let keys = std::collections::hash_map::RandomState::new();
    let half = |salt: u8| keys.hash_one((pid, unix_nanos(at), salt)).to_le_bytes();
    let mut id = [0; 16];
    id[..8].copy_from_slice(&half(0));
    id[8..].copy_from_slice(&half(1));
    if id == [0; 16] {
        id[0] = 1;
    }
    id
}

/// One snapshot of the aggregates, printed and exported.
pub(super) fn report(
    session: &mut Session,
    probes: &Probes,
    outputs: &mut Outputs,
    service: Option<&str>,
) -> Result<Snapshot, RunError> {
    let snap = session.snapshot(probes)?;
    publish(session, probes, outputs, &snap, service)?;
    Ok(snap)
}

/// Prints and exports `snap` as a report.
pub(super) fn publish(
    session: &mut Session,
    probes: &Probes,
    outputs: &mut Outputs,
    snap: &Snapshot,
    service: Option<&str>,
) -> Result<(), RunError> {
    report_line(session, probes, snap)?;
    outputs.write_metrics(session, snap, service)?;
    outputs.write_profile(session, service);
    Ok(())
}

pub(super) fn report_line(session: &Session, probes: &Probes, snap: &Snapshot) -> Result<(), RunError> {
    let goroutines = probes.goroutines_seen(session.process.pid)?.len();
    let mut line = format!("gort: pid {} [{}]:", session.process.pid, session.mode());
    for (name, hits) in session.probe_hits(snap) {
        line.push_str(&format!(" {name}={hits}"));
    }
    if goroutines > 0 {
        line.push_str(&format!(" goroutines_seen={goroutines}"));
    }
    if let Some(r) = &snap.runtime_stats {
        let mib = |b: u64| b as f64 / f64::from(1 << 20);
        // The runtime's buckets start below 1 µs: microseconds, not ms.
        let us = |ns: Option<f64>| ns.map_or("-".to_owned(), |v| format!("{:.1}us", v / 1e3));
        line.push_str(&format!(
            "\ngort:   runtime (its own statistics): schedule latency n={} p50={} p99={}; gc cycles={} pauses p99={}; memory used={:.1}MiB heap goal={:.1}MiB allocated={:.1}MiB in {} allocations; GOMAXPROCS={} GOGC={}",
            r.schedule_latency.count(),
            us(r.schedule_latency.quantile_ns(0.5)),
            us(r.schedule_latency.quantile_ns(0.99)),
            r.gc_cycles,
            us(r.gc_pauses.quantile_ns(0.99)),
            mib(r.memory_used),
            mib(r.heap_goal),
            mib(r.allocated_bytes),
            r.allocations,
            r.gomaxprocs,
            r.gogc,
        ));
    }
    if session.planned.is_empty() {
        // No probe: nothing below was measured.
        if let Some(live) = &snap.live {
            line.push_str(&live_line(live));
        }
        println!("{line}");
        return Ok(());
    }
    let ms = |ns: Option<f64>| ns.map_or("-".to_owned(), |v| format!("{:.3}ms", v / 1e6));
    let rt = &snap.runtime;
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
        line.push_str(&live_line(live));
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

/// The census line: the application's live goroutines by state.
fn live_line(live: &goroutines::Live) -> String {
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    for ((state, _), n) in &live.application {
        *by_state.entry(state).or_default() += n;
    }
    let mut line = "\ngort:   live goroutines:".to_owned();
    for (state, n) in by_state {
        line.push_str(&format!(" {state}={n}"));
    }
    line.push_str(&format!(" (and {} of the runtime's own)", live.runtime.values().sum::<u64>()));
    line
}
