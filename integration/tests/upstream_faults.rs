//! An upstream that misbehaves, as the OTLP specification sorts its answers:
//! a non-retryable status drops the batch at once (counted, never retried),
//! a retryable one is retried with backoff (the server's RetryInfo delay
//! honoured) until delivered exactly once, a stalled request is timed out
//! and retried, and connection resets and a name that does not resolve are
//! retried without a busy loop (gort's CPU and the connections it opens,
//! printed and bounded), a retry wait ends when gort is stopped (what it
//! could not deliver by the drain deadline counted as dropped), a partial
//! success is counted as the upstream's rejection and not retried, and the
//! configured headers reach the upstream with every export; `/health` and
//! `gort_exporter_upstream_failing_seconds` say so meanwhile. The service
//! is the OTel Go SDK (`otelapp`), the upstream `otlpsink -fault`.

use std::{
    collections::BTreeSet,
    net::TcpListener,
    path::Path,
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use gort_integration::{
    Proc, cpu_seconds, free_port, gort_binary, http_request, leading_number, run_otelapp,
    scratch::Scratch,
    selfmetrics::{self_metric, signal_gauge, wait_until},
    sink, start_sink_with,
};

const SPANS: u32 = 20;
const RETRY_INITIAL: Duration = Duration::from_millis(200);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(2);

struct Gort {
    proc: Proc,
    grpc: u16,
    telemetry: u16,
}

/// gort's pipeline alone (no probes), retrying from 200 ms up to 1 s, each
/// request given 1 s, and 2 s to drain at exit.
fn start_gort(dir: &Path, upstream: &str) -> Gort {
    let retry = format!("retry_initial_interval: {}ms\n  retry_max_interval: 1s", RETRY_INITIAL.as_millis());
    let (cmd, grpc, telemetry) = gort_command(dir, upstream, &retry);
    let mut proc = Proc::spawn(cmd, "[gort]");
    proc.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
    Gort { proc, grpc, telemetry }
}

/// gort's command line, with `retry` (YAML lines of `exporter`) for its
/// retry waits.
fn gort_command(dir: &Path, upstream: &str, retry: &str) -> (Command, u16, u16) {
    let (grpc, telemetry) = (free_port(), free_port());
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "exporter:\n  timeout: 1s\n  {retry}\n  retry_max_elapsed: 1m\n  shutdown_timeout: {}s\n",
            SHUTDOWN_TIMEOUT.as_secs()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--otlp", "--otlp-http", "off", "--config"])
        .arg(&config)
        .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}")])
        .args(["--upstream", upstream])
        .args(["--telemetry", &format!("127.0.0.1:{telemetry}")]);
    (cmd, grpc, telemetry)
}

impl Gort {
    fn spans(&self, counter: &str) -> u64 {
        self_metric(self.telemetry, counter, "spans")
    }

    fn health(&self) -> String {
        let (status, body) = http_request(self.telemetry, "GET", "/health", &[], b"");
        assert_eq!(status, 200, "an upstream's failure must not make gort unready: {body}");
        body
    }

    fn stop(mut self) {
        self.proc.terminate();
        assert!(self.proc.wait_exit(Duration::from_secs(30)).success(), "gort did not stop cleanly");
    }
}

/// The sink's trace export attempts as it announced them, once it stopped.
fn attempt_events(sink: &mut Proc) -> Vec<serde_json::Value> {
    sink.terminate();
    let _ = sink.wait_exit(Duration::from_secs(10));
    sink.seen
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == "attempt")
        .collect()
}

/// The sink's trace export attempts: (answer, unix ns).
fn attempts(sink: &mut Proc) -> Vec<(String, u64)> {
    attempt_events(sink)
        .iter()
        .map(|v| (v["answer"].as_str().unwrap().to_owned(), v["t_ns"].as_u64().unwrap()))
        .collect()
}

