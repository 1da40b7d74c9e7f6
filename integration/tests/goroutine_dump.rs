//! `gort goroutines` against the process's own goroutine dump: `parked`
//! parks goroutines in known places (channel receive and send, through an
//! inlined call too, a mutex, a condition variable, a select, a sleep, a
//! network accept and read, a WaitGroup), runs two GCs, takes `runtime.Stack(all)` at that
//! quiescent moment and writes it out; gort then reads the same process from outside. Every
//! goroutine, its state and every frame (function, file and line) must be
//! the same, but for the goroutine that took the dump (it was running
//! then). The census's park sites must be the lines marked in the source,
//! each walk complete. On Go 1.21, 1.23, the machine's Go and 1.27, with
//! and without symbols, and as a stripped PIE (a stripped binary has neither a symbol table nor DWARF: gort
//! finds the goroutine list in the runtime's code and names frames from
//! `.gopclntab`). Needs root: reading another process's memory needs
//! ptrace access to it.

use std::{collections::BTreeMap, path::Path, process::Command, time::Duration};

use gort_integration::{
    Proc, go_program, gort_binary, require_root, scratch::Scratch, summary, workspace_root,
};
use serde_json::Value;

/// One goroutine of a dump in Go's text form: its bracketed status and its
/// frames (function without arguments, file:line), "created by" included.
type Parsed = BTreeMap<u64, (String, Vec<(String, String)>)>;

fn parse(text: &str) -> Parsed {
    let mut out = Parsed::new();
    for block in text.trim().split("\n\n") {
        let mut lines = block.lines();
        let Some(head) = lines.next() else { continue };
        let Some(rest) = head.strip_prefix("goroutine ") else { continue };
        let (id, status) = rest.split_once(" [").expect("goroutine N [status]:");
        let status = status.strip_suffix("]:").expect("status ends the line").to_owned();
        let lines: Vec<&str> = lines.collect();
        let mut frames = Vec::new();
        for pair in lines.chunks(2) {
            let [function, location] = pair else { continue };
            let function = match function.strip_prefix("created by ") {
                Some(_) => function.to_string(),
                None => function[..function.rfind('(').expect("call has arguments")].to_owned(),
            };
            let location = location.trim().split(" +").next().unwrap().to_owned();
            frames.push((function, location));
        }
        out.insert(id.parse().expect("goroutine id"), (status, frames));
    }
    out
}

