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

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, http_request, require_root, sink::Injection, wait_for_port,
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
fn start_gort(pid: u32, run: &str, yaml: &str) -> (Proc, u16, PathBuf) {
    let (telemetry, dead) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gort-wait-profile-{pid}"));
    std::fs::create_dir_all(&dir).unwrap();
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

#[test]
fn a_request_s_waits_are_in_the_profile_under_its_trace_id() {
    if !require_root("a_request_s_waits_are_in_the_profile_under_its_trace_id") {
        return;
    }
    const HOLD: Duration = Duration::from_millis(1500);
    gort_binary();
    let binary = go_program("tracedsvc", "default", &[], &[]);
    let gort_port = free_port();
    let truth = std::env::temp_dir().join(format!("gort-wait-profile-truth-{}", std::process::id()));
    let _ = std::fs::remove_file(&truth);
    let mut svc_cmd = Command::new(&binary);
    svc_cmd.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{gort_port}")]);
    svc_cmd.args(["-mutex-hold", &format!("{}ms", HOLD.as_millis())]).arg("-truth").arg(&truth);
    let mut svc = Proc::spawn(svc_cmd, "[svc]");
    let addr = svc.listen_addr();
    pprof_built();
    let (mut gort, telemetry, dir) = start_gort(
        svc.pid(),
        "",
        &format!("receiver:\n  grpc_endpoint: 127.0.0.1:{gort_port}\n  http_endpoint: \"off\"\n"),
    );
    wait_for_port(gort_port, Duration::from_secs(30));

    // The profile covers the whole load: a mutex stall, a goroutine the
    // handler started stalled on the mutex, and so on in turn, each held
    // for HOLD, beside light plain traffic.
    let profile = std::thread::spawn({
        let dir = dir.clone();
        move || fetch_profile(telemetry, 10, &dir)
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut load = Command::new(&binary);
    load.args(["-load", &addr, "-duration", "6s", "-rate", "20", "-clients", "1"]);
    load.args(["-stall-every", "200ms", "-stalls", "mutex,fanout"]);
    let mut load = Proc::spawn(load, "[load]");
    load.wait_line(Duration::from_secs(60), |l| l.contains("load-done"));
    assert!(load.wait_exit(Duration::from_secs(10)).success());
    let (top, saved) = profile.join().expect("the profile");
    let _ = Command::new("kill").args(["-TERM", &svc.pid().to_string()]).status();
    svc.wait_line(Duration::from_secs(60), |l| l.contains("\"stopped\""));
    assert!(svc.wait_exit(Duration::from_secs(10)).success());
    let _ = gort.wait_exit(Duration::from_secs(30));

    let truths: Vec<Injection> = std::fs::read_to_string(&truth)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("truth {l:?}: {e}")))
        .collect();
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
    let _ = std::fs::remove_file(&truth);
    let _ = std::fs::remove_dir_all(&dir);
}