#[test]
fn a_partial_success_is_counted_and_the_configured_headers_arrive() {
    let dir = Scratch::new("faults-partial");
    let (mut sink, port) = start_sink_with(&dir.join("sink.jsonl"), &["-fault", "partial"]);
    let headers = "headers: {authorization: \"Bearer s3cret\"}";
    let (cmd, grpc, telemetry) = gort_command(&dir, &format!("http://127.0.0.1:{port}"), headers);
    let mut proc = Proc::spawn(cmd, "[gort]");
    proc.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
    let gort = Gort { proc, grpc, telemetry };
    let report = run_otelapp("grpc", gort.grpc, "faults-partial", SPANS, &[]);
    assert_eq!(report.spans.len(), SPANS as usize);
    wait_until(Duration::from_secs(10), "the spans to be sent", || {
        gort.spans("gort_exporter_sent_items_total") == u64::from(SPANS)
    });
    let rejected = gort.spans("gort_exporter_upstream_rejected_items_total");
    assert_eq!(gort.spans("gort_exporter_retries_total"), 0, "a partial success is not retried");
    assert_eq!(gort.spans("gort_exporter_dropped_items_total"), 0);
    gort.stop();
    let tried = attempt_events(&mut sink);
    eprintln!("{} attempt(s), {rejected} span(s) rejected: {tried:?}", tried.len());
    // The sink rejects one span of every export.
    assert_eq!(rejected, tried.len() as u64);
    assert!(tried.iter().all(|v| v["auth"] == "Bearer s3cret"), "{tried:?}");
    let arrived = std::fs::read_to_string(dir.join("sink.jsonl")).unwrap();
    assert_eq!(arrived.lines().filter(|l| l.contains("\"kind\":\"span\"")).count(), SPANS as usize);
}

#[test]
fn non_retryable_answers_drop_the_batch_at_once() {
    for code in [
        "InvalidArgument",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "FailedPrecondition",
        "Unimplemented",
        "Internal",
        "Unauthenticated",
        // Without RetryInfo: the server does not say it will recover.
        "ResourceExhausted",
    ] {
        let dir = Scratch::new(&format!("faults-{code}"));
        let (mut sink, port) = start_sink_with(&dir.join("sink.jsonl"), &["-fault", code]);
        let gort = start_gort(&dir, &format!("http://127.0.0.1:{port}"));
        let report = run_otelapp("grpc", gort.grpc, &format!("faults-{code}"), SPANS, &[]);
        assert_eq!(report.spans.len(), SPANS as usize);
        wait_until(Duration::from_secs(10), "the spans to be dropped", || {
            gort.spans("gort_exporter_dropped_items_total") == u64::from(SPANS)
        });
        let health = gort.health();
        assert!(health.contains("upstream failing spans") && health.contains(code), "{code}: {health}");
        assert_eq!(gort.spans("gort_exporter_retries_total"), 0, "{code} was retried");
        assert_eq!(gort.spans("gort_exporter_sent_items_total"), 0);
        gort.stop();
        let tried = attempts(&mut sink);
        eprintln!("{code}: {} attempt(s), dropped at once", tried.len());
        assert!(tried.iter().all(|(answer, _)| answer == code), "{code}: {tried:?}");
        // One attempt per batch: the service's 20 spans make one or two.
        assert!((1..=2).contains(&tried.len()), "{code}: {} attempts", tried.len());
    }
}

