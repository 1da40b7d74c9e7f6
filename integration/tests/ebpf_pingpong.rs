//! gort attaches to a real Go program doing a known channel ping-pong and must
//! count at least one `execute` and one `ready` per half round trip, and see
//! exactly the goroutine ids the program says it created. Runs as root, on
//! several Go releases and build modes (stripped binaries use .gopclntab and
//! the offsets table instead of the symbol table and DWARF).

use std::{collections::BTreeMap, path::Path, time::Duration};

use gort_integration::{
    go_program, parse_report, require_root, scratch::Scratch, start_gort, start_pingpong, summary,
};
use gort_proto::{
    common::{AnyValue, any_value},
    metrics::{metric::Data, number_data_point},
    metrics_service::ExportMetricsServiceRequest,
};

const PAIRS: u32 = 4;
const ROUNDS: u32 = 5_000;

#[test]
fn ebpf_pingpong_default_build() {
    if require_root("ebpf_pingpong_default_build") {
        check_pingpong(&go_program("pingpong", "default", &[], &[]));
    }
}

#[test]
fn ebpf_pingpong_stripped_pie() {
    if require_root("ebpf_pingpong_stripped_pie") {
        check_pingpong(&go_program("pingpong", "pie-stripped", &["-buildmode=pie", "-ldflags=-s -w"], &[]));
    }
}

#[test]
fn ebpf_pingpong_cgo_external_link_stripped() {
    if require_root("ebpf_pingpong_cgo_external_link_stripped") {
        let flags = ["-ldflags=-linkmode=external -s -w"];
        check_pingpong(&go_program("pingpong", "cgo-stripped", &flags, &[("CGO_ENABLED", "1")]));
    }
}

#[test]
fn ebpf_pingpong_go1_21_stripped() {
    if require_root("ebpf_pingpong_go1_21_stripped") {
        let env = [("GOTOOLCHAIN", "go1.21.13")];
        check_pingpong(&go_program("pingpong", "go1.21.13-stripped", &["-ldflags=-s -w"], &env));
    }
}

/// Go 1.27, the current release, stripped: its offsets come from the table.
#[test]
fn ebpf_pingpong_go1_27_stripped() {
    if require_root("ebpf_pingpong_go1_27_stripped") {
        let env = [("GOTOOLCHAIN", "go1.27.4")];
        check_pingpong(&go_program("pingpong", "go1.27.4-stripped", &["-ldflags=-s -w"], &env));
    }
}

#[test]
fn ebpf_pingpong_go1_23() {
    if require_root("ebpf_pingpong_go1_23") {
        check_pingpong(&go_program("pingpong", "go1.23.12", &[], &[("GOTOOLCHAIN", "go1.23.12")]));
    }
}

/// `--bpf-stats`: each probe program's run count is the kernel's count of
/// what ran, so it matches the hits the program itself counted (a few hits
/// of the attach, before the baseline, aside), and the time per run is a
/// plausible program time.
#[test]
fn ebpf_program_run_time_is_measured_per_probe() {
    if !require_root("ebpf_program_run_time_is_measured_per_probe") {
        return;
    }
    let binary = go_program("pingpong", "default", &[], &[]);
    let mut pingpong = start_pingpong(&binary, PAIRS, ROUNDS);
    let summary_path = std::env::temp_dir().join(format!("gort-bpfstats-{}.json", pingpong.pid()));
    let args = ["--deep", "30m", "--bpf-stats", "--summary-json", summary_path.to_str().unwrap()];
    let mut gort = start_gort(pingpong.pid(), &args);
    gort.wait_line(Duration::from_secs(10), |l| l.contains("probe ready"));
    pingpong.send_line("go");
    let _ = parse_report(&pingpong.wait_line(Duration::from_secs(60), |l| l.contains("\"done\"")));
    assert!(pingpong.wait_exit(Duration::from_secs(10)).success());
    assert!(gort.wait_exit(Duration::from_secs(15)).success());
    let target = summary::take(&summary_path).targets.remove(0);
    let mut measured = 0;
    for p in &target.probes {
        let bpf = p.bpf.unwrap_or_else(|| panic!("{}: no bpf statistics with --bpf-stats", p.name));
        eprintln!(
            "{}: {} hits, {} runs, {:.0} ns per run",
            p.name,
            p.hits,
            bpf.runs,
            bpf.run_ns as f64 / bpf.runs.max(1) as f64
        );
        assert!(
            bpf.runs <= p.hits + 1_000 && bpf.runs + 1_000 >= p.hits,
            "{}: {} runs vs {} hits",
            p.name,
            bpf.runs,
            p.hits
        );
        if p.hits >= 10_000 {
            let per_run = bpf.run_ns as f64 / bpf.runs as f64;
            assert!(per_run > 5.0 && per_run < 100_000.0, "{}: {per_run} ns per run", p.name);
            measured += 1;
        }
    }
    assert!(measured >= 3, "execute, ready and casgstatus each ran at least 10,000 times");
    // Without the flag, nothing is measured.
    let mut pingpong = start_pingpong(&binary, 1, 100);
    let mut gort = start_gort(pingpong.pid(), &["--summary-json", summary_path.to_str().unwrap()]);
    gort.wait_line(Duration::from_secs(10), |l| l.contains("mode:"));
    pingpong.send_line("go");
    assert!(pingpong.wait_exit(Duration::from_secs(30)).success());
    assert!(gort.wait_exit(Duration::from_secs(15)).success());
    let target = summary::take(&summary_path).targets.remove(0);
    assert!(target.probes.iter().all(|p| p.bpf.is_none()), "statistics without --bpf-stats");
}

