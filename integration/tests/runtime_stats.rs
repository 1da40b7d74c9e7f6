//! The runtime's own statistics read from a Go process's memory, against
//! what the process itself reads through `runtime/metrics` at the same
//! instants: `rtstats` stops its load, reads them ("before"), waits while
//! `gort stats` reads them from outside, then reads them again ("after").
//! Counters and histogram buckets read by gort lie between the two; levels
//! that nothing moved are equal. On Go 1.21, 1.23, the machine's Go and
//! 1.27, with and without DWARF; a stripped binary keeps no data symbols,
//! so gort says which metrics it cannot read. `gort run` then exports them
//! under the semantic conventions' names, units and instruments. Needs
//! root: reading another process's memory needs ptrace access to it.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use gort_integration::{
    Proc, go_program, gort_binary, last_metric as metric, read_jsonl, require_root, scratch::Scratch, summary,
};
use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Deserialize)]
struct Instant {
    go_version: String,
    scalars: BTreeMap<String, u64>,
    histograms: BTreeMap<String, Vec<u64>>,
}

#[derive(Debug, Deserialize)]
struct Histogram {
    counts: Vec<u64>,
    overflow: u64,
}

/// `gort stats --json`.
#[derive(Debug, Deserialize)]
struct Stats {
    schedule_latency: Histogram,
    gc_pauses: Histogram,
    memory_used: u64,
    memory_stacks: u64,
    memory_limit: i64,
    allocated_bytes: u64,
    allocations: u64,
    heap_goal: u64,
    gc_cycles: u64,
    gomaxprocs: u64,
    gogc: i64,
}

fn spawn(binary: &Path) -> Proc {
    spawn_with(binary, &[])
}

fn spawn_with(binary: &Path, env: &[(&str, &str)]) -> Proc {
    let mut cmd = Command::new(binary);
    cmd.args(["-load", "300ms"]).envs(env.iter().copied());
    let mut p = Proc::spawn(cmd, "[rtstats]");
    p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    p
}

fn gort_stats(pid: u32) -> Result<Stats, String> {
    let out = Command::new(gort_binary())
        .args(["stats", "--pid", &pid.to_string(), "--json"])
        .output()
        .expect("run gort stats");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
    }
    Ok(serde_json::from_slice(&out.stdout).expect("gort stats --json"))
}

/// The runtime's histogram (underflow, 160 counts, overflow) in gort's form:
/// the underflow joins the first bucket.
fn as_gort(runtime: &[u64]) -> (Vec<u64>, u64) {
    let n = runtime.len() - 2;
    let mut counts = runtime[1..=n].to_vec();
    counts[0] += runtime[0];
    (counts, runtime[n + 1])
}

fn between(name: &str, before: u64, ours: u64, after: u64) {
    assert!(before <= ours && ours <= after, "{name}: gort {ours} outside the program's [{before}, {after}]");
}

fn check_instant(version: &str, before: &Instant, g: &Stats, after: &Instant) {
    let s = |i: &Instant, name: &str| i.scalars[name];
    for (name, ours) in [
        ("/gc/heap/allocs:bytes", g.allocated_bytes),
        ("/gc/heap/allocs:objects", g.allocations),
        ("/gc/cycles/total:gc-cycles", g.gc_cycles),
    ] {
        between(name, s(before, name), ours, s(after, name));
    }
    // Between the reads the program only printed one line: a few
    // allocations, no collection.
    let allocs = s(after, "/gc/heap/allocs:objects") - s(before, "/gc/heap/allocs:objects");
    assert!(allocs <= 200, "{version}: {allocs} allocations between the program's two reads");
    assert_eq!(s(before, "/gc/cycles/total:gc-cycles"), s(after, "/gc/cycles/total:gc-cycles"));
    for (name, ours) in [
        ("/sched/gomaxprocs:threads", g.gomaxprocs),
        ("/gc/gogc:percent", g.gogc as u64),
        ("/gc/gomemlimit:bytes", g.memory_limit as u64),
    ] {
        assert_eq!(ours, s(before, name), "{version}: {name}");
        assert_eq!(s(before, name), s(after, name), "{version}: {name} moved between the program's reads");
    }
    // Levels: between the two reads where they moved (a span for the printed
    // line, the scavenger returning memory), equal where they did not.
    let used =
        |i: &Instant| s(i, "/memory/classes/total:bytes") - s(i, "/memory/classes/heap/released:bytes");
    let stacks =
        |i: &Instant| s(i, "/memory/classes/heap/stacks:bytes") + s(i, "/memory/classes/os-stacks:bytes");
    // Under a memory limit the goal follows the memory outside the heap.
    let goal = |i: &Instant| s(i, "/gc/heap/goal:bytes");
    for (name, ours, a, b) in [
        ("/gc/heap/goal:bytes", g.heap_goal, goal(before), goal(after)),
        ("go.memory.used", g.memory_used, used(before), used(after)),
        ("stacks", g.memory_stacks, stacks(before), stacks(after)),
    ] {
        assert!(a.min(b) <= ours && ours <= a.max(b), "{version}: {name}: gort {ours}, program {a} then {b}");
    }
    for (name, ours) in
        [("/sched/latencies:seconds", &g.schedule_latency), ("/gc/pauses:seconds", &g.gc_pauses)]
    {
        let (lo, lo_over) = as_gort(&before.histograms[name]);
        let (hi, hi_over) = as_gort(&after.histograms[name]);
        assert_eq!(ours.counts.len(), lo.len(), "{version}: {name}: bucket count");
        for (i, ((a, x), b)) in lo.iter().zip(&ours.counts).zip(&hi).enumerate() {
            between(&format!("{version}: {name} bucket {i}"), *a, *x, *b);
        }
        between(&format!("{version}: {name} overflow"), lo_over, ours.overflow, hi_over);
        let moved: u64 = hi.iter().sum::<u64>() - lo.iter().sum::<u64>();
        assert!(moved <= 16, "{version}: {name}: {moved} samples between the program's two reads");
    }
    assert!(g.gc_cycles > 0 && g.allocations > 0 && g.schedule_latency.counts.iter().sum::<u64>() > 0);
}

