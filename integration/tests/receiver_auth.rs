//! Who may send to gort: a bearer token on the OTLP receivers and the
//! telemetry endpoint, with the OpenTelemetry Go SDK as the client (its
//! standard `OTEL_EXPORTER_OTLP_HEADERS`), rotated without a restart; and
//! gort's refusal to listen beyond loopback with nothing protecting it.
//! No root.

use std::{
    collections::BTreeSet,
    io::{BufRead, BufReader, Read},
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, http_request, scratch::Scratch, sink, start_sink,
};

fn scratch(name: &str) -> Scratch {
    Scratch::new(&format!("auth-{name}"))
}

/// Replaces the token as a Kubernetes Secret update does: a new file
/// renamed over the old one.
fn rotate(token_file: &Path, token: &str) {
    let next = token_file.with_extension("next");
    std::fs::write(&next, format!("{token}\n")).unwrap();
    std::fs::rename(next, token_file).unwrap();
}

/// The SDK app once; Ok(span ids) when every export succeeded, Err(its
/// error) otherwise.
fn otelapp(protocol: &str, port: u16, token: Option<&str>) -> Result<Vec<String>, String> {
    let mut cmd = Command::new(go_program("otelapp", "default", &[], &[]));
    cmd.args(["-protocol", protocol, "-endpoint", &format!("127.0.0.1:{port}")])
        .args(["-service", "authapp", "-spans", "20", "-logs", "5"]);
    if let Some(t) = token {
        // The SDK's own setting, as a deployment would give it.
        cmd.env("OTEL_EXPORTER_OTLP_HEADERS", format!("authorization=Bearer%20{t}"));
    }
    let out = cmd.output().unwrap();
    let line = String::from_utf8_lossy(&out.stdout).lines().last().unwrap_or_default().to_owned();
    let v: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("otelapp: {line:?}: {e}"));
    if out.status.success() {
        Ok(v["spans"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_owned()).collect())
    } else {
        Err(v["error"].as_str().unwrap_or_default().to_owned())
    }
}

fn unauthenticated_total(telemetry: u16, token: &str) -> u64 {
    let auth = format!("Bearer {token}");
    let (status, body) = http_request(telemetry, "GET", "/metrics", &[("Authorization", &auth)], b"");
    assert_eq!(status, 200, "{body}");
    body.lines()
        .find_map(|l| l.strip_prefix("gort_receiver_unauthenticated_requests_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no unauthenticated counter in {body}"))
}

