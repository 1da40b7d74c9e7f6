//! gort's OTLP pipeline between a real Go service (the OpenTelemetry Go SDK
//! with its OTLP exporters) and a real OpenTelemetry Collector (built by
//! scripts/setup), which writes what it receives to files: what arrives must
//! be exactly what the service emitted, through faults included. No root.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use gort_integration::{
    Collector, DelayProxy, Proc, free_port, go_program,
    goprog::OtelappReport,
    gort_binary, http_request, run_otelapp,
    scratch::Scratch,
    selfmetrics::{gauge, self_metric, wait_until},
    sink as items, start_collector, start_collector_with, start_sink,
};
use gort_proto::{
    kv_str,
    resource::Resource,
    trace::{ResourceSpans, ScopeSpans, Span},
    trace_service::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
};

struct Ports {
    grpc: u16,
    http: u16,
    upstream: u16,
    telemetry: u16,
}

fn ports() -> Ports {
    Ports { grpc: free_port(), http: free_port(), upstream: free_port(), telemetry: free_port() }
}

fn start_gort(p: &Ports, config: Option<&Path>) -> Proc {
    start_gort_to(p, config, &format!("http://127.0.0.1:{}", p.upstream))
}

fn start_gort_to(p: &Ports, config: Option<&Path>, upstream: &str) -> Proc {
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--otlp"])
        .args(["--otlp-grpc", &format!("127.0.0.1:{}", p.grpc)])
        .args(["--otlp-http", &format!("127.0.0.1:{}", p.http)])
        .args(["--upstream", upstream])
        .args(["--telemetry", &format!("127.0.0.1:{}", p.telemetry)]);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let mut g = Proc::spawn(cmd, "[gort]");
    g.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
    g
}

fn stop(mut gort: Proc) {
    assert!(Command::new("kill").args(["-TERM", &gort.pid().to_string()]).status().unwrap().success());
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort did not stop cleanly");
}

fn stop_child(c: Collector) {
    drop(c);
}

/// Runs the instrumented Go service once; returns its report.
fn emit(protocol: &str, port: u16, service: &str, spans: u32) -> OtelappReport {
    emit_with(protocol, port, service, spans, &[])
}

fn emit_with(protocol: &str, port: u16, service: &str, spans: u32, extra: &[&str]) -> OtelappReport {
    run_otelapp(protocol, port, service, spans, extra)
}

/// Items of `kind` (span, point, log) that reached the sink.
fn arrived(sink: &Path, kind: &str) -> Vec<items::Item> {
    items::read(sink).into_iter().filter(|i| i.kind == kind).collect()
}

/// (trace_id/span_id, service.name, attribute keys) of every span in the sink.
fn sink_spans(sink: &Path) -> Vec<(String, String, Vec<String>)> {
    arrived(sink, "span").into_iter().map(|s| (s.id, s.service, s.attrs)).collect()
}

/// A fresh directory with the sink's output file in it; starts the sink.
fn sink(name: &str) -> (Scratch, PathBuf, Proc, u16) {
    let dir = Scratch::new(&format!("sink-{name}"));
    let out = dir.join("sink.jsonl");
    let (proc, port) = start_sink(&out);
    (dir, out, proc, port)
}

fn expected_ids(reports: &[&OtelappReport]) -> BTreeSet<String> {
    reports.iter().flat_map(|r| r.spans.iter().cloned()).collect()
}

/// Asserts the sink holds exactly `want` spans, each once.
fn assert_exact_spans(sink: &Path, want: &BTreeSet<String>) {
    let got = sink_spans(sink);
    let ids: Vec<&String> = got.iter().map(|(id, _, _)| id).collect();
    let unique: BTreeSet<String> = ids.iter().map(|s| (*s).clone()).collect();
    assert_eq!(ids.len(), unique.len(), "a span arrived twice");
    assert_eq!(&unique, want, "the spans upstream differ from those emitted");
}

