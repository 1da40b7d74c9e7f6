//! What trace linkage costs the service: the same grpc-go + OpenTelemetry SDK
//! service (`tracedsvc`, GOMAXPROCS=1) under the same load (no injected
//! stalls), side by side in one run: without gort, with gort and linkage off
//! (the hot probe sampled), with gort and linkage on (hot probe continuous,
//! SDK and goroutine-creation probes, spans held for their data). Prints the
//! service's CPU per request, the client-side p50/p99, gort's CPU and peak
//! RSS, and the memory held per in-flight span. With gort attached it also
//! measures every probe program with the kernel's BPF statistics
//! (`--bpf-stats`) and prints, per request, each probe's hits, its program's
//! time per run, and its site kind: the body cost directly, the trap cost as
//! hits x the per-hit trap cost of the site kind, measured in the same run on
//! a Go function (`gort_integration::traps`). The two together are the
//! cost model: what of linkage's added service CPU the probes explain. A
//! fourth mode, traps, puts tracefs uprobes with no program at every site
//! the on run probed: the traps' cost in place, on the service itself.
//!
//! Then the realistic service: the same binary's `order` request, whose
//! handler does 1 ms of CPU work (a calibrated, fixed amount of hashing),
//! one downstream gRPC call (to a second tracedsvc, in a client span) and
//! JSON encoding; two spans per request. At a fixed rate it prints service
//! CPU per request and p99 per mode; at saturation (closed loop, each client
//! sends as soon as it is answered) the throughput, and linkage on's
//! throughput as a share of no gort's.
//! Run as root:
//!
//!   cargo bench -p gort-integration --bench linkage
//!
//! GORT_BENCH_RATE (requests/s, default 1000), GORT_BENCH_REPS (default 2),
//! GORT_BENCH_BPF_STATS=0 (statistics off), GORT_BENCH_MODES (a comma list
//! of none, off, on, traps, stalls; default none, off, on, traps; traps
//! needs on), GORT_BENCH_TRAP_RUNS (runs per site
//! of the trap micro-benchmark, default 5), GORT_BENCH_ORDER_RATE (the
//! realistic service's fixed rate, default 300 requests/s),
//! GORT_BENCH_SERVICES (plain, order or both; default both), GORT_BENCH_PIN=0
//! (no CPU pinning; by default the service runs alone on CPU 1).

use std::{process::Command, time::Duration};

use gort_common::{GSTATE_SLOTS, GoroutineSlot, SPAN_SLOTS, SpanAccount};
use gort_integration::{
    Proc, cpu_seconds, free_port, go_program, gort_binary, peak_rss_mb, require_root, start_sink,
    summary::{self, Probe},
    traps, wait_for_port,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    NoGort,
    LinkageOff,
    LinkageOn,
    /// No gort probes: tracefs uprobes (tracing off, no program) at every
    /// site linkage on probed in an earlier run, so the service pays the
    /// traps alone, in place, on its own code and caches.
    TrapsOnly,
    /// Linkage on, every wait inside a span a stall record.
    LinkageOnEveryStall,
}

struct Figures {
    svc_cpu_us_per_request: f64,
    p50_ms: f64,
    p99_ms: f64,
    gort_cpu_cores: f64,
    gort_rss_mb: f64,
    requests: u64,
    /// gort's probes with their program statistics (none without gort).
    probes: Vec<Probe>,
    /// Stall records the probes sent.
    stall_records: u64,
    /// Traps taken at each probe's sites (TrapsOnly).
    trap_hits: Vec<(String, u64)>,
}

/// GORT_BENCH_BPF_STATS=0 leaves the kernel's statistics off (for a gort
/// without `--bpf-stats`, through GORT_BINARY).
fn bpf_stats() -> bool {
    std::env::var("GORT_BENCH_BPF_STATS").map_or(true, |v| v != "0")
}

