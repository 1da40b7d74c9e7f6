//! The wait profile, opened the way a Go developer opens one: `go tool
//! pprof` fetching `/debug/pprof/wait?seconds=N` from gort's telemetry
//! endpoint.
//!
//! - `leaky` (never told to start leaking) holds 30 goroutines idle on a
//!   channel and 20 workers on an empty job channel: over the profile's 3 s,
//!   that is 90 s of waiting at `main.idler` and 60 s at `main.worker`, the
//!   ground truth the estimate must meet to within one census interval per
//!   goroutine. A bad `seconds` gets a 400 with a sentence.
//! - `tracedsvc` with trace linkage: requests whose handler (or a goroutine
//!   it started) waits 1.5 s on a mutex. Focused on one request's trace id,
//!   the profile holds that wait at the handler's function, within one
//!   census interval of what the handler measured itself, and nothing of
//!   the goroutine that held the lock, which serves no span.
//! - The same requests with `exporter.profiles` on: the wait profile goes
//!   upstream as OTLP profiles through a real Collector (profiles feature
//!   gate, `collector-config/profiles.yaml`) to an OTLP/gRPC server here.
//!   Summed over the profiles of the run, the samples linked to each
//!   request's span at the handler's function hold what it measured, to
//!   within one census interval, under the service's own name.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, http_request, require_root, scratch::Scratch, sink::Injection,
    start_collector_with_profiles, wait_for_port,
};
use gort_proto::{
    common::any_value,
    profiles_service::{
        ExportProfilesServiceRequest, ExportProfilesServiceResponse,
        profiles_service_server::{ProfilesService, ProfilesServiceServer},
    },
    trace_service::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
};
use serde_json::Value;

const INTERVAL: Duration = Duration::from_millis(250);

/// The cumulative wait (ms) at `function` in `go tool pprof -top -cum`.
fn cum_ms(top: &str, function: &str) -> f64 {
    let row = top
        .lines()
        .find(|l| l.split_whitespace().last() == Some(function))
        .unwrap_or_else(|| panic!("no {function} in:\n{top}"));
    let cum = row.split_whitespace().nth(3).expect("the cum column");
    cum.strip_suffix("ms").unwrap_or(cum).parse().unwrap_or_else(|e| panic!("{cum}: {e}"))
}

/// gort attached to `pid` with its telemetry endpoint on, censuses every
/// `INTERVAL` and an upstream that is down (the profile needs none);
/// `run` is added to the `run` section of its configuration, `yaml` after
/// it. Returns gort, the telemetry port and a scratch directory.
fn start_gort(pid: u32, run: &str, yaml: &str) -> (Proc, u16, Scratch) {
    let (telemetry, dead) = (free_port(), free_port());
    let dir = Scratch::new(&format!("wait-profile-{pid}"));
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "run:\n  interval: {}ms\n{run}exporter:\n  endpoint: http://127.0.0.1:{dead}\n\
             telemetry:\n  endpoint: 127.0.0.1:{telemetry}\n{yaml}",
            INTERVAL.as_millis()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &pid.to_string(), "--config"]).arg(&config);
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("gort:   mode:"));
    (gort, telemetry, dir)
}

/// Builds `go tool pprof` (Go builds its tools on first use, which takes
/// seconds: a profile fetched by a first run would start late).
fn pprof_built() {
    static BUILT: std::sync::Once = std::sync::Once::new();
    BUILT.call_once(|| {
        let out = Command::new("go").args(["tool", "pprof", "-h"]).output().expect("run go tool pprof -h");
        assert!(out.status.success(), "go tool pprof -h: {}", String::from_utf8_lossy(&out.stderr));
    });
}

/// `go tool pprof -top -cum` over the wait profile of the next `seconds`,
/// fetched the way a developer would; the profile is saved in `dir`, whose
/// path is returned with the top.
fn fetch_profile(telemetry: u16, seconds: u64, dir: &Path) -> (String, PathBuf) {
    pprof_built();
    let url = format!("http://127.0.0.1:{telemetry}/debug/pprof/wait?seconds={seconds}");
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-cum", "-sample_index=wait", "-unit=ms"])
        .arg(&url)
        .env("PPROF_TMPDIR", dir)
        .output()
        .expect("run go tool pprof");
    let top = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{}{top}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "go tool pprof failed");
    let saved = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .find(|e| e.path().extension() == Some("gz".as_ref()))
        .expect("go tool pprof saved the profile")
        .path();
    (top, saved)
}

