//! What gort costs a Go service, side by side in one run: the same workload
//! without gort, with gort's default configuration (cold probes always, the
//! hot probe sampled), with no probe at all (`--probes none`: the runtime's
//! own statistics and the goroutine census read from the target's memory
//! every second), and in deep mode (every probe, continuously),
//! alternating A/B/C so drift hits every mode alike. Two workloads: the
//! channel ping-pong (the worst case: nothing but goroutine switches) and a
//! net/http server under closed-loop load at saturation.
//!
//! Prints, per workload and mode: throughput and p99 latency (and their ratio
//! to no gort), uprobe hits per second, gort's CPU and peak RSS. Needs root.
//!
//! `cargo bench -p gort-integration --bench overhead`
//! (GORT_BENCH_REPS, default 3; each run lasts 20 s, two default sampling
//! periods). The default mode is measured twice: attached at the start of
//! the run (its 2 s first window included: 3 s of 20 recorded, 15%), and
//! attached 2.5 s before it (steady state: 500 ms every 10 s, 5%).

use std::{path::Path, process::Command, time::Duration};

use gort_integration::{Proc, cpu_seconds, go_program, gort_binary, parse_report, peak_rss_mb, require_root};

const RUN_SECONDS: u64 = 20;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Off,
    /// Attached as the run starts: the first window is in the run.
    Default,
    /// Attached before the run, which sees only the steady sampling.
    Steady,
    /// `--probes none`: only the target's memory, read every second.
    Memory,
    Deep,
}

impl Mode {
    const ALL: [Self; 5] = [Self::Off, Self::Default, Self::Steady, Self::Memory, Self::Deep];

    fn label(self) -> &'static str {
        match self {
            Self::Off => "no gort",
            Self::Default => "gort default, at attach",
            Self::Steady => "gort default, steady",
            Self::Memory => "gort --probes none",
            Self::Deep => "gort --deep",
        }
    }
}

/// How long before the measured run the steady mode attaches: past the
/// default 2 s first window.
const STEADY_AFTER: Duration = Duration::from_millis(2500);

#[derive(Clone, Copy, Default)]
struct Sample {
    throughput: f64,
    p99_us: f64,
    hits: u64,
    gort_cpu_s: f64,
    gort_rss_mb: f64,
}

/// gort attached to `pid` in `mode`, until `stop` is called.
struct Gort {
    proc: Proc,
    summary: std::path::PathBuf,
}

impl Gort {
    fn start(pid: u32, mode: Mode) -> Option<Self> {
        if mode == Mode::Off {
            return None;
        }
        let summary = std::env::temp_dir().join(format!("gort-overhead-{pid}.json"));
        let mut cmd = Command::new(gort_binary());
        // The memory-only mode's whole work is the reads at each report: as
        // often as the default interval makes them. The others report once.
        let interval = if mode == Mode::Memory { "1s" } else { "600s" };
        cmd.args(["run", "--pid", &pid.to_string(), "--interval", interval]);
        cmd.args(["--summary-json", summary.to_str().unwrap()]);
        if mode == Mode::Deep {
            cmd.args(["--deep", "30m"]);
        }
        if mode == Mode::Memory {
            cmd.args(["--probes", "none"]);
        }
        let mut proc = Proc::spawn(cmd, "[gort]");
        proc.wait_line(Duration::from_secs(60), |l| l.starts_with("gort:   mode:"));
        if mode == Mode::Steady {
            std::thread::sleep(STEADY_AFTER);
        }
        Some(Self { proc, summary })
    }

    /// Stops gort (SIGINT) and returns (hits, CPU seconds, peak RSS MB).
    fn stop(mut self) -> (u64, f64, f64) {
        let pid = self.proc.pid();
        let (cpu, rss) = (cpu_seconds(pid), peak_rss_mb(pid));
        assert!(Command::new("kill").args(["-INT", &pid.to_string()]).status().unwrap().success());
        assert!(self.proc.wait_exit(Duration::from_secs(30)).success());
        let s: serde_json::Value = serde_json::from_slice(&std::fs::read(&self.summary).unwrap()).unwrap();
        let _ = std::fs::remove_file(&self.summary);
        let hits =
            s["targets"][0]["probes"].as_array().unwrap().iter().map(|p| p["hits"].as_u64().unwrap()).sum();
        (hits, cpu, rss)
    }
}