#[test]
fn spans_metrics_and_logs_arrive_upstream_exactly_over_grpc_and_http() {
    let p = ports();
    let (_dir, out, sink, sink_port) = sink("exact");
    let collector = start_collector(p.upstream, sink_port);
    let gort = start_gort(&p, None);
    let over_grpc = emit("grpc", p.grpc, "otelapp-grpc", 200);
    let over_http = emit("http", p.http, "otelapp-http", 200);
    let want = expected_ids(&[&over_grpc, &over_http]);
    assert_eq!(want.len(), 400);
    wait_until(Duration::from_secs(30), "400 spans upstream", || sink_spans(&out).len() >= 400);
    wait_until(Duration::from_secs(30), "100 log records upstream", || arrived(&out, "log").len() >= 100);
    wait_until(Duration::from_secs(30), "12 metric points upstream", || arrived(&out, "point").len() >= 12);
    assert_eq!(self_metric(p.telemetry, "gort_receiver_accepted_items_total", "spans"), 400);
    assert_eq!(self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans"), 400);
    assert_eq!(self_metric(p.telemetry, "gort_exporter_dropped_items_total", "spans"), 0);
    stop(gort);
    stop_child(collector);
    drop(sink);

    assert_exact_spans(&out, &want);
    for (id, service, attrs) in sink_spans(&out) {
        assert!(service == "otelapp-grpc" || service == "otelapp-http", "{id}: resource lost ({service:?})");
        assert_eq!(attrs, ["op.index", "op.kind"], "{id}: attributes changed");
    }
    let logs: Vec<String> = arrived(&out, "log").into_iter().map(|l| l.body).collect();
    assert_eq!(logs.len(), 100);
    for i in 0..50 {
        assert_eq!(logs.iter().filter(|b| **b == format!("log line {i}")).count(), 2, "log line {i}");
    }
    // Per service: 5 counter series and 1 histogram, each one data point.
    let points = arrived(&out, "point");
    assert_eq!(points.len(), 12);
    assert_eq!(points.iter().filter(|p| p.metric == "otelapp.requests").count(), 10);
}

#[test]
fn a_lone_request_leaves_at_once_not_after_batch_timeout() {
    let (dir, sink_out, sink_proc, sink_port) = sink("lone");
    let config = dir.join("gort.yaml");
    // A batch that waited for its timer would arrive after 30 s.
    std::fs::write(&config, "exporter:\n  batch_timeout: 30s\n").unwrap();
    let p = ports();
    let gort = start_gort_to(&p, Some(&config), &format!("http://127.0.0.1:{sink_port}"));
    let report = emit("grpc", p.grpc, "lone", 20);
    // The SDK's exports are answered before it exits.
    let exited = Instant::now();
    wait_until(Duration::from_secs(10), "the spans upstream", || arrived(&sink_out, "span").len() == 20);
    eprintln!("20 spans upstream {:?} after the service's last export was answered", exited.elapsed());
    assert_exact_spans(&sink_out, &expected_ids(&[&report]));
    stop(gort);
    sink_proc.terminate();
}

fn fault_config(dir: &Path, queue_items: u64) -> PathBuf {
    let path = dir.join("gort.yaml");
    std::fs::write(
        &path,
        format!(
            "exporter:\n  queue_items: {queue_items}\n  retry_initial_interval: 200ms\n  retry_max_interval: 1s\n  retry_max_elapsed: 5m\n"
        ),
    )
    .unwrap();
    path
}

/// The upstream Collector is down for 30 s (GORT_OUTAGE_SECONDS) while the
/// service exports, then comes up: nothing within the queue's capacity is
/// lost, the books balance exactly, and the lag shows while it lasts.
#[test]
fn an_upstream_outage_loses_nothing_within_queue_capacity() {
    let outage: u64 = std::env::var("GORT_OUTAGE_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(30);
    let p = ports();
    let (dir, out, sink, sink_port) = sink("outage");
    let config = fault_config(&dir, 100_000);
    let gort = start_gort(&p, Some(&config));
    let started = Instant::now();
    let report = emit("grpc", p.grpc, "otelapp-outage", 300);
    let emitted = Instant::now();
    let accepted = self_metric(p.telemetry, "gort_receiver_accepted_items_total", "spans");
    assert_eq!(accepted, 300);
    std::thread::sleep(Duration::from_secs(outage).saturating_sub(started.elapsed()));
    assert_eq!(self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans"), 0);
    assert!(
        self_metric(p.telemetry, "gort_exporter_retries_total", "spans") > 0,
        "no retry during the outage"
    );
    let lag = gauge(p.telemetry, "gort_queue_oldest_age_seconds");
    let held = gauge(p.telemetry, "gort_queue_items");
    eprintln!("after {outage} s of outage: {held} items held, oldest {lag:.1} s");
    assert!(held >= 300.0 + 50.0, "spans and logs are held: {held}");
    assert!(lag >= emitted.elapsed().as_secs_f64() * 0.9, "the lag must show the outage: {lag} s");
    let collector = start_collector(p.upstream, sink_port);
    // Every signal: each batch waits out its own retry backoff, so the
    // metric points may leave a second after the spans.
    wait_until(Duration::from_secs(60), "the queue to drain", || {
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans") == 300
            && self_metric(p.telemetry, "gort_exporter_sent_items_total", "log_records") == 50
            && self_metric(p.telemetry, "gort_exporter_sent_items_total", "metric_points")
                == report.metric_points
    });
    for signal in ["spans", "metric_points", "log_records"] {
        let a = self_metric(p.telemetry, "gort_receiver_accepted_items_total", signal);
        let s = self_metric(p.telemetry, "gort_exporter_sent_items_total", signal);
        let d = self_metric(p.telemetry, "gort_exporter_dropped_items_total", signal);
        assert_eq!((a, d), (s, 0), "{signal}: accepted {a} = sent {s} + dropped {d}");
    }
    wait_until(Duration::from_secs(10), "the sink to flush", || sink_spans(&out).len() >= 300);
    stop(gort);
    stop_child(collector);
    drop(sink);
    assert_exact_spans(&out, &expected_ids(&[&report]));
}

/// A backlog of large requests, queued while the upstream was down, leaves
/// in batches the upstream takes: a real Collector refuses a message over
/// 4 MiB (its receiver's default), and not retryably, so one batch merging
/// the backlog (eight 1.5 MB requests sent at once here) would be lost.
#[test]
fn a_backlog_of_large_requests_leaves_in_batches_the_upstream_takes() {
    const REQUESTS: u64 = 8;
    let p = ports();
    let (dir, out, sink, sink_port) = sink("large-backlog");
    let config = fault_config(&dir, 100_000);
    let gort = start_gort(&p, Some(&config));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async {
        let client = TraceServiceClient::connect(format!("http://127.0.0.1:{}", p.grpc)).await.unwrap();
        // At once: they wait together for the first request's retries.
        let sends: Vec<_> = (0..REQUESTS)
            .map(|i| {
                let mut client = client.clone();
                tokio::spawn(async move { client.export(large_request(i)).await.map(|_| ()) })
            })
            .collect();
        for sent in sends {
            sent.await.unwrap().expect("gort takes a 1.5 MB request");
        }
    });
    assert_eq!(self_metric(p.telemetry, "gort_receiver_accepted_items_total", "spans"), REQUESTS);
    let collector = start_collector(p.upstream, sink_port);
    let done = || {
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans")
            + self_metric(p.telemetry, "gort_exporter_dropped_items_total", "spans")
    };
    wait_until(Duration::from_secs(60), "the backlog to leave", || done() == REQUESTS);
    assert_eq!(
        self_metric(p.telemetry, "gort_exporter_dropped_items_total", "spans"),
        0,
        "a batch the upstream refused"
    );
    wait_until(Duration::from_secs(10), "the sink to flush", || {
        arrived(&out, "span").iter().filter(|s| s.name == "large").count() as u64 == REQUESTS
    });
    stop(gort);
    stop_child(collector);
    drop(sink);
}

/// One span with a 1.5 MB attribute.
fn large_request(i: u64) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv_str("service.name", "large")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: u128::from(i + 1).to_be_bytes().to_vec(),
                    span_id: (i + 1).to_be_bytes().to_vec(),
                    name: "large".into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    attributes: vec![kv_str("large", "x".repeat(1_500_000))],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A queue too small for what the service sends while the upstream is down:
/// gort refuses with UNAVAILABLE, the Go SDK keeps the spans and retries,
/// and once the upstream is back every span arrives; the refusals are counted.
#[test]
fn a_full_queue_makes_the_sdk_retry_instead_of_losing_spans() {
    let p = ports();
    let (dir, out, sink, sink_port) = sink("full");
    let config = fault_config(&dir, 100);
    let gort = start_gort(&p, Some(&config));
    let upstream = p.upstream;
    let collector = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(3));
        start_collector(upstream, sink_port)
    });
    let report = emit("grpc", p.grpc, "otelapp-full", 300);
    let collector = collector.join().unwrap();
    let refused = self_metric(p.telemetry, "gort_receiver_refused_items_total", "spans");
    eprintln!(
        "spans refused while the queue was full: {refused}; accepted so far {}, sent {}",
        self_metric(p.telemetry, "gort_receiver_accepted_items_total", "spans"),
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans")
    );
    assert!(refused > 0, "the queue never filled");
    wait_until(Duration::from_secs(30), "every span upstream", || sink_spans(&out).len() >= 300);
    let (a, s, d) = (
        self_metric(p.telemetry, "gort_receiver_accepted_items_total", "spans"),
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans"),
        self_metric(p.telemetry, "gort_exporter_dropped_items_total", "spans"),
    );
    assert_eq!((a, s, d), (300, 300, 0));
    stop(gort);
    stop_child(collector);
    drop(sink);
    assert_exact_spans(&out, &expected_ids(&[&report]));
}

