//! Crash safety of the persistent queue (`exporter.storage`): a sender
//! exports spans to gort without pause while gort is killed with SIGKILL at
//! random moments and started again on the same directory, first with its
//! upstream down (everything it acknowledged is only in its log), then up.
//! Between two runs, one record of the log is damaged and a record cut
//! short is appended, as a disk or a crash mid-write would leave them.
//! Afterwards every span gort acknowledged has reached the sink, at least
//! once, except the damaged record's, which gort counted and skipped; the
//! cut record was counted as truncated; a clean stop leaves no log behind.
//! No root.

use std::{
    collections::{BTreeSet, HashMap},
    hash::BuildHasher,
    path::{Path, PathBuf},
    process::Command,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use gort_integration::{
    Proc, free_port, gort_binary,
    scratch::Scratch,
    selfmetrics::{gauge, self_metric, wait_until},
    sink, start_sink,
};
use gort_proto::{
    kv_str,
    resource::Resource,
    trace::{ResourceSpans, ScopeSpans, Span},
    trace_service::{ExportTraceServiceRequest, trace_service_client::TraceServiceClient},
};
use prost::Message;

const SPANS_PER_REQUEST: u64 = 20;
/// Kills with the upstream down, then with it up.
const KILLS_DOWN: usize = 3;
const KILLS_UP: usize = 3;

fn name(n: u64, i: u64) -> String {
    format!("r{n}.{i}")
}

fn request(n: u64) -> ExportTraceServiceRequest {
    let spans = (0..SPANS_PER_REQUEST)
        .map(|i| Span {
            trace_id: (u128::from(n) << 32 | u128::from(i) | 1 << 100).to_be_bytes().to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: name(n, i),
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv_str("service.name", "crash")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans { spans, ..Default::default() }],
            ..Default::default()
        }],
    }
}

/// A random duration in `range` (ms).
fn random_ms(range: std::ops::Range<u64>) -> Duration {
    let r = std::hash::RandomState::new().hash_one(Instant::now());
    Duration::from_millis(range.start + r % (range.end - range.start))
}

struct Gort {
    proc: Proc,
    log: PathBuf,
}

fn start_gort(dir: &Path, run: usize, grpc: u16, telemetry: u16, upstream: u16) -> Gort {
    let config = dir.join("gort.yaml");
    let log = dir.join(format!("gort-{run}.log"));
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--otlp", "--config"])
        .arg(&config)
        .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}"), "--otlp-http", "off"])
        .args(["--upstream", &format!("http://127.0.0.1:{upstream}")])
        .args(["--telemetry", &format!("127.0.0.1:{telemetry}")])
        .env("RUST_LOG", "info");
    cmd.stderr(std::fs::File::create(&log).unwrap());
    let mut proc = Proc::spawn(cmd, "[gort]");
    proc.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));
    Gort { proc, log }
}

/// The log's records as the test reads them (the format is documented in
/// gort's `storage::record`): (offset, length, span names).
fn records(segment: &Path) -> Vec<(usize, usize, Vec<String>)> {
    let bytes = std::fs::read(segment).unwrap();
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + 24 <= bytes.len() && bytes[pos..pos + 4] == *b"gWAL" {
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        if pos + 24 + len > bytes.len() {
            break;
        }
        let r = ExportTraceServiceRequest::decode(&bytes[pos + 24..pos + 24 + len]).unwrap();
        let names = r.resource_spans.iter().flat_map(|r| &r.scope_spans).flat_map(|s| &s.spans);
        out.push((pos, 24 + len, names.map(|s| s.name.clone()).collect()));
        pos += 24 + len;
    }
    out
}

fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    v.sort();
    v
}

/// The counts in a run's "storage: replayed ..." line.
fn replayed_line(log: &Path) -> Option<String> {
    std::fs::read_to_string(log).ok()?.lines().find(|l| l.contains("storage: replayed")).map(str::to_owned)
}