#[test]
fn retryable_answers_are_retried_until_delivered_once() {
    // (code, faults before success, RetryInfo delay)
    let cases = [
        ("Unavailable", 2, None),
        ("Canceled", 2, None),
        ("DeadlineExceeded", 2, None),
        ("Aborted", 2, None),
        ("OutOfRange", 2, None),
        ("DataLoss", 2, None),
        ("ResourceExhausted", 1, Some(Duration::from_millis(700))),
    ];
    for (code, faults, retry_after) in cases {
        let dir = Scratch::new(&format!("faults-retry-{code}"));
        let out = dir.join("sink.jsonl");
        let faults_arg = faults.to_string();
        let retry_arg = retry_after.map(|d| format!("{}ms", d.as_millis()));
        let mut args = vec!["-fault", code, "-faults", &faults_arg];
        if let Some(r) = &retry_arg {
            args.extend(["-retry-after", r]);
        }
        let (mut sink, port) = start_sink_with(&out, &args);
        let gort = start_gort(&dir, &format!("http://127.0.0.1:{port}"));
        let report = run_otelapp("grpc", gort.grpc, &format!("faults-retry-{code}"), SPANS, &[]);
        wait_until(Duration::from_secs(20), "the spans to be delivered", || {
            gort.spans("gort_exporter_sent_items_total") == u64::from(SPANS)
        });
        assert_eq!(gort.spans("gort_exporter_dropped_items_total"), 0, "{code}: spans dropped");
        assert_eq!(gort.spans("gort_exporter_retries_total"), faults, "{code}: one retry per fault");
        assert_eq!(signal_gauge(gort.telemetry, "gort_exporter_upstream_failing_seconds", "spans"), 0.0);
        assert_eq!(gort.health(), "ready\n");
        gort.stop();
        let tried = attempts(&mut sink);
        let ids: Vec<String> =
            sink::read(&out).into_iter().filter(|i| i.kind == "span").map(|i| i.id).collect();
        let unique: BTreeSet<&String> = ids.iter().collect();
        assert_eq!(ids.len(), unique.len(), "{code}: a span arrived twice");
        assert_eq!(unique, report.spans.iter().collect(), "{code}: not every span arrived");
        // Each fault's retry waited the server's delay, or ours jittered
        // (between half and all of the 200 ms first interval).
        let gaps: Vec<Duration> = tried
            .windows(2)
            .filter(|w| w[0].0 == code)
            .map(|w| Duration::from_nanos(w[1].1.saturating_sub(w[0].1)))
            .collect();
        eprintln!(
            "{code}: answers {:?}, gaps after a fault {gaps:?}",
            tried.iter().map(|t| &t.0).collect::<Vec<_>>()
        );
        let least = retry_after.unwrap_or(RETRY_INITIAL / 2);
        assert!(gaps.iter().all(|g| *g >= least), "{code}: retried sooner than {least:?}: {gaps:?}");
    }
}

#[test]
fn a_stalled_upstream_is_timed_out_and_retried() {
    let dir = Scratch::new("faults-stall");
    let out = dir.join("sink.jsonl");
    let (mut sink, port) = start_sink_with(&out, &["-fault", "stall", "-faults", "1"]);
    let gort = start_gort(&dir, &format!("http://127.0.0.1:{port}"));
    run_otelapp("grpc", gort.grpc, "faults-stall", SPANS, &[]);
    wait_until(Duration::from_secs(20), "the spans to be delivered", || {
        gort.spans("gort_exporter_sent_items_total") == u64::from(SPANS)
    });
    assert_eq!(gort.spans("gort_exporter_retries_total"), 1);
    gort.stop();
    let tried = attempts(&mut sink);
    assert_eq!(tried.first().map(|t| t.0.as_str()), Some("stall"), "{tried:?}");
    let gap = Duration::from_nanos(tried[1].1 - tried[0].1);
    eprintln!("stalled request retried after {gap:?} (exporter.timeout 1s)");
    assert!(gap >= Duration::from_secs(1), "the stalled request was given up before its timeout: {gap:?}");
    assert_eq!(sink::read(&out).iter().filter(|i| i.kind == "span").count(), SPANS as usize);
}

/// Accepts connections and closes them at once, counting them.
fn resetting_upstream() -> (u16, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            counted.fetch_add(1, Ordering::Relaxed);
            drop(conn);
        }
    });
    (port, count)
}

