//! Attaching to one process: analyse its executable, resolve every probe's
//! sites and the struct offsets, write its `TargetConfig`, and detach.

use std::{
    collections::BTreeMap,
    fs,
    sync::{Arc, Mutex},
    time::{Instant, SystemTime},
};

use gort_common::{CounterId, NO_OFFSET, TargetConfig};
use gort_goexe::{
    self as analysis, Analysis, Field, Request, allgs,
    functions::{SDK_NEW_RECORDING_SPAN, SDK_SPAN_END},
};

use self::{
    analyses::{Analyses, FileKey},
    sampling::{Sampler, Schedule},
};
use super::*;
use crate::{
    bpf::{
        Probes,
        probes::{self as probe_table, Heat, Need, PROBES, ProbeSpec},
    },
    dump::{ParkLayout, ParkSites, PcNames, SharedPcNames},
    linkage::{self, LinkCounts},
    target::Process,
    telemetry::{
        census::{self as goroutines, Census},
        leaks::LeakWatch,
        memory::TargetMemory,
        runtime_stats::{self, RuntimeStatsReader, Unavailable},
        stats::RuntimeCounts,
    },
};

impl Session {
    pub(super) fn attach(
        probes: &mut Probes,
        process: Process,
        options: &RunOptions,
        analyses: &mut Analyses,
    ) -> Result<Self, RunError> {
        let image = process.image_path();
        let exe = process.exe.clone();
        let file = fs::File::open(&image).map_err(|source| RunError::Read { exe: exe.clone(), source })?;
        // Of the open file: the one analysed, whatever the path names now.
        let key = file.metadata().ok().map(|m| FileKey::of(&m));
        let cache = object::ReadCache::new(file);
        let symbols = probe_table::symbols();
        let callers = probe_table::callers();
        let mut fields = probe_table::fields();
        let mut memory_fields = runtime_stats::fields();
        // Where goroutines park, for the census.
        memory_fields.extend(PARK_FIELDS.iter().filter(|f| !fields.contains(f)));
        fields.extend_from_slice(&memory_fields);
        let analysis = analyses
            .get_or(key, || {
                analysis::analyse(
                    &cache,
                    &Request { functions: &symbols, fields: &fields, callers: &callers },
                )
            })
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
        let linkage_settings = options
            .forward
            .as_ref()
            .and_then(|f| f.linkage.as_ref())
            .map(pipeline::linkage::Linkage::settings);
        let linkage = linkage_settings.and_then(|_| linkage_offsets(&exe, &analysis));
        // Where the executable is loaded and its symbols, read once for the
        // runtime goroutine entries and the census.
        let mut wanted_symbols = vec![allgs::ALLGS];
        wanted_symbols.extend_from_slice(runtime_stats::SYMBOLS);
        let image = analysis::data_symbols(&cache, &wanted_symbols).map_err(|e| e.to_string()).and_then(
            |(base, mut symbols)| {
                // A stripped binary has no symbol table: its goroutine list
                // is where the runtime's own code appends to it.
                if let Ok(Some(address)) = allgs::allgs_address(&cache, analysis.go_version, &symbols) {
                    symbols.insert(allgs::ALLGS.to_owned(), address);
                }
                let bias = crate::telemetry::memory::load_bias(process.pid, &process.exe, base)
                    .map_err(|e| e.to_string())?;
                Ok((bias, symbols))
            },
        );
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
                Field::GParentGoid | Field::SpanContext | Field::GM | Field::MCurg => linkage.is_some(),
                Field::GStartpc => runtime_entries.is_some(),
                // The park site of a stall, read by the probe at wake-up.
                f if PARK_FIELDS.contains(&f) => linkage.is_some(),
                // Read from userspace only.
                f if memory_fields.contains(&f) => false,
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
        let map_entries_at_attach = probes.map_entries()?;
        probes.add_target(process.pid, config)?;
        if let Some(entries) = runtime_entries.as_ref().filter(|_| options.probes) {
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
            options.probes
                && p.go.contains(analysis.go_version)
                && (p.heat != Heat::Linked || linkage.is_some())
        };
        for spec in PROBES.iter().filter(wanted) {
            let Some(function) = analysis.functions.get(spec.symbol) else {
                log::warn!(
                    "{}: {} not found; {} disabled",
                    exe.display(),
                    spec.symbol,
                    crate::features::feeds(spec.id)
                );
                continue;
            };
            let Some(place) =
                placement::place(spec, function, &analysis.functions, &analysis.calls, options.site_mode)
            else {
                log::warn!("{}: no RET to probe; {} disabled", spec.symbol, crate::features::feeds(spec.id));
                continue;
            };
            if let Some(why) = &place.fallback {
                log::warn!("{}: {why}", exe.display());
            }
            planned.push(Planned { spec, function: function.clone(), place, attachment: None });
        }
        // One naming of the executable's pcs for the census and the stalls.
        let names: Option<SharedPcNames> = image.as_ref().ok().map(|(bias, _)| {
            Arc::new(Mutex::new(PcNames::new(process.image_path(), analysis.go_version, *bias)))
        });
        let stall_names = linkage.as_ref().and(names.clone());
        let mut session = Self {
            census: census(&process, &analysis, image.as_ref(), wait_names, runtime_entries.as_ref())
                .map(|c| with_park_sites(c, &process, &analysis, names)),
            leaks: options.leaks.map(LeakWatch::new),
            last_census_at: None,
            // Before the census at attach: the first profile holds the
            // census that stands for the time since.
            profile_mark: (Duration::from_nanos(crate::bpf::monotonic_ns()), SystemTime::now()),
            stall_names,
            runtime_stats: runtime_stats_reader(&process, &analysis, image.as_ref()),
            last_runtime_stats: None,
            window_mark: None,
            runtime_in_windows: None,
            last_live: None,
            process,
            analysis,
            planned,
            config,
            sampler,
            baseline: hit_counts(probes)?,
            bpf_baseline: None,
            stratum_base: crate::features::read_runtime(probes, wait_names)?,
            folded: RuntimeCounts::default(),
            strata: Vec::new(),
            wait_names,
            lost_baseline: probes.counter(CounterId::EventsLost)?,
            notable: NotableSummary { stall_threshold_ns, ..NotableSummary::default() },
            started: SystemTime::now(),
            span_lost_baseline: probes.counter(CounterId::SpanEventsLost)?,
            map_entries_at_attach,
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
        if options.bpf_stats {
            session.bpf_baseline = Some(session.program_stats(probes)?);
        }
        // A first census now: a short-lived target may be gone by the first report.
        session.take_census(probes);
        if let Some(l) = session.linker() {
            l.set_linked(session.process.pid, true);
        }
        Ok(session)
    }

    pub(super) fn detach(mut self, probes: &mut Probes) {
        if let Some(l) = self.linker() {
            l.set_linked(self.process.pid, false);
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
pub(super) fn linkage_offsets(exe: &std::path::Path, analysis: &Analysis) -> Option<LinkageSummary> {
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

/// Where the target's runtime goroutines start (run-time addresses,
/// sorted), or None with a warning saying why they cannot be told apart.
/// `bias`: how far the executable is loaded from where it was linked.
pub(super) fn runtime_entries<'a, R: object::ReadRef<'a>>(
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
pub(super) fn census(
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
    let Some(&allgs) = symbols.get(allgs::ALLGS) else {
        log::warn!(
            "{exe}: runtime.allgs is found neither in a symbol table nor in runtime.allgadd's code; live goroutine counts disabled"
        );
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

/// What the census reads to find where goroutines park (with `g.goid`).
const PARK_FIELDS: [Field; 4] = [Field::GSched, Field::GobufPc, Field::GobufSp, Field::GobufBp];

/// The census counting waiting goroutines by where they wait too, when the
/// offsets are known (else as it was, with a warning).
fn with_park_sites(
    census: Census,
    process: &Process,
    analysis: &Analysis,
    names: Option<SharedPcNames>,
) -> Census {
    let exe = process.exe.display();
    let offset = |f: Field| analysis.fields.get(&f).map(|o| o.offset);
    if analysis.arch != gort_goexe::Arch::Amd64 {
        log::warn!(
            "{exe}: stacks are walked on amd64 only; goroutines are not counted by where they wait, and there is no leak watch or wait profile"
        );
        return census;
    }
    let (Some(goid), Some(sched), Some(pc), Some(sp), Some(bp), Some(names)) = (
        offset(Field::GGoid),
        offset(Field::GSched),
        offset(Field::GobufPc),
        offset(Field::GobufSp),
        offset(Field::GobufBp),
        names,
    ) else {
        log::warn!(
            "{exe}: runtime.g.sched's offsets are unknown; goroutines are not counted by where they wait, and there is no leak watch or wait profile"
        );
        return census;
    };
    let layout = ParkLayout { goid, sched_pc: sched + pc, sched_sp: sched + sp, sched_bp: sched + bp };
    census.with_locator(Box::new(ParkSites::new(layout, names)))
}

/// The reader of the runtime's own statistics, or None with one warning
/// naming what goes missing and why.
pub(super) fn runtime_stats_reader(
    process: &Process,
    analysis: &Analysis,
    image: Result<&(u64, BTreeMap<String, u64>), &String>,
) -> Option<RuntimeStatsReader> {
    let made = match image {
        Ok((bias, symbols)) => TargetMemory::open(process.pid)
            .map_err(Unavailable::from)
            .and_then(|mem| RuntimeStatsReader::new(mem, *bias, symbols, &analysis.fields))
            .map_err(|e| e.to_string()),
        Err(e) => Err(e.clone()),
    };
    made.map_err(|why| {
        log::warn!(
            "{}: {why}: the runtime's own statistics are not read (go.memory.*, go.processor.limit, go.config.gogc and go.memory.gc.cycles are not exported; go.schedule.duration and go.memory.gc.pause.duration come from the probes)",
            process.exe.display()
        );
    })
    .ok()
}
