//! The census by park site and the leak watch, against a program that leaks
//! at a known line: `leaky` leaves one goroutine a request blocked forever
//! on a channel send every 50 ms, beside a steady pool of 20 workers
//! (parked on their job channel between jobs) and 30 idle goroutines that
//! wait from the start. gort must name the send's function, file and line
//! within the watch's window, suspect nothing else, and count the parked
//! goroutines by function exactly as many as the program says it left. On
//! the machine's Go, 1.21 and 1.27, and a stripped PIE.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use gort_integration::{
    Proc, go_program, gort_binary, last_metric, read_jsonl, require_root, scratch::Scratch, summary,
    workspace_root,
};
use serde_json::Value;

/// The watch's settings for the test: short, so that the test is; the
/// window holds 16 reports.
const MIN_AGE: Duration = Duration::from_secs(2);
const WINDOW: Duration = Duration::from_secs(8);
const INTERVAL: &str = "500ms";

/// The line of `leaky`'s source marked "leaks here".
fn leak_line() -> u32 {
    let source = std::fs::read_to_string(workspace_root().join("integration/go/leaky/main.go")).unwrap();
    let at = source.lines().position(|l| l.contains("// leaks here")).expect("the marked line");
    at as u32 + 1
}

fn check(binary: &Path, what: &str) {
    gort_binary();
    let mut p = Proc::spawn(Command::new(binary), "[leaky]");
    let ready: Value =
        serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""))).unwrap();
    let dir = Scratch::new(&format!("leaks-{}", p.pid()));
    let (config, summary_path, log_path, json) =
        (dir.join("gort.yaml"), dir.join("summary.json"), dir.join("gort.log"), dir.join("otlp.jsonl"));
    std::fs::write(
        &config,
        format!(
            "otlp: false\nrun:\n  interval: {INTERVAL}\n  probes: none\nleaks:\n  min_age: {}s\n  window: {}s\n  min_growth: 5\n",
            MIN_AGE.as_secs(),
            WINDOW.as_secs()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(gort_binary());
    cmd.args(["run", "--pid", &p.pid().to_string(), "--config"])
        .arg(&config)
        .arg("--summary-json")
        .arg(&summary_path)
        .arg("--otlp-json")
        .arg(&json)
        .stderr(std::fs::File::create(&log_path).expect("create the log"));
    let mut gort = Proc::spawn(cmd, "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("gort:   mode:"));
    // Let the pool and the idle goroutines age past the window first: a
    // steady population must not look like a leak however long it waited.
    std::thread::sleep(MIN_AGE + WINDOW / 2);
    p.send_line("go");
    let started = Instant::now();
    let deadline = started + MIN_AGE + WINDOW * 2;
    let log = loop {
        let log = std::fs::read_to_string(&log_path).unwrap_or_default();
        if log.contains("a goroutine leak?") {
            break log;
        }
        assert!(Instant::now() < deadline, "{what}: no leak named in {:?}: {log}", deadline - started);
        std::thread::sleep(Duration::from_millis(100));
    };
    let found_after = started.elapsed();
    eprintln!(
        "{what}: the leak was named {found_after:.1?} after it began (min_age {MIN_AGE:?} + window {WINDOW:?})"
    );
    // The watch needs the age and three quarters of the window at least
    // (the first quarter's smallest count may be from before the leak); the
    // age and the whole window plus a few reports at most.
    assert!(found_after <= MIN_AGE + WINDOW + Duration::from_secs(2), "{what}: named after {found_after:?}");
    let line = leak_line();
    let suspected: Vec<&str> = log.lines().filter(|l| l.contains("a goroutine leak?")).collect();
    assert_eq!(suspected.len(), 1, "{what}: {suspected:?}");
    assert!(
        suspected[0].contains("main.handle.func1 (")
            && suspected[0].contains(&format!("leaky/main.go:{line})")),
        "{what}: {}",
        suspected[0]
    );
    p.send_line("stop");
    let stopped: Value =
        serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"stopped\""))).unwrap();
    // Two reports, so that the last census is one of the settled population.
    std::thread::sleep(Duration::from_millis(1200));
    p.send_line("exit");
    assert!(p.wait_exit(Duration::from_secs(10)).success());
    assert!(gort.wait_exit(Duration::from_secs(15)).success());
    let target = summary::take(&summary_path).targets.remove(0);
    eprintln!("{what}: waiting goroutines by function {:?}", target.waiting_at);
    let at = |key: &str| target.waiting_at.get(key).copied().unwrap_or(0);
    assert_eq!(at("waiting/chan_send/main.handle.func1"), stopped["leaked"].as_u64().unwrap(), "{what}");
    assert_eq!(at("waiting/chan_receive/main.idler"), ready["idle"].as_u64().unwrap(), "{what}");
    assert_eq!(at("waiting/chan_receive/main.worker"), ready["workers"].as_u64().unwrap(), "{what}");
    assert_eq!(at("waiting/chan_receive/unknown"), 0, "{what}: every stack was named");
    // The waiting goroutines by function are the waiting ones by reason,
    // split: none is lost or counted twice.
    for (key, n) in &target.live_goroutines {
        if key.starts_with("waiting/") {
            let split: u64 = target
                .waiting_at
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{key}/")))
                .map(|(_, n)| n)
                .sum();
            assert_eq!(split, *n, "{what}: {key}");
        }
    }
    assert_eq!(target.leak_suspects.len(), 1, "{what}: {:?}", target.leak_suspects);
    let s = &target.leak_suspects[0];
    assert_eq!((s.function.as_str(), s.line, s.times), ("main.handle.func1", line, 1), "{what}");
    assert!(s.file.ends_with("integration/go/leaky/main.go"), "{what}: {}", s.file);

    // The same upstream: the census's points by function, and the suspect
    // with its line as an integer, as the semantic conventions type it.
    let requests = read_jsonl(&json);
    let last = |name: &str| {
        last_metric(&requests, name).unwrap_or_else(|| panic!("{what}: {name} not exported")).clone()
    };
    let attr = |p: &Value, key: &str| -> Value {
        p["attributes"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|a| a["key"] == key)
            .map_or(Value::Null, |a| a["value"].clone())
    };
    let count = last("go.goroutine.count");
    let leaking = count["sum"]["dataPoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| attr(p, "code.function.name")["stringValue"] == "main.handle.func1")
        .unwrap_or_else(|| panic!("{what}: no point for the leak's function: {count}"));
    assert_eq!(attr(leaking, "go.wait.reason")["stringValue"], "chan_send", "{what}");
    let suspects = last("gort.goroutine.leak_suspects");
    let point = &suspects["sum"]["dataPoints"][0];
    assert_eq!(attr(point, "code.line.number")["intValue"], line.to_string(), "{what}: {point}");
    assert_eq!(attr(point, "code.function.name")["stringValue"], "main.handle.func1", "{what}");
}

#[test]
fn a_leak_is_named_at_its_line_and_waiting_without_leaking_is_not() {
    if !require_root("a_leak_is_named_at_its_line_and_waiting_without_leaking_is_not") {
        return;
    }
    for (what, args, env) in [
        ("default", &[][..], &[][..]),
        ("pie-stripped", &["-buildmode=pie", "-ldflags=-s -w"][..], &[][..]),
        ("go1.21.13", &[][..], &[("GOTOOLCHAIN", "go1.21.13")][..]),
        ("go1.27.4", &[][..], &[("GOTOOLCHAIN", "go1.27.4")][..]),
    ] {
        let binary = go_program("leaky", what, args, env);
        check(&binary, what);
    }
}