#[test]
fn a_bearer_token_admits_the_sdk_and_refuses_everyone_else() {
    let dir = scratch("token");
    let token_file = dir.join("token");
    rotate(&token_file, "first-token");
    let config = dir.join("gort.yaml");
    std::fs::write(
        &config,
        format!(
            "receiver:\n  bearer_token_file: {0}\ntelemetry:\n  bearer_token_file: {0}\n",
            token_file.display()
        ),
    )
    .unwrap();
    let (mut sink_proc, sink_port) = start_sink(&dir.join("sink.jsonl"));
    let (grpc, http, telemetry) = (free_port(), free_port(), free_port());
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--config"])
        .arg(&config)
        .args(["--otlp-grpc", &format!("127.0.0.1:{grpc}"), "--otlp-http", &format!("127.0.0.1:{http}")])
        .args(["--telemetry", &format!("127.0.0.1:{telemetry}")])
        .args(["--upstream", &format!("http://127.0.0.1:{sink_port}")]);
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("OTLP pipeline running"));

    let mut delivered = BTreeSet::new();
    for (protocol, port) in [("grpc", grpc), ("http", http)] {
        let spans = otelapp(protocol, port, Some("first-token"))
            .unwrap_or_else(|e| panic!("{protocol} with the token failed: {e}"));
        delivered.extend(spans);
        let refused = otelapp(protocol, port, None).expect_err("sent without a token");
        eprintln!("{protocol} without a token: {refused}");
        assert!(refused.contains("Unauthenticated") || refused.contains("401"), "{protocol}: {refused}");
        let refused = otelapp(protocol, port, Some("guess")).expect_err("sent with a wrong token");
        assert!(refused.contains("Unauthenticated") || refused.contains("401"), "{protocol}: {refused}");
    }
    // Four refused runs: each gave up at its first refused signal.
    let counted = unauthenticated_total(telemetry, "first-token");
    assert!(counted >= 4, "{counted} refusals counted for 4 refused runs");
    // Counted exactly: 5 requests without a token, 3 with a wrong one.
    for auth in
        [None, None, None, None, None, Some("Bearer guess"), Some("bearer guess"), Some("Basic Z3Vlc3M=")]
    {
        let headers: Vec<(&str, &str)> = auth.map(|a| ("Authorization", a)).into_iter().collect();
        let (status, body) = http_request(http, "POST", "/v1/traces", &headers, b"not even protobuf");
        assert_eq!(status, 401, "{auth:?}: {body}");
    }
    let counted_after = unauthenticated_total(telemetry, "first-token");
    assert_eq!(counted_after, counted + 8, "each refused request is counted once");
    let counted = counted_after;

    let (status, _) = http_request(telemetry, "GET", "/metrics", &[], b"");
    assert_eq!(status, 401, "/metrics without the token");
    let (status, _) =
        http_request(telemetry, "GET", "/debug/pprof/wait", &[("Authorization", "Bearer x")], b"");
    assert_eq!(status, 401, "the wait profile with a wrong token");
    let (status, _) = http_request(telemetry, "GET", "/health", &[], b"");
    assert_eq!(status, 200, "/health stays open for probes");

    // A rotation takes effect within a second or two, without a restart.
    rotate(&token_file, "second-token");
    let deadline = Instant::now() + Duration::from_secs(10);
    let spans = loop {
        std::thread::sleep(Duration::from_millis(1200));
        match otelapp("grpc", grpc, Some("second-token")) {
            Ok(spans) => break spans,
            Err(e) => assert!(Instant::now() < deadline, "the rotated token is still refused: {e}"),
        }
    };
    delivered.extend(spans);
    assert!(otelapp("http", http, Some("first-token")).is_err(), "the old token still works");
    assert!(unauthenticated_total(telemetry, "second-token") > counted);

    // Exactly what was admitted arrives upstream, once.
    let deadline = Instant::now() + Duration::from_secs(30);
    let arrived = loop {
        let items = sink::read(&dir.join("sink.jsonl"));
        let ids: Vec<String> = items.into_iter().filter(|i| i.kind == "span").map(|i| i.id).collect();
        if ids.len() >= delivered.len() || Instant::now() > deadline {
            break ids;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let unique: BTreeSet<String> = arrived.iter().cloned().collect();
    assert_eq!(arrived.len(), unique.len(), "a span arrived twice");
    assert_eq!(unique, delivered, "upstream holds other spans than the admitted ones");
    gort.terminate();
    assert!(gort.wait_exit(Duration::from_secs(30)).success());
    sink_proc.terminate();
    let _ = sink_proc.wait_exit(Duration::from_secs(10));
    let _ = std::fs::remove_dir_all(dir);
}

/// `gort run` with these flags and config: Err(stderr) when it refused to
/// start, Ok(()) when it ran its pipeline (then stopped).
fn start(args: &[&str], config: Option<&str>) -> Result<(), String> {
    let dir = scratch("exposure");
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--otlp", "--upstream", "http://127.0.0.1:1"]).args(args);
    if let Some(c) = config {
        std::fs::write(dir.join("gort.yaml"), c).unwrap();
        cmd.arg("--config").arg(dir.join("gort.yaml"));
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null()).spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Until a line says the pipeline runs, or gort exits.
    let running = lines.by_ref().map_while(Result::ok).any(|l| l.contains("OTLP pipeline running"));
    let result = if running {
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        // Read on to the end: a closed pipe would fail gort's last reports.
        lines.for_each(drop);
        assert!(child.wait().unwrap().success(), "gort did not stop cleanly");
        Ok(())
    } else {
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        assert!(!child.wait().unwrap().success(), "gort exited 0 without running: {stderr}");
        Err(stderr)
    };
    let _ = std::fs::remove_dir_all(dir);
    result
}

#[test]
fn an_unprotected_listener_beyond_loopback_is_refused_at_start() {
    let any = |port: u16| format!("0.0.0.0:{port}");
    let (g, h, t) = (any(free_port()), any(free_port()), any(free_port()));
    let local = format!("127.0.0.1:{}", free_port());
    for (args, field) in [
        (["--otlp-grpc", &g, "--otlp-http", "off", "--telemetry", "off"], "receiver.grpc_endpoint"),
        (["--otlp-grpc", "off", "--otlp-http", &h, "--telemetry", "off"], "receiver.http_endpoint"),
        (["--otlp-grpc", &local, "--otlp-http", "off", "--telemetry", &t], "telemetry.endpoint"),
    ] {
        let stderr = start(&args, None).expect_err("gort listened unprotected on 0.0.0.0");
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one sentence: {stderr:?}");
        assert!(lines[0].starts_with("gort: ") && lines[0].contains(field), "{stderr:?} lacks {field}");
        assert!(lines[0].contains("allow_insecure_non_loopback: true"), "{stderr:?} lacks the way out");
    }
    // Said on purpose, or protected: gort starts.
    let allowed = "receiver:\n  allow_insecure_non_loopback: true\n";
    start(&["--otlp-grpc", &g, "--otlp-http", &h, "--telemetry", "off"], Some(allowed)).unwrap();
    let dir = scratch("exposure-token");
    std::fs::write(dir.join("token"), "t").unwrap();
    let protected = format!("telemetry:\n  bearer_token_file: {}\n", dir.join("token").display());
    start(&["--otlp-grpc", &local, "--otlp-http", "off", "--telemetry", &t], Some(&protected)).unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