/// The modes GORT_BENCH_MODES names (none, off, on, stalls); none, off
/// and on by default.
fn modes() -> Vec<Mode> {
    let all = [
        (Mode::NoGort, "none"),
        (Mode::LinkageOff, "off"),
        (Mode::LinkageOn, "on"),
        (Mode::TrapsOnly, "traps"),
        (Mode::LinkageOnEveryStall, "stalls"),
    ];
    match std::env::var("GORT_BENCH_MODES") {
        Ok(list) => {
            let picked: Vec<Mode> = all
                .iter()
                .filter(|(_, n)| list.split(',').any(|w| w.trim() == *n))
                .map(|(m, _)| *m)
                .collect();
            assert!(
                !picked.is_empty(),
                "GORT_BENCH_MODES={list:?}: name some of none, off, on, traps, stalls"
            );
            assert!(
                !picked.contains(&Mode::TrapsOnly) || picked.contains(&Mode::LinkageOn),
                "GORT_BENCH_MODES={list:?}: traps takes its sites from an on run; name on too"
            );
            picked
        }
        Err(_) => all[..4].iter().map(|(m, _)| *m).collect(),
    }
}

/// What a run sends: tracedsvc's request kind and the rate ("0": saturation).
#[derive(Clone, Copy)]
struct Load<'a> {
    kind: &'a str,
    rate: &'a str,
    /// The order request's work (sha256 blocks), the same in every run.
    order_blocks: u64,
}

/// Whether GORT_BENCH_SERVICES names `service` (plain, order; both by default).
fn service_wanted(service: &str) -> bool {
    std::env::var("GORT_BENCH_SERVICES").map_or(true, |list| list.split(',').any(|w| w.trim() == service))
}

/// GORT_BENCH_PIN=0 leaves every process free to run on any CPU. By default
/// the service has CPU 1 to itself and the load, the downstream, the sink
/// and gort share CPU 0: two runs of the same mode then differ less, the
/// service no longer sharing its CPU and caches with whatever the scheduler
/// put beside it.
fn pinning() -> bool {
    std::env::var("GORT_BENCH_PIN").map_or(true, |v| v != "0")
        && std::thread::available_parallelism().is_ok_and(|n| n.get() >= 2)
}