/// Bad requests get clear statuses and gort keeps serving.
#[test]
fn malformed_and_oversize_requests_are_refused_clearly() {
    let p = ports();
    let dir = Scratch::new("bad");
    let config = dir.join("gort.yaml");
    std::fs::write(&config, "receiver:\n  max_recv_msg_size_mib: 1\n").unwrap();
    let gort = start_gort(&p, Some(&config));
    let pb = [("Content-Type", "application/x-protobuf")];
    // A span whose length prefix runs past the end: truncated protobuf.
    let (status, body) = http_request(p.http, "POST", "/v1/traces", &pb, &[0x0a, 0x20, 0x0a]);
    assert_eq!(status, 400, "{body}");
    let (status, _) = http_request(p.http, "POST", "/v1/traces", &[("Content-Type", "text/plain")], b"hello");
    assert_eq!(status, 415);
    let (status, _) = http_request(
        p.http,
        "POST",
        "/v1/logs",
        &[("Content-Type", "application/json")],
        b"{\"resourceLogs\":",
    );
    assert_eq!(status, 400);
    let (status, _) = http_request(p.http, "POST", "/v1/metrics", &pb, &vec![0u8; 2 << 20]);
    assert_eq!(status, 413);
    let gz = [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "gzip")];
    let (status, _) = http_request(p.http, "POST", "/v1/traces", &gz, b"not gzip at all");
    assert_eq!(status, 400);
    // Still serving.
    let (status, _) =
        http_request(p.http, "POST", "/v1/traces", &[("Content-Type", "application/json")], b"{}");
    assert_eq!(status, 200);
    let (status, _) = http_request(p.telemetry, "GET", "/health", &[], b"");
    assert_eq!(status, 200);
    let (_, metrics) = http_request(p.telemetry, "GET", "/metrics", &[], b"");
    assert!(metrics.contains("gort_receiver_malformed_requests_total 4"), "{metrics}");
    assert!(metrics.contains("gort_receiver_oversize_requests_total 1"), "{metrics}");
    stop(gort);
}

