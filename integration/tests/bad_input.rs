//! `gort` given something it cannot watch exits non-zero with one clear
//! sentence, never a panic or a backtrace.

use std::process::Command;

use gort_integration::{Proc, go_program, gort_binary, require_root};

fn gort(args: &[&str]) -> (bool, String) {
    let out = Command::new(gort_binary()).args(args).env("RUST_BACKTRACE", "1").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"), "gort panicked: {stderr}");
    (out.status.success(), stderr)
}

fn assert_one_sentence(stderr: &str, needle: &str) {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one line, got {stderr:?}");
    assert!(lines[0].starts_with("gort: ") && lines[0].contains(needle), "{stderr:?} lacks {needle:?}");
}

#[test]
fn a_pid_that_does_not_exist() {
    let (ok, stderr) = gort(&["run", "--pid", "4194303"]);
    assert!(!ok);
    assert_one_sentence(&stderr, "no process with pid 4194303 exists");
}

#[test]
fn a_pid_that_is_a_kernel_thread() {
    // pid 2 is kthreadd on Linux.
    let (ok, stderr) = gort(&["run", "--pid", "2", "--for", "1s"]);
    assert!(!ok);
    assert_one_sentence(&stderr, "pid 2 is a kernel thread, not a program");
}

/// Turning a part off does not start the pipeline behind the user's back:
/// with nothing else to do, gort says so (it used to listen on 4317/4318).
#[test]
fn telemetry_off_alone_starts_no_pipeline() {
    let (ok, stderr) = gort(&["run", "--telemetry", "off", "--for", "2s"]);
    assert!(!ok);
    assert_one_sentence(&stderr, "nothing to do");
}

#[test]
fn inspect_go_older_than_1_21() {
    let binary = go_program("pingpong", "go1.20.14", &[], &[("GOTOOLCHAIN", "go1.20.14")]);
    let (ok, stderr) = gort(&["inspect", binary.to_str().unwrap()]);
    assert!(!ok);
    assert_one_sentence(&stderr, "Go version go1.20.14 is older than go1.21.0");
}

#[test]
fn inspect_non_go_and_non_elf_files() {
    let (ok, stderr) = gort(&["inspect", "/bin/sh"]);
    assert!(!ok);
    assert_one_sentence(&stderr, "not a Go program");
    let script = std::env::temp_dir().join(format!("gort-not-elf-{}", std::process::id()));
    std::fs::write(&script, "#!/bin/sh\necho hi\n").unwrap();
    let (ok, stderr) = gort(&["inspect", script.to_str().unwrap()]);
    assert!(!ok);
    assert_one_sentence(&stderr, "not an ELF executable");
    let _ = std::fs::remove_file(script);
}

#[test]
fn run_against_a_process_that_is_not_go() {
    if !require_root("run_against_a_process_that_is_not_go") {
        return;
    }
    let mut cmd = Command::new("sleep");
    cmd.arg("30");
    let sleeper = Proc::spawn(cmd, "[sleep]");
    let (ok, stderr) = gort(&["run", "--pid", &sleeper.pid().to_string(), "--for", "2s"]);
    assert!(!ok);
    assert_one_sentence(&stderr, "not a Go program");
}

/// A stripped binary of a Go release newer than the offsets table: a Go
/// 1.27 build whose version is patched to "go1.99.0" (same length), a
/// synthetic release no table can know. The table's generator says whether
/// its newest layout equals the one before; gort must then take that
/// layout with a warning, or else refuse rather than guess the goid offset.
#[test]
fn run_against_a_stripped_go_newer_than_the_offsets_table() {
    if !require_root("run_against_a_stripped_go_newer_than_the_offsets_table") {
        return;
    }
    let env = [("GOTOOLCHAIN", "go1.27.4")];
    let real = go_program("pingpong", "go1.27.4-stripped", &["-ldflags=-s -w"], &env);
    let mut bytes = std::fs::read(&real).unwrap();
    let (from, to) = (b"go1.27.4", b"go1.99.0");
    let mut patched = 0;
    for i in 0..bytes.len().saturating_sub(from.len()) {
        if &bytes[i..i + from.len()] == from {
            bytes[i..i + from.len()].copy_from_slice(to);
            patched += 1;
        }
    }
    assert!(patched > 0, "no version string to patch");
    let binary = real.with_file_name("pingpong-go1.99.0-synthetic");
    std::fs::write(&binary, &bytes).unwrap();
    let _ = Command::new("chmod").arg("+x").arg(&binary).status();
    let mut cmd = Command::new(&binary);
    cmd.args(["-wait-start"]);
    let mut target = Proc::spawn(cmd, "[synthetic]");
    target.wait_line(std::time::Duration::from_secs(30), |l| l.contains("ready"));
    let (ok, stderr) = gort(&["run", "--pid", &target.pid().to_string(), "--for", "2s"]);
    let table = gort_goexe::offsets::embedded();
    if table.lookup(gort_goexe::Module::Runtime, "go1.99.0", gort_goexe::Arch::Amd64).is_ok() {
        assert!(ok, "{stderr}");
        assert!(stderr.contains("newer than the offsets table"), "no warning: {stderr}");
    } else {
        assert!(!ok);
        assert_one_sentence(&stderr, "the offset of runtime.g.goid is unknown");
    }
}
