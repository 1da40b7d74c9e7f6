//! gort run as an unprivileged user (`nobody`) with nothing but ambient
//! capabilities, watching a Go service that runs as root: with the
//! capabilities it needs it attaches, reads the target's memory and
//! exports; with one missing it exits with one sentence naming it.
//!
//! Which capabilities create uprobes depends on the kernel: Linux 5.8 to
//! 6.15 took CAP_PERFMON, Linux 6.16 (and stable kernels updated since July
//! 2025) want CAP_SYS_ADMIN again.

use std::{
    os::unix::fs::PermissionsExt,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use gort_integration::{
    Proc, free_port, go_program, gort_binary, require_root, scratch::Scratch, sink, start_sink,
};

const NOBODY: &str = "65534";

/// A directory `nobody` can enter and write, holding a copy of gort: the
/// build's own directory may be private (a checkout under `mktemp -d`).
fn scratch(name: &str) -> Scratch {
    let dir = Scratch::new(&format!("least-privilege-{name}"));
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    std::fs::copy(gort_binary(), dir.join("gort")).unwrap();
    std::fs::set_permissions(dir.join("gort"), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `gort args…` as `nobody` holding exactly `caps` (setpriv names, e.g.
/// `sys_ptrace`), inheritable and ambient so they survive the exec.
fn as_nobody(dir: &Path, caps: &[&str], args: &[String]) -> Command {
    let set = caps.iter().map(|c| format!(",+{c}")).collect::<String>();
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", NOBODY, "--regid", NOBODY, "--clear-groups"])
        .arg(format!("--inh-caps=-all{set}"))
        .arg(format!("--ambient-caps=-all{set}"))
        .arg(format!("--bounding-set=-all{set}"))
        .arg(dir.join("gort"))
        .args(args)
        .env("RUST_BACKTRACE", "1");
    cmd
}

/// Linux 6.16 and later refuse uprobes without CAP_SYS_ADMIN.
fn kernel_wants_sys_admin_for_uprobes() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (6, 16)
}

fn service() -> Proc {
    let binary = go_program("tracedsvc", "default", &[], &[]);
    let mut cmd = Command::new(binary);
    // Exports to a port where nothing listens: these runs are about attaching.
    cmd.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{}", free_port())]);
    Proc::spawn(cmd, "[svc]")
}

/// One line on stderr, starting `gort: `, naming `cap`; no panic, no errno soup.
fn assert_names(stderr: &str, cap: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one sentence, got {stderr:?}");
    assert!(lines[0].starts_with("gort: ") && lines[0].contains(cap), "{stderr:?} does not name {cap}");
    assert!(lines[0].contains("grant it"), "{stderr:?} does not say how to grant {cap}");
    assert!(!stderr.contains("panicked") && !stderr.contains("os error"), "{stderr:?}");
}

#[test]
fn each_missing_capability_is_named_in_one_sentence() {
    if !require_root("each_missing_capability_is_named_in_one_sentence") {
        return;
    }
    let dir = scratch("missing");
    let mut svc = service();
    let _ = svc.listen_addr();
    let args =
        ["run".to_owned(), "--pid".to_owned(), svc.pid().to_string(), "--for".to_owned(), "2s".to_owned()];
    let admin = kernel_wants_sys_admin_for_uprobes();
    // (granted, the capability the refusal must name; None: gort runs)
    let cases: [(&[&str], Option<&str>); 5] = [
        (&["bpf", "perfmon", "sys_ptrace"], admin.then_some("CAP_SYS_ADMIN")),
        (&["bpf", "perfmon", "sys_admin"], Some("CAP_SYS_PTRACE")),
        (&["perfmon", "sys_ptrace"], Some("CAP_BPF")),
        (&["bpf", "sys_ptrace"], Some("CAP_PERFMON")),
        (&["sys_admin", "sys_ptrace"], None),
    ];
    for (granted, named) in cases {
        let out = as_nobody(dir.path(), granted, &args).stdin(Stdio::null()).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        eprintln!("granted {granted:?}: exit {:?}, stderr {stderr:?}", out.status.code());
        match named {
            Some(cap) => {
                assert!(!out.status.success(), "gort ran with only {granted:?}");
                assert_names(&stderr, cap);
            }
            None => {
                assert!(out.status.success(), "gort failed with {granted:?}: {stderr}");
                assert!(!stderr.contains("WARN"), "gort ran degraded with {granted:?}: {stderr}");
            }
        }
    }
    drop(svc);
}

/// The whole path as `nobody` with CAP_SYS_ADMIN and CAP_SYS_PTRACE: probes
/// attached to a root-owned service, its memory read (the runtime's own
/// statistics are exported), and its spans enriched and forwarded.
#[test]
fn unprivileged_gort_attaches_reads_memory_and_exports() {
    if !require_root("unprivileged_gort_attaches_reads_memory_and_exports") {
        return;
    }
    let dir = scratch("export");
    let (mut sink_proc, sink_port) = start_sink(&dir.join("sink.jsonl"));
    let gort_port = free_port();
    let binary = go_program("tracedsvc", "default", &[], &[]);
    let mut svc_cmd = Command::new(&binary);
    svc_cmd.env("GOMAXPROCS", "1").args(["-otlp", &format!("127.0.0.1:{gort_port}")]);
    let mut svc = Proc::spawn(svc_cmd, "[svc]");
    let addr = svc.listen_addr();
    let args: Vec<String> = [
        "run",
        "--pid",
        &svc.pid().to_string(),
        "--upstream",
        &format!("http://127.0.0.1:{sink_port}"),
        "--otlp-grpc",
        &format!("127.0.0.1:{gort_port}"),
        "--otlp-http",
        "off",
        "--telemetry",
        "off",
        "--interval",
        "1s",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut gort = Proc::spawn(as_nobody(dir.path(), &["sys_admin", "sys_ptrace"], &args), "[gort]");
    gort.wait_line(Duration::from_secs(60), |l| l.contains("mode:"));
    let mut load = Command::new(&binary);
    load.args(["-load", &addr, "-duration", "3s", "-rate", "100", "-stall-every", "0"]);
    let mut load = Proc::spawn(load, "[load]");
    load.wait_line(Duration::from_secs(30), |l| l.contains("load-done"));
    svc.terminate();
    svc.wait_line(Duration::from_secs(60), |l| l.contains("\"stopped\""));
    gort.wait_line(Duration::from_secs(30), |l| l.contains("exited; probes detached"));
    assert!(gort.wait_exit(Duration::from_secs(30)).success(), "gort failed");
    std::thread::sleep(Duration::from_millis(500));
    sink_proc.terminate();
    let _ = sink_proc.wait_exit(Duration::from_secs(10));

    let items = sink::read(&dir.join("sink.jsonl"));
    let spans: Vec<_> = items.iter().filter(|i| i.kind == "span" && !i.is_gorts_span()).collect();
    let enriched = spans.iter().filter(|s| s.has("go.runtime.runnable.duration")).count();
    let metrics: std::collections::BTreeSet<&str> =
        items.iter().filter(|i| i.kind == "point").map(|i| i.metric.as_str()).collect();
    eprintln!("{} spans, {enriched} enriched; metrics {metrics:?}", spans.len());
    assert!(enriched > 0, "no span was enriched: the probes did not run");
    // From the target's memory, not from a probe.
    assert!(metrics.contains("go.memory.used"), "the runtime's statistics were not read");
    assert!(metrics.contains("go.schedule.duration"), "the probes' histograms did not arrive");
}

/// `--probes none` puts nothing into the kernel: as `nobody` with
/// CAP_SYS_PTRACE alone, gort reads the root-owned service's memory and
/// exports the runtime's own statistics; without it, one sentence names it.
#[test]
fn without_probes_ptrace_alone_is_enough() {
    if !require_root("without_probes_ptrace_alone_is_enough") {
        return;
    }
    let dir = scratch("no-probes");
    let mut svc = service();
    let _ = svc.listen_addr();
    let out_path = dir.join("export.jsonl");
    let args: Vec<String> = [
        "run",
        "--pid",
        &svc.pid().to_string(),
        "--probes",
        "none",
        "--for",
        "2s",
        "--interval",
        "500ms",
        "--otlp-json",
        out_path.to_str().unwrap(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let out = as_nobody(dir.path(), &["sys_ptrace"], &args).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("sys_ptrace alone: exit {:?}, stderr {stderr:?}", out.status.code());
    assert!(out.status.success(), "gort --probes none failed with CAP_SYS_PTRACE alone: {stderr}");
    assert!(!stderr.contains("WARN"), "gort ran degraded: {stderr}");
    let exported = std::fs::read_to_string(&out_path).unwrap();
    assert!(exported.contains("go.memory.used"), "the runtime's statistics were not exported");
    assert!(!exported.contains("gort.probe.hits"), "probe figures exported without probes");

    let out = as_nobody(dir.path(), &[], &args).stdin(Stdio::null()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("no capability: exit {:?}, stderr {stderr:?}", out.status.code());
    assert!(!out.status.success(), "gort read a root process's memory with no capability");
    assert_names(&stderr, "CAP_SYS_PTRACE");
    drop(svc);
}
