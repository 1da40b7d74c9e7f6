//! Overload: four senders offer gort spans as fast as it takes them, several
//! times what its upstream accepts (a sink behind 250 ms of network delay,
//! batches of 2,000 spans), with spans of 2 KB each, for
//! `GORT_OVERLOAD_SECONDS` (20 by default; minutes when run by hand).
//! gort's memory stays under the bound its queue's bytes set, whatever is
//! offered; every refusal is `UNAVAILABLE` (retryable); requests it accepts
//! are answered quickly (p99 printed and bounded); and once the senders
//! stop and the queue drains, the books balance exactly: what the senders
//! were told was accepted = gort's accepted = sent + dropped, with nothing
//! dropped, and the sink counted every span sent. The refusals are logged,
//! the first at once and then summed once per 10 s, and the log's sums are
//! the refusals counted. No root.

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use gort_integration::{
    DelayProxy, Proc, free_port, gort_binary, leading_number, peak_rss_mb, rss_kib,
    scratch::Scratch,
    selfmetrics::{gauge, self_metric, wait_until},
    start_sink_with,
};
use gort_proto::{
    kv_str,
    resource::Resource,
    trace::{ResourceSpans, ScopeSpans, Span},
    trace_service::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
};
use tonic::Code;

const SENDERS: usize = 4;
const SPANS_PER_REQUEST: usize = 250;
/// Each span carries an attribute this large: 2 KB spans fill the byte
/// bound long before the item bound (200,000).
const SPAN_PAYLOAD: usize = 2048;
/// gort's queue bound for the test.
const QUEUE_MIB: u64 = 16;