/// `go tool pprof` of a saved profile with `args` (output on stdout).
fn pprof(profile: &Path, args: &[&str]) -> String {
    let out = Command::new("go")
        .args(["tool", "pprof"])
        .args(args)
        .arg(profile)
        .output()
        .expect("run go tool pprof");
    assert!(out.status.success(), "go tool pprof {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn go_tool_pprof_opens_the_wait_profile_and_it_holds_the_known_waits() {
    if !require_root("go_tool_pprof_opens_the_wait_profile_and_it_holds_the_known_waits") {
        return;
    }
    const SECONDS: u64 = 3;
    gort_binary();
    let binary = go_program("leaky", "default", &[], &[]);
    let mut p = Proc::spawn(Command::new(&binary), "[leaky]");
    let ready: Value =
        serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""))).unwrap();
    let (mut gort, telemetry, dir) = start_gort(
        p.pid(),
        "  probes: none\n",
        "receiver:\n  grpc_endpoint: \"off\"\n  http_endpoint: \"off\"\nlinkage:\n  enabled: false\n",
    );

    let (status, body) = http_request(telemetry, "GET", "/debug/pprof/wait?seconds=0", &[], b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("seconds must be a whole number from 1 to 600"), "{body}");

    let (top, saved) = fetch_profile(telemetry, SECONDS, &dir);
    let tags = pprof(&saved, &["-tags", "-sample_index=wait"]);
    eprintln!("{tags}");
    p.send_line("exit");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    let _ = gort.wait_exit(Duration::from_secs(20));

    let span = Duration::from_secs(SECONDS);
    for (function, goroutines) in
        [("main.idler", ready["idle"].as_u64().unwrap()), ("main.worker", ready["workers"].as_u64().unwrap())]
    {
        let got = cum_ms(&top, function);
        let (low, high) = (
            goroutines as f64 * (span - INTERVAL).as_secs_f64() * 1e3,
            goroutines as f64 * (span + INTERVAL).as_secs_f64() * 1e3,
        );
        eprintln!(
            "{function}: {got:.0} ms of waiting, {goroutines} goroutines × {SECONDS} s = {} ms",
            goroutines * SECONDS * 1000
        );
        assert!(low <= got && got <= high, "{function}: {got} ms, not in [{low}, {high}]");
    }
    assert!(top.contains("Type: wait"), "{top}");
    assert!(tags.contains("wait_reason") && tags.contains("chan_receive"), "{tags}");
    assert!(tags.contains(&format!("{}", p.pid())), "the pid label: {tags}");
    assert!(!tags.contains("trace_id"), "no span without linkage: {tags}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// `tracedsvc` (GOMAXPROCS=1) exporting to gort on `gort_port`, its mutex
/// stalls held for `HOLD`, its handlers writing what they measured to a
/// truth file.
struct StallingService {
    binary: PathBuf,
    svc: Proc,
    addr: String,
    truth: PathBuf,
    _dir: Scratch,
}

const HOLD: Duration = Duration::from_millis(1500);

impl StallingService {
    fn start(gort_port: u16, name: &str) -> Self {
        let binary = go_program("tracedsvc", "default", &[], &[]);
        let dir = Scratch::new(&format!("{name}-service"));
        let truth = dir.join("truth");
        let mut cmd = Command::new(&binary);
        cmd.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{gort_port}")]);
        cmd.args(["-mutex-hold", &format!("{}ms", HOLD.as_millis())]).arg("-truth").arg(&truth);
        let mut svc = Proc::spawn(cmd, "[svc]");
        let addr = svc.listen_addr();
        Self { binary, svc, addr, truth, _dir: dir }
    }

    /// Light load for `seconds`, a stall of one of `stalls` every 200 ms.
    fn load(&self, seconds: u32, stalls: &str) {
        let mut load = Command::new(&self.binary);
        load.args(["-load", &self.addr, "-duration", &format!("{seconds}s"), "-rate", "20", "-clients", "1"]);
        load.args(["-stall-every", "200ms", "-stalls", stalls]);
        let mut load = Proc::spawn(load, "[load]");
        load.wait_line(Duration::from_secs(60), |l| l.contains("load-done"));
        assert!(load.wait_exit(Duration::from_secs(10)).success());
    }

    /// Stops the service; returns what its handlers measured.
    fn stop(mut self) -> Vec<Injection> {
        let _ = Command::new("kill").args(["-TERM", &self.svc.pid().to_string()]).status();
        self.svc.wait_line(Duration::from_secs(60), |l| l.contains("\"stopped\""));
        assert!(self.svc.wait_exit(Duration::from_secs(10)).success());
        std::fs::read_to_string(&self.truth)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("truth {l:?}: {e}")))
            .collect()
    }
}