/// An export over gRPC larger than the limit: the OTel Go SDK gets
/// RESOURCE_EXHAUSTED, which it must not retry (gort counts one oversize
/// request, not several), and the spans after it still arrive, exactly.
#[test]
fn an_oversize_grpc_message_is_refused_without_retry_and_gort_keeps_serving() {
    let p = ports();
    let (dir, out, sink, sink_port) = sink("oversize");
    let config = dir.join("gort.yaml");
    std::fs::write(&config, "receiver:\n  max_recv_msg_size_mib: 1\n").unwrap();
    let collector = start_collector(p.upstream, sink_port);
    let gort = start_gort(&p, Some(&config));
    let report = emit_with("grpc", p.grpc, "otelapp-oversize", 50, &["-big-span-bytes", "2000000"]);
    let big = report.big_span.as_ref().expect("otelapp reports the oversize span");
    eprintln!("oversize span: {big:?}");
    let error = big.error.as_str();
    assert!(error.contains("ResourceExhausted"), "the SDK saw {error:?}, not RESOURCE_EXHAUSTED");
    assert_eq!(gauge(p.telemetry, "gort_receiver_oversize_requests_total"), 1.0, "the SDK retried");
    wait_until(Duration::from_secs(30), "50 spans upstream", || sink_spans(&out).len() >= 50);
    assert_eq!(self_metric(p.telemetry, "gort_receiver_accepted_items_total", "spans"), 50);
    stop(gort);
    stop_child(collector);
    drop(sink);
    assert_exact_spans(&out, &expected_ids(&[&report]));
}