fn request(sender: usize, n: u64) -> ExportTraceServiceRequest {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| Span {
            trace_id: ((sender as u128) << 96 | u128::from(n) << 32 | i as u128 | 1).to_be_bytes().to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: "GET /api/items/{id}".into(),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            attributes: vec![kv_str("payload", "x".repeat(SPAN_PAYLOAD))],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv_str("service.name", "overload")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

#[derive(Default)]
struct Books {
    accepted_spans: AtomicU64,
    refused: AtomicU64,
    /// Any status but OK and UNAVAILABLE: (code, message) of the first.
    other: std::sync::Mutex<Vec<String>>,
    latencies: std::sync::Mutex<Vec<Duration>>,
}

#[test]
fn overload_keeps_memory_bounded_refusals_retryable_and_the_books_exact() {
    let seconds: u64 = std::env::var("GORT_OVERLOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(20);
    let dir = Scratch::new("overload");
    let (mut sink, sink_port) = start_sink_with(&dir.join("sink"), &["-count"]);
    let proxy = DelayProxy::start(sink_port, Duration::from_millis(250));
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "exporter:\n  queue_mib: {QUEUE_MIB}\n  batch_items: 2000\n  retry_initial_interval: 200ms\n  retry_max_interval: 1s\n"
        ),
    )
    .unwrap();
    let (grpc, telemetry) = (free_port(), free_port());
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--otlp", "--config"])
        .arg(&config)
        .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}"), "--otlp-http", "off"])
        .args(["--upstream", &format!("http://127.0.0.1:{}", proxy.port)])
        .args(["--telemetry", &format!("127.0.0.1:{telemetry}")]);
    let log = dir.join("gort.log");
    cmd.stderr(std::fs::File::create(&log).unwrap());
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
    let idle_kib = rss_kib(gort.pid());

    let books = Arc::new(Books::default());
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (books, stop) = (books.clone(), stop.clone());
            rt.spawn(async move {
                let mut client =
                    TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await.expect("connect");
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    match client.export(request(s, n)).await {
                        Ok(_) => {
                            books.accepted_spans.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                            books.latencies.lock().unwrap().push(started.elapsed());
                            n += 1;
                        }
                        Err(status) if status.code() == Code::Unavailable => {
                            books.refused.fetch_add(1, Ordering::Relaxed);
                            // An SDK backs off; a short one keeps the offer high.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(status) => books.other.lock().unwrap().push(format!(
                            "{:?}: {}",
                            status.code(),
                            status.message()
                        )),
                    }
                }
            })
        })
        .collect();

    // Sample gort's memory and queue while the senders run.
    let mut peak_queue_bytes = 0.0f64;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        peak_queue_bytes = peak_queue_bytes.max(gauge(telemetry, "gort_queue_bytes"));
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for s in senders {
        rt.block_on(s).unwrap();
    }
    let offered_for = started.elapsed();
    // Settled on the spans' books, not on `gort_queue_items`: gort's own
    // metrics enter the queue every second, so that gauge is rarely 0.
    wait_until(Duration::from_secs(120), "the spans to leave the queue", || {
        let sent = self_metric(telemetry, "gort_exporter_sent_items_total", "spans");
        let dropped = self_metric(telemetry, "gort_exporter_dropped_items_total", "spans");
        self_metric(telemetry, "gort_receiver_accepted_items_total", "spans") == sent + dropped
    });

    let accepted = self_metric(telemetry, "gort_receiver_accepted_items_total", "spans");
    let sent = self_metric(telemetry, "gort_exporter_sent_items_total", "spans");
    let dropped = self_metric(telemetry, "gort_exporter_dropped_items_total", "spans");
    let refused_items = self_metric(telemetry, "gort_receiver_refused_items_total", "spans");
    let peak_kib = (peak_rss_mb(gort.pid()) * 1024.0) as u64;
    gort.terminate();
    assert!(gort.wait_exit(Duration::from_secs(30)).success());
    sink.terminate();
    let counted = sink.wait_line(Duration::from_secs(10), |l| l.contains("\"counted\""));
    let counted: serde_json::Value = serde_json::from_str(&counted).unwrap();

    // "refused a request of N spans: ..." once, then "requests refused for
    // want of room (spans): TIMES in the last 10s, ITEMS spans; ...".
    let (mut lines, mut logged_times, mut logged_items) = (0, 0, 0);
    let leading = |text: &str| leading_number(text).unwrap().0;
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        // A summary quotes the last refusal's line: it is looked for first.
        if let Some((_, rest)) = line.split_once("requests refused for want of room (spans): ") {
            let items = rest.split_once(", ").map(|(_, after)| leading(after)).unwrap();
            (lines, logged_times, logged_items) =
                (lines + 1, logged_times + leading(rest), logged_items + items);
        } else if let Some((_, rest)) = line.split_once("refused a request of ") {
            (lines, logged_times, logged_items) = (lines + 1, logged_times + 1, logged_items + leading(rest));
        }
    }
    let mut lat = books.latencies.lock().unwrap().clone();
    lat.sort();
    let q = |f: f64| lat.get(((lat.len().max(1) - 1) as f64 * f) as usize).copied().unwrap_or_default();
    let told = books.accepted_spans.load(Ordering::Relaxed);
    let refused = books.refused.load(Ordering::Relaxed);
    let bound_kib = idle_kib + rss_bound_kib(QUEUE_MIB);
    eprintln!(
        "{} s of overload: {told} spans accepted ({:.0}/s, what the upstream took), {refused} requests refused \
         ({refused_items} spans; offered {:.1}x what was accepted); accepted requests answered in p50 {:?}, p99 {:?}, max {:?}; \
         gort RSS idle {} MiB, peak {} MiB (bound {} MiB); queue peak {:.1} MiB of {QUEUE_MIB}; \
         books: accepted {accepted} = sent {sent} + dropped {dropped}; sink counted {}",
        offered_for.as_secs(),
        told as f64 / offered_for.as_secs_f64(),
        (told + refused_items) as f64 / told.max(1) as f64,
        q(0.5),
        q(0.99),
        q(1.0),
        idle_kib / 1024,
        peak_kib / 1024,
        bound_kib / 1024,
        peak_queue_bytes / f64::from(1 << 20),
        counted["spans"],
    );
    eprintln!("refusals in gort's log: {lines} lines saying {logged_times} requests, {logged_items} spans");
    let other = books.other.lock().unwrap();
    assert!(other.is_empty(), "refusals other than UNAVAILABLE: {other:?}");
    assert!(
        refused > 0 && refused_items >= told,
        "not overloaded: offered less than twice what was accepted"
    );
    assert_eq!(accepted, told, "gort's accepted count differs from what the senders were told");
    assert_eq!((sent, dropped), (accepted, 0), "accepted = sent + dropped, nothing dropped");
    assert_eq!(counted["spans"].as_u64(), Some(sent), "the sink counted other than what gort sent");
    assert!(
        peak_queue_bytes <= ((QUEUE_MIB << 20) + (2 << 20)) as f64,
        "the queue held {peak_queue_bytes} bytes, over its bound of {QUEUE_MIB} MiB plus one request"
    );
    assert!(peak_kib <= bound_kib, "gort's RSS reached {peak_kib} KiB, over the bound of {bound_kib} KiB");
    assert!(q(0.99) < Duration::from_millis(500), "accepted requests waited {:?} at p99", q(0.99));
    assert_eq!(
        (logged_times, logged_items),
        (refused, refused_items),
        "the log's refusals are not those counted"
    );
    // The first at once, one per 10 s after, and the rest at shutdown.
    assert!(lines <= offered_for.as_secs() / 10 + 3, "{lines} log lines of refusals in {offered_for:?}");
}

/// What gort may hold above its idle RSS under overload, as the README
/// states it: the queue's bytes decoded (a span decodes to about twice its
/// encoded size), the batches in flight encoded and compressed, and what the
/// receivers are decoding (four requests at most in this test).
fn rss_bound_kib(queue_mib: u64) -> u64 {
    (3 * queue_mib + 32) * 1024
}
