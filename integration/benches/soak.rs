//! The soak: one `gort run --exe` with trace linkage on follows a traced
//! gRPC service (`tracedsvc`, 300 requests/s with a stall every 300 ms)
//! that is restarted every few minutes, for an hour, forwarding to a sink.
//! Every minute it prints gort's RSS and file descriptors, its lag
//! (`gort_queue_oldest_age_seconds`), the spans linkage holds and the
//! accounts waiting for their spans, the accounts that expired, the
//! ring-buffer events lost (from gort's report lines), and the books; at
//! the end, the kernel maps' per-process entries each instance found at
//! attach (all zero when nothing leaks from one instance to the next) and
//! whether the figures stayed flat. LRU evictions are not counted by the
//! kernel, so they are not printed: the per-process entries are what would
//! show a map filling up. Not in CI. Run as root:
//!
//!   cargo bench -p gort-integration --bench soak
//!
//! GORT_SOAK_MINUTES (default 60), GORT_SOAK_RESTART_MINUTES (default 5).

use std::{
    collections::BTreeMap,
    process::Command,
    time::{Duration, Instant},
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, require_root, rss_kib,
    scratch::Scratch,
    selfmetrics::{gauge, self_metric},
    start_sink_with, summary,
};

fn minutes(var: &str, default: u64) -> Duration {
    Duration::from_secs(60 * std::env::var(var).ok().and_then(|v| v.parse().ok()).unwrap_or(default))
}

fn fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// One service instance and its load generator (a copy of the binary, so
/// that `--exe` never takes it for the service).
struct Instance {
    svc: Proc,
    load: Proc,
}

fn start_instance(
    svc_binary: &std::path::Path,
    load_binary: &std::path::Path,
    grpc: u16,
    run_for: Duration,
) -> Instance {
    let mut svc = Command::new(svc_binary);
    svc.args(["-otlp", &format!("127.0.0.1:{grpc}")]);
    let mut svc = Proc::spawn(svc, "[svc]");
    let addr = svc.listen_addr();
    let mut load = Command::new(load_binary);
    load.args(["-load", &addr, "-duration", &format!("{}s", run_for.as_secs()), "-rate", "300"]).args([
        "-stall-every",
        "300ms",
        "-stalls",
        "runnable,gc,mutex,fanout,select",
    ]);
    Instance { svc, load: Proc::spawn(load, "[load]") }
}

fn main() {
    if !require_root("soak") {
        return;
    }
    let (total, every) = (minutes("GORT_SOAK_MINUTES", 60), minutes("GORT_SOAK_RESTART_MINUTES", 5));
    let dir = Scratch::new("soak");
    let svc_binary = go_program("tracedsvc", "default", &[], &[]);
    let load_binary = dir.join("tracedsvc-load");
    std::fs::copy(&svc_binary, &load_binary).expect("copy the load generator");
    let (mut sink, sink_port) = start_sink_with(&dir.join("sink"), &["-count"]);
    let (grpc, telemetry) = (free_port(), free_port());
    let summary_path = dir.join("summary.json");
    let mut gort = Command::new(gort_binary());
    gort.args(["run", "--exe", svc_binary.to_str().unwrap(), "--interval", "1s", "--otlp-http", "off"])
        .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}")])
        .args(["--upstream", &format!("http://127.0.0.1:{sink_port}")])
        .args(["--telemetry", &format!("127.0.0.1:{telemetry}"), "--summary-json"])
        .arg(&summary_path);
    let mut gort = Proc::spawn(gort, "[gort]");
    let gort_pid = gort.pid();
    gort.wait_line(Duration::from_secs(60), |l| l.contains("waiting for a process"));

    let started = Instant::now();
    let mut instance = start_instance(&svc_binary, &load_binary, grpc, every);
    let mut restarts = 0;
    let mut next_restart = started + every;
    let mut lost = 0u64;
    let mut rows = Vec::new();
    println!(
        "minute  rss_MiB  fds  lag_s  held_spans  waiting_accounts  accounts_expired  ringbuf_lost  accepted  stall_spans  sent  dropped"
    );
    for minute in 1..=total.as_secs() / 60 {
        let until = started + Duration::from_secs(60 * minute);
        let mut lag_max = 0.0f64;
        while Instant::now() < until {
            lag_max = lag_max.max(gauge(telemetry, "gort_queue_oldest_age_seconds"));
            // gort's report lines: "notable: N stalls ..., M gc pauses, K lost".
            while let Some(line) = gort.try_line() {
                if let Some(k) =
                    line.split(" gc pauses, ").nth(1).and_then(|r| r.split(' ').next()?.parse::<u64>().ok())
                {
                    lost = lost.max(k);
                }
            }
            if Instant::now() >= next_restart {
                // SIGTERM: the service flushes its spans and exits.
                instance.svc.terminate();
                let _ = instance.svc.wait_exit(Duration::from_secs(60));
                let _ = instance.load.wait_exit(Duration::from_secs(60));
                restarts += 1;
                next_restart += every;
                instance = start_instance(&svc_binary, &load_binary, grpc, every);
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let row = (
            rss_kib(gort_pid) / 1024,
            fds(gort_pid),
            lag_max,
            gauge(telemetry, "gort_linkage_held_spans"),
            gauge(telemetry, "gort_linkage_waiting_accounts"),
            gauge(telemetry, "gort_linkage_accounts_expired_total"),
            lost,
            self_metric(telemetry, "gort_receiver_accepted_items_total", "spans"),
            self_metric(telemetry, "gort_exporter_sent_items_total", "spans"),
            self_metric(telemetry, "gort_exporter_dropped_items_total", "spans"),
            gauge(telemetry, "gort_linkage_stall_spans_total"),
        );
        println!(
            "{minute:>6}  {:>7}  {:>3}  {:>5.2}  {:>10}  {:>16}  {:>16}  {:>12}  {:>8}  {:>8}  {:>4}  {:>7}",
            row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.10, row.8, row.9
        );
        rows.push(row);
    }
    instance.svc.terminate();
    let _ = instance.svc.wait_exit(Duration::from_secs(60));
    gort.terminate();
    let _ = gort.wait_exit(Duration::from_secs(60));
    sink.terminate();
    let counted = sink.wait_line(Duration::from_secs(10), |l| l.contains("\"counted\""));
    let s = summary::take(&summary_path);
    let mut at_attach: BTreeMap<String, usize> = BTreeMap::new();
    for t in &s.targets {
        *at_attach.entry(format!("{:?}", t.bpf_map_entries_at_attach)).or_default() += 1;
    }
    println!("restarts: {restarts}; the sink: {counted}");
    println!(
        "kernel maps' per-process entries each instance found at attach (count of instances): {at_attach:?}"
    );
    if let (Some(first), Some(last)) = (rows.get(rows.len().min(5).saturating_sub(1)), rows.last()) {
        println!(
            "from minute {} to the last: RSS {} -> {} MiB, fds {} -> {}, held spans {} -> {}, waiting accounts {} -> {}",
            rows.len().min(5),
            first.0,
            last.0,
            first.1,
            last.1,
            first.3,
            last.3,
            first.4,
            last.4
        );
    }
}
