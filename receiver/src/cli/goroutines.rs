//! `gort goroutines`: a goroutine dump of a running Go process taken from
//! outside (no probe, no stop, no `net/http/pprof` needed), as Go's own
//! dump formats or JSON. Reading another process's memory needs ptrace
//! access to it (`CAP_SYS_PTRACE`, or the same user under Yama's
//! `ptrace_scope` 0).

use std::collections::BTreeMap;

use anyhow::{Context as _, bail};
use gort_goexe::{self as analysis, Arch, Field, Request, allgs, wait_reasons};

use crate::{
    bpf::monotonic_ns,
    dump::{self, Layout},
    target::Process,
    telemetry::memory,
};

/// How the dump is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Each goroutine in turn, as `runtime.Stack` and `debug=2` print them.
    Goroutines,
    /// Identical stacks grouped with counts, as `debug=1` prints them.
    Grouped,
    /// Every goroutine with all it was read with.
    Json,
}

const FIELDS: &[Field] = &[
    Field::GGoid,
    Field::GAtomicstatus,
    Field::GWaitreason,
    Field::GWaitsince,
    Field::GGopc,
    Field::GParentGoid,
    Field::GStartpc,
    Field::GSched,
    Field::GobufPc,
    Field::GobufSp,
    Field::GobufBp,
];

pub fn goroutines(pid: u32, format: Format, all: bool) -> anyhow::Result<()> {
    // The access check first: its refusal says what access is needed.
    let mem = memory::TargetMemory::open(pid)?;
    let process = Process::from_pid(pid)?;
    let exe = process.exe.display().to_string();
    let file = std::fs::File::open(process.image_path()).with_context(|| format!("cannot read {exe}"))?;
    let cache = object::ReadCache::new(file);
    let request = Request { functions: &[], fields: FIELDS, callers: &[] };
    let found = analysis::analyse(&cache, &request).with_context(|| exe.clone())?;
    if found.arch != Arch::Amd64 {
        bail!("{exe}: goroutine stacks are walked on amd64 only (this is {:?})", found.arch);
    }
    let offset = |f: Field| found.fields.get(&f).map(|o| o.offset);
    let need = |f: Field| offset(f).with_context(|| format!("{exe}: the offset of {f} is unknown"));
    let sched = need(Field::GSched)?;
    let (base, symbols) = analysis::data_symbols(&cache, &[allgs::ALLGS]).with_context(|| exe.clone())?;
    let allgs_link = allgs::allgs_address(&cache, found.go_version, &symbols)
        .with_context(|| exe.clone())?
        .with_context(|| {
        format!("{exe}: runtime.allgs is found neither in a symbol table nor in runtime.allgadd's code")
    })?;
    let bias = memory::load_bias(pid, &process.exe, base)?;
    let layout = Layout {
        allgs: allgs_link.wrapping_add(bias),
        goid: need(Field::GGoid)?,
        status: need(Field::GAtomicstatus)?,
        waitreason: offset(Field::GWaitreason),
        waitsince: offset(Field::GWaitsince),
        gopc: need(Field::GGopc)?,
        parent_goid: offset(Field::GParentGoid),
        startpc: need(Field::GStartpc)?,
        sched_pc: sched + need(Field::GobufPc)?,
        sched_sp: sched + need(Field::GobufSp)?,
        sched_bp: sched + need(Field::GobufBp)?,
    };
    let names = wait_reasons::names(found.go_version);
    let now = monotonic_ns();
    let dump = dump::with_symbols(&process.image_path(), found.go_version, bias, |symbols| {
        dump::take(&mem, &layout, symbols, names, now)
    })?
    .with_context(|| format!("pid {pid}: the goroutine list cannot be read"))?;
    let text = match format {
        Format::Goroutines => dump::per_goroutine(&dump, all),
        Format::Grouped => dump::grouped(&dump, all),
        Format::Json => {
            let by_state: BTreeMap<&str, usize> = dump.goroutines.iter().fold(BTreeMap::new(), |mut m, g| {
                *m.entry(g.state).or_default() += 1;
                m
            });
            let out = serde_json::json!({
                "pid": pid,
                "exe": exe,
                "go_version": found.go_version.to_string(),
                "by_state": by_state,
                "goroutines": dump.goroutines,
                "unread": dump.unread,
            });
            format!("{out}\n")
        }
    };
    super::print_out(&text)
}
