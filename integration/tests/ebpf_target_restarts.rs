//! A traced Go service (`otelapp`, the OpenTelemetry Go SDK exporting to
//! gort's receiver) restarted 100 times under one `gort run --exe` with trace
//! linkage on: most instances finish and shut down, some exit with a span
//! still open, some are killed with SIGKILL inside one. gort attaches to
//! every one (the attach latency distribution is printed), and what it holds
//! per process (file descriptors by kind: BPF links, perf events, maps,
//! programs; and its RSS) comes back to the same level; each instance finds
//! the kernel maps' per-process entries empty, so nothing of one instance
//! outlives it; and every span every instance exported arrives upstream
//! exactly once, with what the probes saw. Runs as root.

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, require_root, rss_kib, scratch::Scratch, sink, start_sink,
    summary,
};

const RESTARTS: usize = 100;
/// Of every five instances, one is killed with SIGKILL inside an open span
/// and one exits inside one; the other three shut down as usual.
const KILL_EVERY: usize = 5;
const EXIT_MID_SPAN: usize = 2;
/// Spans each instance ends and exports.
const SPANS: usize = 20;
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
    (fds, rss_kib(pid))
}

/// gort's holdings with what it holds only for a moment left out: each
/// kind's fewest over `readings` readings 50 ms apart, stopping early once
/// they equal `want`. Between instances gort's `--exe` watcher scans /proc,
/// and a reading taken during a scan counts the directory it has open; a
/// leak is held for good, so no reading is free of it.
fn lasting_holdings(
    pid: u32,
    readings: usize,
    want: Option<&BTreeMap<String, usize>>,
) -> (BTreeMap<String, usize>, u64) {
    let (mut fds, rss) = holdings(pid);
    for _ in 1..readings {
        if want == Some(&fds) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        let (now, _) = holdings(pid);
        // A kind missing from a reading is none of it.
        fds.retain(|kind, n| match now.get(kind) {
            Some(m) => {
                *n = (*n).min(*m);
                true
            }
            None => false,
        });
    }
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
    let binary = go_program("otelapp", "default", &[], &[]);
    let dir = Scratch::new("restarts");
    let (summary_path, sink_out) = (dir.join("summary.json"), dir.join("sink"));
    let (mut sink_proc, sink_port) = start_sink(&sink_out);
    let gort_port = free_port();
    let mut gort = Command::new(gort_binary());
    gort.args(["run", "--exe", binary.to_str().unwrap(), "--interval", "1s", "--telemetry", "off"])
        .args(["--otlp-grpc", &format!("127.0.0.1:{gort_port}"), "--otlp-http", "off"])
        .args(["--upstream", &format!("http://127.0.0.1:{sink_port}"), "--summary-json"])
        .arg(&summary_path);
    let mut gort = Proc::spawn(gort, "[gort]");
    let gort_pid = gort.pid();
    let mut latencies = Vec::new();
    let mut baseline = None;
    // Every span an instance exported, by id: the instance's number.
    let mut exported = BTreeMap::new();
    for i in 0..RESTARTS {
        let mut cmd = Command::new(&binary);
        cmd.args(["-endpoint", &format!("127.0.0.1:{gort_port}"), "-service", &format!("restart-{i}")])
            .args(["-spans", &SPANS.to_string(), "-logs", "0", "-wait-start", "-fast-retry"]);
        let (killed, mid_span) = (i % KILL_EVERY == KILL_EVERY - 1, i % KILL_EVERY == EXIT_MID_SPAN);
        if killed || mid_span {
            // Each span is acknowledged before its End returns, so what the
            // instance reports is what it exported before it died.
            cmd.args(["-processor", "simple", "-open-span"]);
        }
        let started = Instant::now();
        let mut target = Proc::spawn(cmd, "[otelapp]");
        let pid = target.pid();
        gort.wait_line(Duration::from_secs(60), |l| l.starts_with(&format!("gort: attached to pid {pid} ")));
        latencies.push(started.elapsed());
        gort.wait_line(Duration::from_secs(30), |l| l.contains("mode:"));
        target.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
        target.send_line("go");
        let line =
            target.wait_line(Duration::from_secs(60), |l| l.contains("\"open\"") || l.contains("\"done\""));
        let report: gort_integration::goprog::OtelappReport =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("otelapp printed {line:?}: {e}"));
        assert_eq!(report.error.as_deref().unwrap_or_default(), "", "instance {i} could not export");
        assert_eq!(report.spans.len(), SPANS, "instance {i}");
        exported.extend(report.spans.into_iter().map(|id| (id, i)));
        if killed {
            target.kill();
        } else if mid_span {
            target.send_line("exit");
        }
        target.wait_exit(Duration::from_secs(30));
        gort.wait_line(Duration::from_secs(30), |l| l == format!("gort: pid {pid} exited; probes detached"));
        if i + 1 == WARM_UP {
            baseline = Some(lasting_holdings(gort_pid, 20, None));
        }
    }
    let (base_fds, base_rss) = baseline.expect("warm-up done");
    let (fds, rss) = lasting_holdings(gort_pid, 200, Some(&base_fds));
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
    sink_proc.terminate();
    let _ = sink_proc.wait_exit(Duration::from_secs(10));
    let mut arrived = BTreeMap::<String, usize>::new();
    let mut enriched = 0;
    for span in sink::read(&sink_out).iter().filter(|i| i.kind == "span" && !i.is_gorts_span()) {
        *arrived.entry(span.id.clone()).or_default() += 1;
        enriched += usize::from(span.has("go.runtime.runnable.duration"));
    }
    let twice: Vec<_> = arrived.iter().filter(|(_, n)| **n > 1).collect();
    let lost: Vec<_> = exported.iter().filter(|(id, _)| !arrived.contains_key(*id)).collect();
    let unknown: Vec<_> = arrived.keys().filter(|id| !exported.contains_key(*id)).collect();
    eprintln!(
        "{} spans exported by {RESTARTS} instances; {} arrived, {enriched} with what the probes saw; \
         {} more than once, {} lost, {} never exported (the open spans)",
        exported.len(),
        arrived.values().sum::<usize>(),
        twice.len(),
        lost.len(),
        unknown.len()
    );
    assert!(twice.is_empty(), "spans arrived more than once: {twice:?}");
    assert!(lost.is_empty(), "spans (id, instance) exported to gort and never forwarded: {lost:?}");
    assert!(unknown.is_empty(), "spans arrived that no instance exported: {unknown:?}");
    assert_eq!(enriched, exported.len(), "spans arrived without what the probes saw");
    // A sidecar keeps the summaries of the last 64 processes, not of all.
    let s = summary::take(&summary_path);
    assert_eq!((s.targets.len(), s.targets_omitted), (64, RESTARTS as u64 - 64));
    assert!(s.targets.iter().all(|t| t.exited));
    // Each instance found the kernel's per-process maps empty: the one
    // before it, finished or killed, left no entry behind, not even the
    // account of the span it died inside.
    for t in &s.targets {
        assert_eq!(t.bpf_map_entries_at_attach, summary::MapEntries::default(), "pid {}", t.pid);
    }
}