/// Pins every thread of `pid` (and those it starts later) to `cpu`.
fn pin(pid: u32, cpu: usize) {
    if pinning() {
        let ok = Command::new("taskset")
            .args(["-a", "-p", "-c", &cpu.to_string(), &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "taskset could not pin pid {pid} to CPU {cpu} (GORT_BENCH_PIN=0 runs unpinned)");
    }
}

/// The service's CPU when pinned; everything else runs on CPU 0.
const SERVICE_CPU: usize = 1;

/// Each probe a LinkageOn run kept attached (all but deep mode's), with the
/// file offsets of its sites.
type Sites = Vec<(String, Vec<u64>)>;

/// One run in `mode`. A LinkageOn run leaves its probes' sites in `sites`,
/// where a TrapsOnly run takes them from.
fn run(mode: Mode, load: Load, sites: &mut Sites) -> Figures {
    let built = go_program("tracedsvc", "default", &[], &[]);
    // The service runs from its own copy in every mode: tracefs uprobes fire
    // in every process of an executable, and the load and the downstream
    // run tracedsvc too.
    let svc_binary = std::env::temp_dir().join(format!("gort-bench-linkage-svc-{}", std::process::id()));
    std::fs::copy(&built, &svc_binary).expect("copy tracedsvc for the service");
    let binary = built;
    let sink_out = std::env::temp_dir().join(format!("gort-bench-linkage-{}.jsonl", std::process::id()));
    let (mut sink, sink_port) = start_sink(&sink_out);
    pin(sink.pid(), 0);
    let gort_port = free_port();
    // The order request's downstream: a second service, not watched, whose
    // spans go straight to the sink.
    let mut downstream = (load.kind == "order").then(|| {
        let mut d = Command::new(&binary);
        d.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{sink_port}"), "-heap-mb", "1"]);
        let d = Proc::spawn(d, "[downstream]");
        pin(d.pid(), 0);
        d
    });
    // One P, as the measurements: the service saturates one CPU and
    // leaves the other to the load, the downstream and gort.
    let mut svc = Command::new(&svc_binary);
    svc.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{gort_port}"), "-heap-mb", "8"]);
    if let Some(d) = downstream.as_mut() {
        svc.args(["-downstream", &d.listen_addr(), "-order-blocks", &load.order_blocks.to_string()]);
    }
    let mut svc = Proc::spawn(svc, "[svc]");
    pin(svc.pid(), SERVICE_CPU);
    let addr = svc.listen_addr();
    let config = std::env::temp_dir().join(format!("gort-bench-linkage-{}.yaml", std::process::id()));
    let summary_path = std::env::temp_dir().join(format!("gort-bench-linkage-{}.json", std::process::id()));
    let linkage = match mode {
        Mode::NoGort | Mode::LinkageOff | Mode::TrapsOnly => "enabled: false",
        Mode::LinkageOn => "enabled: true",
        Mode::LinkageOnEveryStall => "enabled: true\n  child_span_threshold: 1us",
    };
    std::fs::write(&config, format!("linkage:\n  {linkage}\n")).unwrap();
    let mut c = Command::new(gort_binary());
    c.args(["run", "--upstream", &format!("http://127.0.0.1:{sink_port}")]);
    let listen = format!("127.0.0.1:{gort_port}");
    c.args(["--otlp-grpc", &listen, "--otlp-http", "off", "--telemetry", "off"]);
    let mut gort = match mode {
        Mode::NoGort | Mode::TrapsOnly => {
            // Something must take the spans: gort's pipeline alone, no target.
            c.arg("--otlp");
            let g = Proc::spawn(c, "[gort]");
            wait_for_port(gort_port, Duration::from_secs(30));
            g
        }
        _ => {
            c.args(["--pid", &svc.pid().to_string(), "--interval", "5s", "--config"]).arg(&config);
            c.arg("--summary-json").arg(&summary_path);
            if bpf_stats() {
                c.arg("--bpf-stats");
            }
            let mut g = Proc::spawn(c, "[gort]");
            g.wait_line(Duration::from_secs(30), |l| l.contains("mode:"));
            g
        }
    };
    pin(gort.pid(), 0);
    let traps = (mode == Mode::TrapsOnly).then(|| {
        assert!(!sites.is_empty(), "a traps run needs the sites of an on run before it");
        let offsets: Vec<u64> = sites.iter().flat_map(|(_, o)| o.iter().copied()).collect();
        traps::SiteTraps::attach(&svc_binary, &offsets)
    });
    let (svc_cpu0, gort_cpu0) = (cpu_seconds(svc.pid()), cpu_seconds(gort.pid()));
    let seconds = 10.0;
    let spec = load;
    let mut load = Command::new(&binary);
    load.env("GOMAXPROCS", "1").args([
        "-load",
        &addr,
        "-duration",
        "10s",
        "-rate",
        spec.rate,
        "-clients",
        "8",
        "-stall-every",
        "0",
    ]);
    load.args(["-kind", spec.kind]);
    let mut load = Proc::spawn(load, "[load]");
    pin(load.pid(), 0);
    let done = load.wait_line(Duration::from_secs(60), |l| l.contains("load-done"));
    let (svc_cpu, gort_cpu) = (cpu_seconds(svc.pid()) - svc_cpu0, cpu_seconds(gort.pid()) - gort_cpu0);
    let gort_rss = peak_rss_mb(gort.pid());
    let mut trap_hits = Vec::new();
    if let Some(t) = &traps {
        let mut hits = t.hits().into_iter();
        for (name, offsets) in sites.iter() {
            trap_hits.push((name.clone(), hits.by_ref().take(offsets.len()).sum()));
        }
    }
    drop(traps);
    let _ = load.wait_exit(Duration::from_secs(10));
    let done: serde_json::Value = serde_json::from_str(&done).unwrap();
    for p in [&svc, &gort] {
        let _ = Command::new("kill").args(["-TERM", &p.pid().to_string()]).status();
    }
    let _ = svc.wait_exit(Duration::from_secs(30));
    let _ = gort.wait_exit(Duration::from_secs(30));
    if let Some(mut d) = downstream {
        let _ = Command::new("kill").args(["-TERM", &d.pid().to_string()]).status();
        let _ = d.wait_exit(Duration::from_secs(30));
    }
    let _ = Command::new("kill").args(["-TERM", &sink.pid().to_string()]).status();
    let _ = sink.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_file(&sink_out);
    let _ = std::fs::remove_file(&config);
    let _ = std::fs::remove_file(&svc_binary);
    let requests = done["plain"].as_u64().unwrap();
    let (probes, stall_records) = match mode {
        Mode::NoGort | Mode::TrapsOnly => (Vec::new(), 0),
        _ => {
            let target = summary::take(&summary_path).targets.remove(0);
            (target.probes, target.linkage.map_or(0, |l| l.stalls))
        }
    };
    if mode == Mode::LinkageOn {
        // Deep mode's probes are attached only in its windows (one at
        // start), not for the run.
        *sites = probes
            .iter()
            .filter(|p| p.attached != "deep mode")
            .map(|p| (p.name.clone(), p.site_file_offsets.clone()))
            .collect();
    }
    Figures {
        svc_cpu_us_per_request: svc_cpu / requests.max(1) as f64 * 1e6,
        p50_ms: done["p50_ms"].as_f64().unwrap(),
        p99_ms: done["p99_ms"].as_f64().unwrap(),
        gort_cpu_cores: gort_cpu / seconds,
        gort_rss_mb: gort_rss,
        requests,
        probes,
        stall_records,
        trap_hits,
    }
}

fn main() {
    if !require_root("bench linkage") {
        return;
    }
    let reps: usize = std::env::var("GORT_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let modes = modes();
    let trap_runs: usize =
        std::env::var("GORT_BENCH_TRAP_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
    let traps = traps::measure(trap_runs.max(1), 200_000);
    println!(
        "trap cost per hit (tracefs uprobe on trapbench's main.probed, {} calls x {} interleaved runs, medians): \
         emulated ({}) {:.0} ns, first instruction (single-stepped) {:.0} ns, RET (single-stepped) {:.0} ns\n",
        traps.calls, traps.runs, traps.emulated_instruction, traps.emulated_ns, traps.entry_ns, traps.ret_ns
    );
    if service_wanted("plain") {
        plain_service(&modes, reps, &traps);
    }
    if service_wanted("order") {
        order_service(&modes, reps, &traps);
    }
}

/// The realistic service at a fixed rate and at saturation: CPU and p99 by
/// mode, and throughput at saturation as a share of no gort's.
fn order_service(modes: &[Mode], reps: usize, traps: &traps::TrapCosts) {
    let rate = std::env::var("GORT_BENCH_ORDER_RATE").unwrap_or_else(|_| "300".into());
    // Calibrated once: every run hashes the same amount, so what gort adds
    // shows as CPU, not as a different calibration.
    let calibrated = Command::new(go_program("tracedsvc", "default", &[], &[]))
        .env("GOMAXPROCS", "1")
        .arg("-calibrate")
        .output()
        .expect("tracedsvc -calibrate");
    let line = String::from_utf8_lossy(&calibrated.stdout);
    let order_blocks =
        serde_json::from_str::<serde_json::Value>(line.trim()).unwrap()["blocks"].as_u64().unwrap();
    println!(
        "\nrealistic service (tracedsvc order: 1 ms of CPU work, one downstream gRPC call, JSON; two spans per \
         request; {order_blocks} sha256 blocks of work each), 8 clients for 10 s at {rate} requests/s and at \
         saturation; {reps} runs each, interleaved"
    );
    println!(
        "| load | mode | requests/s | service CPU per request (µs) | p50 (ms) | p99 (ms) | gort CPU (cores) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut seen: Vec<(&str, Mode, Figures)> = Vec::new();
    let mut sites = Sites::new();
    for (label, r) in [("fixed", rate.as_str()), ("saturation", "0")] {
        for _ in 0..reps {
            for &mode in modes {
                let f = run(mode, Load { kind: "order", rate: r, order_blocks }, &mut sites);
                println!(
                    "| {label} | {mode:?} | {:.0} | {:.1} | {:.3} | {:.3} | {:.3} |",
                    f.requests as f64 / 10.0,
                    f.svc_cpu_us_per_request,
                    f.p50_ms,
                    f.p99_ms,
                    f.gort_cpu_cores
                );
                seen.push((label, mode, f));
            }
        }
    }
    let mean = |label: &str, mode: Mode, pick: fn(&Figures) -> f64| {
        let v: Vec<f64> =
            seen.iter().filter(|(l, m, _)| *l == label && *m == mode).map(|(_, _, f)| pick(f)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let fixed: Vec<(Mode, &Figures)> =
        seen.iter().filter(|(l, _, _)| *l == "fixed").map(|(_, m, f)| (*m, f)).collect();
    stall_record_cost("order at a fixed rate", &fixed);
    println!("\norder at {rate} requests/s:");
    cost_model(&fixed, traps);
    for mode in [Mode::LinkageOff, Mode::LinkageOn, Mode::TrapsOnly] {
        let cpu = (
            mean("fixed", mode, |f| f.svc_cpu_us_per_request),
            mean("fixed", Mode::NoGort, |f| f.svc_cpu_us_per_request),
        );
        let p99 = (mean("fixed", mode, |f| f.p99_ms), mean("fixed", Mode::NoGort, |f| f.p99_ms));
        let tput = (
            mean("saturation", mode, |f| f.requests as f64),
            mean("saturation", Mode::NoGort, |f| f.requests as f64),
        );
        if let ((Some(c), Some(c0)), (Some(p), Some(p0)), (Some(t), Some(t0))) = (cpu, p99, tput) {
            println!(
                "{mode:?} vs NoGort (means): service CPU per request {:+.1}% ({:+.1} µs), p99 {:+.1}% at {rate} requests/s; \
                 saturation throughput {:.1}% of NoGort's",
                (c / c0 - 1.0) * 100.0,
                c - c0,
                (p / p0 - 1.0) * 100.0,
                t / t0 * 100.0
            );
        }
    }
}

/// What one stall record (park site included) costs the service in probe
/// program time: `stalls` against `on` of the same run, the difference in
/// program ns per request over the difference in records per request. Too
/// small a difference (fewer than one record in ten requests) says so
/// rather than dividing noise by nearly nothing.
fn stall_record_cost(load: &str, runs: &[(Mode, &Figures)]) {
    let per_request = |mode: Mode| -> Option<(f64, f64)> {
        let runs: Vec<&Figures> = runs.iter().filter(|(m, _)| *m == mode).map(|(_, f)| *f).collect();
        let requests = runs.iter().map(|f| f.requests).sum::<u64>().max(1) as f64;
        let ns: u64 = runs.iter().flat_map(|f| &f.probes).filter_map(|p| p.bpf).map(|b| b.run_ns).sum();
        let records: u64 = runs.iter().map(|f| f.stall_records).sum();
        (!runs.is_empty()).then(|| (ns as f64 / requests, records as f64 / requests))
    };
    let (Some((on_ns, on_records)), Some((all_ns, all_records))) =
        (per_request(Mode::LinkageOn), per_request(Mode::LinkageOnEveryStall))
    else {
        return;
    };
    println!(
        "\n{load}: stall records {all_records:.2} per request with a 1 µs threshold, {on_records:.2} with the default; \
         program time {all_ns:.0} against {on_ns:.0} ns per request"
    );
    if all_records - on_records >= 0.1 {
        println!(
            "one stall record (reserve, park-site walk, submit) costs about {:.0} ns of probe time",
            (all_ns - on_ns) / (all_records - on_records)
        );
    } else {
        println!("too few stall records apart to put a cost on one");
    }
}

/// tracedsvc's plain request at a fixed rate, with the per-probe cost model.
fn plain_service(modes: &[Mode], reps: usize, traps: &traps::TrapCosts) {
    let rate = std::env::var("GORT_BENCH_RATE").unwrap_or_else(|_| "1000".into());
    println!(
        "tracedsvc, {rate} requests/s over 8 clients for 10 s, one span per request; {reps} runs each, interleaved"
    );
    println!(
        "| mode | requests | service CPU per request (µs) | p50 (ms) | p99 (ms) | gort CPU (cores) | gort peak RSS (MB) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut seen: Vec<(Mode, Figures)> = Vec::new();
    let mut sites = Sites::new();
    for _ in 0..reps {
        for &mode in modes {
            let f = run(mode, Load { kind: "plain", rate: &rate, order_blocks: 0 }, &mut sites);
            println!(
                "| {mode:?} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.1} |",
                f.requests, f.svc_cpu_us_per_request, f.p50_ms, f.p99_ms, f.gort_cpu_cores, f.gort_rss_mb
            );
            seen.push((mode, f));
        }
    }
    cost_model(&seen.iter().map(|(m, f)| (*m, f)).collect::<Vec<_>>(), traps);
    let with_gort: Vec<(Mode, &Figures)> = seen
        .iter()
        .filter(|(m, _)| !matches!(m, Mode::NoGort | Mode::TrapsOnly))
        .map(|(m, f)| (*m, f))
        .collect();
    stall_record_cost("plain", &with_gort);
    // In flight, each span holds one slot of the span table; the goroutines
    // it runs on carry its id and slot in the per-goroutine state every
    // goroutine has anyway (GORT_GSTATE); once ended and until its OTLP
    // export arrives, one userspace account. Both tables are preallocated.
    let span = size_of::<SpanAccount>();
    let gstate = size_of::<GoroutineSlot>();
    println!(
        "memory per in-flight span: one {span} B slot of GORT_SPANS; per goroutine (spans or not): one {gstate} B slot of \
         GORT_GSTATE; preallocated: {SPAN_SLOTS} span slots = {:.1} MiB, {GSTATE_SLOTS} goroutine slots = {:.1} MiB",
        f64::from(SPAN_SLOTS) * span as f64 / (1024.0 * 1024.0),
        f64::from(GSTATE_SLOTS) * gstate as f64 / (1024.0 * 1024.0)
    );
    println!(
        "after End, until the span's export arrives: one userspace account of {} B (+ its stalls, + hash entry)",
        size_of::<gort::linkage::Account>() + 24 + 16
    );
}

/// Per request, for each run with gort's probes: each probe's hits, program
/// time (the kernel's statistics, ~20 ns per run of their own included)
/// and site kind, and the traps at the per-hit costs of the micro-benchmark;
/// against them, the service CPU each mode added over NoGort (means over
/// the runs of each mode) and, with a traps run, the traps in place.
fn cost_model(seen: &[(Mode, &Figures)], traps: &traps::TrapCosts) {
    let mean = |m: Mode, pick: fn(&Figures) -> f64| {
        let v: Vec<f64> = seen.iter().filter(|(k, _)| *k == m).map(|(_, f)| pick(f)).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    for (mode, f) in seen.iter().filter(|(m, _)| !matches!(m, Mode::NoGort | Mode::TrapsOnly)) {
        println!("\n{mode:?}, per request ({} requests):", f.requests);
        println!("| probe | site | hits | program ns per run | program ns per request |");
        println!("| --- | --- | --- | --- | --- |");
        let (mut body, mut emulated, mut stepped, mut trap_us) = (0.0, 0.0, 0.0, 0.0);
        let per_request = |n: u64| n as f64 / f.requests.max(1) as f64;
        for p in f.probes.iter().filter(|p| p.hits > 0 || p.bpf.is_some_and(|b| b.runs > 0)) {
            let b = p.bpf.unwrap_or(summary::ProgramStats { run_ns: 0, runs: 0 });
            let ns_per_run = b.run_ns as f64 / b.runs.max(1) as f64;
            let kind = p.site_kind.as_deref().unwrap_or("?");
            let trap_ns = match kind {
                "emulated" => {
                    emulated += per_request(p.hits);
                    traps.emulated_ns
                }
                _ => {
                    stepped += per_request(p.hits);
                    if p.site.as_deref() == Some("returns") { traps.ret_ns } else { traps.entry_ns }
                }
            };
            trap_us += per_request(p.hits) * trap_ns / 1e3;
            body += per_request(b.run_ns) / 1e3;
            println!(
                "| {} | {kind} | {:.2} | {ns_per_run:.0} | {:.0} |",
                p.name,
                per_request(p.hits),
                per_request(b.run_ns)
            );
        }
        println!("stall records per request: {:.2}", per_request(f.stall_records));
        println!(
            "program bodies {body:.1} µs per request; traps per request: {emulated:.1} emulated, {stepped:.1} single-stepped, \
             about {trap_us:.1} µs at the measured trap costs; together {:.1} µs",
            body + trap_us
        );
        let cpu = |m: Mode| mean(m, |f| f.svc_cpu_us_per_request);
        let (Some(with), Some(without)) = (cpu(*mode), cpu(Mode::NoGort)) else { continue };
        println!(
            "measured: {mode:?} adds {:.1} µs of service CPU per request over NoGort (means)",
            with - without
        );
        // The traps in place: the same sites on the same service, no
        // program behind them. What the micro-benchmark's per-hit figure
        // misses (the service's caches and TLB after each trip through the
        // kernel) shows here; what is left past traps and bodies is neither.
        if let (Mode::LinkageOn, Some(traps_only)) = (*mode, cpu(Mode::TrapsOnly)) {
            let traps_runs: Vec<&Figures> =
                seen.iter().filter(|(m, _)| *m == Mode::TrapsOnly).map(|(_, f)| *f).collect();
            let requests = traps_runs.iter().map(|f| f.requests).sum::<u64>().max(1) as f64;
            let mut by_probe: Vec<(&str, u64)> = Vec::new();
            for (name, hits) in traps_runs.iter().flat_map(|f| &f.trap_hits) {
                match by_probe.iter_mut().find(|(n, _)| n == name) {
                    Some((_, h)) => *h += hits,
                    None => by_probe.push((name, *hits)),
                }
            }
            let hits = by_probe.iter().map(|(_, h)| *h).sum::<u64>() as f64 / requests;
            let each: Vec<String> =
                by_probe.iter().map(|(n, h)| format!("{n} {:.2}", *h as f64 / requests)).collect();
            let in_place = traps_only - without;
            println!(
                "in place: linkage on's sites, as tracefs uprobes with no program ({hits:.1} traps per request: {}) \
                 add {in_place:.1} µs (means), {:.0} ns per trap; with the program bodies {:.1} µs; unexplained {:+.1} µs",
                each.join(", "),
                in_place * 1e3 / hits.max(f64::MIN_POSITIVE),
                in_place + body,
                with - without - in_place - body
            );
        }
    }
}