fn check_version(variant: &str, env: &[(&str, &str)]) {
    for (kind, args) in [("", &[][..]), ("-nodwarf", &["-ldflags=-w"][..])] {
        let binary = go_program("rtstats", &format!("{variant}{kind}"), args, env);
        check_instants(&binary, &format!("{variant}{kind}"), &[]);
    }
}

/// The most instants that may be taken again because the program's own
/// two reads saw a collection between them.
const MAX_RETAKEN: usize = 3;

/// Three instants of one process started with `run_env`. Under a tight
/// memory limit the one line the program prints between its reads can
/// start a collection; the program's own reads then differ in
/// `/gc/cycles/total`, so they do not bound one instant, and the instant is
/// taken again (at most `MAX_RETAKEN` times in all).
fn check_instants(binary: &Path, what: &str, run_env: &[(&str, &str)]) -> Stats {
    let mut p = spawn_with(binary, run_env);
    let mut last = None;
    let mut retaken = 0;
    {
        let mut done = 0;
        while done < 3 {
            p.send_line("go");
            let before: Instant =
                serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"before\"")))
                    .unwrap();
            let ours = gort_stats(p.pid()).unwrap_or_else(|e| panic!("{what}: gort stats: {e}"));
            p.send_line("after");
            let after: Instant =
                serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"after\"")))
                    .unwrap();
            eprintln!(
                "{} ({what}): allocs {} <= {} <= {}, gc cycles {}, heap goal {}, used {}, schedule samples {}",
                before.go_version,
                before.scalars["/gc/heap/allocs:objects"],
                ours.allocations,
                after.scalars["/gc/heap/allocs:objects"],
                ours.gc_cycles,
                ours.heap_goal,
                ours.memory_used,
                ours.schedule_latency.counts.iter().sum::<u64>()
            );
            let cycles = |i: &Instant| i.scalars["/gc/cycles/total:gc-cycles"];
            if cycles(&before) != cycles(&after) && retaken < MAX_RETAKEN {
                // Still bounded by the program's reads, counted or not.
                between("/gc/cycles/total:gc-cycles", cycles(&before), ours.gc_cycles, cycles(&after));
                retaken += 1;
                eprintln!("{what}: a collection between the program's two reads; the instant is taken again");
                continue;
            }
            check_instant(&format!("{} ({what})", before.go_version), &before, &ours, &after);
            last = Some(ours);
            done += 1;
        }
        p.send_line("exit");
        assert!(p.wait_exit(Duration::from_secs(10)).success());
    }
    last.expect("three instants")
}

#[test]
fn runtime_stats_match_what_the_program_reads_itself() {
    if !require_root("runtime_stats_match_what_the_program_reads_itself") {
        return;
    }
    check_version("default", &[]);
    check_version("go1.21.13", &[("GOTOOLCHAIN", "go1.21.13")]);
    check_version("go1.23.12", &[("GOTOOLCHAIN", "go1.23.12")]);
    check_version("go1.27.4", &[("GOTOOLCHAIN", "go1.27.4")]);
}