#[test]
fn acknowledged_spans_survive_sigkill_and_a_damaged_log() {
    let dir = Scratch::new("crash");
    let storage = dir.join("queue");
    let (mut sink, sink_port) = start_sink(&dir.join("sink.jsonl"));
    std::fs::write(
        dir.join("gort.yaml"),
        format!(
            "exporter:\n  storage:\n    directory: {}\n  timeout: 2s\n  retry_initial_interval: 200ms\n  retry_max_interval: 1s\n",
            storage.display()
        ),
    )
    .unwrap();
    let (grpc, telemetry, nobody) = (free_port(), free_port(), free_port());

    // The sender: one request after another, as an SDK would, retrying a
    // request until gort acknowledges it.
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let sender = {
        let (acked, stop) = (acked.clone(), stop.clone());
        rt.spawn(async move {
            let mut n = 0;
            let mut client = None;
            while !stop.load(Ordering::Relaxed) {
                if client.is_none() {
                    client = TraceServiceClient::connect(format!("http://127.0.0.1:{grpc}")).await.ok();
                }
                let ok = match &mut client {
                    Some(c) => c.export(request(n)).await.is_ok(),
                    None => false,
                };
                if ok {
                    acked.lock().unwrap().push(n);
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(4)).await;
                } else {
                    client = None;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        })
    };

    let mut run = 0;
    let mut gort = start_gort(&dir, run, grpc, telemetry, nobody);
    let mut recovered = Vec::new();
    let mut damaged_names = BTreeSet::new();
    for kill in 0..KILLS_DOWN + KILLS_UP {
        std::thread::sleep(random_ms(400..1500));
        gort.proc.kill();
        gort.proc.wait_exit(Duration::from_secs(10));
        if kill == KILLS_DOWN - 1 {
            // With the upstream down, all that was acknowledged is in the
            // log: damage one record in the middle of the newest segment,
            // and leave a record cut short at its end.
            let newest = segments(&storage).pop().expect("a segment in the log");
            let rs = records(&newest);
            assert!(rs.len() >= 3, "{} holds {} records", newest.display(), rs.len());
            let (offset, len, names) = &rs[rs.len() / 2];
            damaged_names.extend(names.iter().cloned());
            let mut bytes = std::fs::read(&newest).unwrap();
            bytes[offset + len / 2] ^= 0x5a;
            let (o, l, _) = &rs[0];
            let first = bytes[*o..*o + l].to_vec();
            bytes.extend_from_slice(&first[..l / 2]);
            std::fs::write(&newest, &bytes).unwrap();
        }
        run += 1;
        let upstream = if kill + 1 < KILLS_DOWN { nobody } else { sink_port };
        gort = start_gort(&dir, run, grpc, telemetry, upstream);
        wait_until(Duration::from_secs(60), "gort to replay its log", || replayed_line(&gort.log).is_some());
        let line = replayed_line(&gort.log).unwrap();
        eprintln!("run {run}: {line}");
        recovered.push(self_metric(telemetry, "gort_storage_recovered_items_total", "spans"));
        if kill == KILLS_DOWN - 1 {
            assert_eq!(gauge(telemetry, "gort_storage_damaged_records_total"), 1.0, "{line}");
            assert_eq!(gauge(telemetry, "gort_storage_truncated_records_total"), 1.0, "{line}");
        }
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    rt.block_on(sender).unwrap();
    let acked: Vec<u64> = acked.lock().unwrap().clone();
    let expected: BTreeSet<String> =
        acked.iter().flat_map(|n| (0..SPANS_PER_REQUEST).map(move |i| name(*n, i))).collect();
    let sink_file = dir.join("sink.jsonl");
    let arrived = || -> HashMap<String, u32> {
        let mut seen = HashMap::new();
        for item in sink::read(&sink_file) {
            if item.kind == "span" && item.service == "crash" {
                *seen.entry(item.name).or_default() += 1;
            }
        }
        seen
    };
    wait_until(Duration::from_secs(60), "every acknowledged span but the damaged ones at the sink", || {
        let seen = arrived();
        expected.iter().all(|n| seen.contains_key(n) || damaged_names.contains(n))
    });
    gort.proc.terminate();
    assert!(gort.proc.wait_exit(Duration::from_secs(30)).success());
    sink.terminate();
    sink.wait_exit(Duration::from_secs(10));

    let seen = arrived();
    let lost: Vec<&String> = expected.iter().filter(|n| !seen.contains_key(*n)).collect();
    let duplicates: u32 = seen.values().map(|c| c - 1).sum();
    let damaged_arrived = damaged_names.iter().filter(|n| seen.contains_key(*n)).count();
    eprintln!(
        "{} kills ({KILLS_DOWN} with the upstream down); {} requests acknowledged ({} spans); \
         recovered at each start: {recovered:?} spans; lost: {} (the damaged record held {}, of which {damaged_arrived} \
         arrived through an earlier copy); duplicates at the sink: {duplicates}",
        KILLS_DOWN + KILLS_UP,
        acked.len(),
        expected.len(),
        lost.len(),
        damaged_names.len(),
    );
    assert!(acked.len() > 100, "the sender got only {} requests through", acked.len());
    assert!(
        recovered.iter().take(KILLS_DOWN).all(|r| *r > 0),
        "every start after a kill with the upstream down replays what was acknowledged: {recovered:?}"
    );
    assert!(
        lost.iter().all(|n| damaged_names.contains(*n)),
        "acknowledged spans lost: {:?}",
        lost.iter().filter(|n| !damaged_names.contains(**n)).take(10).collect::<Vec<_>>()
    );
    // The last request may have been written and not yet answered when
    // the sender stopped: it is the only one not acknowledged.
    let last = acked.last().copied().unwrap_or(0);
    let unknown: Vec<&String> = seen
        .keys()
        .filter(|n| !expected.contains(*n))
        .filter(|n| {
            n.strip_prefix('r')
                .and_then(|r| r.split_once('.'))
                .is_none_or(|(r, _)| r != (last + 1).to_string())
        })
        .collect();
    assert!(unknown.is_empty(), "the sink got spans nobody sent: {unknown:?}");
    assert!(segments(&storage).is_empty(), "a clean stop with everything delivered leaves no log");
}
