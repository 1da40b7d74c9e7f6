//! The wait profile, opened the way a Go developer opens one: `go tool
//! pprof` fetching `/debug/pprof/wait?seconds=3` from gort's telemetry
//! endpoint. `leaky` (never told to start leaking) holds 30 goroutines idle
//! on a channel and 20 workers on an empty job channel: over the profile's
//! 3 s, that is 90 s of waiting at `main.idler` and 60 s at `main.worker`,
//! the ground truth the estimate must meet to within one census interval
//! per goroutine. A bad `seconds` gets a 400 with a sentence.

use std::{process::Command, time::Duration};

use gort_integration::{Proc, free_port, go_program, gort_binary, http_request, require_root};
use serde_json::Value;

const INTERVAL: Duration = Duration::from_millis(250);
const SECONDS: u64 = 3;

/// The cumulative wait (ms) at `function` in `go tool pprof -top -cum`.
fn cum_ms(top: &str, function: &str) -> f64 {
    let row = top
        .lines()
        .find(|l| l.split_whitespace().last() == Some(function))
        .unwrap_or_else(|| panic!("no {function} in:\n{top}"));
    let cum = row.split_whitespace().nth(3).expect("the cum column");
    cum.strip_suffix("ms").unwrap_or(cum).parse().unwrap_or_else(|e| panic!("{cum}: {e}"))
}

#[test]
fn go_tool_pprof_opens_the_wait_profile_and_it_holds_the_known_waits() {
    if !require_root("go_tool_pprof_opens_the_wait_profile_and_it_holds_the_known_waits") {
        return;
    }
    gort_binary();
    let binary = go_program("leaky", "default", &[], &[]);
    let mut p = Proc::spawn(Command::new(&binary), "[leaky]");
    let ready: Value =
        serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""))).unwrap();
    let (telemetry, dead) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("gort-wait-profile-{}", p.pid()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "run:\n  interval: {}ms\n  probes: none\nreceiver:\n  grpc_endpoint: \"off\"\n  http_endpoint: \"off\"\n\
             exporter:\n  endpoint: http://127.0.0.1:{dead}\ntelemetry:\n  endpoint: 127.0.0.1:{telemetry}\n\
             linkage:\n  enabled: false\n",
            INTERVAL.as_millis()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &p.pid().to_string(), "--config"]).arg(&config);
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("gort:   mode:"));

    let (status, body) = http_request(telemetry, "GET", "/debug/pprof/wait?seconds=0", &[], b"");
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("seconds must be a whole number from 1 to 600"), "{body}");

    let url = format!("http://127.0.0.1:{telemetry}/debug/pprof/wait?seconds={SECONDS}");
    let out = Command::new("go")
        .args(["tool", "pprof", "-top", "-cum", "-sample_index=wait", "-unit=ms"])
        .arg(&url)
        .env("PPROF_TMPDIR", &dir)
        .output()
        .expect("run go tool pprof");
    let top = String::from_utf8_lossy(&out.stdout);
    eprintln!("{}{top}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "go tool pprof failed");
    let tags = Command::new("go")
        .args(["tool", "pprof", "-tags", "-sample_index=wait"])
        .arg(
            std::fs::read_dir(&dir)
                .unwrap()
                .flatten()
                .find(|e| e.path().extension() == Some("gz".as_ref()))
                .unwrap()
                .path(),
        )
        .output()
        .expect("run go tool pprof -tags");
    let tags = String::from_utf8_lossy(&tags.stdout);
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
}