fn finish(g: Option<Gort>, sample: &mut Sample) {
    if let Some(g) = g {
        let (hits, cpu, rss) = g.stop();
        (sample.hits, sample.gort_cpu_s, sample.gort_rss_mb) = (hits, cpu, rss);
    }
}

fn pingpong_run(binary: &Path, mode: Mode) -> Sample {
    let mut cmd = Command::new(binary);
    cmd.args(["-wait-start", "-pairs", "1", "-for", &format!("{RUN_SECONDS}s")]);
    let mut pp = Proc::spawn(cmd, "[pingpong]");
    pp.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    let mut sample = Sample::default();
    let g = Gort::start(pp.pid(), mode);
    pp.send_line("go");
    let line = pp.wait_line(Duration::from_secs(RUN_SECONDS + 60), |l| l.contains("\"done\""));
    let report = parse_report(&line);
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    sample.throughput = report.round_trips as f64 / (report.elapsed_ns as f64 / 1e9);
    sample.p99_us = v["p99_ns"].as_f64().unwrap() / 1e3;
    finish(g, &mut sample);
    pp.wait_exit(Duration::from_secs(10));
    sample
}

fn http_run(server_pid: u32, url: &str, load: &Path, mode: Mode) -> Sample {
    let mut sample = Sample::default();
    let g = Gort::start(server_pid, mode);
    let out = Command::new(load)
        .args(["-url", url, "-conns", "32", "-warmup", "1s", "-duration", &format!("{RUN_SECONDS}s")])
        .output()
        .unwrap();
    assert!(out.status.success(), "httpload failed: {}", String::from_utf8_lossy(&out.stdout));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    sample.throughput = v["rps"].as_f64().unwrap();
    sample.p99_us = v["p99_us"].as_f64().unwrap();
    finish(g, &mut sample);
    sample
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn print_table(title: &str, unit: &str, samples: &[(Mode, Sample)]) {
    let of = |m: Mode, f: fn(&Sample) -> f64| {
        median(samples.iter().filter(|(mode, _)| *mode == m).map(|(_, s)| f(s)).collect())
    };
    let base_tp = of(Mode::Off, |s| s.throughput);
    let base_p99 = of(Mode::Off, |s| s.p99_us);
    println!("\n{title} ({RUN_SECONDS} s runs, medians of {} per mode)", samples.len() / Mode::ALL.len());
    println!(
        "{:<24} {:>14} {:>8} {:>10} {:>8} {:>12} {:>10} {:>9}",
        "mode", unit, "ratio", "p99 us", "ratio", "hits/s", "gort CPU%", "gort RSS"
    );
    for m in Mode::ALL {
        let tp = of(m, |s| s.throughput);
        let p99 = of(m, |s| s.p99_us);
        let hits = of(m, |s| s.hits as f64) / RUN_SECONDS as f64;
        let cpu = of(m, |s| s.gort_cpu_s) / RUN_SECONDS as f64 * 100.0;
        let rss = of(m, |s| s.gort_rss_mb);
        println!(
            "{:<24} {:>14.0} {:>8.3} {:>10.1} {:>8.3} {:>12.0} {:>9.2}% {:>7.1}MB",
            m.label(),
            tp,
            tp / base_tp,
            p99,
            p99 / base_p99,
            hits,
            cpu,
            rss
        );
    }
}

fn main() {
    if !require_root("overhead") {
        return;
    }
    let reps: usize = std::env::var("GORT_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(3);
    let pingpong = go_program("pingpong", "default", &[], &[]);
    let server = go_program("httpserver", "default", &[], &[]);
    let load = go_program("httpload", "default", &[], &[]);
    let _ = gort_binary();

    let mut srv = Proc::spawn(Command::new(&server), "[httpserver]");
    let ready = srv.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    let v: serde_json::Value = serde_json::from_str(&ready).unwrap();
    let url = format!("http://{}/?n=16", v["addr"].as_str().unwrap());
    let mut http = Vec::new();
    let mut pp = Vec::new();
    for rep in 0..reps {
        for i in 0..Mode::ALL.len() {
            let mode = Mode::ALL[(i + rep) % Mode::ALL.len()];
            http.push((mode, http_run(srv.pid(), &url, &load, mode)));
            pp.push((mode, pingpong_run(&pingpong, mode)));
        }
    }
    print_table("net/http server, 32 closed-loop connections", "requests/s", &http);
    print_table("channel ping-pong, 1 pair (worst case)", "round trips/s", &pp);
}
