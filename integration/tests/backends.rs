//! The whole story into the user's backends, through their HTTP query APIs
//! only: `tracedsvc` with injected mutex stalls → gort (trace linkage) → a
//! real Collector (`collector-config/prometheus-jaeger.yaml`) → a real
//! Prometheus (OTLP receiver, exemplar storage) and a real Jaeger (memory
//! storage).
//!
//! - Prometheus holds gort's runtime histograms under the names its OTLP
//!   translation gives them (`go_schedule_duration_seconds_bucket`, ...),
//!   and their exemplars carry the trace ids of the service's spans.
//! - For the slowest exemplar, Jaeger returns the trace: the service's span
//!   with its `go.runtime.*` attributes and gort's stall child span, whose
//!   duration is what the handler measured itself (10%).
//! - No series in Prometheus has a trace id (or span id) among its labels.
//! - Every query of the shipped Grafana dashboard answers with a number,
//!   and every shipped alerting rule evaluates without error.
//! - The demo's report (`integration/go/backendsreport`) finds the same
//!   exemplar and trace.

use std::{process::Command, time::Duration};

use gort_integration::{
    Proc,
    backends::{self, Jaeger, Prometheus, start_collector_to_backends},
    free_port, go_program, gort_binary, require_root,
    scratch::Scratch,
    sink::Injection,
};
use serde_json::Value;

/// The histograms gort exports, as Prometheus' OTLP translation names them.
const HISTOGRAMS: [&str; 3] = [
    "go_schedule_duration_seconds",
    "go_memory_gc_pause_duration_seconds",
    "gort_goroutine_blocked_duration_seconds",
];

/// The number of an instant-query sample (`[time, "value"]`).
fn number(sample: &Value) -> Option<f64> {
    sample[1].as_str()?.parse().ok()
}

/// A span's tag value in Jaeger's JSON.
fn tag<'a>(span: &'a Value, key: &str) -> Option<&'a Value> {
    span["tags"].as_array()?.iter().find(|t| t["key"] == key).map(|t| &t["value"])
}