fn slow_config(dir: &Path, timeout: &str) -> PathBuf {
    let path = dir.join("gort.yaml");
    std::fs::write(
        &path,
        format!(
            "exporter:\n  timeout: {timeout}\n  retry_initial_interval: 200ms\n  retry_max_interval: 1s\n  retry_max_elapsed: 5m\n"
        ),
    )
    .unwrap();
    path
}

/// 300 ms of latency each way between gort and the Collector, within the
/// exporter's timeout: the service is never refused (gort answers from its
/// queue), nothing is retried, and every span arrives exactly once.
#[test]
fn a_slow_upstream_within_the_timeout_is_waited_for() {
    let p = ports();
    let (dir, out, sink, sink_port) = sink("slow");
    let collector = start_collector(p.upstream, sink_port);
    let proxy = DelayProxy::start(p.upstream, Duration::from_millis(300));
    let config = slow_config(&dir, "5s");
    let gort = start_gort(&Ports { upstream: proxy.port, ..p }, Some(&config));
    let emitted = Instant::now();
    let report = emit("grpc", p.grpc, "otelapp-slow", 300);
    // Acknowledged: the answer crossed back too.
    wait_until(Duration::from_secs(60), "300 spans acknowledged", || {
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans") >= 300
    });
    let delivered = emitted.elapsed();
    eprintln!("300 spans through a 300 ms + 300 ms link, acknowledged in {delivered:?}");
    // The latency was really there: a request and its answer cross the
    // link twice (HTTP/2 sends the request without waiting for the
    // server's settings).
    assert!(delivered >= Duration::from_millis(600), "the proxy did not delay: {delivered:?}");
    for (name, want) in [
        ("gort_receiver_accepted_items_total", 300),
        ("gort_receiver_refused_items_total", 0),
        ("gort_exporter_sent_items_total", 300),
        ("gort_exporter_retries_total", 0),
        ("gort_exporter_dropped_items_total", 0),
    ] {
        assert_eq!(self_metric(p.telemetry, name, "spans"), want, "{name}");
    }
    stop(gort);
    stop_child(collector);
    drop(sink);
    assert_exact_spans(&out, &expected_ids(&[&report]));
}