fn check_pingpong(binary: &Path) {
    let mut pingpong = start_pingpong(binary, PAIRS, ROUNDS);
    let dir = Scratch::new(&format!("it-{}", pingpong.pid()));
    let summary_path = dir.join("summary.json");
    let otlp_path = dir.join("otlp.jsonl");
    let mut gort = start_gort(
        pingpong.pid(),
        &[
            // Deep mode: the per-goroutine diagnostics below need execute/ready.
            "--deep",
            "30m",
            "--interval",
            "200ms",
            "--summary-json",
            summary_path.to_str().unwrap(),
            "--otlp-json",
            otlp_path.to_str().unwrap(),
        ],
    );
    gort.wait_line(Duration::from_secs(10), |l| l.contains("probe ready"));
    // One report before the load: the run is shorter than a report
    // interval, and the runtime's statistics are read at reports only.
    gort.wait_line(Duration::from_secs(10), |l| l.starts_with(&format!("gort: pid {} [", pingpong.pid())));

    pingpong.send_line("go");
    let done = pingpong.wait_line(Duration::from_secs(60), |l| l.contains("\"done\""));
    let report = parse_report(&done);
    assert!(pingpong.wait_exit(Duration::from_secs(10)).success());

    // gort notices the exit by itself and stops.
    let status = gort.wait_exit(Duration::from_secs(15));
    assert!(status.success(), "gort exited with {status}");
    assert!(gort.seen.iter().any(|l| l.contains("exited; probes detached")), "gort did not report the exit");

    let mut summary = summary::take(&summary_path);
    eprintln!("summary: {:?}", summary.targets[0].probes);
    assert_eq!(summary.ended, "target-exited");
    let target = summary.targets.remove(0);
    assert_eq!(target.pid, pingpong.pid());
    let hits =
        |name: &str| target.hits(name).unwrap_or_else(|| panic!("no probe {name} in {:?}", target.probes));
    let round_trips = report.round_trips;
    assert_eq!(round_trips, u64::from(PAIRS * ROUNDS));
    // Each round trip parks and readies each side of the pair once, so at
    // least two executes and two readies per round trip.
    assert!(hits("execute") >= 2 * round_trips, "execute {} < 2 x {round_trips}", hits("execute"));
    assert!(hits("ready") >= 2 * round_trips, "ready {} < 2 x {round_trips}", hits("ready"));
    for probe in &target.probes {
        assert_ne!(probe.site_offset, 0, "probe on the entry instruction: {probe:?}");
        if probe.site.as_deref() == Some("returns") {
            // The kernel single-steps a RET: only the rare stop-the-world
            // end may sit on one.
            assert_eq!(probe.site_kind.as_deref(), Some("single_stepped"), "{probe:?}");
            assert_eq!(probe.name, "stw_end", "a RET probe on a frequent path: {probe:?}");
        } else {
            assert_eq!(
                probe.site_kind.as_deref(),
                Some("emulated"),
                "probe not on an emulatable site: {probe:?}"
            );
        }
    }

    // Goroutine ids. Each round trip is two rendezvous on unbuffered
    // channels, and at each one exactly one side parks and is readied and run
    // again: 2 parks per round trip, each seen by `ready` and `execute`. Which
    // side parks varies (one goroutine can reach both rendezvous first), so
    // the bound holds for the created goroutines together, not for each. No
    // other goroutine is busy: a wrong goid offset shows up as unknown ids
    // with large counts, or as created ids never seen.
    let seen: BTreeMap<u64, u64> = target.goroutines.iter().map(|g| (g.goid, g.hits)).collect();
    eprintln!("goroutines created: {:?}\ngoroutines seen: {seen:?}", report.goids);
    assert_eq!(report.goids.len(), 2 * PAIRS as usize);
    let mut created_hits = 0;
    for goid in &report.goids {
        let n = seen.get(goid).copied().unwrap_or(0);
        assert!(n > 0, "goroutine {goid}, created by the program, was never seen");
        created_hits += n;
    }
    assert!(
        created_hits >= 4 * round_trips,
        "created goroutines seen {created_hits} times, expected >= 4 x {round_trips} round trips"
    );
    let busy: Vec<u64> =
        seen.iter().filter(|(_, n)| **n >= u64::from(ROUNDS) / 10).map(|(g, _)| *g).collect();
    let mut created = report.goids.clone();
    created.sort_unstable();
    assert_eq!(busy, created, "the busy goroutines gort saw are not the ones the program created");

    // The OTLP/JSON file holds cumulative gort.probe.hits for this process.
    let otlp = std::fs::read_to_string(&otlp_path).unwrap();
    let last: ExportMetricsServiceRequest = serde_json::from_str(otlp.lines().last().expect("no OTLP lines"))
        .expect("an OTLP/JSON metrics request");
    let rm = &last.resource_metrics[0];
    let pid_attr = rm.resource.as_ref().unwrap().attributes.iter().find(|a| a.key == "process.pid").unwrap();
    assert_eq!(
        pid_attr.value,
        Some(AnyValue { value: Some(any_value::Value::IntValue(i64::from(pingpong.pid()))) })
    );
    let metrics = &rm.scope_metrics[0].metrics;
    let metric = metrics.iter().find(|m| m.name == "gort.probe.hits").expect("no gort.probe.hits");
    let Some(Data::Sum(sum)) = &metric.data else { panic!("gort.probe.hits is not a sum") };
    let execute_point = sum
        .data_points
        .iter()
        .find(|p| {
            p.attributes[0].value
                == Some(AnyValue { value: Some(any_value::Value::StringValue("execute".into())) })
        })
        .unwrap();
    assert_eq!(execute_point.value, Some(number_data_point::Value::AsInt(hits("execute") as i64)));

    // Every half round trip makes a goroutine runnable and then running:
    // the probe's scheduling-latency histogram holds at least that many
    // samples. The exported one is the runtime's own, read from its memory
    // (it tracks one transition in eight): exactly the last read's.
    let probed = target.runtime.schedule_latency.counts.iter().sum::<u64>();
    assert!(probed >= 2 * round_trips, "probed schedule latencies {probed} < 2 x {round_trips}");
    // The runtime's statistics are not read once the process is gone: the
    // last point is in the last report that read them.
    let requests: Vec<ExportMetricsServiceRequest> =
        otlp.lines().map(|l| serde_json::from_str(l).expect("an OTLP/JSON metrics request")).collect();
    let sched = requests
        .iter()
        .flat_map(|r| &r.resource_metrics[0].scope_metrics[0].metrics)
        .rfind(|m| m.name == "go.schedule.duration")
        .expect("no go.schedule.duration");
    assert_eq!(sched.unit, "s");
    let Some(Data::Histogram(h)) = &sched.data else { panic!("go.schedule.duration is not a histogram") };
    let count = h.data_points[0].count;
    match &target.runtime_stats {
        Some(runtime) => {
            assert_eq!(
                count,
                runtime.schedule_latency_count(),
                "go.schedule.duration is the runtime's histogram"
            );
            assert!(count < probed, "the runtime tracks 1 in 8: {count} of {probed}");
        }
        // No symbol table, so no runtime statistics: the probe's histogram.
        None => {
            assert!(
                !gort_integration::inspect::inspect(binary).has_symbols,
                "the runtime's statistics were not read from a binary with symbols"
            );
            assert_eq!(count, probed, "without the runtime's statistics, the probe's histogram");
        }
    }
}
