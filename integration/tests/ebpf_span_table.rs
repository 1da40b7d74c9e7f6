//! The kernel's span table against a count of what must happen in it, as
//! root: a traced Go program (`otelapp`, the OpenTelemetry Go SDK) starts
//! far more spans than the table has ways in many sets and never ends them,
//! and reports where each span object lies. The table's set follows that
//! address, so the test knows exactly how many starts found their set full
//! and displaced an account; gort must count and export exactly that many.

use std::{collections::BTreeMap, process::Command, time::Duration};

use gort_common::{SPAN_WAYS, span_set_first_slot};
use gort_integration::{
    Proc, free_port, go_program, goprog::OtelappReport, gort_binary, last_metric, read_jsonl, require_root,
    scratch::Scratch, start_sink, summary,
};

/// Spans started and never ended: with the SDK's span objects about 480
/// bytes apart, enough to wrap the table's 4 MiB of address space about
/// ten times, so most sets get more spans than ways.
const UNENDED: usize = 100_000;

#[test]
fn spans_displaced_from_the_span_table_are_counted_exactly() {
    if !require_root("spans_displaced_from_the_span_table_are_counted_exactly") {
        return;
    }
    let binary = go_program("otelapp", "default", &[], &[]);
    let dir = Scratch::new("span-table");
    let (json, summary_path, sink_out) = (dir.join("otlp.jsonl"), dir.join("summary.json"), dir.join("sink"));
    let (mut sink, sink_port) = start_sink(&sink_out);
    let gort_port = free_port();
    let mut app = Command::new(&binary);
    app.args(["-endpoint", &format!("127.0.0.1:{gort_port}"), "-fast-retry", "-wait-start"]).args([
        "-spans",
        "0",
        "-logs",
        "0",
        "-unended",
        &UNENDED.to_string(),
    ]);
    let mut app = Proc::spawn(app, "[otelapp]");
    let mut gort = Command::new(gort_binary());
    gort.args(["run", "--pid", &app.pid().to_string(), "--interval", "200ms", "--telemetry", "off"])
        .args(["--otlp-grpc", &format!("127.0.0.1:{gort_port}"), "--otlp-http", "off"])
        .args(["--upstream", &format!("http://127.0.0.1:{sink_port}")])
        .arg("--otlp-json")
        .arg(&json)
        .arg("--summary-json")
        .arg(&summary_path);
    let mut gort = Proc::spawn(gort, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("mode:"));
    app.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    app.send_line("go");
    let line = app.wait_line(Duration::from_secs(120), |l| l.contains("\"done\""));
    let report: OtelappReport = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{e}: {}...", line.chars().take(300).collect::<String>()));
    assert!(app.wait_exit(Duration::from_secs(30)).success());
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort failed");
    sink.terminate();
    let _ = sink.wait_exit(Duration::from_secs(10));

    // Live objects never share an address, and nothing ends: in each set
    // the first SPAN_WAYS starts take free ways, every later one displaces.
    assert_eq!(report.unended.len(), UNENDED);
    let mut per_set = BTreeMap::<u32, u64>::new();
    for &address in &report.unended {
        *per_set.entry(span_set_first_slot(app.pid(), address)).or_default() += 1;
    }
    let expected: u64 = per_set.values().map(|n| n.saturating_sub(u64::from(SPAN_WAYS))).sum();
    let target = summary::take(&summary_path).targets.remove(0);
    let starts = target.probes.iter().find(|p| p.name == "span_start").map_or(0, |p| p.hits);
    eprintln!(
        "{UNENDED} spans never ended, in {} sets; {expected} must displace; span start probe hits: {starts}; \
         gort counted {} (summary)",
        per_set.len(),
        target.runtime.spans_displaced
    );
    assert_eq!(starts, UNENDED as u64, "every start was seen");
    assert!(expected > UNENDED as u64 / 4, "the test displaces too little to mean anything: {expected}");
    assert_eq!(target.runtime.spans_displaced, expected);
    let exported = last_metric(&read_jsonl(&json), "gort.linkage.spans_displaced")
        .map(|m| m["sum"]["dataPoints"][0]["asInt"].clone())
        .expect("gort.linkage.spans_displaced exported");
    let exported: u64 =
        exported.as_str().and_then(|s| s.parse().ok()).or(exported.as_u64()).expect("an integer point");
    assert_eq!(exported, expected, "the exported count");
}
