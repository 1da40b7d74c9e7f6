//! Per-hit cost of gort's uprobes on the channel ping-pong, side by side in
//! one run: no probes, probes on the analysed emulatable site (gort's
//! default), and probes on the function entry (single-stepped). Runs are
//! interleaved so drift hits every mode alike. Needs root.
//!
//! `cargo bench -p gort-integration --bench probe_cost`
//! (GORT_BENCH_ROUNDS, GORT_BENCH_REPS tune the size).

use std::time::Duration;

use gort_integration::{go_program, parse_report, require_root, start_gort, start_pingpong};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    None,
    Emulated,
    Entry,
}

struct Sample {
    elapsed_ns: u64,
    hits: u64,
}

fn env_u32(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn run_once(binary: &std::path::Path, mode: Mode, rounds: u32, summary: &std::path::Path) -> Sample {
    let mut pingpong = start_pingpong(binary, 1, rounds);
    let site = match mode {
        Mode::Entry => "entry",
        _ => "auto",
    };
    let mut gort = (mode != Mode::None).then(|| {
        let mut g = start_gort(
            pingpong.pid(),
            &[
                "--deep",
                "30m",
                "--interval",
                "60s",
                "--probe-site",
                site,
                "--summary-json",
                summary.to_str().unwrap(),
            ],
        );
        g.wait_line(Duration::from_secs(10), |l| l.contains("probe ready"));
        g
    });
    pingpong.send_line("go");
    let report = parse_report(&pingpong.wait_line(Duration::from_secs(300), |l| l.contains("\"done\"")));
    pingpong.wait_exit(Duration::from_secs(10));
    let hits = match gort.as_mut() {
        Some(g) => {
            assert!(g.wait_exit(Duration::from_secs(30)).success());
            let s: serde_json::Value = serde_json::from_slice(&std::fs::read(summary).unwrap()).unwrap();
            s["targets"][0]["probes"].as_array().unwrap().iter().map(|p| p["hits"].as_u64().unwrap()).sum()
        }
        None => 0,
    };
    Sample { elapsed_ns: report.elapsed_ns, hits }
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn main() {
    if !require_root("probe_cost") {
        return;
    }
    let rounds = env_u32("GORT_BENCH_ROUNDS", 200_000);
    let reps = env_u32("GORT_BENCH_REPS", 5);
    let binary = go_program("pingpong", "default", &[], &[]);
    let summary = std::env::temp_dir().join(format!("gort-bench-{}.json", std::process::id()));
    let modes = [Mode::None, Mode::Emulated, Mode::Entry];
    let mut samples: Vec<(Mode, Sample)> = Vec::new();
    for rep in 0..reps as usize {
        for i in 0..modes.len() {
            let mode = modes[(i + rep) % modes.len()];
            samples.push((mode, run_once(&binary, mode, rounds, &summary)));
        }
    }
    let of = |m: Mode| samples.iter().filter(move |(mode, _)| *mode == m).map(|(_, s)| s);
    let base = median(of(Mode::None).map(|s| s.elapsed_ns).collect());
    println!("probe_cost: 1 pair x {rounds} round trips, {reps} interleaved runs per mode, medians");
    println!("{:<28} {:>14} {:>12} {:>12}", "mode", "elapsed ms", "hits", "ns per hit");
    println!("{:<28} {:>14.1} {:>12} {:>12}", "no probes", base as f64 / 1e6, 0, "-");
    for (mode, label) in
        [(Mode::Emulated, "emulated site (default)"), (Mode::Entry, "entry (single-stepped)")]
    {
        let elapsed = median(of(mode).map(|s| s.elapsed_ns).collect());
        let hits = median(of(mode).map(|s| s.hits).collect());
        let per_hit = (elapsed as f64 - base as f64) / hits.max(1) as f64;
        println!("{label:<28} {:>14.1} {hits:>12} {per_hit:>12.0}", elapsed as f64 / 1e6);
    }
    let _ = std::fs::remove_file(summary);
}
