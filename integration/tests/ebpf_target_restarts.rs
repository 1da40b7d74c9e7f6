//! A watched executable restarted 100 times under one `gort run --exe`:
//! some instances finish their work, some are killed with SIGKILL before
//! doing any. gort attaches to every one (the attach latency distribution is
//! printed), and what it holds per process (file descriptors by kind: BPF
//! links, perf events, maps, programs; and its RSS) comes back to the same
//! level, and each instance finds the kernel maps' per-process entries
//! empty, so nothing of one instance outlives it. Runs as root.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use gort_integration::{Proc, go_program, gort_binary, require_root, summary};

const RESTARTS: usize = 100;
/// The instances that are killed with SIGKILL instead of exiting.
const KILL_EVERY: usize = 5;
/// After this many restarts gort's holdings are the baseline: its own
/// allocator and runtime have warmed up by then.
const WARM_UP: usize = 10;

/// gort's open file descriptors by kind, and its resident memory in KiB.
fn holdings(pid: u32) -> (BTreeMap<String, usize>, u64) {
    let mut fds = BTreeMap::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().flatten() {
        let target = std::fs::read_link(entry.path()).map(|t| t.display().to_string()).unwrap_or_default();
        // "socket:[123]" and "anon_inode:bpf-map" name a kind; a path is a file.
        let kind = match target.split_once(':') {
            Some(("anon_inode", rest)) => rest.trim_matches(['[', ']']).to_owned(),
            Some((k, _)) => k.to_owned(),
            None => "file".to_owned(),
        };
        *fds.entry(kind).or_default() += 1;
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    (fds, rss)
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn a_hundred_restarts_are_each_attached_and_leave_nothing_behind() {
    if !require_root("a_hundred_restarts_are_each_attached_and_leave_nothing_behind") {
        return;
    }
    let binary = go_program("pingpong", "follow", &[], &[]);
    let summary_path = std::env::temp_dir().join(format!("gort-restarts-{}.json", std::process::id()));
    let mut gort = Command::new(gort_binary());
    gort.args(["run", "--exe", binary.to_str().unwrap(), "--interval", "1s", "--summary-json"])
        .arg(&summary_path);
    let mut gort = Proc::spawn(gort, "[gort]");
    let gort_pid = gort.pid();
    let mut latencies = Vec::new();
    let mut baseline = None;
    for i in 0..RESTARTS {
        let mut cmd = Command::new(&binary);
        cmd.args(["-wait-start", "-pairs", "1", "-rounds", "200"]);
        let started = Instant::now();
        let mut target = Proc::spawn(cmd, "[pingpong]");
        let pid = target.pid();
        gort.wait_line(Duration::from_secs(60), |l| l.starts_with(&format!("gort: attached to pid {pid} ")));
        latencies.push(started.elapsed());
        gort.wait_line(Duration::from_secs(30), |l| l.contains("mode:"));
        if i % KILL_EVERY == KILL_EVERY - 1 {
            target.kill();
        } else {
            target.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
            target.send_line("go");
            target.wait_line(Duration::from_secs(60), |l| l.contains("\"done\""));
        }
        target.wait_exit(Duration::from_secs(10));
        gort.wait_line(Duration::from_secs(30), |l| l == format!("gort: pid {pid} exited; probes detached"));
        if i + 1 == WARM_UP {
            baseline = Some(holdings(gort_pid));
        }
    }
    let (fds, rss) = holdings(gort_pid);
    let (base_fds, base_rss) = baseline.expect("warm-up done");
    latencies.sort();
    eprintln!(
        "attach latency over {RESTARTS} restarts (start of the process to gort's attached line): \
         p50 {:?}, p90 {:?}, max {:?}; gort after {WARM_UP} restarts: {base_fds:?}, {base_rss} KiB; \
         after {RESTARTS}: {fds:?}, {rss} KiB",
        quantile(&latencies, 0.5),
        quantile(&latencies, 0.9),
        latencies[latencies.len() - 1],
    );
    assert_eq!(
        fds, base_fds,
        "gort's file descriptors (BPF links, perf events, maps, ...) grew with restarts"
    );
    // The allocator's pages come and go; a leak of a process's state grows
    // with every one of 90 restarts.
    assert!(rss < base_rss + 4 * 1024, "gort's RSS grew from {base_rss} KiB to {rss} KiB over 90 restarts");
    gort.terminate();
    assert!(gort.wait_exit(Duration::from_secs(30)).success());
    // A sidecar keeps the summaries of the last 64 processes, not of all.
    let s = summary::take(&summary_path);
    assert_eq!((s.targets.len(), s.targets_omitted), (64, RESTARTS as u64 - 64));
    assert!(s.targets.iter().all(|t| t.exited));
    // Each instance found the kernel's per-process maps empty: the one
    // before it, finished or killed, left no entry behind.
    for t in &s.targets {
        assert_eq!(t.bpf_map_entries_at_attach, summary::MapEntries::default(), "pid {}", t.pid);
    }
}
