//! `gort run --exe PATH` follows an executable across restarts: it attaches
//! to the running process, notices its exit, detaches, and attaches again to
//! the next process started from the same file. Runs as root.

use std::{process::Command, time::Duration};

use gort_integration::{
    PingPongReport, Proc, go_program, gort_binary, parse_report, require_root, scratch::Scratch, summary,
};

#[test]
fn ebpf_follows_the_executable_across_a_restart() {
    if !require_root("ebpf_follows_the_executable_across_a_restart") {
        return;
    }
    let binary = go_program("pingpong", "follow", &[], &[]);
    let start = || {
        let mut cmd = Command::new(&binary);
        cmd.args(["-wait-start", "-pairs", "2", "-rounds", "2000"]);
        let mut p = Proc::spawn(cmd, "[pingpong]");
        p.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
        p
    };
    let summary = std::env::temp_dir().join(format!("gort-follow-{}.json", std::process::id()));
    let first = start();
    let mut gort = follow(&binary, &["--summary-json", summary.to_str().unwrap()]);
    let (first_pid, first_report) = observe(&mut gort, first, Duration::from_secs(60));
    // The restart: a new process from the same file.
    let (second_pid, second_report) = observe(&mut gort, start(), Duration::from_secs(10));

    // Stop gort before its --for deadline with SIGTERM, as a container
    // runtime stops a sidecar (SIGINT, Ctrl-C, takes the same path).
    let status = Command::new("kill").args(["-TERM", &gort.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(gort.wait_exit(Duration::from_secs(15)).success());

    let s = summary::take(&summary);
    assert_eq!(s.ended, "interrupted");
    let targets = &s.targets;
    assert_eq!(targets.len(), 2, "{s:?}");
    for (target, (pid, report)) in
        targets.iter().zip([(first_pid, &first_report), (second_pid, &second_report)])
    {
        assert_eq!(target.pid, pid);
        assert!(target.exited);
        assert!(target.hits("execute").unwrap() >= 2 * report.round_trips, "{target:?}");
        let seen: Vec<u64> = target.goroutines.iter().map(|g| g.goid).collect();
        for goid in &report.goids {
            assert!(seen.contains(goid), "pid {pid}: goroutine {goid} not seen: {seen:?}");
        }
    }
}

/// `gort run --exe exe` for at most a minute, in deep mode so the test
/// workload's every switch is counted, with `extra` flags.
fn follow(exe: &std::path::Path, extra: &[&str]) -> Proc {
    let mut cmd = Command::new(gort_binary());
    cmd.arg("run").arg("--exe").arg(exe);
    cmd.args(["--for", "60s", "--interval", "200ms", "--deep", "30m"]).args(extra);
    Proc::spawn(cmd, "[gort]")
}

/// Waits for gort to attach to `target` (within `attach_timeout`), runs the
/// workload, and waits for gort to notice the exit: (pid, what it reported).
fn observe(gort: &mut Proc, mut target: Proc, attach_timeout: Duration) -> (u32, PingPongReport) {
    let pid = target.pid();
    gort.wait_line(attach_timeout, |l| l.starts_with(&format!("gort: attached to pid {pid} ")));
    gort.wait_line(Duration::from_secs(10), |l| l.contains("probe ready"));
    target.send_line("go");
    let report = parse_report(&target.wait_line(Duration::from_secs(60), |l| l.contains("\"done\"")));
    target.wait_exit(Duration::from_secs(10));
    gort.wait_line(Duration::from_secs(10), |l| l == format!("gort: pid {pid} exited; probes detached"));
    (pid, report)
}

/// A sidecar shares the service's processes but not its files: the path it
/// is given is the executable as the service sees it in its own mount
/// namespace, which gort's does not have. Here the target runs in a mount
/// namespace of its own, from a directory mounted only there.
#[test]
fn ebpf_finds_an_executable_only_the_target_can_see() {
    if !require_root("ebpf_finds_an_executable_only_the_target_can_see") {
        return;
    }
    let binary = go_program("pingpong", "follow", &[], &[]);
    let root = Scratch::new("sidecar");
    let (shipped, app) = (root.join("image"), root.join("app"));
    std::fs::create_dir_all(&shipped).unwrap();
    std::fs::create_dir_all(&app).unwrap();
    std::fs::copy(&binary, shipped.join("server")).unwrap();
    let seen_as = app.join("server");
    assert!(!seen_as.exists(), "the path must not exist in gort's mount namespace");
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"]).arg(format!(
        "mount --bind {} {} && exec {} -wait-start -pairs 2 -rounds 2000",
        shipped.display(),
        app.display(),
        seen_as.display()
    ));
    let mut target = Proc::spawn(cmd, "[pingpong]");
    target.wait_line(Duration::from_secs(30), |l| l.contains("\"ready\""));
    let mut gort = follow(&seen_as, &[]);
    let (_, report) = observe(&mut gort, target, Duration::from_secs(30));
    assert!(report.round_trips > 0);
    let status = Command::new("kill").args(["-TERM", &gort.pid().to_string()]).status().unwrap();
    assert!(status.success());
    assert!(gort.wait_exit(Duration::from_secs(15)).success());
}