#[test]
fn a_request_s_waits_are_in_the_profile_under_its_trace_id() {
    if !require_root("a_request_s_waits_are_in_the_profile_under_its_trace_id") {
        return;
    }
    gort_binary();
    let gort_port = free_port();
    let svc = StallingService::start(gort_port, "wait-profile");
    pprof_built();
    let (mut gort, telemetry, dir) = start_gort(
        svc.svc.pid(),
        "",
        &format!("receiver:\n  grpc_endpoint: 127.0.0.1:{gort_port}\n  http_endpoint: \"off\"\n"),
    );
    wait_for_port(gort_port, Duration::from_secs(30));

    // The profile covers the whole load: a mutex stall, a goroutine the
    // handler started stalled on the mutex, and so on in turn, each held
    // for HOLD, beside light plain traffic.
    let profile = std::thread::spawn({
        let dir = dir.to_path_buf();
        move || fetch_profile(telemetry, 10, &dir)
    });
    std::thread::sleep(Duration::from_millis(500));
    svc.load(6, "mutex,fanout");
    let (top, saved) = profile.join().expect("the profile");
    let truths = svc.stop();
    let _ = gort.wait_exit(Duration::from_secs(30));

    assert!(truths.len() >= 3, "at least a mutex and a fanout stall, and another: {truths:?}");
    assert!(top.contains("main.(*server).holderLoop"), "the lock holder's sleep is in the profile:\n{top}");
    for t in &truths {
        // The handler's own wait is in `do`; a started goroutine's in its
        // closure, whose stack does not hold `do`.
        let function = if t.kind == "fanout" { "main.(*server).do.func1" } else { "main.(*server).do" };
        let focus = format!("trace_id={}", t.trace_id);
        let top = pprof(&saved, &["-top", "-cum", "-sample_index=wait", "-unit=ms", "-tagfocus", &focus]);
        let got = cum_ms(&top, function);
        let injected = t.injected_ns / 1e6;
        eprintln!(
            "{} {}: {got:.0} ms at {function} in the profile, {injected:.0} ms measured",
            t.kind, t.trace_id
        );
        let slack = INTERVAL.as_secs_f64() * 1e3;
        assert!(
            (got - injected).abs() <= slack,
            "{}: {got} ms against {injected} ms measured, ± {slack}",
            t.kind
        );
        assert!(
            !top.contains("holderLoop"),
            "the holder serves no span, yet is under {}:\n{top}",
            t.trace_id
        );
        let tags = pprof(&saved, &["-tags", "-tagfocus", &focus]);
        assert!(tags.contains(&t.span_id), "the span id label of {}: {tags}", t.trace_id);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// The last hop of the profiles test: an OTLP/gRPC server keeping the
/// profiles the Collector relays (and taking its spans, unread).
#[derive(Clone, Default)]
struct ProfilesSink(std::sync::Arc<std::sync::Mutex<Vec<ExportProfilesServiceRequest>>>);

#[tonic::async_trait]
impl ProfilesService for ProfilesSink {
    async fn export(
        &self,
        request: tonic::Request<ExportProfilesServiceRequest>,
    ) -> Result<tonic::Response<ExportProfilesServiceResponse>, tonic::Status> {
        self.0.lock().unwrap().push(request.into_inner());
        Ok(tonic::Response::new(ExportProfilesServiceResponse::default()))
    }
}

#[tonic::async_trait]
impl TraceService for ProfilesSink {
    async fn export(
        &self,
        _: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl ProfilesSink {
    /// Serves on a free port from a thread of its own; returns the port.
    fn start(&self) -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let sink = self.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
                // The Collector's exporter compresses with gzip.
                let gzip = tonic::codec::CompressionEncoding::Gzip;
                tonic::transport::Server::builder()
                    .add_service(ProfilesServiceServer::new(sink.clone()).accept_compressed(gzip))
                    .add_service(TraceServiceServer::new(sink).accept_compressed(gzip))
                    .serve_with_incoming(incoming)
                    .await
                    .unwrap();
            });
        });
        port
    }
}

/// One sample of a received profile, resolved through its request's
/// dictionary.
#[derive(Debug)]
struct Resolved {
    service: String,
    trace_id: String,
    functions: Vec<String>,
    attributes: Vec<(String, String)>,
    wait_ns: i64,
}