/// GOGC and a memory limit set: GOGC=400 alone would aim at 16 MiB (the
/// runtime's 4 MiB minimum heap, scaled by GOGC/100); a 12 MiB limit, most
/// of it taken by memory outside the heap, decides a lower goal
/// (`memoryLimitHeapGoal`), with little room above the live heap: printing
/// one line between the program's two reads now and then starts a
/// collection, and that instant is taken again (`check_instants`).
#[test]
fn runtime_stats_follow_gogc_and_the_memory_limit() {
    if !require_root("runtime_stats_follow_gogc_and_the_memory_limit") {
        return;
    }
    let binary = go_program("rtstats", "default", &[], &[]);
    let s = check_instants(&binary, "GOGC=400 GOMEMLIMIT=12MiB", &[("GOGC", "400"), ("GOMEMLIMIT", "12MiB")]);
    assert_eq!((s.gogc, s.memory_limit), (400, 12 << 20));
    assert!(s.heap_goal < 16 << 20, "the limit, not GOGC, decides the goal: {}", s.heap_goal);
}

#[test]
fn a_stripped_binary_says_which_statistics_it_cannot_read() {
    if !require_root("a_stripped_binary_says_which_statistics_it_cannot_read") {
        return;
    }
    let binary = go_program("rtstats", "stripped", &["-ldflags=-s -w"], &[]);
    let mut p = spawn(&binary);
    let err = gort_stats(p.pid()).expect_err("a stripped binary has no data symbols");
    eprintln!("gort stats on a stripped binary: {err}");
    assert!(err.contains("runtime.sched is not in the symbol table"), "{err}");
    assert_eq!(err.lines().count(), 1, "one sentence: {err}");
    p.send_line("exit");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
}

/// `gort run` exports the runtime's statistics with the semantic
/// conventions' names, units and instruments; on a stripped binary it says
/// once what it cannot read and exports the rest from its probes.
fn check_run(variant: &str, args: &[&str], gort_args: &[&str]) -> (Vec<Value>, String, summary::Target) {
    let binary = go_program("rtstats", variant, args, &[]);
    let mut p = spawn(&binary);
    let dir = Scratch::new(&format!("rtstats-{}", p.pid()));
    let (json, summary_path, log_path) =
        (dir.join("otlp.jsonl"), dir.join("summary.json"), dir.join("gort.log"));
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &p.pid().to_string(), "--interval", "200ms"])
        .args(gort_args)
        .arg("--otlp-json")
        .arg(&json)
        .arg("--summary-json")
        .arg(&summary_path)
        .stderr(std::fs::File::create(&log_path).expect("create the log"));
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("gort:   mode:"));
    p.send_line("go");
    p.wait_line(Duration::from_secs(30), |l| l.contains("\"before\""));
    std::thread::sleep(Duration::from_millis(500));
    p.send_line("exit");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    assert!(gort.wait_exit(Duration::from_secs(15)).success());
    let log = std::fs::read_to_string(&log_path).expect("gort's log");
    eprint!("{log}");
    (read_jsonl(&json), log, summary::take(&summary_path).targets.remove(0))
}