/// The upstream answers slower than the exporter's timeout (1 s against
/// 700 ms each way): every attempt times out, gort keeps the spans and
/// retries (DEADLINE_EXCEEDED is retryable), the lag shows it, and when the
/// link recovers every span arrives. A timed-out attempt may still have
/// reached the Collector: OTLP delivery is at least once, so duplicates are
/// counted and reported, never losses.
#[test]
fn an_upstream_slower_than_the_timeout_is_retried_without_loss() {
    let p = ports();
    let (dir, out, sink, sink_port) = sink("slower");
    let collector = start_collector(p.upstream, sink_port);
    let proxy = DelayProxy::start(p.upstream, Duration::from_millis(700));
    let config = slow_config(&dir, "1s");
    let gort = start_gort(&Ports { upstream: proxy.port, ..p }, Some(&config));
    let report = emit("grpc", p.grpc, "otelapp-slower", 300);
    wait_until(Duration::from_secs(30), "a retry after a timeout", || {
        self_metric(p.telemetry, "gort_exporter_retries_total", "spans") >= 2
    });
    assert_eq!(self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans"), 0);
    assert!(gauge(p.telemetry, "gort_queue_oldest_age_seconds") >= 1.0, "the lag must show");
    proxy.set_delay(Duration::ZERO);
    wait_until(Duration::from_secs(60), "the queue to drain", || {
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans") == 300
    });
    assert_eq!(self_metric(p.telemetry, "gort_exporter_dropped_items_total", "spans"), 0);
    assert_eq!(self_metric(p.telemetry, "gort_receiver_refused_items_total", "spans"), 0);
    wait_until(Duration::from_secs(10), "the sink to flush", || sink_spans(&out).len() >= 300);
    stop(gort);
    stop_child(collector);
    drop(sink);
    let want = expected_ids(&[&report]);
    let got: Vec<String> = sink_spans(&out).into_iter().map(|(id, _, _)| id).collect();
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(unique, want, "a span was lost (or invented)");
    eprintln!(
        "{} spans arrived, {} of them again after a timed-out attempt",
        got.len(),
        got.len() - unique.len()
    );
}

/// Runs openssl; panics with its output when it fails.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").current_dir(dir).args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A CA (`name`.pem/.key) and a certificate it signs (`leaf`.pem/.key) for
/// 127.0.0.1 with the given extended key usage.
fn ca_and_leaf(dir: &Path, name: &str, leaf: &str, usage: &str) {
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    if !dir.join(format!("{name}.pem")).exists() {
        let (key, pem, subj) =
            (format!("{name}.key"), format!("{name}.pem"), format!("/CN=gort test {name}"));
        let mut args = vec!["req", "-x509", "-days", "2", "-subj", &subj, "-keyout", &key, "-out", &pem];
        args.extend(ec);
        openssl(dir, &args);
    }
    let ext = format!("{leaf}.ext");
    std::fs::write(dir.join(&ext), format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"))
        .unwrap();
    let (key, csr, pem) = (format!("{leaf}.key"), format!("{leaf}.csr"), format!("{leaf}.pem"));
    let mut args = vec!["req", "-subj", "/CN=127.0.0.1", "-keyout", &key, "-out", &csr];
    args.extend(ec);
    openssl(dir, &args);
    let (ca, ca_key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-days",
            "2",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-extfile",
            &ext,
            "-out",
            &pem,
        ],
    );
}

/// A Collector receiving OTLP/gRPC over mutual TLS: its certificate
/// `server`, client certificates verified by `client_ca`.
fn tls_collector_config(dir: &Path, server: &str, client_ca: &str) -> PathBuf {
    let path = dir.join(format!("collector-{server}.yaml"));
    let d = dir.display();
    std::fs::write(
        &path,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: ${{env:GORT_RELAY_ENDPOINT}}\n        tls:\n          cert_file: {d}/{server}.pem\n          key_file: {d}/{server}.key\n          client_ca_file: {d}/{client_ca}.pem\n\
             exporters:\n  otlp:\n    endpoint: ${{env:GORT_SINK_ENDPOINT}}\n    tls:\n      insecure: true\n\
             service:\n  telemetry:\n    metrics:\n      level: none\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp]\n    metrics:\n      receivers: [otlp]\n      exporters: [otlp]\n    logs:\n      receivers: [otlp]\n      exporters: [otlp]\n"
        ),
    )
    .unwrap();
    path
}