/// Polls `f` until it answers Some, for at most `timeout`.
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn stalls_reach_prometheus_and_jaeger_and_an_exemplar_leads_to_its_trace() {
    if !require_root("stalls_reach_prometheus_and_jaeger_and_an_exemplar_leads_to_its_trace") {
        return;
    }
    const HOLD: Duration = Duration::from_millis(300);
    gort_binary();
    let scratch = Scratch::new("backends");
    let telemetry_port = free_port();
    let prometheus = Prometheus::start(&scratch, telemetry_port);
    let jaeger = Jaeger::start(&scratch);
    let (_collector, collector_port) = start_collector_to_backends(&prometheus, &jaeger, &scratch);

    let binary = go_program("tracedsvc", "default", &[], &[]);
    let gort_port = free_port();
    let truth = scratch.join("truth.jsonl");
    let mut svc_cmd = Command::new(&binary);
    svc_cmd.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{gort_port}")]);
    svc_cmd.args(["-mutex-hold", &format!("{}ms", HOLD.as_millis())]).arg("-truth").arg(&truth);
    let mut svc = Proc::spawn(svc_cmd, "[svc]");
    let addr = svc.listen_addr();
    let config = scratch.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "run:\n  interval: 1s\nreceiver:\n  grpc_endpoint: 127.0.0.1:{gort_port}\n  http_endpoint: \"off\"\n\
             exporter:\n  endpoint: http://127.0.0.1:{collector_port}\n\
             telemetry:\n  endpoint: 127.0.0.1:{telemetry_port}\n"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &svc.pid().to_string(), "--config"]).arg(&config);
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("gort:   mode:"));
    gort_integration::wait_for_port(gort_port, Duration::from_secs(30));

    let mut load = Command::new(&binary);
    load.args(["-load", &addr, "-duration", "8s", "-rate", "50", "-clients", "2"]);
    load.args(["-stall-every", "500ms", "-stalls", "mutex,runnable,gc"]);
    let mut load = Proc::spawn(load, "[load]");
    load.wait_line(Duration::from_secs(60), |l| l.contains("load-done"));
    assert!(load.wait_exit(Duration::from_secs(10)).success());
    // Everything keeps running while Prometheus is asked: gort's scraped
    // series go stale the moment it stops.
    let truths = || -> Vec<Injection> {
        gort_integration::read_jsonl(&truth)
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("a truth line"))
            .collect()
    };
    assert!(truths().iter().any(|t| t.kind == "mutex"), "a mutex stall was injected: {:?}", truths());
    let names = eventually(Duration::from_secs(30), "gort's metrics in Prometheus", || {
        let names = prometheus.api("label/__name__/values", &[]);
        let names: Vec<String> =
            names.as_array().into_iter().flatten().filter_map(|n| n.as_str().map(str::to_owned)).collect();
        names.iter().any(|n| n.starts_with("gort_queue")).then_some(names)
    });
    eprintln!("Prometheus holds: {names:?}");

    // gort's histograms, by their Prometheus names, for the service.
    for name in HISTOGRAMS {
        let series = eventually(Duration::from_secs(30), &format!("{name}_bucket in Prometheus"), || {
            let r = prometheus.query(&format!("{name}_bucket{{service_name=\"tracedsvc\"}}"));
            (!r.is_empty()).then_some(r)
        });
        eprintln!("{name}_bucket: {} series", series.len());
        let count = prometheus.query(&format!("sum({name}_count)"));
        assert!(!count.is_empty(), "{name}_count: {count:?}");
    }

    // Exemplars of the service's spans, with trace ids; the slowest.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (start, end) = ((now - 600).to_string(), (now + 60).to_string());
    let mut exemplars: Vec<(f64, String, String)> = Vec::new();
    for name in HISTOGRAMS {
        let data = prometheus.api(
            "query_exemplars",
            &[("query", &format!("{name}_bucket")), ("start", &start), ("end", &end)],
        );
        for series in data.as_array().into_iter().flatten() {
            for e in series["exemplars"].as_array().into_iter().flatten() {
                let value: f64 = e["value"].as_str().and_then(|v| v.parse().ok()).unwrap_or(0.0);
                let trace = e["labels"]["trace_id"].as_str().unwrap_or_default().to_owned();
                assert_eq!(trace.len(), 32, "an exemplar without a trace id: {e}");
                exemplars.push((value, trace, name.to_owned()));
            }
        }
    }
    assert!(!exemplars.is_empty(), "no exemplar in Prometheus");
    exemplars.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (value, trace_id, histogram) = exemplars[0].clone();
    eprintln!(
        "slowest exemplar: {histogram} = {value} s -> trace {trace_id} ({} exemplars)",
        exemplars.len()
    );

    // That trace in Jaeger: the service's span enriched, and the stall child.
    let trace = eventually(Duration::from_secs(30), &format!("trace {trace_id} in Jaeger"), || {
        jaeger.trace(&trace_id).filter(|t| t["spans"].as_array().is_some_and(|s| s.len() >= 2))
    });
    let spans = trace["spans"].as_array().unwrap();
    let service_span = spans
        .iter()
        .find(|s| {
            s["tags"].as_array().into_iter().flatten().any(|t| {
                t["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("go.runtime.") && k != "go.runtime.stall.duration")
            }) && tag(s, "go.runtime.stall.duration").is_none()
        })
        .unwrap_or_else(|| panic!("no span with go.runtime.* attributes in {trace:#}"));
    // The request's injected stall is its longest; shorter ones (a GC the
    // load happened to meet) may sit beside it.
    let stall = spans
        .iter()
        .filter(|s| tag(s, "go.runtime.stall.duration").is_some())
        .max_by(|a, b| {
            a["duration"].as_f64().unwrap_or(0.0).total_cmp(&b["duration"].as_f64().unwrap_or(0.0))
        })
        .unwrap_or_else(|| panic!("no stall child span in {trace:#}"));
    let parent = &stall["references"][0];
    assert_eq!(parent["spanID"], service_span["spanID"], "the stall is the service span's child: {stall:#}");
    let injected = truths().into_iter().find(|t| t.trace_id == trace_id).unwrap_or_else(|| {
        panic!("the slowest exemplar's trace {trace_id} is not a stall the service injected")
    });
    let child_ms = stall["duration"].as_f64().unwrap_or(0.0) / 1e3;
    let measured_ms = injected.injected_ns / 1e6;
    eprintln!(
        "Jaeger: span {:?} with {} tags, stall child {:?} {child_ms:.1} ms; the handler measured {measured_ms:.1} ms ({})",
        service_span["operationName"],
        service_span["tags"].as_array().map_or(0, Vec::len),
        stall["operationName"],
        injected.kind
    );
    assert!(
        (child_ms - measured_ms).abs() <= 0.1 * measured_ms,
        "stall child {child_ms} ms against {measured_ms} ms measured"
    );

    // No trace or span id among any series' labels.
    let labels = prometheus.api("labels", &[("start", &start), ("end", &end)]);
    let labels: Vec<&str> = labels.as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    eprintln!("Prometheus labels: {labels:?}");
    for forbidden in ["trace_id", "span_id", "traceid", "spanid"] {
        assert!(!labels.contains(&forbidden), "{forbidden} is a label in Prometheus: {labels:?}");
    }

    // Every panel of the shipped dashboard answers for this service with a
    // number (a query error fails in `query`).
    let dashboard = backends::dashboard();
    let queries = backends::dashboard_queries(&dashboard, "tracedsvc", "1m");
    assert!(queries.len() >= 15, "the dashboard's queries: {queries:?}");
    for (panel, expr) in &queries {
        let result = eventually(Duration::from_secs(30), &format!("panel {panel:?}: {expr}"), || {
            let r = prometheus.query(expr);
            r.iter().any(|s| number(&s["value"]).is_some_and(f64::is_finite)).then_some(r)
        });
        eprintln!("panel {panel:?}: {} series from {expr}", result.len());
    }
    let service_values =
        prometheus.api("label/service_name/values", &[("match[]", "go_schedule_duration_seconds_bucket")]);
    assert!(
        service_values.as_array().is_some_and(|v| v.contains(&Value::from("tracedsvc"))),
        "the dashboard's service variable would not list tracedsvc: {service_values}"
    );

    // The alerting rules are loaded and evaluated on this data without error.
    let rules = eventually(Duration::from_secs(30), "every alerting rule evaluated", || {
        let data = prometheus.api("rules", &[]);
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        let evaluated = |r: &Value| r["lastEvaluation"].as_str().is_some_and(|t| !t.starts_with("0001"));
        (!rules.is_empty() && rules.iter().all(evaluated)).then_some(rules)
    });
    for rule in &rules {
        eprintln!("rule {}: {} ({})", rule["name"], rule["health"], rule["state"]);
        assert_eq!(rule["health"], "ok", "rule {} does not evaluate: {rule:#}", rule["name"]);
    }
    assert_eq!(rules.len(), 5, "the rules of collector-config/prometheus/rules/gort.rules.yml");

    // What `scripts/demo --backends` prints: the same slowest exemplar, its
    // PromQL and its trace from Jaeger with the stall child.
    let report = Command::new(go_program("backendsreport", "default", &[], &[]))
        .args(["-prometheus", &format!("http://127.0.0.1:{}", prometheus.port)])
        .args(["-jaeger", &format!("http://127.0.0.1:{}", jaeger.query_port)])
        .output()
        .expect("run backendsreport");
    let printed = String::from_utf8_lossy(&report.stdout);
    eprintln!("backendsreport:\n{printed}{}", String::from_utf8_lossy(&report.stderr));
    assert!(report.status.success(), "backendsreport failed");
    assert!(printed.contains(&format!("-> trace {trace_id}")), "not the slowest exemplar's trace");
    assert!(printed.contains("PromQL") && printed.contains("stall child"), "{printed}");

    let _ = Command::new("kill").args(["-TERM", &svc.pid().to_string()]).status();
    svc.wait_line(Duration::from_secs(60), |l| l.contains("\"stopped\""));
    assert!(svc.wait_exit(Duration::from_secs(10)).success());
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort exits cleanly");
}
