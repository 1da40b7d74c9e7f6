//! gort as an OTLP pass-through against the same real Collector configured
//! as a pure pass-through (collector-config/relay.yaml: otlp receiver → otlp
//! exporter, no processors), gort with its defaults, with batching off and
//! with its persistent queue (`exporter.storage`, synced each second and
//! before each answer), with the same load generator and the same last
//! hop, side by side in one run; and the generator straight to the last hop,
//! which gives the latency the middle adds.
//!
//! The generator sends OTLP/gRPC trace exports of 500 spans at a fixed rate
//! (open loop), first 2 s of warm-up, then 10 s measured; each measured
//! span's start time is the moment it was sent, and the last hop (otlpsink
//! -count) measures the delay to its arrival, per request. Prints, per rate
//! and middle: spans/s delivered, the middle's CPU (cores), spans per
//! CPU-second (spans/s per core), p50/p99 end-to-end delay and what the
//! middle adds to the direct p99, and the middle's peak RSS. No root.
//!
//! Then a saturation run, where the middle is the bottleneck: the middle
//! pinned to one CPU, the generator and the last hop to the other, and the
//! generator offering far more than any middle takes (up to MAX_IN_FLIGHT
//! requests outstanding), each request the same bytes encoded once so the
//! generator's own cost stays small. It prints what each middle delivered per second
//! and per CPU-second; latencies are the queue's there, so none are printed.
//!
//! `cargo bench -p gort-integration --bench passthrough`
//! (GORT_BENCH_RATES, spans/s, default "10000,40000"; GORT_BENCH_REPS,
//! default 2; GORT_BENCH_SATURATE=0 skips the saturation run)

use std::{
    process::Command,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use gort::pipeline::{Payload, encoded::Encoded, unary};
use gort_integration::{
    Proc, cpu_seconds, free_port, go_program, gort_binary, peak_rss_mb, scratch::Scratch, start_collector,
};
use gort_proto::{
    common::InstrumentationScope,
    kv_int, kv_str,
    resource::Resource,
    trace::{ResourceSpans, ScopeSpans, Span, span::SpanKind},
    trace_service::{
        ExportTraceServiceRequest, ExportTraceServiceResponse, trace_service_client::TraceServiceClient,
    },
};
use tonic::{codegen::http::HeaderMap, transport::Channel};

const SPANS_PER_REQUEST: usize = 500;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);
/// Requests the generator lets be outstanding before it counts itself late.
const MAX_IN_FLIGHT: u64 = 256;
/// What the saturation run offers: more than any middle here takes on one CPU.
const SATURATING_RATE: u64 = 400_000;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Middle {
    Direct,
    Gort,
    /// gort with `exporter.batch_timeout: 0s`: each request forwarded as it
    /// comes (merged only with what is already waiting), as the Collector
    /// without a batch processor does.
    GortUnbatched,
    /// gort with the persistent queue (`exporter.storage`), synced every
    /// second (its default) or before every answer (`sync_interval: 0s`).
    GortStorage,
    GortStorageSynced,
    Collector,
}

impl Middle {
    fn label(self) -> &'static str {
        match self {
            Self::Direct => "direct (no middle)",
            Self::Gort => "gort (defaults)",
            Self::GortUnbatched => "gort (batch_timeout 0s)",
            Self::GortStorage => "gort (storage, sync 1s)",
            Self::GortStorageSynced => "gort (storage, sync 0s)",
            Self::Collector => "Collector v0.160.0",
        }
    }

    fn is_gort(self) -> bool {
        matches!(self, Self::Gort | Self::GortUnbatched | Self::GortStorage | Self::GortStorageSynced)
    }

    /// gort's configuration file for this middle, if not its defaults.
    fn gort_config(self, storage: &std::path::Path) -> Option<String> {
        let dir = storage.display();
        match self {
            Self::GortUnbatched => Some("exporter:\n  batch_timeout: 0s\n".to_owned()),
            Self::GortStorage => Some(format!("exporter:\n  storage:\n    directory: {dir}\n")),
            Self::GortStorageSynced => {
                Some(format!("exporter:\n  storage:\n    directory: {dir}\n    sync_interval: 0s\n"))
            }
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Default, Debug)]
struct Sample {
    /// Spans sent that never reached the last hop.
    lost: u64,
    spans_per_s: f64,
    cpu_cores: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
    /// Requests the middle failed, or the generator could not send in time.
    refused: u64,
    /// Requests the middle refused or failed.
    failed: u64,
}

