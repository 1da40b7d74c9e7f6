//! What trace linkage costs the service: the same grpc-go + OpenTelemetry SDK
//! service (`tracedsvc`) under the same load (no injected stalls), side by
//! side in one run: without gort, with gort and linkage off (the hot probe
//! sampled), with gort and linkage on (hot probe continuous, SDK and
//! goroutine-creation probes, spans held for their data). Prints the
//! service's CPU per request, the client-side p50/p99, gort's CPU and peak
//! RSS, and the memory held per in-flight span. With gort attached it also
//! measures every probe program with the kernel's BPF statistics
//! (`--bpf-stats`) and prints, per request, each probe's hits, its program's
//! time per run, and its site kind: the body cost directly, the trap cost as
//! hits x the per-hit trap cost of the site kind (`--bench probe_cost`).
//! Run as root:
//!
//!   cargo bench -p gort-integration --bench linkage
//!
//! GORT_BENCH_RATE (requests/s, default 1000), GORT_BENCH_REPS (default 2),
//! GORT_BENCH_BPF_STATS=0 (statistics off).

use std::{process::Command, time::Duration};

use gort_common::{GKey, GoroutineState, SpanAccount, SpanKey};
use gort_integration::{
    Proc, cpu_seconds, free_port, go_program, gort_binary, peak_rss_mb, require_root, start_sink,
    summary::{self, Probe},
    wait_for_port,
};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    NoGort,
    LinkageOff,
    LinkageOn,
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
}

/// GORT_BENCH_BPF_STATS=0 leaves the kernel's statistics off (for a gort
/// without `--bpf-stats`, through GORT_BINARY).
fn bpf_stats() -> bool {
    std::env::var("GORT_BENCH_BPF_STATS").map_or(true, |v| v != "0")
}