fn resolve(requests: &[ExportProfilesServiceRequest]) -> Vec<Resolved> {
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mut out = Vec::new();
    for r in requests {
        let d = r.dictionary.as_ref().expect("a dictionary");
        let s = |i: i32| d.string_table[i as usize].clone();
        for rp in &r.resource_profiles {
            let service = rp
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    any_value::Value::StringValue(v) => Some(v.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for p in rp.scope_profiles.iter().flat_map(|s| &s.profiles) {
                let st = p.sample_type.expect("a sample type");
                assert_eq!((s(st.type_strindex), s(st.unit_strindex)), ("wait".into(), "nanoseconds".into()));
                for sample in &p.samples {
                    let functions = d.stack_table[sample.stack_index as usize]
                        .location_indices
                        .iter()
                        .flat_map(|l| &d.location_table[*l as usize].lines)
                        .map(|line| s(d.function_table[line.function_index as usize].name_strindex))
                        .collect();
                    let attributes = sample
                        .attribute_indices
                        .iter()
                        .map(|i| {
                            let kv = &d.attribute_table[*i as usize];
                            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(any_value::Value::StringValue(v)) => v.clone(),
                                other => format!("{other:?}"),
                            };
                            (s(kv.key_strindex), v)
                        })
                        .collect();
                    out.push(Resolved {
                        service: service.clone(),
                        trace_id: hex(&d.link_table[sample.link_index as usize].trace_id),
                        functions,
                        attributes,
                        wait_ns: sample.values.iter().sum(),
                    });
                }
            }
        }
    }
    out
}

#[test]
fn the_wait_profile_goes_upstream_as_otlp_profiles_through_a_real_collector() {
    if !require_root("the_wait_profile_goes_upstream_as_otlp_profiles_through_a_real_collector") {
        return;
    }
    gort_binary();
    let sink = ProfilesSink::default();
    let sink_port = sink.start();
    let relay = free_port();
    let _collector = start_collector_with_profiles(relay, sink_port);
    let gort_port = free_port();
    let svc = StallingService::start(gort_port, "otlp-profiles");
    let dir = Scratch::new("otlp-profiles-gort");
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "run:\n  interval: {}ms\nreceiver:\n  grpc_endpoint: 127.0.0.1:{gort_port}\n  http_endpoint: \"off\"\n\
             exporter:\n  endpoint: http://127.0.0.1:{relay}\n  profiles: true\n  batch_timeout: 50ms\n\
             telemetry:\n  endpoint: \"off\"\n",
            INTERVAL.as_millis()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &svc.svc.pid().to_string(), "--config"]).arg(&config);
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("gort:   mode:"));
    wait_for_port(gort_port, Duration::from_secs(30));

    svc.load(5, "mutex");
    // A few more intervals, so that the last stall's census is in a profile.
    std::thread::sleep(INTERVAL * 3);
    let truths = svc.stop();
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort exits cleanly");
    // gort has delivered to the Collector; give its exporter a moment.
    std::thread::sleep(Duration::from_secs(2));

    let requests = sink.0.lock().unwrap().clone();
    let samples = resolve(&requests);
    eprintln!("{} profiles requests, {} samples", requests.len(), samples.len());
    assert!(!samples.is_empty(), "no profile arrived");
    assert!(samples.iter().all(|s| s.service == "tracedsvc"), "the service's own name on every profile");
    assert!(truths.len() >= 2, "at least two mutex stalls: {truths:?}");
    let mut failures = Vec::new();
    for t in &truths {
        let linked: Vec<&Resolved> = samples.iter().filter(|s| s.trace_id == t.trace_id).collect();
        let at_do: Vec<&&Resolved> =
            linked.iter().filter(|s| s.functions.iter().any(|f| f == "main.(*server).do")).collect();
        let got = at_do.iter().map(|s| s.wait_ns).sum::<i64>() as f64 / 1e6;
        let injected = t.injected_ns / 1e6;
        let reasons: std::collections::BTreeSet<&str> = at_do
            .iter()
            .flat_map(|s| &s.attributes)
            .filter(|(k, _)| k == "go.wait.reason")
            .map(|(_, v)| v.as_str())
            .collect();
        eprintln!(
            "{} {}: {got:.0} ms linked to its span at main.(*server).do ({reasons:?}), {injected:.0} ms measured",
            t.kind, t.trace_id
        );
        let slack = INTERVAL.as_secs_f64() * 1e3;
        if (got - injected).abs() > slack {
            failures.push(format!(
                "{}: {got} ms against {injected} ms measured, ± {slack}: {linked:#?}",
                t.trace_id
            ));
        }
        if !reasons.contains("mutex") {
            failures.push(format!("the wait reason of {}: {reasons:?}", t.trace_id));
        }
        if linked.iter().any(|s| s.functions.iter().any(|f| f.contains("holderLoop"))) {
            failures.push(format!("the holder serves no span, yet is linked to {}", t.trace_id));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let _ = std::fs::remove_file(&config);
}