/// One export request shaped like a busy HTTP service's: 500 server spans
/// with the usual attributes.
fn template() -> ExportTraceServiceRequest {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| Span {
            trace_id: (i as u128 * 7919 + 1).to_be_bytes().to_vec(),
            span_id: (i as u64 + 1).to_be_bytes().to_vec(),
            name: format!("GET /api/items/{{id}} {}", i % 7),
            kind: SpanKind::Server as i32,
            end_time_unix_nano: 1,
            attributes: vec![
                kv_str("http.request.method", "GET"),
                kv_str("http.route", "/api/items/{id}"),
                kv_int("http.response.status_code", 200),
                kv_str("url.path", format!("/api/items/{i}")),
                kv_str("server.address", "items.internal"),
                kv_str("user_agent.original", "loadgen/1.0"),
                kv_str("network.protocol.version", "1.1"),
                kv_int("items.count", i as i64),
            ],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv_str("service.name", "loadgen")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope { name: "loadgen".into(), ..Default::default() }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn stamped(template: &ExportTraceServiceRequest, start_ns: u64) -> ExportTraceServiceRequest {
    let mut r = template.clone();
    for s in r.resource_spans.iter_mut().flat_map(|r| &mut r.scope_spans).flat_map(|s| &mut s.spans) {
        s.start_time_unix_nano = start_ns;
        s.end_time_unix_nano = start_ns.max(1);
    }
    r
}

/// What the generator sent and what was acknowledged.
struct Sent {
    /// Spans acknowledged of those sent in the measured part.
    measured: u64,
    /// Spans acknowledged, the warm-up's included: all must arrive.
    acknowledged: u64,
    /// Requests not sent (the generator at MAX_IN_FLIGHT) or failed.
    refused: u64,
    /// Requests the middle answered with an error.
    failed: u64,
}

/// Sends at `rate` spans/s to `port` for WARMUP + MEASURE; calls
/// `measuring` when the measured part begins. `saturate`: every request is
/// the same bytes, encoded once, with no start time to measure delay by,
/// so the generator costs little beside the middle it saturates.
fn generate(port: u16, rate: u64, saturate: bool, measuring: impl FnOnce()) -> Sent {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let client = TraceServiceClient::connect(format!("http://127.0.0.1:{port}")).await.expect("connect");
        let client = client.max_decoding_message_size(64 << 20);
        let template = Arc::new(template());
        // Uncompressed, as the SDK's default exporter sends.
        let encoded = Encoded::new(&Payload::Traces(template.as_ref().clone()), None).expect("a small request");
        let channel =
            Channel::from_shared(format!("http://127.0.0.1:{port}")).unwrap().connect().await.unwrap();
        let period = Duration::from_secs_f64(SPANS_PER_REQUEST as f64 / rate as f64);
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let in_flight = Arc::new(AtomicU64::new(0));
        let refused = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let (measured, acknowledged) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let started = Instant::now();
        let mut measuring = Some(measuring);
        let mut tasks = Vec::new();
        loop {
            tick.tick().await;
            let elapsed = started.elapsed();
            if elapsed >= WARMUP + MEASURE {
                break;
            }
            let in_window = elapsed >= WARMUP;
            if in_window && let Some(m) = measuring.take() {
                m();
            }
            if in_flight.load(Ordering::Relaxed) >= MAX_IN_FLIGHT {
                refused.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let start_ns = if in_window {
                SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
            } else {
                0
            };
            let (mut client, channel, encoded, template, in_flight, refused, failed, measured, acknowledged) = (
                client.clone(),
                channel.clone(),
                encoded.clone(),
                template.clone(),
                in_flight.clone(),
                refused.clone(),
                failed.clone(),
                measured.clone(),
                acknowledged.clone(),
            );
            in_flight.fetch_add(1, Ordering::Relaxed);
            tasks.push(tokio::spawn(async move {
                let answer = match saturate {
                    false => client.export(stamped(&template, start_ns)).await.map(|_| ()),
                    true => unary::export::<ExportTraceServiceResponse>(&channel, &HeaderMap::new(), &encoded)
                        .await
                        .map(|_| ()),
                };
                match answer {
                    Ok(_) => {
                        acknowledged.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                        if in_window {
                            measured.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                        }
                    }
                    Err(_) => {
                        refused.fetch_add(1, Ordering::Relaxed);
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                in_flight.fetch_sub(1, Ordering::Relaxed);
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Sent {
            measured: load(&measured),
            acknowledged: load(&acknowledged),
            refused: load(&refused),
            failed: load(&failed),
        }
    })
}

/// Pins every thread of `pid` (threads made later inherit it) to `cpus`.
fn pin(pid: u32, cpus: &str) {
    let ok = Command::new("taskset")
        .args(["-a", "-p", "-c", cpus, &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "taskset could not pin pid {pid} to CPUs {cpus}");
}

/// One run of `middle` at `rate`; `saturate`: the middle alone on CPU 1,
/// everything else on CPU 0.
fn run(middle: Middle, rate: u64, saturate: bool) -> Sample {
    let sink_bin = go_program("otlpsink", "default", &[], &[]);
    let mut cmd = Command::new(sink_bin);
    cmd.arg("-count");
    let mut sink = Proc::spawn(cmd, "");
    if saturate {
        pin(sink.pid(), "0");
        pin(std::process::id(), "0");
    }
    let ready = sink.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    let sink_port: u16 = serde_json::from_str::<serde_json::Value>(&ready).unwrap()["addr"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let port = free_port();
    // On the disk the service's would be on (here / is one ext4 disk).
    let scratch = Scratch::new("passthrough");
    let storage = scratch.join("wal");
    let (mut gort, mut collector) = (None, None);
    let (target, pid) = match middle {
        Middle::Direct => (sink_port, None),
        m if m.is_gort() => {
            let mut cmd = Command::new(gort_binary());
            cmd.args(["run", "--otlp", "--otlp-http", "off", "--telemetry", "off"])
                .args(["--otlp-grpc", &format!("127.0.0.1:{port}")])
                .args(["--upstream", &format!("http://127.0.0.1:{sink_port}")]);
            if let Some(yaml) = m.gort_config(&storage) {
                let config = scratch.join("gort.yaml");
                std::fs::write(&config, yaml).unwrap();
                cmd.arg("--config").arg(config);
            }
            let mut g = Proc::spawn(cmd, "");
            g.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
            let pid = g.pid();
            gort = Some(g);
            (port, Some(pid))
        }
        _ => {
            let c = start_collector(port, sink_port);
            let pid = c.id();
            collector = Some(c);
            (port, Some(pid))
        }
    };
    if saturate && let Some(pid) = pid {
        pin(pid, "1");
    }
    let cpu_at = |pid: Option<u32>| pid.map_or(0.0, cpu_seconds);
    let mut cpu_start = 0.0;
    let mut measure_start = Instant::now();
    let sent = generate(target, rate, saturate, || {
        cpu_start = cpu_at(pid);
        measure_start = Instant::now();
    });
    let wall = measure_start.elapsed().as_secs_f64();
    let cpu = cpu_at(pid) - cpu_start;
    // Let what is queued arrive (gort batches up to 200 ms by default).
    std::thread::sleep(Duration::from_secs(2));
    let rss_mb = pid.map_or(0.0, peak_rss_mb);
    if let Some(mut g) = gort {
        let _ = Command::new("kill").args(["-TERM", &g.pid().to_string()]).status();
        g.wait_exit(Duration::from_secs(30));
    }
    drop(collector);
    let _ = Command::new("kill").args(["-TERM", &sink.pid().to_string()]).status();
    let line = sink.wait_line(Duration::from_secs(30), |l| l.contains("\"counted\""));
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    if saturate {
        let cpus =
            format!("0-{}", std::thread::available_parallelism().map_or(1, std::num::NonZero::get) - 1);
        pin(std::process::id(), &cpus);
    }
    Sample {
        // Warm-up and measured spans alike: what was acknowledged must arrive.
        lost: sent.acknowledged.saturating_sub(v["spans"].as_u64().unwrap()),
        spans_per_s: sent.measured as f64 / wall,
        cpu_cores: cpu / wall,
        p50_ms: v["p50_ms"].as_f64().unwrap(),
        p99_ms: v["p99_ms"].as_f64().unwrap(),
        rss_mb,
        refused: sent.refused,
        failed: sent.failed,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rates: Vec<u64> = std::env::var("GORT_BENCH_RATES")
        .unwrap_or_else(|_| "10000,40000".into())
        .split(',')
        .filter_map(|r| r.trim().parse().ok())
        .collect();
    let reps: usize = std::env::var("GORT_BENCH_REPS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let middles = [
        Middle::Direct,
        Middle::Gort,
        Middle::GortUnbatched,
        Middle::GortStorage,
        Middle::GortStorageSynced,
        Middle::Collector,
    ];
    println!("machine: {} CPUs; {SPANS_PER_REQUEST} spans per request; medians of {reps} runs", {
        std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
    });
    for rate in rates {
        let mut samples: Vec<(Middle, Sample)> = Vec::new();
        for _ in 0..reps {
            for m in middles {
                let s = run(m, rate, false);
                eprintln!("  {} @ {rate}/s: {s:?}", m.label());
                samples.push((m, s));
            }
        }
        let of = |m: Middle, f: fn(&Sample) -> f64| {
            median(samples.iter().filter(|(x, _)| *x == m).map(|(_, s)| f(s)).collect())
        };
        let direct_p99 = of(Middle::Direct, |s| s.p99_ms);
        println!("\noffered {rate} spans/s");
        println!(
            "| middle | spans/s | middle CPU (cores) | spans/s per core | p50 ms | p99 ms | p99 added ms | peak RSS MB | lost | requests failed |"
        );
        println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        for m in middles {
            let cores = of(m, |s| s.cpu_cores);
            let rate_done = of(m, |s| s.spans_per_s);
            let p99 = of(m, |s| s.p99_ms);
            let lost: u64 = samples.iter().filter(|(x, _)| *x == m).map(|(_, s)| s.lost).sum();
            let failed: u64 = samples.iter().filter(|(x, _)| *x == m).map(|(_, s)| s.refused).sum();
            let (per_core, added, rss) = if m == Middle::Direct {
                ("-".to_owned(), "-".to_owned(), "-".to_owned())
            } else {
                (
                    format!("{:.0}", rate_done / cores),
                    format!("{:.1}", p99 - direct_p99),
                    format!("{:.1}", of(m, |s| s.rss_mb)),
                )
            };
            let cores = if m == Middle::Direct { "-".to_owned() } else { format!("{cores:.3}") };
            println!(
                "| {} | {rate_done:.0} | {cores} | {per_core} | {:.1} | {p99:.1} | {added} | {rss} | {lost} | {failed} |",
                m.label(),
                of(m, |s| s.p50_ms)
            );
        }
        for g in middles.into_iter().filter(|m| m.is_gort()) {
            let ratio = |f: fn(&Sample) -> f64| of(g, f) / of(Middle::Collector, f);
            println!(
                "{} / Collector: spans per core {:.2}x, peak RSS {:.2}x",
                g.label(),
                1.0 / ratio(|s| s.cpu_cores / s.spans_per_s),
                ratio(|s| s.rss_mb)
            );
        }
    }
    if std::env::var("GORT_BENCH_SATURATE").is_ok_and(|v| v == "0") {
        return;
    }
    saturation(&middles[1..], reps);
}

/// Each middle alone on one CPU, offered more than it takes.
fn saturation(middles: &[Middle], reps: usize) {
    let mut samples: Vec<(Middle, Sample)> = Vec::new();
    for _ in 0..reps {
        for &m in middles {
            let s = run(m, SATURATING_RATE, true);
            eprintln!("  {} saturated: {s:?}", m.label());
            samples.push((m, s));
        }
    }
    let of = |m: Middle, f: fn(&Sample) -> f64| {
        median(samples.iter().filter(|(x, _)| *x == m).map(|(_, s)| f(s)).collect())
    };
    println!("\nsaturation: the middle alone on one CPU, offered {SATURATING_RATE} spans/s");
    println!(
        "| middle | spans/s delivered | middle CPU (cores) | spans/s per core | peak RSS MB | lost | requests refused |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- |");
    for &m in middles {
        let lost: u64 = samples.iter().filter(|(x, _)| *x == m).map(|(_, s)| s.lost).sum();
        let failed: u64 = samples.iter().filter(|(x, _)| *x == m).map(|(_, s)| s.failed).sum();
        println!(
            "| {} | {:.0} | {:.3} | {:.0} | {:.1} | {lost} | {failed} |",
            m.label(),
            of(m, |s| s.spans_per_s),
            of(m, |s| s.cpu_cores),
            of(m, |s| s.spans_per_s / s.cpu_cores),
            of(m, |s| s.rss_mb)
        );
    }
    for g in middles.iter().copied().filter(|m| m.is_gort()) {
        println!(
            "{} / Collector at saturation: spans/s {:.2}x, spans per core {:.2}x",
            g.label(),
            of(g, |s| s.spans_per_s) / of(Middle::Collector, |s| s.spans_per_s),
            of(g, |s| s.spans_per_s / s.cpu_cores) / of(Middle::Collector, |s| s.spans_per_s / s.cpu_cores)
        );
    }
}
