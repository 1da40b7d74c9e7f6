//! The one userspace module that touches BPF: loads the embedded probes
//! object, attaches uprobes, and reads the in-kernel aggregates. Everything
//! `unsafe` on the userspace side lives here.
#![expect(
    unsafe_code,
    reason = "Pod impls for map keys and values, byte copies out of ring buffers, clock_gettime, batch lookups"
)]

mod batch;
pub mod probes;
mod slots;

use std::{num::NonZeroU32, os::fd::AsFd, path::Path};

use aya::{
    Ebpf, Pod,
    maps::{Array, HashMap, IterableMap, MapData, PerCpuArray, RingBuf},
    programs::{
        UProbe,
        uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLinkId, UProbeScope},
    },
};
use gort_common::{
    CounterId, EntryKey, Event, GSTATE_SLOTS, GSTATE_WAYS, GoroutineKey, GoroutineSlot, HistogramId,
    MAX_TARGETS, ProbeId, SPAN_SLOTS, SpanAccount, SpanEnd, SpanStall, TargetConfig, TargetGc, TargetSlot,
    gstate_set, names, span_record, time_hist,
};
use slots::TargetSlots;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum BpfError {
    #[error(
        "this gort was built without its eBPF probes (AYA_BUILD_SKIP was set); rebuild without it to attach"
    )]
    NotEmbedded,
    #[error("loading the eBPF probes failed ({0}); gort needs root, or CAP_BPF and CAP_PERFMON")]
    Load(#[source] aya::EbpfError),
    #[error("the probes object has no {kind} named {name}")]
    Missing { kind: &'static str, name: &'static str },
    #[error("eBPF program {program}: {source}")]
    Program { program: &'static str, source: aya::programs::ProgramError },
    #[error("eBPF map {map}: {source}")]
    Map { map: &'static str, source: aya::maps::MapError },
    #[error("eBPF map {map}: batch lookup: {source}")]
    Batch { map: &'static str, source: std::io::Error },
    #[error("gort watches at most {MAX_TARGETS} processes at once; pid {0} is one too many")]
    TooManyTargets(u32),
    #[error("pid {0} has no target slot: its configuration must be written before its probes are attached")]
    NoSlot(u32),
    #[error("cannot turn on the kernel's BPF run-time statistics ({0}); they need root or CAP_SYS_ADMIN")]
    Stats(#[source] aya::sys::SyscallError),
    #[error("cannot read gort's own pid namespace (/proc/self/ns/pid): {0}")]
    PidNamespace(#[source] std::io::Error),
    #[error("{0} is not available: no probes are loaded (run.probes: none)")]
    NotLoaded(&'static str),
}

/// The inode of the initial pid namespace (the kernel's PROC_PID_INIT_INO).
const INIT_PID_NS_INO: u64 = 0xEFFF_FFFC;

/// What the probes need to see process ids as gort does (`TargetSlot`):
/// (0, 0) in the initial pid namespace, else its device and inode.
fn pid_namespace(dev: u64, ino: u64) -> (u64, u64) {
    if ino == INIT_PID_NS_INO { (0, 0) } else { (dev, ino) }
}

impl BpfError {
    /// The kernel's refusal (EPERM or EACCES) behind this error, if that is
    /// what it is: a missing privilege, not a problem of the probe.
    pub fn permission_denied(&self) -> Option<std::io::Error> {
        let mut source: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::PermissionDenied
            {
                return Some(io.raw_os_error().map_or_else(
                    || std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                    std::io::Error::from_raw_os_error,
                ));
            }
            source = e.source();
        }
        None
    }
}

/// The kernel's BPF run-time statistics (run time and run count of every
/// program), on for as long as this is held; each run then costs about 20 ns
/// more, so they are on only when asked for (`run.bpf_stats`).
#[derive(Debug)]
pub struct BpfStats(
    #[expect(dead_code, reason = "held: dropping it turns the statistics off")] std::os::fd::OwnedFd,
);

impl BpfStats {
    pub fn enable() -> Result<Self, BpfError> {
        aya::sys::enable_stats(aya::sys::Stats::RunTime).map(Self).map_err(BpfError::Stats)
    }
}

/// Entries of the maps that hold per-process state: target slots in use,
/// goroutines seen, runtime goroutine entry points, goroutine states and
/// span accounts. With one watched process, all are 0 just before it is
/// attached: what an earlier process left behind would show here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct MapEntries {
    pub targets: u32,
    pub goids_seen: u32,
    pub runtime_entries: u32,
    pub goroutine_states: u32,
    pub span_accounts: u32,
}

/// Time and runs of one program since it was loaded, while statistics were on.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ProgramStats {
    pub run_ns: u64,
    pub runs: u64,
}

impl ProgramStats {
    /// What ran between `base` and this reading.
    pub fn since(self, base: Self) -> Self {
        Self { run_ns: self.run_ns.saturating_sub(base.run_ns), runs: self.runs.saturating_sub(base.runs) }
    }
}

/// Layout-identical wrappers so aya can copy the shared types in and out of
/// maps; `Pod` is aya's trait and the types are gort-common's, so the impls
/// must sit on local types.
#[repr(transparent)]
#[derive(Clone, Copy)]
struct TargetSlotPod(TargetSlot);
// SAFETY: TargetSlot is #[repr(C)], Copy, made only of integers, with
// explicit padding fields, so every bit pattern is valid and none is hidden.
unsafe impl Pod for TargetSlotPod {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct TargetGcPod(TargetGc);
// SAFETY: as above: #[repr(C)] integers with explicit padding.
unsafe impl Pod for TargetGcPod {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct GoroutineKeyPod(GoroutineKey);
// SAFETY: as above: #[repr(C)] integers with explicit padding.
unsafe impl Pod for GoroutineKeyPod {}

#[repr(transparent)]
#[derive(Clone, Copy)]
struct EntryKeyPod(EntryKey);
// SAFETY: as above: #[repr(C)] integers with explicit padding.
unsafe impl Pod for EntryKeyPod {}

#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct GoroutineSlotPod(GoroutineSlot);
// SAFETY: as above: #[repr(C)] integers with explicit padding.
unsafe impl Pod for GoroutineSlotPod {}

#[repr(transparent)]
#[derive(Clone, Copy, Default)]
struct SpanAccountPod(SpanAccount);
// SAFETY: as above: #[repr(C)] integers and byte arrays with explicit padding.
unsafe impl Pod for SpanAccountPod {}

/// The span a goroutine serves now, as the probes keep it: its trace id and
/// the SDK's span id bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActiveSpanIds {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
}

#[cfg(gort_probes_embedded)]
fn object() -> Result<&'static [u8], BpfError> {
    Ok(aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gort-probes")))
}

#[cfg(not(gort_probes_embedded))]
fn object() -> Result<&'static [u8], BpfError> {
    Err(BpfError::NotEmbedded)
}

/// The probes, loaded into the kernel, or none at all (`run.probes:
/// none`, which needs no BPF privilege): then every read answers as for
/// probes that never ran. Dropping it detaches everything.
pub struct Probes {
    loaded: Option<Loaded>,
    slots: TargetSlots,
    /// gort's pid namespace, as `pid_namespace` gives it.
    pidns: (u64, u64),
}

struct Loaded {
    ebpf: Ebpf,
    /// Whether the probes with a multi-uprobe twin run as that twin (the
    /// kernel filters multi-uprobe links by process).
    multi: bool,
    /// Taken out of `ebpf` once: constructing it maps the buffer's pages.
    events: RingBuf<MapData>,
    span_events: RingBuf<MapData>,
}

/// A record of the span ring buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanRecord {
    End(SpanEnd),
    Stall(SpanStall),
}

/// Copies a `#[repr(C)]` integer-only record out of ring-buffer bytes of
/// exactly its size.
fn decode_plain<T: Copy + Default>(bytes: &[u8]) -> Option<T> {
    if bytes.len() != size_of::<T>() {
        return None;
    }
    let mut value = T::default();
    // SAFETY: only instantiated with SpanEnd and SpanStall, which are
    // #[repr(C)], Copy, and made of integers and byte arrays with explicit
    // padding fields, so any bytes of their size are a valid value; the copy
    // is bytewise, so the buffer's alignment does not matter.
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut value).cast::<u8>(), size_of::<T>());
    }
    Some(value)
}

