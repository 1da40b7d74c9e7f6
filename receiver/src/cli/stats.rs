//! `gort stats`: the Go runtime's own statistics of a running process, read
//! once from its memory and printed (as `runtime/metrics` names them). No
//! probe is attached; reading another process's memory needs ptrace access
//! to it (`CAP_SYS_PTRACE`, or the same user under Yama's `ptrace_scope` 0).

use anyhow::Context as _;
use gort_goexe::{self as analysis, Request};

use crate::{
    target::Process,
    telemetry::{memory, runtime_stats},
};

pub fn stats(pid: u32, json: bool) -> anyhow::Result<()> {
    // The access check first: its refusal says what access is needed.
    let mem = memory::TargetMemory::open(pid)?;
    let process = Process::from_pid(pid)?;
    let exe = process.exe.display().to_string();
    let file = std::fs::File::open(process.image_path()).with_context(|| format!("cannot read {exe}"))?;
    let cache = object::ReadCache::new(file);
    let fields = runtime_stats::fields();
    let request = Request { functions: &[], fields: &fields, callers: &[] };
    let analysis = analysis::analyse(&cache, &request).with_context(|| exe.clone())?;
    let (base, symbols) =
        analysis::data_symbols(&cache, runtime_stats::SYMBOLS).with_context(|| exe.clone())?;
    let bias = memory::load_bias(pid, &process.exe, base)?;
    let mut reader = runtime_stats::RuntimeStatsReader::new(mem, bias, &symbols, &analysis.fields)
        .with_context(|| format!("{exe}: the runtime's statistics cannot be read"))?;
    let s = reader.read().with_context(|| format!("pid {pid}"))?;
    let mut out = String::new();
    if json {
        outln!(out, "{}", serde_json::to_string(&s)?);
        return super::print_out(&out);
    }
    outln!(out, "pid {pid} ({exe}, {})", analysis.build.go_version);
    outln!(out, "  go.memory.used          {} B ({} B stacks)", s.memory_used, s.memory_stacks);
    outln!(out, "  go.memory.allocated     {} B in {} allocations", s.allocated_bytes, s.allocations);
    outln!(out, "  go.memory.gc.goal       {} B", s.heap_goal);
    outln!(out, "  go.memory.gc.cycles     {}", s.gc_cycles);
    match s.memory_limit {
        i64::MAX => outln!(out, "  go.memory.limit         none"),
        limit => outln!(out, "  go.memory.limit         {limit} B"),
    }
    outln!(out, "  go.processor.limit      {}", s.gomaxprocs);
    outln!(out, "  go.config.gogc          {}", s.gogc);
    outln!(
        out,
        "  go.schedule.duration    {} samples (the runtime tracks 1 in 8)",
        s.schedule_latency.count()
    );
    outln!(out, "  go.memory.gc.pause.duration {} pauses", s.gc_pauses.count());
    super::print_out(&out)
}