#[test]
fn runtime_stats_are_exported_under_the_semantic_conventions() {
    if !require_root("runtime_stats_are_exported_under_the_semantic_conventions") {
        return;
    }
    let (requests, _, target) = check_run("default", &[], &[]);
    let stats = target.runtime_stats.expect("the summary holds the last read");
    for (name, unit, kind, monotonic) in [
        ("go.memory.used", "By", "sum", Some(false)),
        ("go.memory.allocated", "By", "sum", Some(true)),
        ("go.memory.allocations", "{allocation}", "sum", Some(true)),
        ("go.memory.gc.goal", "By", "sum", Some(false)),
        ("go.memory.gc.cycles", "{gc_cycle}", "sum", Some(true)),
        ("go.processor.limit", "{thread}", "sum", Some(false)),
        ("go.config.gogc", "%", "sum", Some(false)),
        ("go.schedule.duration", "s", "histogram", None),
        ("go.memory.gc.pause.duration", "s", "histogram", None),
    ] {
        let m = metric(&requests, name).unwrap_or_else(|| panic!("{name} not exported"));
        assert_eq!(m["unit"], unit, "{name}");
        assert!(m.get(kind).is_some(), "{name}: not a {kind}: {m}");
        if let Some(monotonic) = monotonic {
            assert_eq!(m[kind]["isMonotonic"].as_bool().unwrap_or(false), monotonic, "{name}");
        }
    }
    let used = metric(&requests, "go.memory.used").unwrap();
    let types: Vec<&str> = used["sum"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["attributes"].as_array().into_iter().flatten())
        .filter(|a| a["key"] == "go.memory.type")
        .filter_map(|a| a["value"]["stringValue"].as_str())
        .collect();
    assert_eq!(types, ["stack", "other"]);
    // No limit set: the conventions export none.
    assert!(metric(&requests, "go.memory.limit").is_none());
    // The runtime's histogram, not the probes': it keeps no sum, and its
    // count is the runtime's (1 transition in 8), not the probes'.
    let sched = &metric(&requests, "go.schedule.duration").unwrap()["histogram"]["dataPoints"][0];
    assert!(sched["sum"].is_null(), "{sched}");
    let exported: u64 = sched["count"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0);
    assert!(exported > 0 && exported <= stats.schedule_latency_count(), "{exported}");
    // Reads racing the allocating load are refused and retried: every
    // report still got its statistics.
    eprintln!("torn reads refused and retried: {}", target.runtime_stats_torn_reads);
    // Every report while the target lived (all but the one after its exit,
    // when its memory is gone) got its statistics.
    let reports: Vec<String> =
        requests.iter().map(ToString::to_string).filter(|r| r.contains("\"gort.probe.hits\"")).collect();
    assert!(reports.len() >= 3, "{} reports", reports.len());
    for (i, r) in reports[..reports.len() - 1].iter().enumerate() {
        assert!(r.contains("\"go.memory.used\""), "report {i} went without the runtime's statistics");
    }
}

#[test]
fn a_stripped_binary_exports_the_probes_histograms_and_says_what_is_missing() {
    if !require_root("a_stripped_binary_exports_the_probes_histograms_and_says_what_is_missing") {
        return;
    }
    let (requests, log, target) = check_run("stripped-run", &["-ldflags=-s -w"], &[]);
    let warnings: Vec<&str> =
        log.lines().filter(|l| l.contains("runtime's own statistics are not read")).collect();
    assert_eq!(warnings.len(), 1, "one warning: {log}");
    assert!(warnings[0].contains("runtime.sched is not in the symbol table"), "{}", warnings[0]);
    assert!(target.runtime_stats.is_none());
    assert!(metric(&requests, "go.memory.used").is_none());
    let sched =
        &metric(&requests, "go.schedule.duration").expect("from the probes")["histogram"]["dataPoints"][0];
    assert!(!sched["sum"].is_null(), "the probes' histogram keeps its sum: {sched}");
}

/// Without ptrace access to the target, one sentence says what is needed.
#[test]
fn without_ptrace_access_gort_says_what_it_needs() {
    if !require_root("without_ptrace_access_gort_says_what_it_needs") {
        return;
    }
    let binary = go_program("rtstats", "default", &[], &[]);
    let mut p = spawn(&binary);
    let out = Command::new("setpriv")
        .args(["--reuid", "65534", "--regid", "65534", "--clear-groups", "--inh-caps=-all"])
        .arg(gort_binary())
        .args(["stats", "--pid", &p.pid().to_string()])
        .output()
        .expect("run setpriv");
    let err = String::from_utf8_lossy(&out.stderr);
    eprintln!("as nobody: {err}");
    assert!(!out.status.success());
    assert_eq!(err.trim().lines().count(), 1, "one sentence: {err}");
    assert!(err.contains("missing capability CAP_SYS_PTRACE") && err.contains("grant it"), "{err}");
    p.send_line("exit");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
}

/// `--probes none`: no uprobe at all, only the target's memory; what only a
/// probe could count is left out rather than exported as zero.
#[test]
fn memory_only_mode_attaches_no_probe_and_exports_what_the_runtime_keeps() {
    if !require_root("memory_only_mode_attaches_no_probe_and_exports_what_the_runtime_keeps") {
        return;
    }
    let (requests, _, target) = check_run("default", &[], &["--probes", "none"]);
    assert!(target.probes.is_empty(), "probes planned: {:?}", target.probes);
    assert!(target.runtime_stats.as_ref().is_some_and(|s| s.gc_cycles > 0));
    for name in [
        "go.memory.used",
        "go.memory.allocated",
        "go.schedule.duration",
        "go.memory.gc.pause.duration",
        "go.goroutine.count",
    ] {
        assert!(metric(&requests, name).is_some(), "{name} not exported");
    }
    for name in
        ["gort.probe.hits", "gort.gc.cycles", "gort.goroutine.blocked.duration", "gort.goroutine.transitions"]
    {
        assert!(metric(&requests, name).is_none(), "{name} exported without its probe");
    }
}