fn run(mode: Mode, rate: &str) -> Figures {
    let binary = go_program("tracedsvc", "default", &[], &[]);
    let sink_out = std::env::temp_dir().join(format!("gort-bench-linkage-{}.jsonl", std::process::id()));
    let (mut sink, sink_port) = start_sink(&sink_out);
    let gort_port = free_port();
    let mut svc = Command::new(&binary);
    svc.args(["-otlp", &format!("127.0.0.1:{gort_port}"), "-heap-mb", "8"]);
    let mut svc = Proc::spawn(svc, "[svc]");
    let listening = svc.wait_line(Duration::from_secs(30), |l| l.contains("\"listening\""));
    let addr =
        serde_json::from_str::<serde_json::Value>(&listening).unwrap()["addr"].as_str().unwrap().to_owned();
    let config = std::env::temp_dir().join(format!("gort-bench-linkage-{}.yaml", std::process::id()));
    let summary_path = std::env::temp_dir().join(format!("gort-bench-linkage-{}.json", std::process::id()));
    std::fs::write(&config, format!("linkage:\n  enabled: {}\n", mode == Mode::LinkageOn)).unwrap();
    let mut c = Command::new(gort_binary());
    c.args(["run", "--upstream", &format!("http://127.0.0.1:{sink_port}")]);
    let listen = format!("127.0.0.1:{gort_port}");
    c.args(["--otlp-grpc", &listen, "--otlp-http", "off", "--telemetry", "off"]);
    let mut gort = match mode {
        Mode::NoGort => {
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
    let (svc_cpu0, gort_cpu0) = (cpu_seconds(svc.pid()), cpu_seconds(gort.pid()));
    let seconds = 10.0;
    let mut load = Command::new(&binary);
    load.args(["-load", &addr, "-duration", "10s", "-rate", rate, "-clients", "8", "-stall-every", "0"]);
    let mut load = Proc::spawn(load, "[load]");
    let done = load.wait_line(Duration::from_secs(60), |l| l.contains("load-done"));
    let (svc_cpu, gort_cpu) = (cpu_seconds(svc.pid()) - svc_cpu0, cpu_seconds(gort.pid()) - gort_cpu0);
    let gort_rss = peak_rss_mb(gort.pid());
    let _ = load.wait_exit(Duration::from_secs(10));
    let done: serde_json::Value = serde_json::from_str(&done).unwrap();
    for p in [&svc, &gort] {
        let _ = Command::new("kill").args(["-TERM", &p.pid().to_string()]).status();
    }
    let _ = svc.wait_exit(Duration::from_secs(30));
    let _ = gort.wait_exit(Duration::from_secs(30));
    let _ = Command::new("kill").args(["-TERM", &sink.pid().to_string()]).status();
    let _ = sink.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_file(&sink_out);
    let _ = std::fs::remove_file(&config);
    let requests = done["plain"].as_u64().unwrap();
    let probes = match mode {
        Mode::NoGort => Vec::new(),
        _ => summary::take(&summary_path).targets.remove(0).probes,
    };
    Figures {
        svc_cpu_us_per_request: svc_cpu / requests.max(1) as f64 * 1e6,
        p50_ms: done["p50_ms"].as_f64().unwrap(),
        p99_ms: done["p99_ms"].as_f64().unwrap(),
        gort_cpu_cores: gort_cpu / seconds,
        gort_rss_mb: gort_rss,
        requests,
        probes,
    }
}

fn main() {
    if !require_root("bench linkage") {
        return;
    }
    let rate = std::env::var("GORT_BENCH_RATE").unwrap_or_else(|_| "1000".into());
    let reps: usize = std::env::var("GORT_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    println!(
        "tracedsvc, {rate} requests/s over 8 clients for 10 s, one span per request; {reps} runs each, interleaved"
    );
    println!(
        "| mode | requests | service CPU per request (µs) | p50 (ms) | p99 (ms) | gort CPU (cores) | gort peak RSS (MB) |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    let mut breakdowns = Vec::new();
    for _ in 0..reps {
        for mode in [Mode::NoGort, Mode::LinkageOff, Mode::LinkageOn] {
            let f = run(mode, &rate);
            println!(
                "| {mode:?} | {} | {:.1} | {:.3} | {:.3} | {:.3} | {:.1} |",
                f.requests, f.svc_cpu_us_per_request, f.p50_ms, f.p99_ms, f.gort_cpu_cores, f.gort_rss_mb
            );
            if mode != Mode::NoGort {
                breakdowns.push((mode, f));
            }
        }
    }
    // Per request: what each probe costs the service in program time (the
    // kernel's statistics, ~20 ns per run of their own included) and how
    // many traps of each site kind it takes.
    for (mode, f) in &breakdowns {
        println!("\n{mode:?}, per request ({} requests):", f.requests);
        println!("| probe | site | hits | program ns per run | program ns per request |");
        println!("| --- | --- | --- | --- | --- |");
        let (mut body, mut emulated, mut stepped) = (0.0, 0.0, 0.0);
        let per_request = |n: u64| n as f64 / f.requests.max(1) as f64;
        for p in f.probes.iter().filter(|p| p.hits > 0) {
            let b = p.bpf.unwrap_or(summary::ProgramStats { run_ns: 0, runs: 0 });
            let ns_per_run = b.run_ns as f64 / b.runs.max(1) as f64;
            let kind = p.site_kind.as_deref().unwrap_or("?");
            match kind {
                "emulated" => emulated += per_request(p.hits),
                _ => stepped += per_request(p.hits),
            }
            body += per_request(b.run_ns) / 1e3;
            println!(
                "| {} | {kind} | {:.2} | {ns_per_run:.0} | {:.0} |",
                p.name,
                per_request(p.hits),
                per_request(b.run_ns)
            );
        }
        println!(
            "program bodies {body:.1} µs per request; traps per request: {emulated:.1} emulated, {stepped:.1} single-stepped"
        );
    }
    // In flight, each span holds one GORT_SPANS entry (key and value), plus
    // the LRU hash map's per-element overhead; the goroutines it runs on
    // carry its id in the per-goroutine state every goroutine has anyway
    // (GORT_GSTATE); once ended and until its OTLP export arrives, one
    // userspace account.
    let kernel = size_of::<SpanKey>() + size_of::<SpanAccount>();
    let gstate = size_of::<GKey>() + size_of::<GoroutineState>();
    println!(
        "memory per in-flight span: kernel {kernel} B (GORT_SPANS key + value), plus the kernel's per-element hash overhead; \
         per goroutine (spans or not): {gstate} B of GORT_GSTATE; preallocated: {} spans x {} B = {:.1} MiB for GORT_SPANS",
        gort_common::MAX_SPANS,
        kernel,
        f64::from(gort_common::MAX_SPANS) * kernel as f64 / (1024.0 * 1024.0)
    );
    println!(
        "after End, until the span's export arrives: one userspace account of {} B (+ its stalls, + hash entry)",
        size_of::<gort::linkage::Account>() + 24 + 16
    );
}