fn gort(pid: u32, args: &[&str]) -> String {
    let out = Command::new(gort_binary())
        .args(["goroutines", "--pid", &pid.to_string()])
        .args(args)
        .output()
        .expect("run gort goroutines");
    assert!(out.status.success(), "gort goroutines: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn check(binary: &Path, what: &str) {
    // Built before the program starts: a rebuild in between would age every
    // wait past a minute, which the text then shows and Go's dump did not.
    gort_binary();
    let dir = Scratch::new(&format!("goroutine-dump-{what}"));
    let own = dir.join("own.txt");
    let mut cmd = Command::new(binary);
    cmd.arg("-dump").arg(&own);
    let mut p = Proc::spawn(cmd, "[parked]");
    let ready: Value =
        serde_json::from_str(&p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""))).unwrap();
    let dumper = ready["dumper"].as_u64().expect("dumper id");
    let mut theirs = parse(&std::fs::read_to_string(&own).expect("the program's own dump"));
    assert_eq!(theirs.remove(&dumper).map(|(s, _)| s).as_deref(), Some("running"), "{what}");
    let text = gort(p.pid(), &[]);
    let mut ours = parse(&text);
    // The dumper may not have returned yet.
    ours.remove(&dumper);
    for (id, (status, frames)) in &theirs {
        eprintln!("{what}: goroutine {id} [{status}]: {} frames", frames.len());
    }
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}: goroutine ids\n{text}"
    );
    for (id, theirs) in &theirs {
        assert_eq!(&ours[id], theirs, "{what}: goroutine {id}");
    }
    // Everything the program set up is there, with the states named as the
    // runtime names them.
    let statuses: Vec<&str> = theirs.values().map(|(s, _)| s.as_str()).collect();
    for wanted in
        ["chan receive", "chan send", "sync.Mutex.Lock", "sync.Cond.Wait", "select", "sleep", "IO wait"]
    {
        assert!(statuses.contains(&wanted), "{what}: no goroutine in {wanted}: {statuses:?}");
    }
    let inlined = theirs.values().any(|(_, f)| f.iter().any(|(name, _)| name == "main.receive"));
    assert!(inlined, "{what}: the inlined receive is a frame of its own");

    let unix_ns =
        || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as f64;
    let asked = unix_ns();
    let json: Value = serde_json::from_str(&gort(p.pid(), &["--json"])).expect("--json");
    let answered = unix_ns();
    let goroutines = json["goroutines"].as_array().expect("goroutines");
    let workers: Vec<&Value> = goroutines
        .iter()
        .filter(|g| g["frames"].as_array().unwrap().iter().any(|f| f["function"] == "main.worker"))
        .collect();
    assert_eq!(workers.len(), 3, "{what}");
    for w in &workers {
        assert_eq!(w["state"], "waiting");
        assert_eq!(w["wait_reason"], "chan receive");
        assert_eq!(w["creator"], 1);
        assert_eq!(w["created_by"]["function"], "main.main");
        assert_eq!(w["truncated"], false);
    }
    // How long each goroutine has waited, against the two GCs the program
    // ran while all of them were parked: the second cycle's stack scan
    // stamped each with the time the first cycle's mark termination began,
    // so gort's figure lies between the time since the first GC returned
    // (at the ask) and the time since it was called (at the answer). Wall
    // and monotonic clocks agree to far better than the 2 ms allowed for
    // reading them in two processes.
    assert_eq!(ready["gcs_before"], 0, "{what}: a GC ran before the program's own");
    assert_eq!(ready["gcs_after"], 2, "{what}: a GC ran beside the program's own");
    let (gc_start, gc_end) =
        (ready["gc_start_unix_ns"].as_f64().unwrap(), ready["gc_end_unix_ns"].as_f64().unwrap());
    let (low, high) = ((asked - gc_end) / 1e9 - 0.002, (answered - gc_start) / 1e9 + 0.002);
    for g in goroutines.iter().filter(|g| g["state"] == "waiting" && g["runtime"] == false) {
        let waited =
            g["waited_seconds_approx"].as_f64().unwrap_or_else(|| panic!("{what}: no wait time: {g}"));
        assert!(
            low <= waited && waited <= high,
            "{what}: goroutine {} waited {waited} s, not in [{low}, {high}]",
            g["id"]
        );
    }
    // The runtime's own goroutines are read too, marked, and left out of
    // the text at the default level as Go leaves them out.
    let runtime: Vec<u64> =
        goroutines.iter().filter(|g| g["runtime"] == true).map(|g| g["id"].as_u64().unwrap()).collect();
    assert!(!runtime.is_empty(), "{what}: no runtime goroutine read");
    assert!(runtime.iter().all(|id| !ours.contains_key(id)), "{what}");
    assert!(parse(&gort(p.pid(), &["--all"])).keys().any(|id| runtime.contains(id)), "{what}");

    let grouped = gort(p.pid(), &["--format", "grouped"]);
    let worker_group = grouped.split("\n\n").find(|b| b.contains("\tmain.worker+")).expect("a worker group");
    let count = worker_group.lines().find(|l| l.contains(" @ ")).expect("count @ pcs");
    assert!(count.starts_with("3 @ "), "{what}: {worker_group}");
    park_sites_are_the_marked_lines(p.pid(), what);
    p.child.kill().expect("kill parked");
    let _ = p.child.wait();
}