#[test]
fn resets_and_unresolvable_names_are_retried_without_a_busy_loop() {
    const WINDOW: Duration = Duration::from_secs(8);
    let (reset_port, connections) = resetting_upstream();
    for (what, upstream) in [
        ("connections reset", format!("http://127.0.0.1:{reset_port}")),
        ("a name that does not resolve", "http://gort-upstream.invalid:4317".to_owned()),
    ] {
        let dir = Scratch::new(&format!("faults-{}", what.replace(' ', "-")));
        let before = connections.load(Ordering::Relaxed);
        let gort = start_gort(&dir, &upstream);
        run_otelapp("grpc", gort.grpc, "faults-down", SPANS, &[]);
        let (started, cpu_before) = (Instant::now(), cpu_seconds(gort.proc.pid()));
        std::thread::sleep(WINDOW);
        let (cpu, elapsed) = (cpu_seconds(gort.proc.pid()) - cpu_before, started.elapsed());
        let opened = connections.load(Ordering::Relaxed) - before;
        let retries = gort.spans("gort_exporter_retries_total");
        let failing = signal_gauge(gort.telemetry, "gort_exporter_upstream_failing_seconds", "spans");
        let health = gort.health();
        eprintln!(
            "{what}: gort used {:.0} ms of CPU in {:.1} s ({:.2}% of a CPU); {opened} connections, \
             {retries} span retries; failing for {failing:.1} s; health: {health:?}",
            cpu * 1000.0,
            elapsed.as_secs_f64(),
            cpu / elapsed.as_secs_f64() * 100.0
        );
        assert_eq!(gort.spans("gort_exporter_sent_items_total"), 0);
        assert_eq!(gort.spans("gort_exporter_dropped_items_total"), 0, "{what}: spans dropped, not retried");
        assert!(retries > 0, "{what}: no retry");
        // Backoff from 200 ms to 1 s: about a dozen attempts per batch in
        // the window, for the few batches the service's spans, metrics
        // and logs make; a busy loop would make thousands.
        assert!(retries <= 60, "{what}: {retries} retries of spans in {elapsed:?}");
        assert!(opened <= 200, "{what}: {opened} connections in {elapsed:?}");
        assert!(failing >= WINDOW.as_secs_f64() * 0.8, "{what}: failing for only {failing} s");
        assert!(health.contains("upstream failing spans"), "{what}: {health}");
        gort.stop();
    }
}

#[test]
fn a_retry_wait_ends_at_shutdown_and_what_was_not_delivered_is_counted() {
    // Retry waits of 30 s or more, far past the 2 s drain at exit.
    let dir = Scratch::new("faults-shutdown");
    let (mut cmd, grpc, telemetry) = gort_command(
        &dir,
        &format!("http://127.0.0.1:{}", free_port()),
        "retry_initial_interval: 30s\n  retry_max_interval: 30s",
    );
    let log = dir.join("gort.log");
    cmd.stderr(std::fs::File::create(&log).unwrap());
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
    run_otelapp("grpc", grpc, "faults-shutdown", SPANS, &[]);
    wait_until(Duration::from_secs(10), "the spans' first retry wait", || {
        self_metric(telemetry, "gort_exporter_retries_total", "spans") > 0
    });
    let accepted = self_metric(telemetry, "gort_receiver_accepted_items_total", "spans");
    let stopped = Instant::now();
    gort.terminate();
    assert!(gort.wait_exit(Duration::from_secs(60)).success(), "gort did not stop cleanly");
    let took = stopped.elapsed();
    let log = std::fs::read_to_string(&log).unwrap();
    // Said at once for the first drop of a signal: "dropping N spans: ...".
    let dropped: u64 = log
        .lines()
        .filter_map(|l| {
            leading_number(l.split_once("dropping ")?.1)
                .filter(|(_, unit)| unit.starts_with(" spans"))
                .map(|(n, _)| n)
        })
        .sum();
    eprintln!("{accepted} spans accepted; gort stopped {took:?} after SIGTERM; {dropped} spans said dropped");
    assert_eq!(accepted, u64::from(SPANS));
    assert_eq!(dropped, accepted, "every span not delivered is counted as dropped:\n{log}");
    // The drain deadline and one export attempt, not the 30 s wait.
    assert!(took < SHUTDOWN_TIMEOUT + Duration::from_secs(3), "stopping took {took:?}");
    assert!(!log.contains("did not stop"), "{log}");
}