/// Mutual TLS to the upstream, then the upstream's certificate is replaced
/// by one from another CA: delivery fails (and is retried, nothing is
/// lost) until the CA file gort trusts is rewritten, which gort picks up
/// without a restart; then every span arrives, exactly once.
#[test]
fn rotated_tls_files_are_reloaded_without_a_restart() {
    let p = ports();
    let (dir, out, sink, sink_port) = sink("tls");
    ca_and_leaf(&dir, "ca-a", "server-a", "serverAuth");
    ca_and_leaf(&dir, "ca-a", "client", "clientAuth");
    ca_and_leaf(&dir, "ca-b", "server-b", "serverAuth");
    let trusted = dir.join("trusted-ca.pem");
    std::fs::copy(dir.join("ca-a.pem"), &trusted).unwrap();
    let config = dir.join("gort.yaml");
    let d = dir.display();
    std::fs::write(
        &config,
        format!(
            "exporter:\n  retry_initial_interval: 200ms\n  retry_max_interval: 1s\n  tls:\n    ca_file: {}\n    cert_file: {d}/client.pem\n    key_file: {d}/client.key\n    reload_interval: 1s\n",
            trusted.display()
        ),
    )
    .unwrap();
    let collector =
        start_collector_with(&tls_collector_config(&dir, "server-a", "ca-a"), p.upstream, sink_port);
    let gort = start_gort_to(&p, Some(&config), &format!("https://127.0.0.1:{}", p.upstream));
    let first = emit("grpc", p.grpc, "otelapp-tls-1", 50);
    wait_until(Duration::from_secs(30), "50 spans over mutual TLS", || {
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans") == 50
    });

    stop_child(collector);
    let collector =
        start_collector_with(&tls_collector_config(&dir, "server-b", "ca-a"), p.upstream, sink_port);
    let second = emit("grpc", p.grpc, "otelapp-tls-2", 50);
    wait_until(Duration::from_secs(30), "retries against an untrusted certificate", || {
        self_metric(p.telemetry, "gort_exporter_retries_total", "spans") >= 2
    });
    assert_eq!(self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans"), 50);
    assert_eq!(gauge(p.telemetry, "gort_exporter_tls_reloads_total"), 0.0);

    // Written as a rotation tool would: a new file renamed over the old.
    std::fs::copy(dir.join("ca-b.pem"), dir.join("trusted-ca.pem.new")).unwrap();
    std::fs::rename(dir.join("trusted-ca.pem.new"), &trusted).unwrap();
    wait_until(Duration::from_secs(30), "the held spans to go out after the reload", || {
        self_metric(p.telemetry, "gort_exporter_sent_items_total", "spans") == 100
    });
    assert_eq!(gauge(p.telemetry, "gort_exporter_tls_reloads_total"), 1.0);
    assert_eq!(self_metric(p.telemetry, "gort_exporter_dropped_items_total", "spans"), 0);
    wait_until(Duration::from_secs(10), "the sink to flush", || sink_spans(&out).len() >= 100);
    stop(gort);
    stop_child(collector);
    drop(sink);
    assert_exact_spans(&out, &expected_ids(&[&first, &second]));
}

/// Runs the SDK app over gRPC with TLS, trusting `ca`; its report, or the
/// error it gave up with.
fn emit_tls(port: u16, ca: &Path, service: &str) -> Result<OtelappReport, String> {
    let out = Command::new(go_program("otelapp", "default", &[], &[]))
        .args(["-protocol", "grpc", "-endpoint", &format!("127.0.0.1:{port}"), "-ca"])
        .arg(ca)
        .args(["-service", service, "-spans", "30", "-logs", "5"])
        // A refused handshake is retried until this (the SDK's 10 s default,
        // per signal, would make the refused runs the test's longest part).
        .env("OTEL_EXPORTER_OTLP_TIMEOUT", "3000")
        .output()
        .unwrap();
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    if !out.status.success() {
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        return Err(v["error"].as_str().map_or(line.clone(), str::to_owned));
    }
    Ok(serde_json::from_str(&line).unwrap_or_else(|e| panic!("otelapp: {line:?}: {e}")))
}

/// The receiver's own certificate rotated under a running gort: clients
/// that trust the new CA get in without a restart, the old one is no longer
/// served, and every span admitted over TLS arrives once.
#[test]
fn the_receivers_rotated_certificate_is_served_without_a_restart() {
    let p = ports();
    let (dir, out, sink, sink_port) = sink("receiver-tls");
    ca_and_leaf(&dir, "ca-a", "gort-a", "serverAuth");
    ca_and_leaf(&dir, "ca-b", "gort-b", "serverAuth");
    let (cert, key) = (dir.join("gort.pem"), dir.join("gort.key"));
    std::fs::copy(dir.join("gort-a.pem"), &cert).unwrap();
    std::fs::copy(dir.join("gort-a.key"), &key).unwrap();
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "receiver:\n  tls:\n    cert_file: {}\n    key_file: {}\n    reload_interval: 1s\n",
            cert.display(),
            key.display()
        ),
    )
    .unwrap();
    let collector = start_collector(p.upstream, sink_port);
    let gort = start_gort(&p, Some(&config));
    let (ca_a, ca_b) = (dir.join("ca-a.pem"), dir.join("ca-b.pem"));
    let first = emit_tls(p.grpc, &ca_a, "tls-a").unwrap_or_else(|e| panic!("over TLS with ca-a: {e}"));
    let refused = emit_tls(p.grpc, &ca_b, "tls-b-early").expect_err("ca-b trusted a ca-a certificate");
    eprintln!("before the rotation, trusting ca-b: {refused}");
    assert_eq!(gauge(p.telemetry, "gort_receiver_tls_reloads_total"), 0.0);

    // Written as a rotation tool would: new files renamed over the old.
    std::fs::copy(dir.join("gort-b.key"), dir.join("gort.key.new")).unwrap();
    std::fs::copy(dir.join("gort-b.pem"), dir.join("gort.pem.new")).unwrap();
    std::fs::rename(dir.join("gort.key.new"), &key).unwrap();
    std::fs::rename(dir.join("gort.pem.new"), &cert).unwrap();
    wait_until(Duration::from_secs(30), "the receiver to load the new certificate", || {
        gauge(p.telemetry, "gort_receiver_tls_reloads_total") >= 1.0
    });
    let second = emit_tls(p.grpc, &ca_b, "tls-b").unwrap_or_else(|e| panic!("over TLS with ca-b: {e}"));
    let refused = emit_tls(p.grpc, &ca_a, "tls-a-late").expect_err("the old certificate is still served");
    eprintln!("after the rotation, trusting ca-a: {refused}");
    wait_until(Duration::from_secs(30), "60 spans upstream", || sink_spans(&out).len() >= 60);
    stop(gort);
    stop_child(collector);
    drop(sink);
    assert_exact_spans(&out, &expected_ids(&[&first, &second]));
}