/// The lines of `parked`'s source marked "park: FUNCTION", by line.
fn marked_lines() -> BTreeMap<u32, String> {
    let source = std::fs::read_to_string(workspace_root().join("integration/go/parked/main.go")).unwrap();
    source
        .lines()
        .enumerate()
        .filter_map(|(i, l)| Some((i as u32 + 1, l.split_once("// park: ")?.1.trim().to_owned())))
        .collect()
}

/// The census's park sites (`gort run` with no probe, its summary): every
/// waiting goroutine of the program at the marked line of the function
/// that waits there, none unknown, every stack walked to its bottom.
fn park_sites_are_the_marked_lines(pid: u32, what: &str) {
    let summary = std::env::temp_dir().join(format!("gort-park-sites-{pid}.json"));
    let out = Command::new(gort_binary())
        .args(["run", "--pid", &pid.to_string(), "--probes", "none", "--interval", "200ms", "--for", "1s"])
        .arg("--summary-json")
        .arg(&summary)
        .output()
        .expect("run gort run");
    assert!(out.status.success(), "{what}: gort run: {}", String::from_utf8_lossy(&out.stderr));
    let mut target = summary::take(&summary).targets.remove(0);
    let _ = std::fs::remove_file(&summary);
    let marked = marked_lines();
    let mut seen = BTreeMap::new();
    for site in &target.park_sites {
        eprintln!("{what}: {} {site:?}", site.goroutines);
        let function =
            site.function.as_deref().unwrap_or_else(|| panic!("{what}: an unknown site: {site:?}"));
        let file = site.file.as_deref().unwrap_or_default();
        // The dumper may still be on its way out.
        if function == "main.main.func2" {
            continue;
        }
        assert!(file.ends_with("integration/go/parked/main.go"), "{what}: {site:?}");
        let line = site.line.expect("a site has a line");
        assert_eq!(
            marked.get(&line).map(String::as_str),
            Some(function),
            "{what}: {site:?} is not a marked line"
        );
        *seen.entry(line).or_insert(0) += site.goroutines;
    }
    assert_eq!(
        seen.keys().collect::<Vec<_>>(),
        marked.keys().collect::<Vec<_>>(),
        "{what}: every marked line has its goroutines"
    );
    let worker = marked.iter().find(|(_, f)| *f == "main.worker").map(|(l, _)| l).unwrap();
    assert_eq!(seen[worker], 3, "{what}: the three workers");
    assert!(
        seen.iter().all(|(l, n)| l == worker || *n == 1),
        "{what}: one goroutine at each other line: {seen:?}"
    );
    let complete = target.stack_walks.remove("complete").unwrap_or(0);
    assert!(complete >= marked.len() as u64, "{what}: {complete} walks complete");
    assert!(
        target.stack_walks.values().all(|n| *n == 0),
        "{what}: walks cut short: {:?}",
        target.stack_walks
    );
}

#[test]
fn an_outside_dump_matches_the_process_s_own() {
    if !require_root("an_outside_dump_matches_the_process_s_own") {
        return;
    }
    for (version, env) in [
        ("default", &[][..]),
        ("go1.21.13", &[("GOTOOLCHAIN", "go1.21.13")][..]),
        ("go1.23.12", &[("GOTOOLCHAIN", "go1.23.12")][..]),
        ("go1.27.4", &[("GOTOOLCHAIN", "go1.27.4")][..]),
    ] {
        for (kind, args) in [
            ("", &[][..]),
            ("-stripped", &["-ldflags=-s -w"][..]),
            ("-pie-stripped", &["-buildmode=pie", "-ldflags=-s -w"][..]),
        ] {
            let what = format!("{version}{kind}");
            let binary = go_program("parked", &what, args, env);
            check(&binary, &what);
        }
    }
}

#[test]
fn a_process_that_is_not_go_gets_one_sentence() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("spawn sleep");
    let out = Command::new(gort_binary())
        .args(["goroutines", "--pid", &sleeper.id().to_string()])
        .output()
        .expect("run gort goroutines");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("gort: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