/// Decodes a span ring-buffer record by its kind (first u32) and size.
fn decode_span_record(bytes: &[u8]) -> Option<SpanRecord> {
    let kind = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    match kind {
        span_record::END => decode_plain(bytes).map(SpanRecord::End),
        span_record::RUNNABLE | span_record::PARKED | span_record::ASSIST => {
            decode_plain(bytes).map(SpanRecord::Stall)
        }
        _ => None,
    }
}

/// Decodes an `Event` from the ring buffer's bytes (little-endian, the
/// #[repr(C)] layout); `None` for a record of the wrong size.
fn decode_event(bytes: &[u8]) -> Option<Event> {
    let u32_at = |o: usize| Some(u32::from_le_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
    let u64_at = |o: usize| Some(u64::from_le_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
    (bytes.len() == size_of::<Event>()).then_some(())?;
    Some(Event {
        kind: u32_at(0)?,
        tgid: u32_at(4)?,
        goid: u64_at(8)?,
        start_ns: u64_at(16)?,
        end_ns: u64_at(24)?,
    })
}

/// Takes up to `max` records from a ring buffer, decoded; returns them and
/// how many could not be decoded.
fn drain<T>(ring: &mut RingBuf<MapData>, max: usize, decode: fn(&[u8]) -> Option<T>) -> (Vec<T>, u64) {
    let mut records = Vec::new();
    let mut bad = 0;
    while records.len() < max {
        let Some(item) = ring.next() else { break };
        match decode(&item) {
            Some(r) => records.push(r),
            None => bad += 1,
        }
    }
    (records, bad)
}

/// The uprobes of one program on one target (one per site), so they can be
/// detached when the target goes away.
#[derive(Debug)]
pub struct Attachment {
    program: &'static str,
    links: Vec<UProbeLinkId>,
}

impl Probes {
    /// Loads the embedded object and verifies every program (no attach yet).
    pub fn load() -> Result<Self, BpfError> {
        let mut ebpf = Ebpf::load(object()?).map_err(BpfError::Load)?;
        // Kernels before process-wide filtering of multi-uprobe links fired
        // them for one thread of the process only: the per-site program there.
        let multi = aya::sys::is_uprobe_multi_supported(aya::sys::UProbeMultiFeature::ProcessScopedPidFilter)
            .unwrap_or(false);
        log::debug!("multi-uprobe links filtered by process: {multi}");
        for spec in probes::PROBES {
            let program = variant(spec, multi);
            uprobe(&mut ebpf, program)?.load().map_err(|source| BpfError::Program { program, source })?;
        }
        let map = names::MAP_EVENTS;
        let events =
            RingBuf::try_from(ebpf.take_map(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
                .map_err(|source| BpfError::Map { map, source })?;
        let map = names::MAP_SPAN_EVENTS;
        let span_events =
            RingBuf::try_from(ebpf.take_map(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
                .map_err(|source| BpfError::Map { map, source })?;
        let ns = std::fs::metadata("/proc/self/ns/pid").map_err(BpfError::PidNamespace)?;
        let pidns =
            pid_namespace(std::os::unix::fs::MetadataExt::dev(&ns), std::os::unix::fs::MetadataExt::ino(&ns));
        Ok(Self {
            loaded: Some(Loaded { ebpf, multi, events, span_events }),
            slots: TargetSlots::default(),
            pidns,
        })
    }

    /// The program loaded for the probe whose table program is `program`.
    fn loaded_program(&self, program: &'static str) -> &'static str {
        let multi = self.loaded.as_ref().is_some_and(|l| l.multi);
        probes::PROBES.iter().find(|p| p.program == program).map_or(program, |p| variant(p, multi))
    }

    /// No probes: nothing goes into the kernel.
    pub fn none() -> Self {
        Self { loaded: None, slots: TargetSlots::default(), pidns: (0, 0) }
    }

    fn ebpf(&self) -> Result<&Ebpf, BpfError> {
        self.loaded.as_ref().map(|l| &l.ebpf).ok_or(BpfError::NotLoaded("a map"))
    }

    fn ebpf_mut(&mut self) -> Result<&mut Ebpf, BpfError> {
        self.loaded.as_mut().map(|l| &mut l.ebpf).ok_or(BpfError::NotLoaded("a map"))
    }

    /// Tells the probes about a target process before attaching to it (and
    /// again when its configuration changes): it keeps one slot of the
    /// target tables until removed.
    pub fn add_target(&mut self, pid: u32, config: TargetConfig) -> Result<(), BpfError> {
        let (slot, new) = self.slots.take(pid).ok_or(BpfError::TooManyTargets(pid))?;
        if self.loaded.is_none() {
            return Ok(());
        }
        if new {
            // The books of the slot's previous process are not this one's.
            let map = names::MAP_TARGET_GC;
            self.array_mut::<TargetGcPod>(map)?
                .set(slot, &TargetGcPod(TargetGc::default()), 0)
                .map_err(|source| BpfError::Map { map, source })?;
        }
        let map = names::MAP_TARGETS;
        let (pidns_dev, pidns_ino) = self.pidns;
        let value = TargetSlotPod(TargetSlot { tgid: pid, _pad: 0, pidns_dev, pidns_ino, config });
        self.array_mut::<TargetSlotPod>(map)?
            .set(slot, &value, 0)
            .map_err(|source| BpfError::Map { map, source })
    }

    /// Tells the probes where a target's runtime goroutines start
    /// (run-time addresses). Returns how many fitted: the map is shared by
    /// every target, and what does not fit is counted as the application's.
    pub fn add_runtime_entries(&mut self, pid: u32, entries: &[u64]) -> Result<usize, BpfError> {
        if self.loaded.is_none() {
            return Ok(0);
        }
        let map = names::MAP_RUNTIME_ENTRIES;
        let mut table: HashMap<_, EntryKeyPod, u8> = self.map_mut(map)?;
        let mut added = 0;
        for &pc in entries {
            let key = EntryKeyPod(EntryKey { tgid: pid, _pad: 0, pc });
            if table.insert(&key, &1, 0).is_err() {
                break;
            }
            added += 1;
        }
        Ok(added)
    }

    /// Forgets a target: its per-goroutine entries and its configuration.
    pub fn remove_target(&mut self, pid: u32) -> Result<(), BpfError> {
        // Already gone is fine: removal is idempotent.
        let slot = self.slots.free(pid);
        if self.loaded.is_none() {
            return Ok(());
        }
        if let Some(slot) = slot {
            let map = names::MAP_TARGETS;
            self.array_mut::<TargetSlotPod>(map)?
                .set(slot, &TargetSlotPod(TargetSlot::default()), 0)
                .map_err(|source| BpfError::Map { map, source })?;
        }
        self.remove_keys::<GoroutineKeyPod, u64>(names::MAP_GOIDS_SEEN, |k| k.0.tgid == pid)?;
        self.remove_keys::<EntryKeyPod, u8>(names::MAP_RUNTIME_ENTRIES, |k| k.0.tgid == pid)?;
        self.free_slots(names::MAP_GSTATE, GSTATE_SLOTS, |s: &GoroutineSlotPod| {
            s.0.tgid == pid && s.0.g != 0
        })?;
        self.free_slots(names::MAP_SPANS, SPAN_SLOTS, |s: &SpanAccountPod| {
            s.0.tgid == pid && s.0.span_id != 0
        })
    }

    /// Frees the slots of an array table that `of_target` says are a
    /// forgotten target's. Left behind, the open intervals of a process that
    /// is gone would make its goroutine slots look busy to every later
    /// goroutine of their sets, and its spans never ended would be evicted
    /// by the next target's, counted as that target's displacements (or,
    /// with its pid reused, taken for its own spans at the same address).
    fn free_slots<V: Pod + Default>(
        &mut self,
        map: &'static str,
        slots: u32,
        of_target: impl Fn(&V) -> bool,
    ) -> Result<(), BpfError> {
        let stale = self.slots_where(map, slots, of_target)?;
        let mut table = self.array_mut::<V>(map)?;
        for index in stale {
            table.set(index, &V::default(), 0).map_err(|source| BpfError::Map { map, source })?;
        }
        Ok(())
    }

    /// The slots of an array table whose values `pick` selects, read in
    /// batches where the kernel can.
    fn slots_where<V: Pod + Default>(
        &self,
        map: &'static str,
        slots: u32,
        pick: impl Fn(&V) -> bool,
    ) -> Result<Vec<u32>, BpfError> {
        let table = self.array::<V>(map)?;
        let mut picked = Vec::new();
        let batched = batch::for_each_slot(table.map().fd().as_fd(), slots, |i, v: &V| {
            if pick(v) {
                picked.push(i);
            }
        })
        .map_err(|source| BpfError::Batch { map, source })?;
        if !batched {
            picked = (0..slots).filter(|i| table.get(i, 0).is_ok_and(|v| pick(&v))).collect();
        }
        Ok(picked)
    }

    /// How many entries the per-process maps hold now.
    pub fn map_entries(&mut self) -> Result<MapEntries, BpfError> {
        if self.loaded.is_none() {
            return Ok(MapEntries::default());
        }
        let map = names::MAP_TARGETS;
        let slots = self.array::<TargetSlotPod>(map)?;
        let targets = (0..MAX_TARGETS).filter(|i| slots.get(i, 0).is_ok_and(|s| s.0.tgid != 0)).count();
        let goids_seen = self.map_mut::<GoroutineKeyPod, u64>(names::MAP_GOIDS_SEEN)?.keys().count();
        let runtime_entries = self.map_mut::<EntryKeyPod, u8>(names::MAP_RUNTIME_ENTRIES)?.keys().count();
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let goroutine_states =
            self.slots_where(names::MAP_GSTATE, GSTATE_SLOTS, |s: &GoroutineSlotPod| s.0.g != 0)?.len();
        let span_accounts =
            self.slots_where(names::MAP_SPANS, SPAN_SLOTS, |s: &SpanAccountPod| s.0.span_id != 0)?.len();
        Ok(MapEntries {
            targets: count(targets),
            goids_seen: count(goids_seen),
            runtime_entries: count(runtime_entries),
            goroutine_states: count(goroutine_states),
            span_accounts: count(span_accounts),
        })
    }

    /// Removes the entries of a hash map whose keys `stale` selects.
    fn remove_keys<K: Pod, V: Pod>(
        &mut self,
        map: &'static str,
        stale: impl Fn(&K) -> bool,
    ) -> Result<(), BpfError> {
        let mut table: HashMap<_, K, V> = self.map_mut(map)?;
        let keys: Vec<K> = table.keys().filter_map(Result::ok).filter(|k| stale(k)).collect();
        for key in keys {
            let _ = table.remove(&key);
        }
        Ok(())
    }

    /// Attaches `program` at each of `file_offsets` of `exe`, firing only
    /// for `pid`, with `pid`'s target slot as the cookie (`add_target`
    /// first): one multi-uprobe link for all where the program has that
    /// twin and the kernel filters it by process, else one link per site,
    /// held as one (on failure, what was attached is detached again).
    pub fn attach(
        &mut self,
        program: &'static str,
        exe: &Path,
        file_offsets: &[u64],
        pid: u32,
    ) -> Result<Attachment, BpfError> {
        let program = self.loaded_program(program);
        let scope = NonZeroU32::new(pid).map_or(UProbeScope::AllProcesses, UProbeScope::OneProcess);
        let slot = self.slots.of(pid).ok_or(BpfError::NoSlot(pid))?;
        if file_offsets.is_empty() {
            return Ok(Attachment { program, links: Vec::new() });
        }
        let points = file_offsets.iter().map(|&offset| UProbeAttachPoint {
            location: UProbeAttachLocation::AbsoluteOffset(offset),
            cookie: Some(u64::from(slot)),
        });
        let link = uprobe(self.ebpf_mut().map_err(|_| BpfError::NotLoaded(program))?, program)?
            .attach(points, exe, scope)
            .map_err(|source| BpfError::Program { program, source })?;
        Ok(Attachment { program, links: vec![link] })
    }

    pub fn detach(&mut self, attachment: Attachment) -> Result<(), BpfError> {
        let Attachment { program, links } = attachment;
        if links.is_empty() {
            return Ok(());
        }
        let probe = uprobe(self.ebpf_mut()?, program)?;
        for link in links {
            probe.detach(link).map_err(|source| BpfError::Program { program, source })?;
        }
        Ok(())
    }

    fn per_cpu_array(&self, map: &'static str) -> Result<PerCpuArray<&MapData, u64>, BpfError> {
        PerCpuArray::try_from(self.ebpf()?.map(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
            .map_err(|source| BpfError::Map { map, source })
    }

    fn per_cpu_sum(&self, map: &'static str, index: u32) -> Result<u64, BpfError> {
        if self.loaded.is_none() {
            return Ok(0);
        }
        let values =
            self.per_cpu_array(map)?.get(&index, 0).map_err(|source| BpfError::Map { map, source })?;
        Ok(values.iter().sum())
    }

    /// Hits per probe, summed over CPUs (all targets together).
    /// The kernel's run-time statistics of `program` (zero unless
    /// `BpfStats` is held).
    pub fn program_stats(&self, program: &'static str) -> Result<ProgramStats, BpfError> {
        let program = self.loaded_program(program);
        let p = self.ebpf()?.program(program).ok_or(BpfError::Missing { kind: "program", name: program })?;
        let info = p.info().map_err(|source| BpfError::Program { program, source })?;
        let run_ns = u64::try_from(info.run_time().as_nanos()).unwrap_or(u64::MAX);
        Ok(ProgramStats { run_ns, runs: info.run_count() })
    }

    pub fn probe_hits(&self, probe: ProbeId) -> Result<u64, BpfError> {
        self.per_cpu_sum(names::MAP_PROBE_HITS, probe.index())
    }

    pub fn counter(&self, counter: CounterId) -> Result<u64, BpfError> {
        self.per_cpu_sum(names::MAP_COUNTERS, counter as u32)
    }

    /// A histogram's SLOTS values (counts, overflow, sum), summed over CPUs.
    pub fn histogram(&self, histogram: HistogramId) -> Result<Vec<u64>, BpfError> {
        self.histogram_at(histogram.base())
    }

    /// One slot of the histogram starting at `base` (e.g. its sum, to skip
    /// reading an empty histogram's 162 slots).
    pub fn histogram_slot(&self, base: u32, slot: u32) -> Result<u64, BpfError> {
        self.per_cpu_sum(names::MAP_HISTOGRAMS, base + slot)
    }

    /// The SLOTS values of the histogram starting at `base`.
    pub fn histogram_at(&self, base: u32) -> Result<Vec<u64>, BpfError> {
        if self.loaded.is_none() {
            return Ok(vec![0; time_hist::SLOTS as usize]);
        }
        let map = names::MAP_HISTOGRAMS;
        let array = self.per_cpu_array(map)?;
        (base..base + time_hist::SLOTS)
            .map(|i| array.get(&i, 0).map(|v| v.iter().sum()).map_err(|source| BpfError::Map { map, source }))
            .collect()
    }

    /// Takes the notable events waiting in the ring buffer (at most `max`,
    /// so one drain cannot stall the loop); undecodable records are counted.
    pub fn drain_events(&mut self, max: usize) -> (Vec<Event>, u64) {
        self.loaded.as_mut().map_or_else(Default::default, |l| drain(&mut l.events, max, decode_event))
    }

    /// Takes the span records waiting (at most `max`); undecodable ones are
    /// counted.
    pub fn drain_span_records(&mut self, max: usize) -> (Vec<SpanRecord>, u64) {
        self.loaded
            .as_mut()
            .map_or_else(Default::default, |l| drain(&mut l.span_events, max, decode_span_record))
    }

    /// Goroutine ids the probes saw in `pid`, with how often each was seen.
    pub fn goroutines_seen(&self, pid: u32) -> Result<Vec<(u64, u64)>, BpfError> {
        if self.loaded.is_none() {
            return Ok(Vec::new());
        }
        let map = names::MAP_GOIDS_SEEN;
        let goids: HashMap<&MapData, GoroutineKeyPod, u64> =
            HashMap::try_from(self.ebpf()?.map(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
                .map_err(|source| BpfError::Map { map, source })?;
        let mut seen: Vec<(u64, u64)> = goids
            .iter()
            .filter_map(Result::ok)
            .filter(|(k, _)| k.0.tgid == pid)
            .map(|(k, hits)| (k.0.goid, hits))
            .collect();
        seen.sort_unstable();
        Ok(seen)
    }

    /// The span active now on each goroutine of `pid` in `gs` (their `g`
    /// addresses), as the span-linkage probes keep it: None when the
    /// goroutine has no state (never seen, or displaced), no span, or a span
    /// whose account has since ended or been given to another (the ids no
    /// longer match). Up to two reads of the goroutine table and one of the
    /// span table per goroutine, each a syscall; the target is not touched.
    pub fn active_spans(&self, pid: u32, gs: &[u64]) -> Result<Vec<Option<ActiveSpanIds>>, BpfError> {
        if self.loaded.is_none() {
            return Ok(vec![None; gs.len()]);
        }
        let (gstate_map, spans_map) = (names::MAP_GSTATE, names::MAP_SPANS);
        let gstate = self.array::<GoroutineSlotPod>(gstate_map)?;
        let spans = self.array::<SpanAccountPod>(spans_map)?;
        let mut found = Vec::with_capacity(gs.len());
        for &g in gs {
            let first = gstate_set(pid, g) * GSTATE_WAYS;
            let mut span = None;
            for way in first..first + GSTATE_WAYS {
                let slot = gstate.get(&way, 0).map_err(|source| BpfError::Map { map: gstate_map, source })?.0;
                if slot.holds(pid, g) {
                    span = Some(slot.state.span);
                    break;
                }
            }
            let Some(active) = span.filter(|s| s.span_id != 0) else {
                found.push(None);
                continue;
            };
            let account =
                spans.get(&active.slot, 0).map_err(|source| BpfError::Map { map: spans_map, source })?.0;
            found.push(account.holds(pid, active.span_id).then(|| ActiveSpanIds {
                trace_id: account.trace_id,
                span_id: account.span_id.to_le_bytes(),
            }));
        }
        Ok(found)
    }

    fn array<V: Pod>(&self, map: &'static str) -> Result<Array<&MapData, V>, BpfError> {
        Array::try_from(self.ebpf()?.map(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
            .map_err(|source| BpfError::Map { map, source })
    }

    fn array_mut<V: Pod>(&mut self, map: &'static str) -> Result<Array<&mut MapData, V>, BpfError> {
        Array::try_from(self.ebpf_mut()?.map_mut(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
            .map_err(|source| BpfError::Map { map, source })
    }

    fn map_mut<K: Pod, V: Pod>(
        &mut self,
        map: &'static str,
    ) -> Result<HashMap<&mut MapData, K, V>, BpfError> {
        HashMap::try_from(self.ebpf_mut()?.map_mut(map).ok_or(BpfError::Missing { kind: "map", name: map })?)
            .map_err(|source| BpfError::Map { map, source })
    }
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, in ns, read back to back: what
/// turns the probes' timestamps into Unix time.
pub fn realtime_offset_ns() -> i64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: as in monotonic_ns; CLOCK_REALTIME always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    let real = ts.tv_sec.wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec);
    real.wrapping_sub(monotonic_ns() as i64)
}

/// CLOCK_MONOTONIC now, in ns: the clock of `bpf_ktime_get_ns` (and of Go's
/// `nanotime`), which std's `Instant` uses but does not expose.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a
    // local; CLOCK_MONOTONIC always exists on Linux, so it cannot fail.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(ts.tv_nsec as u64)
}

/// The program that runs `spec`: its multi-uprobe twin where `multi`.
fn variant(spec: &probes::ProbeSpec, multi: bool) -> &'static str {
    spec.multi_program.filter(|_| multi).unwrap_or(spec.program)
}

fn uprobe<'a>(ebpf: &'a mut Ebpf, program: &'static str) -> Result<&'a mut UProbe, BpfError> {
    ebpf.program_mut(program)
        .ok_or(BpfError::Missing { kind: "program", name: program })?
        .try_into()
        .map_err(|source| BpfError::Program { program, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_pid_namespace_takes_the_plain_helper_others_their_own() {
        assert_eq!(pid_namespace(4, INIT_PID_NS_INO), (0, 0));
        assert_eq!(pid_namespace(4, 4_026_532_290), (4, 4_026_532_290));
    }

    #[test]
    fn events_decode_from_their_c_layout() {
        let mut bytes = Vec::new();
        bytes.extend(2u32.to_le_bytes());
        bytes.extend(77u32.to_le_bytes());
        bytes.extend(18u64.to_le_bytes());
        bytes.extend(1_000u64.to_le_bytes());
        bytes.extend(3_000u64.to_le_bytes());
        let e = decode_event(&bytes).unwrap();
        assert_eq!(e, Event { kind: 2, tgid: 77, goid: 18, start_ns: 1_000, end_ns: 3_000 });
        assert_eq!(decode_event(&bytes[..31]), None);
    }

    #[test]
    fn span_records_decode_by_kind_and_size() {
        let stall = SpanStall {
            kind: span_record::PARKED,
            tgid: 9,
            span_id: 5,
            goid: 3,
            start_ns: 10,
            end_ns: 30,
            reason: 21,
            flags: 1,
            npcs: 2,
            _pad: 0,
            pcs: [0x4010, 0x4020, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
        };
        let mut bytes = Vec::new();
        for v in [stall.kind, stall.tgid] {
            bytes.extend(v.to_le_bytes());
        }
        for v in [stall.span_id, stall.goid, stall.start_ns, stall.end_ns] {
            bytes.extend(v.to_le_bytes());
        }
        for v in [21u32, 1, 2, 0] {
            bytes.extend(v.to_le_bytes());
        }
        for pc in stall.pcs {
            bytes.extend(pc.to_le_bytes());
        }
        assert_eq!(decode_span_record(&bytes), Some(SpanRecord::Stall(stall)));
        assert_eq!(decode_span_record(&bytes[..bytes.len() - 1]), None);
        let mut end = vec![0u8; size_of::<SpanEnd>()];
        end[..4].copy_from_slice(&span_record::END.to_le_bytes());
        end[8..16].copy_from_slice(&77u64.to_le_bytes());
        let Some(SpanRecord::End(e)) = decode_span_record(&end) else { panic!("not an end") };
        assert_eq!(e.span_id, 77);
        assert_eq!(
            decode_span_record(&end[..size_of::<SpanStall>()]),
            None,
            "an end record's kind with a stall's size"
        );
        end[..4].copy_from_slice(&99u32.to_le_bytes());
        assert_eq!(decode_span_record(&end), None);
    }
}
